//! What `snap` says when an s3:// repository fails: one line with the
//! operation, the object, the cause and what to check, "gave up after N
//! attempts" only after N attempts, and no dump of the HTTP exchange
//! (that comes with `RUST_LOG`). Against the tests' S3 server on 127.0.0.1,
//! a proxy in front of it that counts requests, and a closed loopback port.

use crate::common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{assert_code, s3, snap_command, stderr_text};

/// `snap -r s3://BUCKET/PREFIX` against 127.0.0.1:`port`, with a cache of
/// its own under `dir`.
fn snap_s3(dir: &Path, port: u16, bucket: &str) -> Command {
    let mut cmd = snap_command();
    cmd.envs(s3::aws_env(port))
        .env_remove("RUST_LOG")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .arg("-r")
        .arg(format!("s3://{bucket}/repo"));
    cmd
}

/// A new bucket with a repository `repo` in it; returns the bucket.
fn new_repo(dir: &Path) -> String {
    let bucket = s3::new_bucket();
    snap_s3(dir, s3::server().port, &bucket)
        .arg("init")
        .assert()
        .success();
    bucket
}

/// The one line of stderr of a command that failed with exit code 1.
#[track_caller]
fn one_line_error(out: &Output) -> String {
    assert_code(out, 1);
    let err = stderr_text(out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    for raw in ["Parts {", "x-amz", "request_id", "reqwest", "persistent"] {
        assert!(!err.contains(raw), "raw detail `{raw}` in: {err}");
    }
    err
}

#[test]
fn a_missing_bucket_is_named_at_once_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = s3::FlakyProxy::start(s3::server().port, 0, 0);
    for args in [&["snapshots"][..], &["init"][..]] {
        let before = proxy.requests.load(Ordering::SeqCst);
        let out = snap_s3(dir.path(), proxy.port, "no-such-bucket")
            .args(args)
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(
            err.contains(&format!(
                "bucket `no-such-bucket` does not exist at http://127.0.0.1:{}; create it first",
                proxy.port
            )),
            "{args:?}: {err}"
        );
        assert!(!err.contains("attempts"), "{args:?}: {err}");
        // `init` looks for a config first, then lists: one request each.
        let requests = proxy.requests.load(Ordering::SeqCst) - before;
        assert!(requests <= 2, "{args:?}: {requests} requests: {err}");
    }
}

#[test]
fn refused_credentials_name_the_variables_to_check() {
    let Some(server) = s3::server_checking_credentials() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bucket = new_repo(dir.path());
    let proxy = s3::FlakyProxy::start(server.port, 0, 0);
    for (name, value, cause) in [
        (
            "AWS_SECRET_ACCESS_KEY",
            "not-the-secret",
            "the secret access key does not match the key id",
        ),
        // InvalidAccessKeyId from AWS, plain AccessDenied from s3s.
        ("AWS_ACCESS_KEY_ID", "someone-else", "http://127.0.0.1:"),
    ] {
        let before = proxy.requests.load(Ordering::SeqCst);
        let out = snap_s3(dir.path(), proxy.port, &bucket)
            .env(name, value)
            .arg("snapshots")
            .output()
            .unwrap();
        let err = one_line_error(&out);
        assert!(
            err.starts_with(&format!(
                "snap: cannot read config s3://{bucket}/repo/config: "
            )),
            "{err}"
        );
        assert!(err.contains(cause), "{name}: {err}");
        for variable in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"] {
            assert!(err.contains(variable), "{name}: {err}");
        }
        // Permanent: sent once, not retried.
        assert!(!err.contains("attempts"), "{name}: {err}");
        assert_eq!(proxy.requests.load(Ordering::SeqCst) - before, 1, "{err}");
    }
    // A plain 403 (a key without rights on the bucket) is access denied.
    let denied = s3::FlakyProxy::start(server.port, usize::MAX, 403);
    let out = snap_s3(dir.path(), denied.port, &bucket)
        .arg("snapshots")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("access denied by http://127.0.0.1:"), "{err}");
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert_eq!(denied.requests.load(Ordering::SeqCst), 1, "{err}");
    // No credentials at all: nothing is sent.
    let out = snap_s3(dir.path(), denied.port, &bucket)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .arg("snapshots")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("no credentials to sign requests with"),
        "{err}"
    );
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
    assert_eq!(denied.requests.load(Ordering::SeqCst), 1, "{err}");
}

