//! `snap stats`

use snap::ops::stats::repo_stats;
use snap::select::{Filter, parse_selector, resolve};

use super::output;
use super::{Global, exit};

/// Show what the repository (or one snapshot) holds.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A snapshot to describe instead of the whole repository.
    snapshot: Option<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    if let Some(text) = args.snapshot {
        let (id, s) = resolve(&repo, &parse_selector(&text)?, &Filter::default())?;
        if global.json {
            output::print_json(&serde_json::json!({
                "id": id.to_hex(), "time": s.time, "files": s.summary.files, "dirs": s.summary.dirs,
                "bytes": s.summary.bytes, "bytes_added": s.summary.bytes_added,
                "bytes_added_packed": s.summary.bytes_added_packed,
            }))?;
        } else {
            println!("snapshot {} at {}", id.short(), output::local_time(&s.time));
            println!(
                "  files: {}, dirs: {}, size: {}",
                s.summary.files,
                s.summary.dirs,
                output::bytes(s.summary.bytes)
            );
            println!(
                "  added when taken: {} ({} stored)",
                output::bytes(s.summary.bytes_added),
                output::bytes(s.summary.bytes_added_packed)
            );
        }
        return Ok(exit::OK);
    }
    let stats = repo_stats(&repo)?;
    if global.json {
        output::print_json(&stats)?;
    } else {
        println!("snapshots:      {}", stats.snapshots);
        println!(
            "stored:         {} in {}",
            output::bytes(stats.pack_bytes),
            output::count(stats.packs, "pack", "packs")
        );
        println!("blobs:          {}", stats.blobs);
        println!("index files:    {}", stats.index_files);
        println!("snapshot total: {}", output::bytes(stats.snapshot_bytes));
        if stats.pack_bytes > 0 {
            println!(
                "ratio:          {:.1}x (snapshot total / stored)",
                stats.snapshot_bytes as f64 / stats.pack_bytes as f64
            );
        }
    }
    Ok(exit::OK)
}
