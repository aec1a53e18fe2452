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
    // A calendar day keeps that day's snapshots in the list.
    let latest = &env.snapshots()[2];
    let latest_day = &latest["time"].as_str().expect("time")[..10];
    let that_day = server.page(&format!("/?day={latest_day}"));
    assert!(
        that_day.contains(&format!("data-day=\"{latest_day}\"")),
        "{that_day}"
    );
    assert!(
        that_day.contains(&format!(
            "data-id=\"{}\"",
            latest["id"].as_str().expect("id")
        )),
        "{that_day}"
    );
    let empty_day = server.page("/?day=1999-01-01");
    assert!(empty_day.contains("Snapshots of 1999-01-01"), "{empty_day}");
    assert_eq!(empty_day.matches("class=\"snapshot-row\"").count(), 0);
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

/// The value of `name="NAME" value="..."` in a page (the first one).
fn field(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in {page}"))
        + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("a value")
        .to_string()
}

/// `text` percent-encoded for a query or form value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn a_snapshot_shows_folders_files_images_downloads_and_a_zip() {
    let (env, data) = history_env();
    let ids = snapshot_ids(&env);
    let server = UiServer::start(env.spawnable(), &[]);
    let root = server.page("/snapshot/latest");
    assert!(root.contains("id=\"entries\""), "{root}");
    assert!(
        root.contains(&format!("/snapshot/{}?path=data\"", ids[1])),
        "{root}"
    );
    let folder = server.page("/snapshot/latest?path=data");
    for name in ["notes/", "pixel.png"] {
        assert!(folder.contains(name), "{name} listed: {folder}");
    }
    assert!(folder.contains("id=\"download-zip\""), "{folder}");
    assert!(folder.contains("id=\"changes-link\""), "{folder}");
    // A name that is markup is shown as text, never as markup.
    assert!(!folder.contains("<img src=x"), "{folder}");
    assert!(
        folder.contains("&lt;img src=x onerror=alert(1)&gt;&amp;&quot;q&quot;.txt")
            || folder.contains("&lt;img src=x onerror=alert(1)&gt;&amp;\"q\".txt"),
        "{folder}"
    );
    // By prefix and by an older selector too.
    assert_eq!(
        server
            .get(&format!("/snapshot/{}?path=data", &ids[0][..8]))
            .status,
        200
    );
    assert_eq!(server.get("/snapshot/latest~1?path=data/notes").status, 200);

    let text = server.page("/snapshot/latest?path=data/notes/journal.md");
    assert!(text.contains("id=\"text\""), "{text}");
    assert!(
        text.contains("<td class=\"ln\">3</td><td>line three</td>"),
        "{text}"
    );
    assert!(text.contains("class=\"download\""), "{text}");
    assert!(text.contains("id=\"history-link\""), "{text}");
    assert!(
        text.contains("id=\"restore-off\""),
        "restore is off by default: {text}"
    );
    assert!(!text.contains("id=\"restore\" method"), "{text}");

    let image = server.page("/snapshot/latest?path=data/pixel.png");
    assert!(image.contains("<img id=\"image\""), "{image}");
    let inline = server.get("/snapshot/latest/raw?path=data/pixel.png&inline=1");
    assert_eq!(inline.status, 200);
    assert_eq!(inline.header("content-type"), Some("image/png"));
    assert_eq!(inline.body, PNG);

    let download = server.get("/snapshot/latest/raw?path=data/notes/journal.md");
    assert_eq!(download.status, 200);
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=\"journal.md\"")
    );
    assert_eq!(
        download.body,
        std::fs::read(data.join("notes/journal.md")).expect("read")
    );
    let old = server.get(&format!(
        "/snapshot/{}/raw?path=data/notes/journal.md",
        ids[0]
    ));
    assert_eq!(old.text(), "line one\nline two\n");

    let zip = server.get("/snapshot/latest/zip?path=data/notes");
    assert_eq!(zip.status, 200);
    assert_eq!(zip.header("content-type"), Some("application/zip"));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.body)).expect("a readable zip");
    let mut journal = String::new();
    archive
        .by_name("notes/journal.md")
        .expect("the file is in the zip")
        .read_to_string(&mut journal)
        .expect("read it");
    assert_eq!(journal, "line one\nline 2 changed\nline three\n");
    assert!(archive.by_name("notes/new.txt").is_ok());
}

