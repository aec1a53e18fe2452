//! `--limit-upload` and `--limit-download` (KiB/s), and the profile keys
//! of the same names, through the binary: on an s3:// repository (the
//! tests' S3 server on 127.0.0.1) and on a local folder. Only lower bounds
//! on time are asserted, never a speed: 4 MiB at 1024 KiB/s, with a bucket
//! that starts full (one second's worth), takes at least 3 s.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{Env, assert_code, pseudo_random, run_ok, s3, snap_command, stderr_text};

/// What each test moves: 4 MiB that do not compress.
const SIZE: usize = 4 << 20;
/// The least time 4 MiB take at 1024 KiB/s, the first MiB free.
const AT_LEAST: Duration = Duration::from_secs(3);

/// Runs `cmd`, which must succeed, and returns how long it took.
#[track_caller]
fn timed(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    run_ok(cmd);
    start.elapsed()
}

/// A folder `src` holding one 4 MiB file, in `dir`.
fn source(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big.bin"), pseudo_random(SIZE, 18)).unwrap();
    src
}

#[test]
fn s3_uploads_and_downloads_wait_for_their_limits() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("s3://{}/limited", s3::new_bucket());
    let snap = || {
        let mut cmd = snap_command();
        cmd.envs(s3::aws_env(s3::server().port))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .arg("-r")
            .arg(&location);
        cmd
    };
    run_ok(snap().arg("init"));
    let src = source(dir.path());

    let took = timed(snap().args(["backup", "--limit-upload", "1024"]).arg(&src));
    assert!(took >= AT_LEAST, "4 MiB went up in {took:?} at 1024 KiB/s");

    let target = dir.path().join("restored");
    let took = timed(
        snap()
            .args(["restore", "latest", "--limit-download", "1024", "--target"])
            .arg(&target),
    );
    assert!(
        took >= AT_LEAST,
        "4 MiB came down in {took:?} at 1024 KiB/s"
    );
    assert_eq!(
        std::fs::read(target.join("src/big.bin")).unwrap(),
        std::fs::read(src.join("big.bin")).unwrap()
    );

    // The other side of a copy gets the limits too: here the local
    // repository the snapshot is copied into.
    let copy = dir.path().join("copy");
    run_ok(snap_command().arg("-r").arg(&copy).arg("init"));
    let took = timed(
        snap()
            .args(["copy", "--limit-upload", "1024", "--to"])
            .arg(&copy),
    );
    assert!(
        took >= AT_LEAST,
        "4 MiB were copied in {took:?} at 1024 KiB/s"
    );
}

#[test]
fn profile_limits_apply_to_a_local_repository() {
    let env = Env::new();
    let src = source(env.dir.path());
    let profile = env.path("snap.toml");
    std::fs::write(&profile, "limit-upload = 1024\nlimit-download = \"1024\"\n").unwrap();
    let with_profile = || {
        let mut cmd = env.cmd();
        cmd.arg("--config").arg(&profile);
        cmd
    };

    let took = timed(with_profile().arg("backup").arg(&src));
    assert!(took >= AT_LEAST, "4 MiB went in in {took:?} at 1024 KiB/s");

    let target = env.path("restored");
    let took = timed(
        with_profile()
            .args(["restore", "latest", "--target"])
            .arg(&target),
    );
    assert!(took >= AT_LEAST, "4 MiB came out in {took:?} at 1024 KiB/s");
    assert_eq!(
        std::fs::read(target.join("src/big.bin")).unwrap(),
        std::fs::read(src.join("big.bin")).unwrap()
    );
}

/// Asserts a usage error (exit 2) in one line that contains `needle`.
#[track_caller]
fn assert_one_line_usage_error(out: &Output, needle: &str) {
    assert_code(out, 2);
    let err = stderr_text(out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{err}");
}

#[test]
fn bad_limits_are_one_line_errors_and_change_nothing() {
    let env = Env::new();
    let src = source(env.dir.path());
    for flag in ["--limit-upload", "--limit-download"] {
        for bad in ["0", "-1", "fast", "1.5", "1M", ""] {
            let out = env
                .cmd()
                .arg("backup")
                .arg(&src)
                .args([flag, bad])
                .output()
                .unwrap();
            assert_one_line_usage_error(&out, &format!("{flag}: `{bad}` is not a rate"));
        }
    }
    for (line, key) in [
        ("limit-upload = 0", "limit-upload"),
        ("limit-upload = -5", "limit-upload"),
        ("limit-download = \"lots\"", "limit-download"),
    ] {
        let profile = env.path("bad.toml");
        std::fs::write(&profile, format!("{line}\n")).unwrap();
        let mut cmd = env.cmd();
        let out = cmd
            .arg("--config")
            .arg(&profile)
            .arg("backup")
            .arg(&src)
            .output()
            .unwrap();
        assert_one_line_usage_error(&out, &format!("{key}: `"));
        assert!(
            stderr_text(&out).contains("bad.toml"),
            "{}",
            stderr_text(&out)
        );
    }
    // Nothing was backed up by any of them.
    assert!(env.snapshots().is_empty());
}
