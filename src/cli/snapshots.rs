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
    let drills = snap::ops::drill::last_drills(&repo)?;
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
                    "last_drill": drills.of(s).map(|d| serde_json::json!({
                        "time": d.time,
                        "ok": d.ok,
                        "sample_percent": d.sample_percent,
                        "files": d.files,
                        "bytes": d.bytes,
                        "duration_s": d.duration_s,
                        "failed_paths": d.failed_paths,
                    })),
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
    // The drill column only once a snapshot was drilled: listings of
    // repositories that never were stay as they were.
    let lines = if drills.is_empty() {
        output::table(
            &rows,
            &[false, false, false, false, true, true, true, false],
        )
    } else {
        let with_drill: Vec<[String; 9]> = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let drill = match i.checked_sub(1).map(|i| &snapshots[i].1) {
                    None => "drill".to_string(),
                    Some(s) => drill_cell(drills.of(s)),
                };
                let [id, time, host, tags, files, size, added, paths] = row.clone();
                [id, time, host, tags, files, size, added, drill, paths]
            })
            .collect();
        output::table(
            &with_drill,
            &[false, false, false, false, true, true, true, false, false],
        )
    };
    for line in lines {
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

/// The last drill of a snapshot as the listing shows it: its local date
/// and time and whether it passed (`-` when never drilled).
fn drill_cell(record: Option<&snap::ops::drill::DrillRecord>) -> String {
    match record {
        None => "-".to_string(),
        Some(d) => format!(
            "{} {}{}",
            if d.ok { "ok" } else { "FAILED" },
            output::local_time(&d.time),
            if d.sample_percent.is_some() {
                " (sample)"
            } else {
                ""
            }
        ),
    }
}
