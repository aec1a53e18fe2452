//! Health: repository size, the last drill of each snapshot, locks and
//! whether they are stale, and what `forget` would remove under the
//! profile's retention (a dry run: nothing is removed).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use maud::{Markup, html};
use snap::ops::drill::last_drills;
use snap::ops::forget::{Candidate, Selection, forget_plan};
use snap::ops::stats::repo_stats;

use super::layout::{bytes, page, snapshot_href, time};
use crate::cli::ui::state::App;
use crate::cli::ui::{UiError, blocking};

/// `GET /health`
pub async fn health(State(app): State<Arc<App>>) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let snapshots = app.snapshots()?;
        let stats = repo_stats(&app.repo)?;
        let drills = last_drills(&app.repo)?;
        let now = snap::lock::now_s();
        let host = snap::host::hostname();
        let locks = snap::lock::read_all(app.repo.backend(), app.repo.codec())?;
        let retention = app.profile.as_ref().and_then(|p| p.retention.as_ref());
        let plan = retention
            .map(|retention| {
                let candidates: Vec<Candidate> = snapshots
                    .list
                    .iter()
                    .map(|(id, s)| Candidate::of(*id, s))
                    .collect();
                forget_plan(
                    &candidates,
                    Selection::Policy(
                        &retention.policy,
                        retention.group_by.unwrap_or_default(),
                    ),
                    &jiff::tz::TimeZone::system(),
                    jiff::Timestamp::now(),
                )
            })
            .transpose()?;
        let removed: HashSet<snap::SnapshotId> =
            plan.as_ref().map(|p| p.to_remove().into_iter().collect()).unwrap_or_default();
        let body = html! {
            section #health {
                h2 { "Repository" }
                table #repo-size {
                    tbody {
                        tr { th { "snapshots" } td .num { (stats.snapshots) } }
                        tr { th { "stored (packs)" } td .num #stored-bytes { (bytes(stats.pack_bytes)) } }
                        tr { th { "packs" } td .num { (stats.packs) } }
                        tr { th { "distinct blobs" } td .num { (stats.blobs) } }
                        tr { th { "sum of all snapshots' files" } td .num { (bytes(stats.snapshot_bytes)) } }
                    }
                }
                h2 { "Drills" }
                @if drills.is_empty() {
                    p #no-drills .muted { "No snapshot was ever drilled: `snap drill` rehearses a restore and records it." }
                }
                table #drills {
                    thead { tr { th { "snapshot" } th { "time" } th { "last drill" } th { "result" } th .num { "files" } } }
                    tbody {
                        @for (id, s) in snapshots.list.iter().rev() {
                            @let drill = drills.of(s);
                            tr .drill-row data-id=(id.to_hex()) {
                                td { a href=(snapshot_href(id, "")) { code { (id.short()) } } }
                                td { (time(&s.time)) }
                                td { @if let Some(d) = drill { (time(&d.time)) } @else { span .muted { "never" } } }
                                td { @if let Some(d) = drill {
                                    @if d.ok { span .change-added { "passed" } } @else { span .change-removed { "FAILED" } }
                                    @if let Some(p) = d.sample_percent { " (" (p) "% sample)" }
                                } }
                                td .num { @if let Some(d) = drill { (d.files) } }
                            }
                        }
                    }
                }
                h2 { "Locks" }
                @if locks.is_empty() {
                    p #no-locks .muted { "No locks: no backup or prune is running." }
                }
                table #locks {
                    thead { tr { th { "lock" } th { "host" } th .num { "pid" } th { "state" } } }
                    tbody {
                        @for (name, lock) in &locks {
                            tr {
                                td .mono { (name) }
                                @match lock {
                                    Ok(lock) => {
                                        td { (lock.host) }
                                        td .num { (lock.pid) }
                                        td { @if snap::lock::is_stale(lock, now, &host) {
                                            span .change-removed .stale { "stale (its process is gone or stopped refreshing)" }
                                        } @else { "held" } }
                                    }
                                    Err(e) => { td colspan="3" .error { "unreadable: " (e) } }
                                }
                            }
                        }
                    }
                }
                h2 { "Retention" }
                div #forget-plan {
                    @match &plan {
                        None => p .muted { "The profile has no [retention]: `forget` has no policy to apply (docs/PROFILE.md)." },
                        Some(_) if removed.is_empty() => p #forget-nothing { "Under the profile's retention, `forget` would remove no snapshot." },
                        Some(_) => {
                            p { "Under the profile's retention, `forget` would remove " (removed.len()) " snapshot" @if removed.len() != 1 { "s" } " (dry run: nothing was removed):" }
                            ul #forget-remove {
                                @for (id, s) in snapshots.list.iter().filter(|(id, _)| removed.contains(id)) {
                                    li data-id=(id.to_hex()) { a href=(snapshot_href(id, "")) { code { (id.short()) } } " " (time(&s.time)) }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(page("Health", body))
    })
    .await
}
