//! `snap ui` through the real binary: the server is started on a real
//! repository, its address read from the first line of stdout, and every
//! page and endpoint fetched over plain HTTP/1.1 (std's TcpStream): status
//! and content, the token, the Host check, CSRF, restore on and off, 404s
//! with clear messages, escaping of hostile names, an encrypted repository,
//! and a clean exit on SIGINT and SIGTERM.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::Env;

/// A running `snap ui`, stopped (SIGTERM) when dropped.
pub struct UiServer {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The token printed in the address.
    pub token: String,
    /// The server's stderr, read after it stopped.
    stderr: Option<std::process::ChildStderr>,
}

/// One HTTP answer.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl UiServer {
    /// Starts `snap ui ARGS` with `cmd` (a `snap -r REPO` command) and
    /// waits for its first line.
    pub fn start(mut cmd: std::process::Command, args: &[&str]) -> Self {
        let mut child = cmd
            .arg("ui")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snap ui");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the first line of snap ui");
        let stderr = child.stderr.take();
        let url = line
            .trim()
            .strip_prefix("snap ui: http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        let (addr, token) = url.split_once("/?token=").expect("address with token");
        assert_eq!(token.len(), 64, "a 256-bit token in hex: {token}");
        Self {
            child,
            addr: addr.to_string(),
            token: token.to_string(),
            stderr,
        }
    }

    /// The cookie the server sets for the token.
    pub fn cookie(&self) -> String {
        format!("snap_ui={}", self.token)
    }

    /// A request with the given Host and Cookie headers (none when empty).
    pub fn request(
        &self,
        method: &str,
        target: &str,
        host: &str,
        cookie: &str,
        form: Option<&str>,
    ) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).expect("connect to snap ui");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        let mut head = format!("{method} {target} HTTP/1.1\r\nConnection: close\r\n");
        if !host.is_empty() {
            head.push_str(&format!("Host: {host}\r\n"));
        }
        if !cookie.is_empty() {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).expect("send");
        stream.write_all(body.as_bytes()).expect("send");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read the answer");
        parse_answer(&raw)
    }

    /// GET with the cookie and the right Host.
    pub fn get(&self, target: &str) -> Answer {
        self.request("GET", target, &self.addr, &self.cookie(), None)
    }

    /// POST of a form with the cookie and the right Host.
    pub fn post(&self, target: &str, form: &str) -> Answer {
        self.request("POST", target, &self.addr, &self.cookie(), Some(form))
    }

    /// GET that must answer 200; returns the body as text.
    #[track_caller]
    pub fn page(&self, target: &str) -> String {
        let answer = self.get(target);
        assert_eq!(answer.status, 200, "GET {target}: {}", answer.text());
        answer.text()
    }

    /// Sends `signal` and returns the exit status and stderr.
    pub fn stop(mut self, signal: nix::sys::signal::Signal) -> (std::process::ExitStatus, String) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal snap ui");
        let status = self.child.wait().expect("wait for snap ui");
        let mut err = String::new();
        if let Some(mut stderr) = self.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        (status, err)
    }
}

impl Drop for UiServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn parse_answer(raw: &[u8]) -> Answer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let size_text = String::from_utf8_lossy(&raw[..end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("a chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 2 + size + 2..];
    }
}

/// A repository with two snapshots of `data/` (a text file edited between
/// them, a file with a hostile name, a PNG, a subfolder).
fn history_env() -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let data = env.path("data");
    std::fs::create_dir_all(data.join("notes")).expect("mkdir");
    std::fs::write(data.join("notes/journal.md"), "line one\nline two\n").expect("write");
    std::fs::write(data.join(HOSTILE), "boo").expect("write");
    std::fs::write(data.join("pixel.png"), PNG).expect("write");
    env.backup(&[&data], &[]);
    std::fs::write(
        data.join("notes/journal.md"),
        "line one\nline 2 changed\nline three\n",
    )
    .expect("write");
    std::fs::write(data.join("notes/new.txt"), "fresh").expect("write");
    env.backup(&[&data], &["--tag", "second"]);
    (env, data)
}

/// A file name that is markup.
const HOSTILE: &str = "<img src=x onerror=alert(1)>&\"q\".txt";

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

