//! A snapshot: its folders and files, a file's content, the download of a
//! file or of a folder as zip, and what changed since the previous one.

use std::io::{Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use snap::ops::browse::{cat, find_node, printable, walk};
use snap::ops::dump::{Archive, DumpOptions, dump};
use snap::ops::paths::inside;
use snap::select::{Filter, parse_selector, select};
use snap::{Node, NodeKind, Snapshot, SnapshotId};

use super::layout::{bytes, encode, page, snapshot_href, time};
use crate::cli::ui::state::App;
use crate::cli::ui::{UiError, blocking};

/// Files up to this size are shown in the page; larger ones only offered
/// for download.
const SHOWN_MAX: u64 = 2 << 20;

/// `?path=PATH` inside a snapshot.
#[derive(serde::Deserialize, Default)]
pub struct PathQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    inline: Option<String>,
}

/// A snapshot and an entry in it, as the URL named them.
pub struct Found {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The path inside it, as `snap ls` prints it ("" for the root).
    pub path: String,
    /// The entry.
    pub node: Node,
}

/// Resolves a snapshot selector and a path by the CLI's rules
/// (`snap ls SNAP:PATH`).
pub fn resolve(app: &App, selector: &str, path: &str) -> Result<Found, UiError> {
    let snapshots = app.snapshots()?;
    let chosen = parse_selector(selector)?;
    let (id, snapshot) = select(&snapshots.list, &chosen, &Filter::default())?.clone();
    let path = inside(&[&snapshot], Some(path).filter(|p| !p.is_empty()))?;
    let node = find_node(&app.repo, snapshot.tree, &path)?;
    Ok(Found {
        id,
        snapshot,
        path: printable(&path),
        node,
    })
}

/// `GET /snapshot/{id}?path=PATH`: a folder's entries or a file.
pub async fn browse(
    State(app): State<Arc<App>>,
    Path(selector): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let found = resolve(app, &selector, &query.path)?;
        if found.node.kind == NodeKind::File {
            file_page(app, &found)
        } else {
            folder_page(app, &found)
        }
    })
    .await
}

fn crumbs(found: &Found) -> Markup {
    let parts: Vec<&str> = found.path.split('/').filter(|p| !p.is_empty()).collect();
    html! {
        p #crumbs .crumbs {
            a href=(snapshot_href(&found.id, "")) { "snapshot " code { (found.id.short()) } }
            " · " (time(&found.snapshot.time)) " · " (found.snapshot.host)
            @for (i, part) in parts.iter().enumerate() {
                " / "
                a href=(snapshot_href(&found.id, &parts[..=i].join("/"))) { (part) }
            }
        }
    }
}

/// The folder holding `path` ("" for the root); none for the root itself.
fn parent_of(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some((parent, _)) => Some(parent),
        None => (!path.is_empty()).then_some(""),
    }
}

fn folder_page(app: &App, found: &Found) -> Result<Markup, UiError> {
    let mut rows = Vec::new();
    walk(
        &app.repo,
        &found.node,
        &found.path,
        false,
        &mut |path, node| {
            rows.push((path.to_string(), node.clone()));
            Ok(())
        },
    )?;
    let zip = format!(
        "/snapshot/{}/zip?path={}",
        found.id.to_hex(),
        encode(&found.path)
    );
    let body = html! {
        (crumbs(found))
        div .actions {
            a #changes-link href={"/snapshot/" (found.id.to_hex()) "/changes"} { "Changes since the previous snapshot" }
            a #download-zip .download href=(zip) download { "Download this folder as zip" }
        }
        table #entries {
            thead { tr { th { "name" } th { "type" } th .num { "size" } th { "mode" } th { "modified" } } }
            tbody {
                @if let Some(parent) = parent_of(&found.path) {
                    tr .entry .parent { td { a href=(snapshot_href(&found.id, parent)) data-kind="dir" { ".." } } td {} td {} td {} td {} }
                }
                @for (path, node) in &rows {
                    tr .entry {
                        td { a href=(snapshot_href(&found.id, path)) data-kind=(node.kind.as_str()) {
                            (node.display_name()) @if node.kind == NodeKind::Dir { "/" }
                        } }
                        td { (node.kind.as_str()) }
                        td .num { @if node.kind != NodeKind::Dir { (bytes(node.size)) } }
                        td .mono { (format!("{:04o}", node.mode & 0o7777)) }
                        td { (time(&crate::cli::log::mtime_text(node.mtime_ns))) }
                    }
                }
            }
        }
        @if rows.is_empty() { p .empty { "This folder is empty." } }
    };
    let title = if found.path.is_empty() {
        format!("Snapshot {}", found.id.short())
    } else {
        found.path.clone()
    };
    Ok(page(&title, body))
}