#[test]
fn unknown_snapshots_and_paths_are_404_with_a_clear_message() {
    let (env, _) = history_env();
    let server = UiServer::start(env.spawnable(), &[]);
    for (target, says) in [
        ("/snapshot/abcdef12", "no snapshot with id abcdef12"),
        (
            "/snapshot/latest?path=data/nope.md",
            "`data/nope.md` is not in this snapshot",
        ),
        (
            "/snapshot/latest/raw?path=data/nope.md",
            "is not in this snapshot",
        ),
        (
            "/snapshot/latest/zip?path=nothing",
            "is not in this snapshot",
        ),
        ("/history?path=data/nope.md", "is in no snapshot"),
        ("/snapshot/latest~9", "no snapshot `latest~9`"),
        ("/no/such/page", "there is no page at"),
    ] {
        let answer = server.get(target);
        assert_eq!(answer.status, 404, "{target}: {}", answer.text());
        assert!(answer.text().contains(says), "{target}: {}", answer.text());
        assert!(answer.text().contains("id=\"error\""), "{target}");
    }
    let bad = server.get("/snapshot/latest/raw?path=data/notes");
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("not a file"), "{}", bad.text());
}

#[test]
fn changes_history_compare_and_search() {
    let (env, _) = history_env();
    let ids = snapshot_ids(&env);
    let server = UiServer::start(env.spawnable(), &[]);
    let changes = server.page("/snapshot/latest/changes");
    assert!(changes.contains("id=\"changes\""), "{changes}");
    assert!(
        changes.contains("data-kind=\"modified\"") && changes.contains("data/notes/journal.md"),
        "{changes}"
    );
    assert!(
        changes.contains("data-kind=\"added\"") && changes.contains("data/notes/new.txt"),
        "{changes}"
    );
    assert!(
        changes.contains("18 B") && changes.contains("35 B"),
        "sizes: {changes}"
    );
    let first = server.page(&format!("/snapshot/{}/changes", ids[0]));
    assert!(first.contains("id=\"no-previous\""), "{first}");

    let history = server.page("/history?path=data/notes/journal.md");
    assert_eq!(history.matches("class=\"version\"").count(), 2, "{history}");
    assert!(history.contains("id=\"compare\""), "{history}");
    assert!(
        history.contains(&format!("name=\"a\" value=\"{}\" checked", ids[0])),
        "{history}"
    );
    assert!(
        history.contains(&format!("name=\"b\" value=\"{}\" checked", ids[1])),
        "{history}"
    );
    let compare = server.page(&format!(
        "/compare?path=data/notes/journal.md&a={}&b={}",
        ids[0], ids[1]
    ));
    assert!(compare.contains("id=\"diff\""), "{compare}");
    assert!(
        compare.contains("<td class=\"del\">line two</td>"),
        "{compare}"
    );
    assert!(
        compare.contains("<td class=\"add\">line 2 changed</td>"),
        "{compare}"
    );
    assert!(
        compare.contains("<td class=\"add\">line three</td>"),
        "{compare}"
    );
    let missing = server.get("/compare?path=data/notes/journal.md&a=latest");
    assert_eq!(missing.status, 400);

    let search = server.page("/search?q=*.md");
    assert!(
        search.contains("id=\"results\" data-hits=\"2\""),
        "{search}"
    );
    assert_eq!(search.matches("class=\"hit\"").count(), 2, "{search}");
    assert!(search.contains("data/notes/journal.md"), "{search}");
    let none = server.page("/search?q=*.nothing");
    assert!(none.contains("id=\"no-results\""), "{none}");
    let empty = server.page("/search");
    assert!(
        empty.contains("form id=\"search\"") && !empty.contains("id=\"results\""),
        "{empty}"
    );
}

#[test]
fn sqlite_versions_show_tables_with_row_counts_and_the_row_diff() {
    let env = Env::new();
    let data = env.path("app");
    std::fs::create_dir_all(&data).expect("mkdir");
    let db_path = data.join("app.db");
    let db = rusqlite::Connection::open(&db_path).expect("open");
    db.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes(body) VALUES ('a'), ('b'), ('c');
         CREATE TABLE tags(name TEXT);",
    )
    .expect("fill");
    env.backup(&[&data], &[]);
    db.execute_batch(
        "INSERT INTO notes(body) VALUES ('d'), ('e');
         UPDATE notes SET body = 'B' WHERE id = 2;
         DELETE FROM notes WHERE id = 1;
         INSERT INTO tags VALUES ('x');",
    )
    .expect("change");
    drop(db);
    env.backup(&[&data], &[]);
    let ids = snapshot_ids(&env);
    let server = UiServer::start(env.spawnable(), &[]);
    let compare = server.page(&format!(
        "/compare?path=app/app.db&a={}&b={}",
        ids[0], ids[1]
    ));
    assert!(compare.contains("id=\"sqlite\""), "{compare}");
    assert!(
        compare.contains("<tr class=\"table-row\" data-table=\"notes\"><td>notes</td><td class=\"num\">3</td><td class=\"num\">4</td></tr>"),
        "{compare}"
    );
    assert!(
        compare.contains("<td>tags</td><td class=\"num\">0</td><td class=\"num\">1</td>"),
        "{compare}"
    );
    assert!(
        compare.contains("<tr data-table=\"notes\"><td>notes</td><td class=\"num change-added\">2</td><td class=\"num change-removed\">1</td><td class=\"num change-modified\">1</td></tr>"),
        "{compare}"
    );
}

