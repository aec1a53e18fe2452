//! What a backup does to its source and how it ends, through the real
//! binary: an idle SQLite database is read without leaving a file beside it
//! or touching a timestamp, a database an app holds is read with only its
//! `-shm` written (as any reader writes it), a file that grows while it is
//! read is stored and reported (exit 3), and SIGTERM or SIGHUP stop a
//! backup the way Ctrl-C does (exit 143 or 129, nothing left locked, what
//! was stored reused).

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Env, assert_code, pseudo_random};
use rusqlite::Connection;

/// One entry of a folder as a snapshot of its state: kind, size, mtime and
/// ctime in nanoseconds, and the bytes of a file.
#[derive(Debug, PartialEq, Eq)]
struct EntryState {
    kind: &'static str,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    content: Option<Vec<u8>>,
}

fn entry_state(path: &Path) -> EntryState {
    let meta = fs::symlink_metadata(path).unwrap();
    let ns = |secs: i64, nsecs: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsecs);
    EntryState {
        kind: if meta.is_dir() { "dir" } else { "file" },
        size: if meta.is_dir() { 0 } else { meta.len() },
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        content: meta.is_file().then(|| read_elsewhere(path)),
    }
}

/// The bytes of a file, read by another process: closing a descriptor of a
/// database in this process would drop the locks an app connection of this
/// process holds on it (POSIX locks belong to the process).
fn read_elsewhere(path: &Path) -> Vec<u8> {
    let out = std::process::Command::new("cat")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "cat {}", path.display());
    out.stdout
}

/// The folder itself (under "") and every entry below it.
fn folder_state(root: &Path) -> BTreeMap<PathBuf, EntryState> {
    let mut state = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let rel = path.strip_prefix(root).unwrap().to_path_buf();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        state.insert(rel, entry_state(&path));
    }
    state
}

/// Names of the entries whose state differs (or that exist on one side only).
fn changed(
    before: &BTreeMap<PathBuf, EntryState>,
    after: &BTreeMap<PathBuf, EntryState>,
) -> Vec<String> {
    let mut names: Vec<&PathBuf> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| {
            let show = |state: Option<&EntryState>| {
                state.map(|s| (s.kind, s.size, s.mtime_ns, s.ctime_ns))
            };
            eprintln!(
                "{}: {:?} -> {:?}",
                name.display(),
                show(before.get(name)),
                show(after.get(name))
            );
            format!("{:?}", name.display().to_string())
        })
        .collect()
}

fn rows(db: &Path) -> i64 {
    let db = Connection::open(db).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    db.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

fn make_db(path: &Path, journal_mode: &str, rows: i64) -> Connection {
    let db = Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", journal_mode)
        .unwrap();
    db.execute_batch("CREATE TABLE t (x INTEGER, body TEXT)")
        .unwrap();
    for i in 0..rows {
        db.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            rusqlite::params![i, "some text ".repeat(20)],
        )
        .unwrap();
    }
    db
}

/// Regression: backing up an idle database in WAL mode left an empty
/// `-wal` and a `-shm` file beside it (SQLite opened read-only creates them
/// and cannot delete them), changing the folder's listing and mtime.
#[test]
fn backing_up_idle_databases_leaves_the_source_folder_as_it_was() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("inner")).unwrap();
    drop(make_db(&src.join("wal.db"), "wal", 300));
    drop(make_db(&src.join("inner/rollback.db"), "delete", 200));
    fs::write(src.join("notes.txt"), b"plain file\n").unwrap();
    common::set_mtimes(&src);
    let before = folder_state(&src);
    assert!(
        !src.join("wal.db-wal").exists() && !src.join("wal.db-shm").exists(),
        "closing the last connection removes the log"
    );
    // The second backup reads everything again (--force), the third
    // reuses the parent's: none of them may change the folder.
    for extra in [&[][..], &["--force"], &[]] {
        env.backup(&[&src], extra);
        let after = folder_state(&src);
        assert!(
            changed(&before, &after).is_empty(),
            "backup {extra:?} changed {:?}",
            changed(&before, &after)
        );
    }
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_eq!(rows(&target.join("src/wal.db")), 300);
    assert_eq!(rows(&target.join("src/inner/rollback.db")), 200);
    assert_eq!(
        common::dir_names(&target.join("src")),
        ["inner", "notes.txt", "wal.db"]
    );
}

