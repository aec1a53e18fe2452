//! `snap tag`

use super::filter::FilterArgs;
use snap::ops::tag::{TagChange, tag, tags_of};
use snap::select::{parse_selector, select};
use snap::{Error, Snapshot, SnapshotId};

use super::output;
use super::{Global, exit};

/// Change the tags of existing snapshots (each is rewritten under a new id).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to change (ids, latest, latest~N, @TIME); default: every
    /// snapshot the filters below let through.
    snapshots: Vec<String>,
    /// Add these tags (comma-separated; repeatable).
    #[arg(long, value_name = "T[,T...]")]
    add: Vec<String>,
    /// Remove these tags (comma-separated; repeatable).
    #[arg(long, value_name = "T[,T...]")]
    remove: Vec<String>,
    /// Replace all tags with these (comma-separated; repeatable).
    #[arg(long, value_name = "T[,T...]", conflicts_with_all = ["add", "remove"])]
    set: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let change = TagChange {
        set: (!args.set.is_empty())
            .then(|| tags_of(&args.set))
            .transpose()?,
        add: tags_of(&args.add)?,
        remove: tags_of(&args.remove)?,
    };
    let filter = args.filter.filter()?;
    let progress = global.progress();
    let repo = global.open(&progress)?;
    let all = repo.snapshots()?;
    let mut chosen: Vec<(SnapshotId, Snapshot)> = Vec::new();
    if args.snapshots.is_empty() {
        chosen.extend(all.iter().filter(|(_, s)| filter.matches(s)).cloned());
    } else {
        for text in &args.snapshots {
            let found = select(&all, &parse_selector(text)?, &filter)?;
            if !chosen.iter().any(|(id, _)| *id == found.0) {
                chosen.push(found.clone());
            }
        }
    }
    if chosen.is_empty() {
        return Err(Error::not_found("no snapshot matches; see `snap snapshots`").into());
    }
    let report = tag(&repo, &chosen, &change)?;
    if global.json {
        output::print_json(&serde_json::json!({
            "changed": report.changed.iter().map(|r| serde_json::json!({
                "old": r.old.to_hex(),
                "new": r.new.to_hex(),
                "tags": r.tags,
            })).collect::<Vec<_>>(),
            "unchanged": report.unchanged.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
        }))?;
    } else if !global.quiet {
        for r in &report.changed {
            println!(
                "snapshot {} is now {}: tags {}",
                r.old.short(),
                r.new.short(),
                output::terminal_safe(&r.tags.join(","))
            );
        }
        println!(
            "{} changed, {} already had these tags",
            output::count(report.changed.len(), "snapshot", "snapshots"),
            report.unchanged.len()
        );
    }
    Ok(exit::OK)
}