/// The form fields of a restore of `path` from `snapshot` into `to`.
fn restore_form(csrf: &str, snapshot: &str, path: &str, to: &str) -> String {
    format!(
        "csrf={}&snapshot={}&path={}&to={}",
        encode(csrf),
        encode(snapshot),
        encode(path),
        encode(to)
    )
}

#[test]
fn restore_is_off_without_allow_restore() {
    let (env, data) = history_env();
    let ids = snapshot_ids(&env);
    let before = common::contents(&data);
    let server = UiServer::start(env.spawnable(), &[]);
    for target in ["/restore/plan", "/restore"] {
        let answer = server.post(
            target,
            &restore_form("x", &ids[0], "data/notes/journal.md", ""),
        );
        assert_eq!(answer.status, 403, "{target}");
        assert!(
            answer.text().contains("--allow-restore"),
            "{}",
            answer.text()
        );
        // State changes are POST only.
        assert_eq!(server.get(target).status, 405, "GET {target}");
    }
    assert_eq!(common::contents(&data), before);
    assert_eq!(snapshot_ids(&env).len(), 2);
}

#[test]
fn restore_to_the_original_place_confirms_then_keeps_a_safety_snapshot() {
    let (env, data) = history_env();
    let ids = snapshot_ids(&env);
    let journal = data.join("notes/journal.md");
    std::fs::write(&journal, "edited since, to be replaced\n").expect("write");
    let server = UiServer::start(env.spawnable(), &["--allow-restore"]);
    let file = server.page(&format!("/snapshot/{}?path=data/notes/journal.md", ids[0]));
    assert!(file.contains("id=\"restore\" method=\"post\""), "{file}");
    let csrf = field(&file, "csrf");

    // Without the CSRF token, or with a wrong one, nothing happens.
    for token in ["", "0000"] {
        for target in ["/restore/plan", "/restore"] {
            let answer = server.post(
                target,
                &restore_form(token, &ids[0], "data/notes/journal.md", ""),
            );
            assert_eq!(answer.status, 403, "{target} with csrf {token:?}");
            assert!(answer.text().contains("CSRF"), "{}", answer.text());
        }
    }
    assert_eq!(
        std::fs::read_to_string(&journal).expect("read"),
        "edited since, to be replaced\n"
    );

    let plan = server.post(
        "/restore/plan",
        &restore_form(&csrf, &ids[0], "data/notes/journal.md", ""),
    );
    assert_eq!(plan.status, 200, "{}", plan.text());
    let plan = plan.text();
    assert!(plan.contains("id=\"plan\""), "{plan}");
    assert!(plan.contains("id=\"replaced\""), "{plan}");
    assert!(plan.contains(&journal.display().to_string()), "{plan}");
    assert!(plan.contains("id=\"confirm\""), "{plan}");
    // The plan wrote nothing.
    assert_eq!(
        std::fs::read_to_string(&journal).expect("read"),
        "edited since, to be replaced\n"
    );
    assert_eq!(snapshot_ids(&env).len(), 2);

    let done = server.post(
        "/restore",
        &restore_form(
            &field(&plan, "csrf"),
            &field(&plan, "snapshot"),
            &field(&plan, "path"),
            "",
        ),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    let done = done.text();
    assert!(done.contains("id=\"restored\""), "{done}");
    assert_eq!(
        std::fs::read_to_string(&journal).expect("read"),
        "line one\nline two\n"
    );
    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 3);
    let safety = &snapshots[2];
    assert!(
        safety["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|t| t == "pre-restore"),
        "{safety}"
    );
    let safety_id = safety["id"].as_str().expect("id");
    assert!(done.contains(&format!("data-id=\"{safety_id}\"")), "{done}");
    // The safety snapshot holds what was replaced.
    let kept = env.ok(["cat", &format!("{safety_id}:{}", journal.display())]);
    assert_eq!(kept, b"edited since, to be replaced\n");
}

#[test]
fn restore_into_a_chosen_folder_is_bit_identical_and_refuses_to_replace() {
    let (env, data) = history_env();
    let server = UiServer::start(env.spawnable(), &["--allow-restore"]);
    let csrf = field(&server.page("/snapshot/latest?path=data/pixel.png"), "csrf");
    let target = env.path("restored here");
    let form = restore_form(
        &csrf,
        "latest",
        "data/pixel.png",
        &target.display().to_string(),
    );
    let plan = server.post("/restore/plan", &form);
    assert_eq!(plan.status, 200, "{}", plan.text());
    assert!(
        plan.text().contains("id=\"nothing-replaced\""),
        "{}",
        plan.text()
    );
    let done = server.post("/restore", &form);
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(
        !done.text().contains("id=\"safety-snapshot\""),
        "nothing replaced, no safety snapshot"
    );
    assert_eq!(
        std::fs::read(target.join("pixel.png")).expect("restored"),
        std::fs::read(data.join("pixel.png")).expect("source")
    );
    assert_eq!(snapshot_ids(&env).len(), 2);
    // Again: the file is there now, and a chosen folder is never overwritten.
    let again = server.post("/restore", &form);
    assert_eq!(again.status, 409, "{}", again.text());
    let relative = server.post(
        "/restore/plan",
        &restore_form(&csrf, "latest", "data/pixel.png", "relative/folder"),
    );
    assert_eq!(relative.status, 400);
    assert!(
        relative.text().contains("not an absolute folder"),
        "{}",
        relative.text()
    );
}

#[test]
fn health_shows_size_drills_locks_and_the_retention_dry_run() {
    let (env, data) = history_env();
    env.ok(["drill", "latest"]);
    let profile = env.path("snap.toml");
    std::fs::write(
        &profile,
        format!(
            "repository = \"{}\"\n[retention]\nkeep-last = 1\n",
            env.repo.display()
        ),
    )
    .expect("profile");
    let mut cmd = env.spawnable();
    cmd.arg("--config").arg(&profile);
    let server = UiServer::start(cmd, &[]);
    let health = server.page("/health");
    let ids = snapshot_ids(&env);
    assert!(health.contains("id=\"repo-size\""), "{health}");
    assert!(
        health.contains("<td class=\"num\">2</td>"),
        "two snapshots: {health}"
    );
    assert_eq!(health.matches("class=\"drill-row\"").count(), 2, "{health}");
    assert!(
        health.contains("passed"),
        "the drill of the latest: {health}"
    );
    assert!(health.contains("id=\"no-locks\""), "{health}");
    assert!(health.contains("id=\"forget-remove\""), "{health}");
    assert!(
        health.contains(&format!("<li data-id=\"{}\">", ids[0])),
        "{health}"
    );
    assert!(
        !health.contains(&format!("<li data-id=\"{}\">", ids[1])),
        "{health}"
    );
    // A dry run: nothing was forgotten.
    assert_eq!(snapshot_ids(&env).len(), 2);
    drop(data);
}

#[test]
fn an_encrypted_repository_is_served_after_its_password() {
    let env = Env::uninitialized();
    let data = env.path("secret");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("diary.md"), "dear diary").expect("write");
    common::run_ok(
        env.cmd()
            .env("SNAP_PASSWORD", "pw")
            .args(["init", "--encrypt"]),
    );
    common::run_ok(
        env.cmd()
            .env("SNAP_PASSWORD", "pw")
            .arg("backup")
            .arg(&data),
    );
    let wrong = env
        .cmd()
        .env("SNAP_PASSWORD", "not it")
        .arg("ui")
        .output()
        .expect("run snap ui");
    assert_eq!(
        common::exit_code(&wrong),
        5,
        "{}",
        common::stderr_text(&wrong)
    );
    assert!(wrong.stdout.is_empty(), "no address without the key");
    let mut cmd = env.spawnable();
    cmd.env("SNAP_PASSWORD", "pw");
    let server = UiServer::start(cmd, &[]);
    let file = server.page("/snapshot/latest?path=secret/diary.md");
    assert!(file.contains("<td>dear diary</td>"), "{file}");
    assert!(!file.contains("pw\""), "the password is never in a page");
}

