//! A file's history (`snap log`) and the comparison of two of its
//! versions: a text diff side by side, or for a SQLite database its tables
//! with row counts in each version and the row diff of `snap diff --content`.

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};
use snap::ops::diff::{ContentDiff, SqliteCompare, content_diff, sqlite_compare};
use snap::ops::log::log;
use snap::ops::paths::{PathArg, nearest_in};

use super::layout::{bytes, encode, page, snapshot_href, time};
use super::snapshot::resolve;
use crate::cli::ui::state::App;
use crate::cli::ui::{UiError, blocking};

/// `?path=PATH`
#[derive(serde::Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    path: String,
}

/// `GET /history?path=PATH`: every version, newest first.
pub async fn history(
    State(app): State<Arc<App>>,
    Query(query): Query<HistoryQuery>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let snapshots = app.snapshots()?;
        let arg = PathArg::parse(&query.path)?;
        let versions = log(&app.repo, &snapshots.list, &arg)?;
        if versions.is_empty() {
            let hint = nearest_in(&app.repo, &snapshots.list, &arg)?
                .map(|near| format!("; {}", near.hint()))
                .unwrap_or_default();
            return Err(UiError::not_found(format!(
                "`{}` is in no snapshot{hint}",
                arg.printable()
            )));
        }
        let shown = arg.printable();
        let body = html! {
            p { (versions.len()) " version" @if versions.len() != 1 { "s" } ", newest first. Pick two and compare them." }
            form #compare-form method="get" action="/compare" {
                input type="hidden" name="path" value=(query.path);
                table #history {
                    thead { tr { th { "a" } th { "b" } th { "snapshot" } th { "time" } th { "type" } th .num { "size" } th { "content" } } }
                    tbody {
                        @for (i, v) in versions.iter().enumerate() {
                            tr .version data-snapshot=(v.snapshot.to_hex()) {
                                td { input type="radio" name="a" value=(v.snapshot.to_hex()) checked[i == 1 || versions.len() == 1]; }
                                td { input type="radio" name="b" value=(v.snapshot.to_hex()) checked[i == 0]; }
                                td { a href=(snapshot_href(&v.snapshot, &arg_in(&arg, &snapshots.list, &v.snapshot))) { code { (v.snapshot.short()) } } }
                                td { (time(&v.time)) }
                                td { (v.node.kind.as_str()) }
                                td .num { (bytes(v.node.size)) }
                                td .mono { (&v.content_id.to_hex()[..16]) }
                            }
                        }
                    }
                }
                p { button #compare type="submit" { "Compare a → b" } }
            }
        };
        Ok(page(&format!("History of {shown}"), body))
    })
    .await
}

/// The path `arg` names inside the snapshot `id`.
fn arg_in(
    arg: &PathArg,
    list: &[(snap::SnapshotId, snap::Snapshot)],
    id: &snap::SnapshotId,
) -> String {
    list.iter()
        .find(|(i, _)| i == id)
        .and_then(|(_, s)| arg.in_snapshot(s))
        .unwrap_or_default()
}

/// `?path=PATH&a=SNAP&b=SNAP`
#[derive(serde::Deserialize)]
pub struct CompareQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
}

/// `GET /compare?path=PATH&a=SNAP&b=SNAP`: version a against version b.
pub async fn compare(
    State(app): State<Arc<App>>,
    Query(query): Query<CompareQuery>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        if query.a.is_empty() || query.b.is_empty() {
            return Err(UiError::bad_request(
                "pick two versions to compare (a and b)",
            ));
        }
        let a = resolve(app, &query.a, &query.path)?;
        let b = resolve(app, &query.b, &query.path)?;
        // A database is copied out once for both its row diff and its counts.
        let (diff, counts) = match sqlite_compare(&app.repo, &a.node, &b.node)? {
            Some(Ok(compared)) => (ContentDiff::Sqlite(compared.diff.clone()), Some(compared)),
            Some(Err(why)) => (ContentDiff::SqliteUnreadable(why), None),
            None => (content_diff(&app.repo, &b.path, &a.node, &b.node)?, None),
        };
        let body = html! {
            p #versions {
                "a: " a href=(snapshot_href(&a.id, &a.path)) { code { (a.id.short()) } } " " (time(&a.snapshot.time)) ", " (bytes(a.node.size))
                " · b: " a href=(snapshot_href(&b.id, &b.path)) { code { (b.id.short()) } } " " (time(&b.snapshot.time)) ", " (bytes(b.node.size))
                " · " a href={"/history?path=" (encode(&query.path))} { "all versions" }
            }
            @match &diff {
                ContentDiff::Text(unified) => (side_by_side(unified)),
                ContentDiff::Sqlite(_) => @if let Some(compared) = &counts { (sqlite(compared)) },
                ContentDiff::SqliteUnreadable(why) => p #diff-note .error { "SQLite cannot read one version: " (why) },
                ContentDiff::Binary => p #diff-note { "The versions are not text (or too large to compare line by line)." },
            }
        };
        Ok(page(&format!("Compare {}", b.path), body))
    })
    .await
}

