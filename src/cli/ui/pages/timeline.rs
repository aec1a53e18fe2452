//! The timeline: a calendar of snapshots (one cell a day), the list of
//! snapshots, and a chart of the repository's size and of what each
//! snapshot added, drawn on the server as SVG.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use jiff::civil::Date;
use maud::{Markup, PreEscaped, html};
use snap::{Snapshot, SnapshotId};

use super::layout::{bytes, page, snapshot_href, time};
use crate::cli::ui::state::App;
use crate::cli::ui::{UiError, blocking};

/// The calendar shows at most this many days, ending at the last snapshot.
const CALENDAR_DAYS: i64 = 371;

/// `?day=YYYY-MM-DD` keeps only that day's snapshots in the list.
#[derive(serde::Deserialize)]
pub struct TimelineQuery {
    day: Option<String>,
}

/// `GET /`
pub async fn timeline(
    State(app): State<Arc<App>>,
    Query(query): Query<TimelineQuery>,
) -> Result<Markup, UiError> {
    let day = query.day;
    blocking(&app, move |app| {
        let snapshots = app.snapshots()?;
        let day = day
            .filter(|d| !d.is_empty())
            .map(|d| {
                d.parse::<Date>()
                    .map_err(|_| UiError::bad_request(format!("`{d}` is not a day (YYYY-MM-DD)")))
            })
            .transpose()?;
        Ok(render(&snapshots.list, day))
    })
    .await
}

/// `GET /api/state`: what the timeline's script polls to reload when a
/// snapshot appears or goes.
pub async fn state(State(app): State<Arc<App>>) -> Result<Json<serde_json::Value>, UiError> {
    blocking(&app, |app| {
        let snapshots = app.snapshots()?;
        Ok(Json(serde_json::json!({
            "snapshots": snapshots.list.len(),
            "latest": snapshots.list.last().map(|(id, _)| id.to_hex()),
        })))
    })
    .await
}

fn local_day(snapshot: &Snapshot) -> Date {
    snapshot
        .timestamp()
        .to_zoned(jiff::tz::TimeZone::system())
        .date()
}

fn render(list: &[(SnapshotId, Snapshot)], day: Option<Date>) -> Markup {
    let latest = list.last().map(|(id, _)| id.to_hex()).unwrap_or_default();
    let shown: Vec<&(SnapshotId, Snapshot)> = list
        .iter()
        .rev()
        .filter(|(_, s)| day.is_none_or(|d| local_day(s) == d))
        .collect();
    let body = html! {
        section #timeline data-snapshots=(list.len()) data-latest=(latest) {
            @if list.is_empty() {
                p .empty { "No snapshots yet: take one with `snap backup`." }
            } @else {
                h2 { "Calendar" }
                (calendar(list))
                h2 { "Size over time" }
                (chart(list))
                h2 {
                    @if let Some(day) = day {
                        "Snapshots of " (day.to_string()) " "
                        a href="/" { "(all)" }
                    } @else {
                        "Snapshots"
                    }
                }
                (table(&shown))
            }
        }
    };
    page("Timeline", body)
}

fn calendar(list: &[(SnapshotId, Snapshot)]) -> Markup {
    let mut per_day: BTreeMap<Date, (usize, u64)> = BTreeMap::new();
    for (_, snapshot) in list {
        let entry = per_day.entry(local_day(snapshot)).or_default();
        entry.0 += 1;
        entry.1 += snapshot.summary.bytes_added;
    }
    let (Some(first), Some(last)) = (per_day.keys().next(), per_day.keys().next_back()) else {
        return html! {};
    };
    let earliest = last
        .checked_sub(jiff::Span::new().days(CALENDAR_DAYS - 1))
        .unwrap_or(*first);
    let start = (*first).max(earliest);
    // Columns are weeks starting on Monday.
    let start = start
        .checked_sub(jiff::Span::new().days(i64::from(start.weekday().to_monday_zero_offset())))
        .unwrap_or(start);
    let most = per_day.values().map(|(n, _)| *n).max().unwrap_or(1);
    let mut days = Vec::new();
    let mut day = start;
    while day <= *last {
        days.push(day);
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    html! {
        div #calendar role="grid" {
            @for day in &days {
                @let (count, added) = per_day.get(day).copied().unwrap_or_default();
                @let shade = if count == 0 { 0 } else { (count * 4).div_ceil(most).clamp(1, 4) };
                @let label = format!("{day}: {count} snapshot{}, {} added", if count == 1 { "" } else { "s" }, bytes(added));
                @if count > 0 {
                    a .day .{"shade-" (shade)} href={"/?day=" (day)} title=(label) data-day=(day.to_string()) data-count=(count) {}
                } @else {
                    span .day .shade-0 title=(label) data-day=(day.to_string()) {}
                }
            }
        }
    }
}

fn table(shown: &[&(SnapshotId, Snapshot)]) -> Markup {
    html! {
        table #snapshots {
            thead { tr {
                th { "id" } th { "time" } th { "host" } th { "tags" }
                th .num { "files" } th .num { "size" } th .num { "added" }
            } }
            tbody {
                @for (id, s) in shown {
                    tr .snapshot-row data-id=(id.to_hex()) {
                        td { a href=(snapshot_href(id, "")) { code { (id.short()) } } }
                        td { (time(&s.time)) }
                        td { (s.host) }
                        td { @for tag in &s.tags { span .tag { (tag) } " " } }
                        td .num { (s.summary.files) }
                        td .num { (bytes(s.summary.bytes)) }
                        td .num { (bytes(s.summary.bytes_added)) }
                    }
                }
            }
        }
    }
}

/// Repository size (what the snapshots added, packed, summed) as a line,
/// and the bytes each snapshot added as bars, one step per snapshot.
fn chart(list: &[(SnapshotId, Snapshot)]) -> Markup {
    const WIDTH: f64 = 800.0;
    const HEIGHT: f64 = 200.0;
    let mut total = 0u64;
    let sizes: Vec<u64> = list
        .iter()
        .map(|(_, s)| {
            total += s.summary.bytes_added_packed;
            total
        })
        .collect();
    let most_size = sizes.last().copied().unwrap_or(0).max(1) as f64;
    let most_added = list
        .iter()
        .map(|(_, s)| s.summary.bytes_added)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let step = WIDTH / list.len().max(1) as f64;
    let mut bars = String::new();
    let mut line = String::new();
    for (i, ((_, s), size)) in list.iter().zip(&sizes).enumerate() {
        let x = i as f64 * step;
        let h = s.summary.bytes_added as f64 / most_added * HEIGHT * 0.5;
        let _ = write!(
            bars,
            "<rect class=\"added\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}: {} added</title></rect>",
            HEIGHT - h,
            (step * 0.8).max(0.5),
            // Digits and punctuation only: nothing to escape.
            time(&s.time),
            bytes(s.summary.bytes_added),
        );
        let y = HEIGHT - *size as f64 / most_size * (HEIGHT - 10.0);
        let _ = write!(line, "{:.1},{y:.1} ", x + step * 0.4);
    }
    html! {
        figure #chart-figure {
            svg #chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
                role="img" aria-label="Repository size and bytes added per snapshot" {
                (PreEscaped(bars))
                polyline .size points=(line.trim_end()) {}
            }
            figcaption {
                span .legend-size { "repository size (stored, " (bytes(total)) ")" }
                " · "
                span .legend-added { "bytes added per snapshot (largest " (bytes(most_added as u64)) ")" }
            }
        }
    }
}