#[test]
fn an_s3_repository_is_served_and_shows_new_snapshots() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("cloud");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("a.txt"), "on s3").expect("write");
    let server = common::s3::server();
    let location = format!("s3://{}/ui", common::s3::new_bucket());
    let snap = || {
        let mut cmd = std::process::Command::new(common::snap_bin());
        cmd.env_remove("SNAP_REPO")
            .env_remove("SNAP_CONFIG")
            .env_remove("SNAP_PASSWORD")
            .env("TZ", "UTC")
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .envs(common::s3::aws_env(server.port))
            .arg("-r")
            .arg(&location);
        cmd
    };
    let ok = |cmd: &mut std::process::Command| {
        let out = cmd.output().expect("run snap");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(snap().arg("init"));
    ok(snap().arg("backup").arg(&data));
    let ui = UiServer::start(snap(), &[]);
    let file = ui.page("/snapshot/latest?path=cloud/a.txt");
    assert!(file.contains("<td>on s3</td>"), "{file}");
    std::fs::write(data.join("a.txt"), "on s3, changed").expect("write");
    ok(snap().arg("backup").arg(&data));
    let state: serde_json::Value = serde_json::from_str(&ui.page("/api/state")).expect("JSON");
    assert_eq!(state["snapshots"], 2);
    assert_eq!(
        ui.get("/snapshot/latest/raw?path=cloud/a.txt").text(),
        "on s3, changed"
    );
}

