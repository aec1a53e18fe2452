//! The frame every page shares, and small formatting helpers.

use maud::{DOCTYPE, Markup, html};
use snap::SnapshotId;

/// A whole HTML page: the navigation, the title and `body`.
pub fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · snap" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/ui.js" defer {}
            }
            body {
                nav #nav {
                    a .brand href="/" { "snap" }
                    a href="/" { "Timeline" }
                    a href="/search" { "Search" }
                    a href="/health" { "Health" }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A byte count as the CLI prints it (`1.5 MiB`).
pub fn bytes(n: u64) -> String {
    crate::cli::output::bytes(n)
}

/// An RFC 3339 time in the local time zone, as the CLI prints it.
pub fn time(rfc3339: &str) -> String {
    crate::cli::output::local_time(rfc3339)
}

/// The page of a snapshot, at `path` inside it (empty: its root).
pub fn snapshot_href(id: &SnapshotId, path: &str) -> String {
    if path.is_empty() {
        format!("/snapshot/{}", id.to_hex())
    } else {
        format!("/snapshot/{}?path={}", id.to_hex(), encode(path))
    }
}

/// `text` percent-encoded for a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
