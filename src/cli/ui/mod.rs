//! `snap ui`: a local web server that shows the repository's history.
//!
//! This is the web layer only, on the binary side like the rest of the CLI:
//! routing, security (token, Host check, CSRF), HTML pages and the embedded
//! assets. Every number and listing comes from the same library calls the
//! other commands make, run on tokio's blocking threads.

mod pages;
mod security;
mod state;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use snap::{Error, ErrorKind};

use super::{Global, exit};
use state::App;

/// Serve the snapshots as web pages on this machine until Ctrl-C.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address and port to listen on (default: 127.0.0.1 and a free port).
    /// Anything but a loopback address lets other machines try to reach it.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Open the page in the browser ($BROWSER, else xdg-open).
    #[arg(long)]
    open: bool,
    /// Allow restoring one file from the pages (to its original place after
    /// a safety snapshot, or into a chosen folder).
    #[arg(long)]
    allow_restore: bool,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    // A private index cache: the backups the pages show never wait for it.
    let repo =
        snap::Repository::open_long_reader(global.backend()?, &global.credentials(), &progress)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .thread_stack_size(super::STACK_SIZE)
        .enable_all()
        .build()?;
    let listen = args
        .listen
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot listen on {listen}: {e}")))?;
    let local = listener.local_addr()?;
    let app = Arc::new(App::new(
        repo,
        global.profile.clone(),
        global.location(),
        local,
        args.listen.is_some(),
        args.allow_restore,
    )?);
    let url = format!(
        "http://{}/?token={}",
        security::url_host(local),
        app.token()
    );
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "snap ui: {url}")?;
        out.flush()?;
    }
    if !local.ip().is_loopback() {
        eprintln!(
            "snap: warning: listening on {local}, which is not a loopback address: other machines can reach the server (the token still guards every page)"
        );
    }
    if args.open {
        open_browser(&url);
    }
    runtime.block_on(async move {
        axum::serve(listener, router(app))
            .with_graceful_shutdown(stop_signal())
            .await
    })?;
    Ok(exit::OK)
}

/// Every page and endpoint, behind the security checks.
fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::timeline::timeline))
        .route("/api/state", get(pages::timeline::state))
        .route("/assets/{name}", get(pages::assets))
        .route("/snapshot/{id}", get(pages::snapshot::browse))
        .route("/snapshot/{id}/raw", get(pages::snapshot::raw))
        .route("/snapshot/{id}/zip", get(pages::snapshot::zip))
        .route("/snapshot/{id}/changes", get(pages::snapshot::changes))
        .route("/history", get(pages::history::history))
        .route("/compare", get(pages::history::compare))
        .route("/restore/plan", post(pages::restore::plan))
        .route("/restore", post(pages::restore::run))
        .route("/search", get(pages::search::search))
        .route("/health", get(pages::health::health))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            security::guard,
        ))
        .with_state(app)
}

/// Resolves on SIGINT or SIGTERM: the server stops taking requests, finishes
/// those it has, and the command exits 0. A second signal, while a long
/// download still runs, exits at once (130).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        std::process::exit(i32::from(exit::INTERRUPTED));
    });
}

/// Starts the user's browser on `url` without waiting for it.
fn open_browser(url: &str) {
    let program = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "xdg-open".to_string());
    let started = std::process::Command::new(&program)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = started {
        eprintln!(
            "snap: warning: cannot start the browser `{program}`: {e}; open the address above yourself"
        );
    }
}

/// An error page: a status and one sentence saying what went wrong.
#[derive(Debug)]
pub struct UiError {
    status: StatusCode,
    message: String,
}

impl UiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl UiError {
    /// An error of the CLI's layer (a hook that failed, a library error in
    /// its chain), with the status its kind calls for.
    pub fn from_anyhow(e: anyhow::Error) -> Self {
        let text = super::error_text(&e);
        match e.downcast::<Error>() {
            Ok(e) => Self {
                message: text,
                ..Self::from(e)
            },
            Err(_) => Self::new(StatusCode::INTERNAL_SERVER_ERROR, text),
        }
    }
}

impl From<Error> for UiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Usage => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = pages::layout::page(
            title,
            maud::html! {
                p #error .error { (self.message) }
                p { a href="/" { "Back to the timeline" } }
            },
        );
        (self.status, [(header::CACHE_CONTROL, "no-store")], body).into_response()
    }
}

/// Runs `work` on a blocking thread (the library reads files and blocks).
pub async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    work: impl FnOnce(&App) -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || work(&app))
        .await
        .map_err(|e| {
            UiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the page failed: {e}"),
            )
        })?
}
