//! Search: the snapshots holding paths that match a glob (`snap find`).

use std::sync::Arc;

use axum::extract::{Query, State};
use maud::{Markup, html};
use snap::ops::find::find;

use super::layout::{page, snapshot_href, time};
use crate::cli::ui::state::App;
use crate::cli::ui::{UiError, blocking};

/// At most this many paths are listed per snapshot.
const PATHS_SHOWN: usize = 200;

/// `?q=GLOB`
#[derive(serde::Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /search?q=GLOB`
pub async fn search(
    State(app): State<Arc<App>>,
    Query(query): Query<SearchQuery>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let pattern = query.q.trim().to_string();
        let hits = if pattern.is_empty() {
            None
        } else {
            let snapshots = app.snapshots()?;
            Some(find(&app.repo, &snapshots.list, &pattern)?)
        };
        let body = html! {
            form #search method="get" action="/search" {
                input type="search" name="q" value=(pattern) placeholder="*.md, notes/**, /home/me/app/**/*.db" autofocus;
                " "
                button type="submit" { "Search" }
            }
            p .muted { "A glob matched against each path as `snap ls` prints it and against its last component, across every snapshot." }
            @if let Some(hits) = &hits {
                section #results data-hits=(hits.len()) {
                    @if hits.is_empty() {
                        p #no-results .empty { "No snapshot holds a path matching " code { (pattern) } "." }
                    }
                    @for hit in hits.iter().rev() {
                        div .hit data-snapshot=(hit.snapshot.to_hex()) {
                            h2 { a href=(snapshot_href(&hit.snapshot, "")) { code { (hit.snapshot.short()) } } " " (time(&hit.time)) }
                            ul {
                                @for path in hit.paths.iter().take(PATHS_SHOWN) {
                                    li { a href=(snapshot_href(&hit.snapshot, path)) { (path) } }
                                }
                                @if hit.paths.len() > PATHS_SHOWN {
                                    li .muted { "and " (hit.paths.len() - PATHS_SHOWN) " more" }
                                }
                            }
                        }
                    }
                }
            }
        };
        Ok(page("Search", body))
    })
    .await
}
