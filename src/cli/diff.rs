//! `snap diff`

use serde_json::{Value, json};
use snap::ops::diff::{Change, ContentDiff, StatGroup, content_diff, diff};
use snap::ops::paths::inside;
use snap::select::{Filter, parse_selector, select};

use super::output::{self, count};
use super::{Global, exit};

/// Show what changed between two snapshots (optionally below a path).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The older snapshot: an id prefix, latest, latest~N or @TIME.
    before: String,
    /// The newer snapshot.
    after: String,
    /// Only this path inside the snapshots, and what is below it (or a path
    /// of this machine starting with /, ./ or ../).
    path: Option<std::ffi::OsString>,
    /// Print files and bytes added, removed and changed per top-level folder
    /// instead of one line per change.
    #[arg(long)]
    stat: bool,
    /// Show how modified files changed: a unified diff for text, rows per
    /// table for SQLite databases.
    #[arg(long)]
    content: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let snapshots = repo.snapshots()?;
    let filter = Filter::default();
    let (_, before) = select(&snapshots, &parse_selector(&args.before)?, &filter)?;
    let (_, after) = select(&snapshots, &parse_selector(&args.after)?, &filter)?;
    let path = args.path.as_deref().map(super::os_arg);
    let path = inside(&[after, before], path.as_deref())?;
    let found = diff(&repo, before.tree, after.tree, &path)?;
    let content = |change: &Change| -> snap::Result<Option<ContentDiff>> {
        match (&change.before, &change.after) {
            (Some(a), Some(b)) if args.content && change.is_file_pair() => {
                content_diff(&repo, &change.path, a, b).map(Some)
            }
            _ => Ok(None),
        }
    };

    if global.json {
        let mut rows = Vec::with_capacity(found.changes.len());
        for change in &found.changes {
            let mut row = json!({
                "path": change.path,
                "change": change.kind.as_str(),
                "size_before": change.size_before(),
                "size_after": change.size_after(),
                "type_before": change.before.as_ref().map(|n| n.kind.as_str()),
                "type_after": change.after.as_ref().map(|n| n.kind.as_str()),
            });
            if let Some(diff) = content(change)? {
                row["content"] = content_json(&diff);
            }
            rows.push(row);
        }
        output::print_json(&json!({ "changes": rows, "stat": found.stat }))?;
        return Ok(exit::OK);
    }

    if args.stat {
        for (folder, group) in &found.stat.folders {
            println!("{folder}: {}", describe(group));
        }
    } else {
        for change in &found.changes {
            println!("{} {}", change.kind.marker(), change.path);
            if let Some(diff) = content(change)? {
                print_content(&diff);
            }
        }
    }
    if found.stat.total.is_empty() {
        println!("no differences");
    } else {
        println!("total: {}", describe(&found.stat.total));
    }
    Ok(exit::OK)
}

fn content_json(diff: &ContentDiff) -> Value {
    match diff {
        ContentDiff::Text(unified) => json!({ "kind": "text", "diff": unified }),
        ContentDiff::Sqlite(db) => {
            json!({ "kind": "sqlite", "tables": db.tables, "schema": db.schema })
        }
        ContentDiff::SqliteUnreadable(why) => json!({ "kind": "sqlite", "error": why }),
        ContentDiff::Binary => json!({ "kind": "binary" }),
    }
}

fn print_content(diff: &ContentDiff) {
    match diff {
        ContentDiff::Text(unified) => print!("{unified}"),
        ContentDiff::Sqlite(db) => {
            for change in &db.schema {
                println!(
                    "  schema: {} {} {}",
                    change.kind, change.name, change.change
                );
            }
            for table in &db.tables {
                println!(
                    "  table {}: rows added {}, removed {}, changed {}",
                    table.table, table.rows_added, table.rows_removed, table.rows_changed
                );
            }
            if db.schema.is_empty() && db.tables.is_empty() {
                println!("  same tables and rows (the file differs in its pages only)");
            }
        }
        ContentDiff::SqliteUnreadable(why) => {
            println!("  SQLite databases that cannot be compared: {why}");
        }
        ContentDiff::Binary => println!("  binary files differ"),
    }
}

/// One line for a group of changes, naming only what happened.
fn describe(group: &StatGroup) -> String {
    let mut parts = Vec::new();
    if group.files_added > 0 {
        parts.push(format!(
            "{} added ({})",
            count(group.files_added, "file", "files"),
            output::bytes(group.bytes_added)
        ));
    }
    if group.files_removed > 0 {
        parts.push(format!(
            "{} removed ({})",
            count(group.files_removed, "file", "files"),
            output::bytes(group.bytes_removed)
        ));
    }
    if group.files_modified > 0 {
        parts.push(format!(
            "{} modified ({} -> {})",
            count(group.files_modified, "file", "files"),
            output::bytes(group.bytes_before),
            output::bytes(group.bytes_after)
        ));
    }
    if group.type_changed > 0 {
        parts.push(format!(
            "{} changed type",
            count(group.type_changed, "entry", "entries")
        ));
    }
    if group.dirs_added > 0 {
        parts.push(format!("{} added", count(group.dirs_added, "dir", "dirs")));
    }
    if group.dirs_removed > 0 {
        parts.push(format!(
            "{} removed",
            count(group.dirs_removed, "dir", "dirs")
        ));
    }
    if group.metadata_changed > 0 {
        parts.push(format!("{} metadata only", group.metadata_changed));
    }
    parts.join(", ")
}