#[test]
fn an_unreachable_endpoint_is_named_with_the_os_error_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let started = Instant::now();
    let out = snap_s3(dir.path(), port, "bucket")
        .arg("snapshots")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains(&format!(
            "cannot read config s3://bucket/repo/config (gave up after 6 attempts): \
             cannot connect to http://127.0.0.1:{port}: Connection refused"
        )),
        "{err}"
    );
    assert!(err.contains("check AWS_ENDPOINT_URL"), "{err}");
    // SNAP_S3_RETRY_MIN_DELAY_MS=10 (aws_env) keeps the retries short.
    assert!(started.elapsed() < Duration::from_secs(10), "{err}");
}

#[test]
fn only_transient_answers_are_retried_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    // Throttled on every request: six attempts, then given up on.
    let throttled = s3::FlakyProxy::start(s3::server().port, usize::MAX, 503);
    let out = snap_s3(dir.path(), throttled.port, &bucket)
        .arg("snapshots")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(
        err.contains("config (gave up after 6 attempts): http://127.0.0.1:"),
        "{err}"
    );
    assert!(
        err.contains("keeps failing (SlowDown); try again later"),
        "{err}"
    );
    assert_eq!(throttled.requests.load(Ordering::SeqCst), 6, "{err}");
    // A bad request is permanent: one attempt, and the store's answer.
    let bad = s3::FlakyProxy::start(s3::server().port, usize::MAX, 400);
    let out = snap_s3(dir.path(), bad.port, &bucket)
        .arg("snapshots")
        .output()
        .unwrap();
    let err = one_line_error(&out);
    assert!(err.contains("refused the request (InvalidRequest"), "{err}");
    assert!(!err.contains("attempts"), "{err}");
    assert_eq!(bad.requests.load(Ordering::SeqCst), 1, "{err}");
}

#[test]
fn rust_log_adds_the_http_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let denied = s3::FlakyProxy::start(s3::server().port, usize::MAX, 403);
    let out = snap_s3(dir.path(), denied.port, "bucket")
        .env("RUST_LOG", "debug")
        .arg("snapshots")
        .output()
        .unwrap();
    assert_code(&out, 1);
    let err = stderr_text(&out);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("access denied by"), "{err}");
    assert!(err.contains("[detail: "), "{err}");
    assert!(err.contains("status: 403"), "{err}");
}

/// A source tree of one file of `len` bytes that do not compress.
fn incompressible_tree(dir: &Path, len: usize) -> std::path::PathBuf {
    let source = dir.join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("data.bin"), common::pseudo_random(len, 7)).unwrap();
    source
}

/// Runs `program ARGS... LAST snap ...` with `snap`'s arguments and
/// environment: snap under another program (unshare, setpriv).
fn under(program: &str, args: &[&str], last: &OsStr, snap: &Command) -> Output {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .arg(last)
        .arg(common::snap_bin())
        .args(snap.get_args());
    for (name, value) in snap.get_envs() {
        match value {
            Some(value) => cmd.env(name, value),
            None => cmd.env_remove(name),
        };
    }
    cmd.output().unwrap()
}

#[test]
fn a_full_local_disk_is_named_with_a_hint() {
    // A small tmpfs as the cache folder (where packs wait for upload), in
    // a mount namespace of snap's own: nothing outlives the command.
    if !common::is_root() {
        println!("note: not root; cannot mount a small tmpfs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = s3::server();
    let bucket = new_repo(dir.path());
    let source = incompressible_tree(dir.path(), 4 << 20);
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mut snap = snap_s3(dir.path(), server.port, &bucket);
    snap.env("XDG_CACHE_HOME", &small)
        .arg("backup")
        .arg(&source);
    let mount = r#"mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@""#;
    let out = under(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", mount],
        small.as_os_str(),
        &snap,
    );
    let err = stderr_text(&out);
    if err.contains("mount:") || err.contains("unshare:") {
        println!("note: cannot mount a tmpfs here: {err}");
        return;
    }
    let err = one_line_error(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("; free space on that file system"), "{err}");
}

#[test]
fn a_refused_local_path_is_named_with_a_hint() {
    // As `nobody`, with a cache folder that belongs to root.
    if !common::is_root() {
        println!("note: not root; cannot run snap as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = s3::server();
    let bucket = new_repo(dir.path());
    let cache = dir.path().join("cache");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut snap = snap_s3(dir.path(), server.port, &bucket);
    snap.env("HOME", dir.path()).arg("snapshots");
    let nobody = ["--reuid=65534", "--regid=65534", "--clear-groups"];
    let out = under("setpriv", &nobody, OsStr::new("--"), &snap);
    let err = one_line_error(&out);
    assert!(err.contains(&cache.display().to_string()), "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    assert!(
        err.contains("; check the owner and mode of that path"),
        "{err}"
    );
}