/// What a file's bytes are, for showing them.
enum Shown {
    Text(String),
    Image,
    Other,
}

/// Image types shown inline, by their first bytes (never SVG: it can hold
/// script).
fn image_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn file_page(app: &App, found: &Found) -> Result<Markup, UiError> {
    let shown = if found.node.size > SHOWN_MAX {
        Shown::Other
    } else {
        let mut content = Vec::new();
        cat(&app.repo, &found.node, &mut content)?;
        if image_type(&content).is_some() {
            Shown::Image
        } else {
            match String::from_utf8(content) {
                Ok(text) if !text.contains('\0') => Shown::Text(text),
                _ => Shown::Other,
            }
        }
    };
    let raw = format!(
        "/snapshot/{}/raw?path={}",
        found.id.to_hex(),
        encode(&found.path)
    );
    let body = html! {
        (crumbs(found))
        p .muted {
            (bytes(found.node.size)) " · mode " (format!("{:04o}", found.node.mode & 0o7777))
            " · modified " (time(&crate::cli::log::mtime_text(found.node.mtime_ns)))
        }
        div .actions {
            a .download href=(raw) download { "Download" }
            a #history-link href={"/history?path=" (encode(&found.path))} { "History of this file" }
        }
        (super::restore::form(app, found))
        div #file .file-view {
            @match &shown {
                Shown::Text(text) => {
                    table #text { tbody {
                        @for (n, line) in text.lines().enumerate() {
                            tr { td .ln { (n + 1) } td { (line) } }
                        }
                    } }
                }
                Shown::Image => { img #image src={(raw) "&inline=1"} alt=(found.path); }
                Shown::Other => {
                    p .muted { "Not shown here (not text, or larger than " (bytes(SHOWN_MAX)) "): "
                        a .download href=(raw) download { "download it" } "." }
                }
            }
        }
    };
    Ok(page(&found.path, body))
}

