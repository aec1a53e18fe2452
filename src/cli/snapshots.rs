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

/// The widest host name shown; longer ones end in an ellipsis, so that one
/// long name does not push every row out of its columns.
const HOST_WIDTH: usize = 24;

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
    // The one `latest` names (it passes over restores' safety snapshots).
    let last = snap::select::select(&snapshots, &snap::select::Selector::Latest(0), &filter)
        .ok()
        .map(|(id, _)| *id);
    let mut rows = vec![
        [
            "id", "time", "host", "tags", "files", "size", "added", "paths",
        ]
        .map(String::from),
    ];
    for (id, s) in &snapshots {
        let marker = if Some(*id) == last { "*" } else { " " };
        // Host, tags and paths come from the snapshot file: never raw
        // control characters on the terminal.
        rows.push([
            format!("{marker}{}", id.short()),
            output::local_time(&s.time),
            output::ellipsis(&output::terminal_safe(&s.host), HOST_WIDTH),
            output::terminal_safe(&s.tags.join(",")).into_owned(),
            s.summary.files.to_string(),
            output::bytes(s.summary.bytes),
            output::bytes(s.summary.bytes_added),
            output::terminal_safe(&s.paths.join(" ")).into_owned(),
        ]);
    }
    // The header's id lines up with the ids, after the marker column.
    rows[0][0] = " id".to_string();
    for line in output::table(
        &rows,
        &[false, false, false, false, true, true, true, false],
    ) {
        println!("{line}");
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