/// One row of the side-by-side view: the old line and the new line, each
/// with its number, or a marker between hunks.
enum Row<'a> {
    Gap(&'a str),
    Lines(Option<NumberedLine<'a>>, Option<NumberedLine<'a>>, bool),
}

/// A line of one side with its number.
type NumberedLine<'a> = (usize, &'a str);

/// Pairs the removed and added lines of one change, in order.
fn flush<'a>(
    rows: &mut Vec<Row<'a>>,
    removed: &mut Vec<NumberedLine<'a>>,
    added: &mut Vec<NumberedLine<'a>>,
) {
    for i in 0..removed.len().max(added.len()) {
        rows.push(Row::Lines(
            removed.get(i).copied(),
            added.get(i).copied(),
            true,
        ));
    }
    removed.clear();
    added.clear();
}

/// Lays a unified diff out in two columns: removed lines on the left,
/// added lines on the right, paired in order within each change.
fn side_by_side(unified: &str) -> Markup {
    let mut rows = Vec::new();
    let (mut old_no, mut new_no) = (0usize, 0usize);
    let mut removed: Vec<NumberedLine<'_>> = Vec::new();
    let mut added: Vec<NumberedLine<'_>> = Vec::new();
    for line in unified.lines() {
        if line.starts_with("---") || line.starts_with("+++") {
            continue;
        }
        if let Some(hunk) = line.strip_prefix("@@") {
            flush(&mut rows, &mut removed, &mut added);
            // `@@ -OLD,N +NEW,M @@`: where each side's lines start.
            let mut parts = hunk.split_whitespace();
            let mut start = || {
                parts
                    .next()
                    .and_then(|p| p.get(1..)?.split(',').next()?.parse().ok())
                    .unwrap_or(1)
            };
            old_no = start();
            new_no = start();
            rows.push(Row::Gap(line));
            continue;
        }
        match line.chars().next() {
            Some('-') => {
                removed.push((old_no, &line[1..]));
                old_no += 1;
            }
            Some('+') => {
                added.push((new_no, &line[1..]));
                new_no += 1;
            }
            Some('\\') => {}
            _ => {
                flush(&mut rows, &mut removed, &mut added);
                let text = line.get(1..).unwrap_or("");
                rows.push(Row::Lines(
                    Some((old_no, text)),
                    Some((new_no, text)),
                    false,
                ));
                old_no += 1;
                new_no += 1;
            }
        }
    }
    flush(&mut rows, &mut removed, &mut added);
    html! {
        @if rows.is_empty() {
            p #diff-note { "The two versions have the same text." }
        }
        table #diff {
            tbody {
                @for row in &rows {
                    @match row {
                        Row::Gap(text) => tr .gap { td colspan="4" { (text) } },
                        Row::Lines(old, new, changed) => tr {
                            td .ln { @if let Some((n, _)) = old { (n) } }
                            td .{@if *changed && old.is_some() { "del" }} { @if let Some((_, t)) = old { (t) } }
                            td .ln { @if let Some((n, _)) = new { (n) } }
                            td .{@if *changed && new.is_some() { "add" }} { @if let Some((_, t)) = new { (t) } }
                        },
                    }
                }
            }
        }
    }
}

fn sqlite(compared: &SqliteCompare) -> Markup {
    let (rows_a, rows_b, diff) = (&compared.rows_before, &compared.rows_after, &compared.diff);
    let mut names: Vec<&String> = rows_a.iter().chain(rows_b).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    let count =
        |rows: &[(String, u64)], name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, c)| *c);
    html! {
        section #sqlite {
            h2 { "Tables" }
            table #tables {
                thead { tr { th { "table" } th .num { "rows in a" } th .num { "rows in b" } } }
                tbody {
                    @for name in &names {
                        tr .table-row data-table=(name) {
                            td { (name) }
                            td .num { @if let Some(c) = count(rows_a, name) { (c) } @else { "—" } }
                            td .num { @if let Some(c) = count(rows_b, name) { (c) } @else { "—" } }
                        }
                    }
                }
            }
            h2 { "Row changes" }
            @if diff.tables.is_empty() && diff.schema.is_empty() {
                p #no-row-changes .empty { "No rows or schema objects changed." }
            }
            table #row-diff {
                thead { tr { th { "table" } th .num { "added" } th .num { "removed" } th .num { "changed" } } }
                tbody {
                    @for t in &diff.tables {
                        tr data-table=(t.table) {
                            td { (t.table) }
                            td .num .change-added { (t.rows_added) }
                            td .num .change-removed { (t.rows_removed) }
                            td .num .change-modified { (t.rows_changed) }
                        }
                    }
                }
            }
            @if !diff.schema.is_empty() {
                h2 { "Schema" }
                ul #schema-changes {
                    @for change in &diff.schema {
                        li { (change.kind) " " code { (change.name) } " " (change.change) }
                    }
                }
            }
        }
    }
}