/// While an app holds a database in WAL mode, its `-wal` and `-shm` exist:
/// the capture folds in what is committed in the log, writes neither the
/// database nor the log, and creates nothing; only the `-shm` (the shared
/// wal-index every reader writes its read mark into) may change.
#[test]
fn a_database_an_app_holds_is_captured_and_only_its_shm_is_written() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let app = make_db(&src.join("app.db"), "wal", 100);
    app.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    for i in 100..150 {
        app.execute("INSERT INTO t VALUES (?1, 'in the log')", [i])
            .unwrap();
    }
    assert!(fs::metadata(src.join("app.db-wal")).unwrap().len() > 0);
    let before = folder_state(&src);
    env.backup(&[&src], &[]);
    let after = folder_state(&src);
    let differ = changed(&before, &after);
    assert!(
        differ
            .iter()
            .all(|name| name == "\"app.db-shm\"" || name == "\"app.db-wal\""),
        "only the -shm and the -wal's ctime may change: {differ:?}"
    );
    // Run as root, SQLite gives a log it opens to the database's owner
    // (fchown, a no-op here): the -wal's ctime moves, nothing else.
    let (wal_before, wal_after) = (
        &before[Path::new("app.db-wal")],
        &after[Path::new("app.db-wal")],
    );
    assert_eq!(
        (wal_before.size, wal_before.mtime_ns, &wal_before.content),
        (wal_after.size, wal_after.mtime_ns, &wal_after.content)
    );
    if !common::is_root() {
        assert_eq!(wal_before.ctime_ns, wal_after.ctime_ns);
    }
    drop(app);
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_eq!(rows(&target.join("src/app.db")), 150);
    assert_eq!(common::dir_names(&target.join("src")), ["app.db"]);
}

/// A rollback-journal database in the middle of a write transaction is
/// captured as its last committed state, and nothing beside it changes.
#[test]
fn a_database_mid_transaction_in_rollback_mode_is_captured_committed() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    drop(make_db(&src.join("app.db"), "delete", 80));
    let app = Connection::open(src.join("app.db")).unwrap();
    // Enough rows to spill past the page cache's first pages into the journal.
    app.execute_batch(
        "BEGIN IMMEDIATE; INSERT INTO t SELECT x + 1000, body FROM t; INSERT INTO t SELECT x + 2000, body FROM t;",
    )
    .unwrap();
    let before = folder_state(&src);
    env.backup(&[&src], &[]);
    assert!(
        changed(&before, &folder_state(&src)).is_empty(),
        "{:?}",
        changed(&before, &folder_state(&src))
    );
    app.execute_batch("ROLLBACK").unwrap();
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_eq!(rows(&target.join("src/app.db")), 80);
}

/// Appends to `path` in a loop until killed.
fn start_appender(path: &Path) -> Child {
    std::process::Command::new("sh")
        .arg("-c")
        .arg("while :; do printf '%s\\n' 'one more line appended' >> \"$1\"; done")
        .arg("sh")
        .arg(path)
        .spawn()
        .unwrap()
}

/// A file that grows while it is read is stored as read, with a warning
/// naming it and exit code 3; the snapshot checks clean and restores a
/// prefix of what the file became.
#[test]
fn a_file_that_changes_while_it_is_read_is_stored_and_reported() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let log = src.join("growing.log");
    fs::write(&log, pseudo_random(64 << 20, 5)).unwrap();
    fs::write(src.join("still.txt"), b"unchanged\n").unwrap();
    let mut appender = start_appender(&log);
    // Wait until the appender runs, so the first read already overlaps it.
    let size = fs::metadata(&log).unwrap().len();
    let started = Instant::now();
    while fs::metadata(&log).unwrap().len() == size {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the appender does not run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut caught = None;
    for _ in 0..5 {
        let out = env
            .cmd()
            .args(["backup", "--force"])
            .arg(&src)
            .output()
            .unwrap();
        if common::exit_code(&out) == 3 {
            caught = Some(out);
            break;
        }
        assert_code(&out, 0);
    }
    appender.kill().unwrap();
    appender.wait().unwrap();
    let out = caught.expect("no backup saw the file grow in 5 tries");
    let stderr = common::stderr_text(&out);
    assert!(
        stderr.contains("growing.log: changed while it was read"),
        "{stderr}"
    );
    assert!(!stderr.contains("still.txt"), "{stderr}");
    // The summary says what happened: stored as read, not skipped.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 file changed while it was read and was stored as read"),
        "{stdout}"
    );
    assert!(!stdout.contains("could not be read"), "{stdout}");
    env.ok(["check", "--read-data"]);
    let target = env.path("restored");
    env.restore("latest", &target);
    let restored = fs::read(target.join("src/growing.log")).unwrap();
    let now = fs::read(&log).unwrap();
    assert!(restored.len() >= 64 << 20 && restored.len() < now.len());
    assert!(
        now.starts_with(&restored),
        "the stored file is not what was read"
    );
    // The next backup does not trust the torn copy: it reads the file again.
    let report = env.backup(&[&src], &[]);
    assert_eq!(report["files_changed"], 1, "{report:#}");
}

/// A repository with 1 MiB packs: a backup writes its first pack early.
fn init_small_packs(repo: &Path) {
    common::init_small_repo(repo, 128 << 10);
}