#[test]
fn listen_elsewhere_warns_and_open_starts_the_browser() {
    let (env, _) = history_env();
    let opened = env.path("opened.txt");
    let browser = env.path("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .expect("write the browser script");
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut cmd = env.spawnable();
    cmd.env("BROWSER", &browser);
    let server = UiServer::start(cmd, &["--listen", "0.0.0.0:0", "--open"]);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    assert_eq!(server.get("/").status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The script's redirection creates the file before printf fills it.
    let written = || std::fs::read_to_string(&opened).is_ok_and(|url| !url.is_empty());
    while !written() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = std::fs::read_to_string(&opened).expect("the browser was started");
    assert_eq!(
        url,
        format!("http://{}/?token={}", server.addr, server.token)
    );
    let (status, stderr) = server.stop(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn a_restore_runs_between_the_profiles_restore_hooks() {
    let (env, _) = history_env();
    let log = env.path("hooks.log");
    let profile = env.path("snap.toml");
    std::fs::write(
        &profile,
        format!(
            "repository = \"{repo}\"\n[hooks]\nbefore-restore = \"echo before $SNAP_RESTORE_TARGET >> '{log}'\"\nafter-restore = \"echo after $SNAP_EXIT_CODE >> '{log}'\"\n",
            repo = env.repo.display(),
            log = log.display()
        ),
    )
    .expect("profile");
    let mut cmd = env.spawnable();
    cmd.arg("--config").arg(&profile);
    let server = UiServer::start(cmd, &["--allow-restore"]);
    let csrf = field(
        &server.page("/snapshot/latest?path=data/notes/new.txt"),
        "csrf",
    );
    let target = env.path("out");
    let done = server.post(
        "/restore",
        &restore_form(
            &csrf,
            "latest",
            "data/notes/new.txt",
            &target.display().to_string(),
        ),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(
        std::fs::read_to_string(target.join("new.txt")).expect("restored"),
        "fresh"
    );
    assert_eq!(
        std::fs::read_to_string(&log).expect("the hooks ran"),
        format!("before {}\nafter 0\n", target.display())
    );
    // A failing before-hook stops the restore, and the page says why.
    std::fs::write(
        &profile,
        format!(
            "repository = \"{}\"\n[hooks]\nbefore-restore = \"exit 3\"\n",
            env.repo.display()
        ),
    )
    .expect("profile");
    drop(server);
    let mut cmd = env.spawnable();
    cmd.arg("--config").arg(&profile);
    let server = UiServer::start(cmd, &["--allow-restore"]);
    let other = env.path("other");
    let refused = server.post(
        "/restore",
        &restore_form(
            &csrf_of(&server),
            "latest",
            "data/notes/new.txt",
            &other.display().to_string(),
        ),
    );
    assert_ne!(refused.status, 200);
    assert!(
        refused.text().contains("before-restore"),
        "{}",
        refused.text()
    );
    assert!(!other.exists(), "nothing restored");
}

/// The CSRF token of a running server, from a file page's restore form.
fn csrf_of(server: &UiServer) -> String {
    field(
        &server.page("/snapshot/latest?path=data/notes/new.txt"),
        "csrf",
    )
}
