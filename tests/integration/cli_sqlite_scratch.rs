//! The scratch copies a SQLite capture writes into `$TMPDIR`
//! (`snap-sqlite-<pid>-...`, each as large as its database): a backup
//! stopped by SIGTERM mid-capture removes its own, and the next backup
//! removes those of a SIGKILLed one.

use crate::common::{self, Env};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rusqlite::Connection;

/// The capture scratch files in `tmp`.
fn scratch_files(tmp: &Path) -> Vec<PathBuf> {
    fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snap-sqlite-"))
        })
        .collect()
}

/// A rollback-journal database in `src/app.db` with 2,000 rows, and a
/// connection that holds it in an exclusive write transaction (a `-journal`
/// beside it), so a capture waits for it.
fn locked_database(env: &Env) -> (PathBuf, Connection) {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let path = src.join("app.db");
    let db = Connection::open(&path).unwrap();
    db.pragma_update(None, "journal_mode", "delete").unwrap();
    db.execute_batch("CREATE TABLE t (x TEXT); BEGIN;").unwrap();
    for i in 0..2000 {
        db.execute(
            "INSERT INTO t VALUES (?1)",
            [format!("row {i} {}", "x".repeat(200))],
        )
        .unwrap();
    }
    db.execute_batch("COMMIT; BEGIN EXCLUSIVE; INSERT INTO t VALUES ('uncommitted');")
        .unwrap();
    (src, db)
}

/// Starts `snap backup SRC` with `TMPDIR=tmp` and a long lock timeout, and
/// waits (a minute at most) until its capture has created a scratch file.
fn backup_waiting_in_capture(env: &Env, src: &Path, tmp: &Path) -> (Child, PathBuf) {
    let mut child = env
        .spawnable()
        .env("TMPDIR", tmp)
        .args(["backup", "--sqlite-lock-timeout", "120"])
        .arg(src)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let scratch = loop {
        if let [one] = scratch_files(tmp).as_slice() {
            break Some(one.clone());
        }
        if started.elapsed() > Duration::from_secs(60) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let Some(scratch) = scratch else {
        child.kill().ok();
        child.wait().ok();
        panic!("no capture scratch file appeared in {}", tmp.display());
    };
    (child, scratch)
}

/// A repository, an empty temporary folder `tmp` for snap, and a
/// [`locked_database`] in `src`.
fn setup() -> (Env, PathBuf, PathBuf, Connection) {
    let env = Env::new();
    let tmp = env.path("tmp");
    fs::create_dir(&tmp).unwrap();
    let (src, writer) = locked_database(&env);
    (env, tmp, src, writer)
}

fn signal(child: &Child, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
}

/// SIGTERM while a capture waits for a writer: the backup stops at once
/// (no fallback to a plain copy after the lock timeout), exits 143 and
/// leaves no scratch file.
#[test]
fn sigterm_mid_capture_leaves_no_scratch_file() {
    let (env, tmp, src, _writer) = setup();
    let (child, scratch) = backup_waiting_in_capture(&env, &src, &tmp);
    let name = scratch.file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with(&format!("snap-sqlite-{}-", child.id())),
        "the scratch file does not name its process: {name}"
    );
    signal(&child, Signal::SIGTERM);
    let out = child.wait_with_output().unwrap();
    common::assert_code(&out, 143);
    let stderr = common::stderr_text(&out);
    assert!(stderr.contains("backup interrupted"), "{stderr}");
    assert!(!stderr.contains("not captured"), "{stderr}");
    assert_eq!(scratch_files(&tmp), Vec::<PathBuf>::new());
    assert!(!env.holds_lock(), "a lock was left behind");
}

/// A backup SIGKILLed mid-capture cannot clean up: the next backup with
/// the same temporary folder removes its scratch file, and stores the
/// database as committed.
#[test]
fn the_next_backup_removes_a_killed_captures_scratch_file() {
    let (env, tmp, src, writer) = setup();
    let (mut child, scratch) = backup_waiting_in_capture(&env, &src, &tmp);
    signal(&child, Signal::SIGKILL);
    child.wait().unwrap();
    assert!(
        scratch.exists(),
        "the killed backup's scratch file is gone already"
    );
    writer.execute_batch("ROLLBACK;").unwrap();
    drop(writer);

    let out = env
        .spawnable()
        .env("TMPDIR", &tmp)
        .args(["backup", "-q"])
        .arg(&src)
        .output()
        .unwrap();
    common::assert_code(&out, 0);
    assert_eq!(scratch_files(&tmp), Vec::<PathBuf>::new());
    let target = env.path("restored");
    env.restore("latest", &target);
    let restored = Connection::open(target.join("src/app.db")).unwrap();
    let rows: i64 = restored
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2000);
}
