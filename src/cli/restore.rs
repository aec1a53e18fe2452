//! `snap restore`

use std::path::PathBuf;

use snap::ops::browse::{components, find_node};
use snap::select::{Filter, parse_snap_path, resolve};
use snap::{Overwrite, RestoreOptions};

use super::output;
use super::{Global, exit};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OverwriteArg {
    /// Keep existing entries, restore the rest.
    Never,
    /// Replace files whose size or modification time differ.
    IfChanged,
    /// Replace everything in the way.
    Always,
}

/// Restore a snapshot, or one path of it, into a folder.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SNAP[:PATH], e.g. latest, latest~3:lyra/notes/beach.md, @2026-02-01:lyra.
    target_snapshot: std::ffi::OsString,
    /// Folder to restore into (created when missing).
    #[arg(long, short = 't')]
    target: PathBuf,
    /// Only paths matching this glob (as `snap ls` prints them; repeatable).
    #[arg(long = "include")]
    includes: Vec<String>,
    /// Leave out paths matching this glob (repeatable).
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// What to do with entries that already exist (default: refuse to start).
    #[arg(long, value_enum)]
    overwrite: Option<OverwriteArg>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let env = vec![(
        "SNAP_RESTORE_TARGET".to_string(),
        args.target.display().to_string(),
    )];
    super::hooks::around(global, super::hooks::Hooked::Restore, env, |_| {
        run_restore(global, args)
    })
}

fn run_restore(global: &Global, args: Args) -> anyhow::Result<u8> {
    let mut progress = global.progress();
    let repo = global.open(&progress)?;
    let (selector, path) = parse_snap_path(&super::os_arg(&args.target_snapshot))?;
    let (id, snapshot) = resolve(&repo, &selector, &Filter::default())?;
    let path = path.unwrap_or_default();
    let node = find_node(&repo, snapshot.tree, &path)?;
    let options = RestoreOptions {
        target: args.target.clone(),
        overwrite: match args.overwrite {
            None => Overwrite::Refuse,
            Some(OverwriteArg::Never) => Overwrite::Never,
            Some(OverwriteArg::IfChanged) => Overwrite::IfChanged,
            Some(OverwriteArg::Always) => Overwrite::Always,
        },
        includes: args.includes,
        excludes: args.excludes,
    };
    progress.start_bar("restore");
    if node.kind == snap::NodeKind::File {
        progress.set_total(node.size);
    } else if path.is_empty() {
        progress.set_total(snapshot.summary.bytes);
    }
    let result = snap::restore(
        &repo,
        &node,
        &components(&path).join("/"),
        &options,
        &progress,
    );
    progress.finish();
    let report = result?;
    if global.json {
        output::print_json(&serde_json::json!({
            "snapshot": id.to_hex(),
            "target": args.target.display().to_string(),
            "files": report.files,
            "dirs": report.dirs,
            "others": report.others,
            "bytes": report.bytes,
            "skipped": report.skipped,
            "damaged": report.damaged,
            "warnings": report.warnings,
        }))?;
    } else if !global.quiet {
        println!(
            "restored {} files, {} dirs, {} other entries ({}) from snapshot {} into {}{}",
            report.files,
            report.dirs,
            report.others,
            output::bytes(report.bytes),
            id.short(),
            args.target.display(),
            if report.skipped > 0 {
                format!("; kept {} existing entries", report.skipped)
            } else {
                String::new()
            }
        );
    }
    if !report.damaged.is_empty() {
        eprintln!(
            "snap: {} files could not be restored because repository data is damaged: {}; run `snap check`",
            report.damaged.len(),
            report.damaged.join(", ")
        );
        return Ok(exit::DAMAGED);
    }
    Ok(if report.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
