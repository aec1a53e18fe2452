//! A real S3-compatible server on 127.0.0.1 for the tests, one per test
//! process, started on first use on a free port.
//!
//! By default it is [s3s-fs] running inside the test process (a tokio
//! runtime on a thread of its own, objects stored as files below
//! `target/tmp/s3s-PID`), checking every request's SigV4 signature against
//! [`ACCESS_KEY_ID`] and [`SECRET_ACCESS_KEY`]: `cargo test` needs no Python
//! and no network. With `SNAP_TEST_S3=moto` the same tests run against
//! `moto_server` (PyPI `moto[server]`; `.ci/run` installs it in a virtual
//! environment), a second, independent implementation of the protocol. moto
//! runs under a small shell that kills it when the test process's end closes
//! the shell's stdin, so no server outlives the tests.
//!
//! Also a loopback proxy that answers the first N requests with an error
//! before forwarding to the server, to test retries.
//!
//! [s3s-fs]: https://docs.rs/s3s-fs
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The key id the tests sign with (the in-process server accepts no other).
pub const ACCESS_KEY_ID: &str = "snap-test";
/// Its secret.
pub const SECRET_ACCESS_KEY: &str = "snap-test-secret";

/// The running server.
pub struct S3Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    backing: Backing,
}

enum Backing {
    /// s3s-fs in this process; buckets are folders of `root`.
    InProcess { root: PathBuf },
    /// `moto_server` under `sh`.
    Moto { _child: Mutex<Child> },
}

impl S3Server {
    /// Whether requests signed with other keys than the tests' are refused
    /// (moto accepts any key).
    pub fn checks_credentials(&self) -> bool {
        matches!(self.backing, Backing::InProcess { .. })
    }

    /// The server's name, for messages.
    pub fn name(&self) -> &'static str {
        match self.backing {
            Backing::InProcess { .. } => "s3s-fs (in-process)",
            Backing::Moto { .. } => "moto_server",
        }
    }
}

/// The server, when it refuses keys other than the tests' (for tests of
/// wrong credentials); otherwise `None`, after a note that they are skipped.
pub fn server_checking_credentials() -> Option<&'static S3Server> {
    let server = server();
    if !server.checks_credentials() {
        println!(
            "note: {} accepts any key; not testing wrong ones",
            server.name()
        );
        return None;
    }
    Some(server)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// The server of this test process (started on first call): the in-process
/// one, or moto when `SNAP_TEST_S3=moto`.
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("SNAP_TEST_S3").as_deref() {
        Err(_) | Ok("" | "s3s") => start_in_process(),
        Ok("moto") => start_moto(),
        Ok(other) => panic!("SNAP_TEST_S3={other}: expected `moto` or `s3s` (the default)"),
    })
}

/// s3s-fs on a free port, served by a runtime on its own thread for the
/// rest of the process.
fn start_in_process() -> S3Server {
    // Statics are never dropped, so the storage cannot be a TempDir: each
    // process removes what earlier, finished processes left instead.
    let parent = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    remove_finished_servers(&parent);
    let root = parent.join(format!("s3s-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
    let store = s3s_fs::FileSystem::new(&root)
        .unwrap_or_else(|e| panic!("s3s-fs over {}: {e:?}", root.display()));
    let mut builder = s3s::service::S3ServiceBuilder::new(store);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
    ));
    let service = builder.build();
    // Bound before this returns: connections queue until the loop accepts.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the S3 server");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let port = listener.local_addr().expect("server address").port();
    std::thread::Builder::new()
        .name("s3-server".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the S3 server");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("the S3 server's listener");
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        continue;
                    };
                    let service = service.clone();
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(socket), service),
                    );
                }
            });
        })
        .expect("start the S3 server thread");
    S3Server {
        port,
        backing: Backing::InProcess { root },
    }
}

