//! A real S3-compatible server on 127.0.0.1 for the tests: `moto_server`
//! (PyPI `moto[server]`, installed by `.ci/run`), one per test process,
//! started on first use on a free port. It runs under a small shell that
//! kills it when the test process's end closes the shell's stdin, so no
//! server outlives the tests.
//!
//! Also a loopback proxy that answers the first N requests with an error
//! before forwarding to the server, to test retries.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The running server.
pub struct S3Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    _child: Mutex<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// The server of this test process (started on first call).
pub fn server() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(|| {
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
                "moto_server did not start on port {port}; is it installed (pip install 'moto[server]')? log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        S3Server {
            port,
            _child: Mutex::new(child),
        }
    })
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
    let (status, body) =
        http(server().port, "PUT", &format!("/{name}"), &[]).expect("create bucket");
    assert_eq!(
        status,
        200,
        "create bucket: {}",
        String::from_utf8_lossy(&body)
    );
    name
}

/// The AWS variables that point `snap` at `port` on 127.0.0.1.
pub fn aws_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "snap-test".into()),
        ("AWS_SECRET_ACCESS_KEY", "snap-test-secret".into()),
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
