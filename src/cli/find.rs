//! `snap find`

use serde_json::json;
use snap::ops::find::find;

use super::output;
use super::{Global, exit};

/// List the snapshots that hold paths matching a glob.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Glob matched against each path as `snap ls` prints it and against its
    /// last component, e.g. '*.md' or 'lyra/memories/**'; one starting with
    /// /, ./ or ../ is a path of this machine, e.g. '/home/me/app/**/*.md'.
    pattern: String,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let snapshots = repo.snapshots()?;
    let hits = find(&repo, &snapshots, &args.pattern)?;
    if global.json {
        let rows: Vec<_> = hits
            .iter()
            .map(|hit| {
                json!({
                    "snapshot": hit.snapshot.to_hex(),
                    "time": hit.time,
                    "paths": hit.paths,
                })
            })
            .collect();
        output::print_json(&rows)?;
    } else {
        for hit in &hits {
            println!(
                "{}  {}",
                hit.snapshot.short(),
                output::local_time(&hit.time)
            );
            for path in &hit.paths {
                println!("  {path}");
            }
        }
    }
    if hits.is_empty() {
        if !global.json {
            eprintln!("snap: no snapshot holds a path matching `{}`", args.pattern);
        }
        return Ok(exit::NOT_FOUND);
    }
    Ok(exit::OK)
}
