//! `snap snapshots`

use super::filter::FilterArgs;

use super::output;
use super::{Global, exit};

/// List snapshots, oldest first.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let filter = args.filter.filter()?;
    let snapshots: Vec<_> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    if global.json {
        let rows: Vec<_> = snapshots
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(),
                    "short_id": id.short(),
                    "time": s.time,
                    "host": s.host,
                    "paths": s.paths,
                    "tags": s.tags,
                    "parent": s.parent.map(|p| p.to_hex()),
                    "tree": s.tree.to_hex(),
                    "files": s.summary.files,
                    "dirs": s.summary.dirs,
                    "bytes": s.summary.bytes,
                    "bytes_added": s.summary.bytes_added,
                })
            })
            .collect();
        output::print_json(&rows)?;
        return Ok(exit::OK);
    }
    println!(
        "{:<10} {:<19}  {:<12} {:<14} {:>8} {:>10} {:>10}  paths",
        "id", "time", "host", "tags", "files", "size", "added"
    );
    // The one `latest` names (it passes over restores' safety snapshots).
    let last = snap::select::select(&snapshots, &snap::select::Selector::Latest(0), &filter)
        .ok()
        .map(|(id, _)| *id);
    for (id, s) in &snapshots {
        let marker = if Some(*id) == last { "*" } else { " " };
        // Host, tags and paths come from the snapshot file: never raw
        // control characters on the terminal.
        println!(
            "{}{:<9} {:<19}  {:<12} {:<14} {:>8} {:>10} {:>10}  {}",
            marker,
            id.short(),
            output::local_time(&s.time),
            output::terminal_safe(&s.host),
            output::terminal_safe(&s.tags.join(",")),
            s.summary.files,
            output::bytes(s.summary.bytes),
            output::bytes(s.summary.bytes_added),
            output::terminal_safe(&s.paths.join(" "))
        );
    }
    println!(
        "{}{}",
        output::count(snapshots.len(), "snapshot", "snapshots"),
        if snapshots.is_empty() {
            ""
        } else {
            " (* = latest)"
        }
    );
    Ok(exit::OK)
}