/// Removes `s3s-PID` folders of processes that have ended.
fn remove_finished_servers(parent: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("s3s-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `moto_server` on a free port, under a shell that stops it when this
/// process ends.
fn start_moto() -> S3Server {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join("moto_server").is_file()));
    assert!(
        on_path,
        "SNAP_TEST_S3=moto but moto_server is not on PATH (pip install 'moto[server]' in a virtual environment, or run .ci/run)"
    );
    let port = free_port();
    let log = std::env::temp_dir().join(format!("snap-test-moto-{}.log", std::process::id()));
    let script = format!(
        "moto_server -H 127.0.0.1 -p {port} >'{log}' 2>&1 & pid=$!; read _; kill $pid; wait $pid; rm -f '{log}'",
        log = log.display()
    );
    let child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("start moto_server through sh");
    let started = Instant::now();
    loop {
        if http(port, "GET", "/", &[]).is_ok_and(|(status, _)| status == 200) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "moto_server did not start on port {port}; log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    S3Server {
        port,
        backing: Backing::Moto {
            _child: Mutex::new(child),
        },
    }
}

/// One plain HTTP/1.1 request; returns the status and body.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.as_bytes().to_vec())
        .unwrap_or_default();
    Ok((status, body))
}

/// A new empty bucket with a unique name.
pub fn new_bucket() -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "snap-test-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let server = server();
    match &server.backing {
        // The server checks signatures and `http` does not sign: s3s-fs
        // keeps a bucket as a folder of its root, so make that folder.
        Backing::InProcess { root } => std::fs::create_dir(root.join(&name))
            .unwrap_or_else(|e| panic!("create bucket {name}: {e}")),
        Backing::Moto { .. } => {
            let (status, body) =
                http(server.port, "PUT", &format!("/{name}"), &[]).expect("create bucket");
            assert_eq!(
                status,
                200,
                "create bucket: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    name
}

/// The AWS variables that point `snap` at `port` on 127.0.0.1.
pub fn aws_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        // No credentials or config from the machine running the tests.
        ("AWS_CONFIG_FILE", "/nonexistent".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("SNAP_S3_RETRY_MIN_DELAY_MS", "10".into()),
    ]
}

/// A proxy on 127.0.0.1 in front of the server: it answers the first
/// `failures` requests with `status` (all of them when `failures` is
/// `usize::MAX`), then forwards. One request per connection.
pub struct FlakyProxy {
    /// Its port.
    pub port: u16,
    /// Requests seen so far.
    pub requests: Arc<AtomicUsize>,
}

impl FlakyProxy {
    /// Starts a proxy to `upstream`.
    pub fn start(upstream: u16, failures: usize, status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = serve(client, upstream, n < failures, status);
                });
            }
        });
        Self { port, requests }
    }
}

/// Reads one HTTP message head and body (by Content-Length).
fn read_message(
    reader: &mut BufReader<TcpStream>,
    no_body: bool,
) -> std::io::Result<(Vec<String>, Vec<u8>)> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let length = head
        .iter()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; if no_body { 0 } else { length }];
    reader.read_exact(&mut body)?;
    Ok((head, body))
}

fn write_message(stream: &mut TcpStream, head: &[String], body: &[u8]) -> std::io::Result<()> {
    let mut out = String::new();
    for (i, line) in head.iter().enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    stream.write_all(out.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

fn serve(client: TcpStream, upstream: u16, fail: bool, status: u16) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let (head, body) = read_message(&mut reader, false)?;
    let is_head = head.first().is_some_and(|l| l.starts_with("HEAD "));
    let mut client = client;
    if fail {
        let code = match status {
            400 => "InvalidRequest",
            403 => "AccessDenied",
            503 => "SlowDown",
            _ => "InternalError",
        };
        let error = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        );
        let head = vec![
            format!("HTTP/1.1 {status} Injected"),
            "Content-Type: application/xml".to_string(),
            format!("Content-Length: {}", error.len()),
        ];
        return write_message(&mut client, &head, error.as_bytes());
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    write_message(&mut server, &head, &body)?;
    let mut reply = BufReader::new(server);
    // HEAD answers carry a length but no body; neither do 204 and 304.
    let (head, body) = read_message(&mut reply, is_head)?;
    write_message(&mut client, &head, &body)
}