fn snapshot_ids(env: &Env) -> Vec<String> {
    env.snapshots()
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

#[test]
fn the_token_is_traded_for_a_cookie_and_required_on_every_request() {
    let (env, _) = history_env();
    let server = UiServer::start(env.spawnable(), &[]);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    let first = server.request(
        "GET",
        &format!("/?token={}", server.token),
        &server.addr,
        "",
        None,
    );
    assert_eq!(first.status, 303);
    assert_eq!(first.header("location"), Some("/"));
    let cookie = first.header("set-cookie").expect("a cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.starts_with(&server.cookie()), "{cookie}");
    for target in ["/", "/api/state", "/assets/style.css", "/health"] {
        let refused = server.request("GET", target, &server.addr, "", None);
        assert_eq!(refused.status, 401, "{target} without the token");
        assert!(
            refused.text().contains("access token"),
            "{}",
            refused.text()
        );
        let wrong = server.request("GET", target, &server.addr, "snap_ui=00", None);
        assert_eq!(wrong.status, 401, "{target} with a wrong cookie");
    }
    let bad_token = server.request("GET", "/?token=abc", &server.addr, "", None);
    assert_eq!(bad_token.status, 401);
    let page = server.get("/");
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
}

#[test]
fn another_host_header_is_refused() {
    let (env, _) = history_env();
    let server = UiServer::start(env.spawnable(), &[]);
    let port = server.addr.rsplit(':').next().expect("port").to_string();
    for host in [
        "evil.example",
        &format!("evil.example:{port}"),
        "127.0.0.1:1",
        "",
    ] {
        let answer = server.request("GET", "/", host, &server.cookie(), None);
        assert_eq!(answer.status, 421, "Host {host:?}");
        assert!(
            answer.text().contains("answers only to"),
            "{}",
            answer.text()
        );
    }
    let localhost = server.request(
        "GET",
        "/",
        &format!("localhost:{port}"),
        &server.cookie(),
        None,
    );
    assert_eq!(localhost.status, 200);
}

#[test]
fn the_timeline_lists_every_snapshot_with_calendar_and_chart() {
    let (env, data) = history_env();
    let ids = snapshot_ids(&env);
    let server = UiServer::start(env.spawnable(), &[]);
    let page = server.page("/");
    assert!(
        page.contains("id=\"timeline\" data-snapshots=\"2\""),
        "{page}"
    );
    assert!(
        page.contains(&format!("data-latest=\"{}\"", ids[1])),
        "{page}"
    );
    assert!(page.contains("id=\"calendar\""), "{page}");
    assert!(page.contains("<svg id=\"chart\""), "{page}");
    assert_eq!(page.matches("class=\"snapshot-row\"").count(), 2, "{page}");
    for id in &ids {
        assert!(page.contains(&format!("href=\"/snapshot/{id}\"")), "{page}");
    }
    assert!(page.contains("second"), "the tag is shown: {page}");
    let state = server.page("/api/state");
    let state: serde_json::Value = serde_json::from_str(&state).expect("JSON");
    assert_eq!(state["snapshots"], 2);
    // A backup made while the server runs shows up on the next request.
    std::fs::write(data.join("later.txt"), "later").expect("write");
    env.backup(&[&data], &[]);
    let state: serde_json::Value = serde_json::from_str(&server.page("/api/state")).expect("JSON");
    assert_eq!(state["snapshots"], 3);
    assert_eq!(state["latest"], snapshot_ids(&env)[2].as_str());
    assert_eq!(
        server.page("/").matches("class=\"snapshot-row\"").count(),
        3
    );
    let day = server.get("/?day=not-a-day");
    assert_eq!(day.status, 400);
    assert!(day.text().contains("is not a day"), "{}", day.text());
}

#[test]
fn sigint_and_sigterm_stop_the_server_with_exit_0() {
    let (env, _) = history_env();
    for signal in [
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGTERM,
    ] {
        let server = UiServer::start(env.spawnable(), &[]);
        assert_eq!(server.get("/").status, 200);
        let (status, stderr) = server.stop(signal);
        assert_eq!(status.code(), Some(0), "{signal}: {stderr}");
    }
}