/// `GET /snapshot/{id}/raw?path=PATH`: the file as it is (an attachment;
/// `&inline=1` shows an image in the page).
pub async fn raw(
    State(app): State<Arc<App>>,
    Path(selector): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Response, UiError> {
    let inline = query.inline.is_some();
    let (found, head) = blocking(&app, move |app| {
        let found = resolve(app, &selector, &query.path)?;
        if found.node.kind != NodeKind::File {
            return Err(UiError::bad_request(format!(
                "`{}` is a {}, not a file; download a folder as zip",
                found.path,
                found.node.kind.as_str()
            )));
        }
        let mut head = Vec::new();
        let mut reader = snap::ops::browse::FileReader::new(&app.repo, &found.node)?;
        std::io::Read::take(&mut reader, 16)
            .read_to_end(&mut head)
            .map_err(|e| {
                UiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            })?;
        Ok((found, head))
    })
    .await?;
    let image = image_type(&head);
    let (kind, disposition) = match image {
        Some(kind) if inline => (kind, "inline".to_string()),
        _ => (
            "application/octet-stream",
            format!("attachment; filename=\"{}\"", file_name(&found.path)),
        ),
    };
    Ok(stream(app, found, None, kind, disposition))
}

/// `GET /snapshot/{id}/zip?path=PATH`: the folder as a zip archive.
pub async fn zip(
    State(app): State<Arc<App>>,
    Path(selector): Path<String>,
    Query(query): Query<PathQuery>,
) -> Result<Response, UiError> {
    let found = blocking(&app, move |app| resolve(app, &selector, &query.path)).await?;
    let name = if found.path.is_empty() {
        format!("snapshot-{}", found.id.short())
    } else {
        file_name(&found.path)
    };
    let disposition = format!("attachment; filename=\"{name}.zip\"");
    Ok(stream(
        app,
        found,
        Some(Archive::Zip),
        "application/zip",
        disposition,
    ))
}

/// The last component of a path, safe inside a quoted header value.
fn file_name(path: &str) -> String {
    path.rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A response whose body `snap dump` writes as it goes, from a blocking
/// thread: memory stays one buffer whatever the size.
fn stream(
    app: Arc<App>,
    found: Found,
    archive: Option<Archive>,
    kind: &'static str,
    disposition: String,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let options = DumpOptions::for_snapshot(archive, &found.snapshot);
        let mut out = std::io::BufWriter::with_capacity(256 << 10, ChannelWriter(sender.clone()));
        let result = dump(
            &app.repo,
            &found.node,
            &found.path,
            &options,
            &mut out,
            &snap::NoProgress,
        )
        .and_then(|_| {
            out.flush()
                .map_err(|e| snap::Error::new(snap::ErrorKind::Io, e.to_string()))
        });
        if let Err(e) = result {
            // The browser sees a cut-off download rather than a whole one.
            let _ = sender.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(receiver, |mut r| async {
        r.recv().await.map(|item| (item, r))
    }));
    (
        [
            (header::CONTENT_TYPE, kind.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// Hands what `dump` writes to the response body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the browser went away")
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `GET /snapshot/{id}/changes`: `snap diff` against the previous snapshot.
pub async fn changes(
    State(app): State<Arc<App>>,
    Path(selector): Path<String>,
) -> Result<Markup, UiError> {
    blocking(&app, move |app| {
        let found = resolve(app, &selector, "")?;
        let snapshots = app.snapshots()?;
        let before = previous(&snapshots.list, &found.id, &found.snapshot);
        let title = format!("Changes in snapshot {}", found.id.short());
        let Some((before_id, before)) = before else {
            return Ok(page(&title, html! {
                (crumbs(&found))
                p #no-previous .empty { "This is the first snapshot: everything in it is new." }
            }));
        };
        let diff = snap::diff(&app.repo, before.tree, found.snapshot.tree, "")?;
        let total = &diff.stat.total;
        let body = html! {
            (crumbs(&found))
            p { "Since snapshot " a href=(snapshot_href(before_id, "")) { code { (before_id.short()) } }
                " (" (time(&before.time)) "): "
                (total.files_added) " added, " (total.files_removed) " removed, "
                (total.files_modified) " modified; " (bytes(total.bytes_added)) " added, "
                (bytes(total.bytes_removed)) " removed." }
            table #changes {
                thead { tr { th { "" } th { "path" } th .num { "before" } th .num { "after" } } }
                tbody {
                    @for change in &diff.changes {
                        tr .change .{"change-" (change.kind.as_str())} data-kind=(change.kind.as_str()) {
                            td .mono { (change.kind.marker()) }
                            td { @if change.after.is_some() {
                                    a href=(snapshot_href(&found.id, &change.path)) { (change.path) }
                                } @else {
                                    a href=(snapshot_href(before_id, &change.path)) { (change.path) }
                                } }
                            td .num { @if let Some(size) = change.size_before() { (bytes(size)) } }
                            td .num { @if let Some(size) = change.size_after() { (bytes(size)) } }
                        }
                    }
                }
            }
            @if diff.changes.is_empty() { p .empty { "Nothing changed." } }
        };
        Ok(page(&title, body))
    })
    .await
}

/// The snapshot a snapshot is compared with: its parent when it is still
/// there, else the latest earlier one of the same host and paths, else the
/// one just before it.
fn previous<'a>(
    list: &'a [(SnapshotId, Snapshot)],
    id: &SnapshotId,
    snapshot: &Snapshot,
) -> Option<(&'a SnapshotId, &'a Snapshot)> {
    if let Some(parent) = snapshot.parent
        && let Some((pid, p)) = list.iter().find(|(i, _)| *i == parent)
    {
        return Some((pid, p));
    }
    let at = list.iter().position(|(i, _)| i == id)?;
    let earlier = &list[..at];
    earlier
        .iter()
        .rev()
        .find(|(_, s)| s.host == snapshot.host && s.paths == snapshot.paths)
        .or_else(|| earlier.last())
        .map(|(i, s)| (i, s))
}
