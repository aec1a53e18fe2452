//! The checks every request passes before a page sees it: the Host header
//! (against DNS rebinding), the access token (from `?token=` once, then a
//! cookie), and the headers every answer carries (a strict
//! Content-Security-Policy, no caching, no referrer).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use super::UiError;
use super::state::App;

/// The cookie that carries the token after the first visit.
const COOKIE: &str = "snap_ui";

/// Only the server's own assets; no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `ADDR:PORT` as it appears in a URL and a Host header (IPv6 in
/// brackets); listening on every address (`0.0.0.0`, `::`), the loopback
/// one, which always reaches it.
pub fn url_host(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port()).to_string()
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port()).to_string()
        }
        _ => addr.to_string(),
    }
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Host check, token check, and the security headers on every answer.
pub async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let mut response = check(&app, request, next).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn check(app: &App, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app
        .hosts
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(host))
    {
        return UiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server answers only to {}; open the address `snap ui` printed",
                app.hosts.join(" or ")
            ),
        )
        .into_response();
    }
    let query = request.uri().query().unwrap_or("");
    let given = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="));
    if let Some(given) = given {
        if !same_secret(given, app.token()) {
            return refused();
        }
        // The token leaves the address bar (and the history) at once.
        let rest: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.starts_with("token=") && !pair.is_empty())
            .collect();
        let path = request.uri().path();
        let target = if rest.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", rest.join("&"))
        };
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            app.token()
        );
        return ([(header::SET_COOKIE, cookie)], Redirect::to(&target)).into_response();
    }
    let cookie_ok = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|value| same_secret(value, app.token()));
    if !cookie_ok {
        return refused();
    }
    next.run(request).await
}

fn refused() -> Response {
    UiError::new(
        StatusCode::UNAUTHORIZED,
        "this page needs the access token: open the address `snap ui` printed (with ?token=)",
    )
    .into_response()
}

/// Refuses a form without this run's CSRF token.
pub fn check_csrf(app: &App, given: &str) -> Result<(), UiError> {
    if same_secret(given, app.csrf()) {
        Ok(())
    } else {
        Err(UiError::new(
            StatusCode::FORBIDDEN,
            "the form is missing this server's CSRF token; reload the page and try again",
        ))
    }
}