fn has_pack(repo: &Path) -> bool {
    fs::read_dir(repo.join("data"))
        .unwrap()
        .any(|dir| fs::read_dir(dir.unwrap().path()).unwrap().next().is_some())
}

/// Starts `snap backup --force SRC` with `stdout` and a piped stderr.
fn spawn_backup(env: &Env, src: &Path, stdout: Stdio) -> std::process::Child {
    env.spawnable()
        .args(["backup", "--force"])
        .arg(src)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the backup `child` has written a pack (a minute at most),
/// so the signal lands mid-backup, then sends it `signal`; returns whether
/// `kill` succeeded.
fn signal_after_first_pack(
    env: &Env,
    child: &std::process::Child,
    signal: nix::sys::signal::Signal,
) -> bool {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let started = Instant::now();
    while !has_pack(&env.repo) && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    nix::sys::signal::kill(pid, signal).is_ok()
}

/// Sends `signal` to a backup once it has written a pack, with the read end
/// of its stderr closed (as a terminal that hung up); returns its exit
/// code, or `None` when the backup finished first.
fn signal_mid_backup_code(env: &Env, src: &Path, signal: nix::sys::signal::Signal) -> Option<i32> {
    let mut child = spawn_backup(env, src, Stdio::null());
    drop(child.stderr.take());
    let sent = signal_after_first_pack(env, &child, signal);
    let status = child.wait().unwrap();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("snap was killed by a signal ({status:?})"));
    (sent && code != 0).then_some(code)
}

/// Regression: after SIGHUP the terminal is often gone, and printing the
/// "backup interrupted" message panicked (exit 1) instead of exiting 129.
#[test]
fn sighup_with_stderr_gone_still_stops_cleanly() {
    let (env, src) = repository_and_96_mib_source(90);
    let code = signal_mid_backup_code(&env, &src, nix::sys::signal::Signal::SIGHUP)
        .expect("the backup finished before SIGHUP arrived");
    assert_eq!(code, 129);
    assert_no_lock(&env);
    env.ok(["check"]);
}

/// A repository with small packs and a source of 48 files of 2 MiB
/// (`seed` makes them differ between tests).
fn repository_and_96_mib_source(seed: u64) -> (Env, PathBuf) {
    let env = Env::uninitialized();
    init_small_packs(&env.repo);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..48 {
        fs::write(
            src.join(format!("{i:02}.bin")),
            pseudo_random(2 << 20, seed + i),
        )
        .unwrap();
    }
    (env, src)
}

#[track_caller]
fn assert_no_lock(env: &Env) {
    assert!(!env.holds_lock(), "a lock was left behind");
}

/// Sends `signal` to a backup once it has written a pack; returns its
/// output, or `None` when the backup finished first.
fn signal_mid_backup(
    env: &Env,
    src: &Path,
    signal: nix::sys::signal::Signal,
) -> Option<std::process::Output> {
    let child = spawn_backup(env, src, Stdio::piped());
    let sent = signal_after_first_pack(env, &child, signal);
    let out = child.wait_with_output().unwrap();
    (sent && common::exit_code(&out) != 0).then_some(out)
}

fn signal_case(signal: nix::sys::signal::Signal, code: i32) {
    let (env, src) = repository_and_96_mib_source(50);
    let out = signal_mid_backup(&env, &src, signal)
        .unwrap_or_else(|| panic!("the backup finished before {signal} arrived"));
    assert_code(&out, code);
    let stderr = common::stderr_text(&out);
    assert!(stderr.contains("backup interrupted"), "{stderr}");
    assert_no_lock(&env);
    assert!(env.snapshots().is_empty(), "no snapshot is written");
    env.ok(["check"]);
    let report = env.backup(&[&src], &[]);
    let added = report["bytes_added"].as_u64().unwrap();
    assert!(
        added < 96 << 20,
        "the next backup stored everything again ({added} bytes)"
    );
    let target = env.path("restored");
    env.restore("latest", &target);
    common::assert_same_tree(&src, &target.join("src"));
    env.ok(["check", "--read-data"]);
}

/// SIGTERM (a service manager stopping snap) ends a backup cleanly: exit
/// 143, no lock left, the repository checks clean and the next backup
/// reuses what was stored.
#[test]
fn sigterm_stops_a_backup_cleanly() {
    signal_case(nix::sys::signal::Signal::SIGTERM, 143);
}

/// SIGHUP (the terminal closed) does the same, with exit code 129.
#[test]
fn sighup_stops_a_backup_cleanly() {
    signal_case(nix::sys::signal::Signal::SIGHUP, 129);
}

/// Ctrl-C keeps its exit code, 130.
#[test]
fn sigint_stops_a_backup_with_exit_130() {
    signal_case(nix::sys::signal::Signal::SIGINT, 130);
}
