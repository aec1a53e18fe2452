//! The pages, one file each, and the embedded assets.

pub mod health;
pub mod history;
pub mod layout;
pub mod restore;
pub mod search;
pub mod snapshot;
pub mod timeline;

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::UiError;

/// The stylesheet and the one small script, built into the binary.
pub async fn assets(Path(name): Path<String>) -> Result<Response, UiError> {
    let (body, kind) = match name.as_str() {
        "style.css" => (
            include_str!("../assets/style.css"),
            "text/css; charset=utf-8",
        ),
        "ui.js" => (
            include_str!("../assets/ui.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return Err(UiError::not_found(format!("no asset named `{name}`"))),
    };
    Ok(([(header::CONTENT_TYPE, kind)], body).into_response())
}

/// Any other address.
pub async fn not_found(uri: axum::http::Uri) -> UiError {
    UiError::not_found(format!("there is no page at `{}`", uri.path()))
}
