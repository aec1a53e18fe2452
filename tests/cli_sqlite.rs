//! SQLite databases through the real binary: consistent captures while a
//! writer commits (WAL and rollback journal), uncommitted transactions left
//! out, companions folded in, fallback to a plain copy, and small growth for
//! a small change.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use assert_cmd::Command;
use rusqlite::Connection;

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fs::create_dir_all(root.join("app")).unwrap();
        let env = Self { _dir: dir, root };
        env.snap(&["init"]).assert().success();
        env
    }

    fn db(&self) -> PathBuf {
        self.root.join("app/memory.db")
    }

    fn snap(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("snap").unwrap();
        cmd.arg("-r")
            .arg(self.root.join("repo"))
            .args(args)
            .env_remove("SNAP_REPO");
        cmd
    }

    fn backup(&self) -> serde_json::Value {
        let out = self
            .snap(&["--json", "backup"])
            .arg(self.root.join("app"))
            .output()
            .unwrap();
        assert!(
            out.status.code() == Some(0),
            "backup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Restores the database of snapshot `id` and returns its path.
    fn restore_db(&self, id: &str) -> PathBuf {
        let target = self.root.join(format!("restored-{id}"));
        self.snap(&["restore"])
            .arg(format!("{id}:app/memory.db"))
            .arg("--target")
            .arg(&target)
            .assert()
            .success();
        target.join("memory.db")
    }
}

fn schema(db: &Connection) {
    db.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT);
         CREATE TABLE counter (n INTEGER);
         INSERT INTO counter VALUES (0);",
    )
    .unwrap();
}

/// One committed step: a message and the counter, in one transaction.
fn step(db: &mut Connection, i: u64) {
    let tx = db.transaction().unwrap();
    tx.execute(
        "INSERT INTO messages (body) VALUES (?1)",
        [format!(
            "message {i}: the tide came in at seven and the sky was the colour of slate {}",
            "x".repeat((i % 300) as usize)
        )],
    )
    .unwrap();
    tx.execute(
        "UPDATE messages SET body = body || '.' WHERE id = ?1",
        [((i * 7919) % (i + 1)) + 1],
    )
    .unwrap();
    tx.execute("UPDATE counter SET n = n + 1", []).unwrap();
    tx.commit().unwrap();
}

/// The restored database opens, passes integrity_check and holds exactly
/// one committed state: as many messages as the counter says.
fn assert_consistent(path: &Path) -> i64 {
    let db = Connection::open(path).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    let n: i64 = db
        .query_row("SELECT n FROM counter", [], |r| r.get(0))
        .unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        n,
        rows,
        "a torn or half-applied state in {}",
        path.display()
    );
    n
}

fn live_writer_case(journal_mode: &str) {
    let env = Env::new();
    let mut db = Connection::open(env.db()).unwrap();
    db.pragma_update(None, "journal_mode", journal_mode)
        .unwrap();
    schema(&db);
    for i in 0..200 {
        step(&mut db, i);
    }
    drop(db);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let path = env.db();
        thread::spawn(move || {
            let mut db = Connection::open(path).unwrap();
            db.busy_timeout(Duration::from_secs(30)).unwrap();
            let mut i = 200;
            while !stop.load(Ordering::Relaxed) {
                step(&mut db, i);
                i += 1;
            }
            i
        })
    };
    let mut ids = Vec::new();
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(150));
        ids.push(env.backup()["id"].as_str().unwrap().to_string());
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let mut seen = Vec::new();
    for id in &ids {
        let listing = env.snap(&["ls"]).arg(format!("{id}:app")).output().unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).to_string();
        assert_eq!(
            listing.trim(),
            "app/memory.db",
            "companions must be folded in, not stored: {listing}"
        );
        seen.push(assert_consistent(&env.restore_db(id)));
    }
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "states go back in time: {seen:?}"
    );
    assert!(
        seen[0] >= 200 && *seen.last().unwrap() <= written as i64,
        "{seen:?} of {written}"
    );
}

#[test]
fn live_writer_in_wal_mode_gives_consistent_captures() {
    live_writer_case("wal");
}

#[test]
fn live_writer_in_rollback_journal_mode_gives_consistent_captures() {
    live_writer_case("delete");
}

#[test]
fn uncommitted_transaction_is_left_out_and_wal_content_is_in() {
    let env = Env::new();
    let mut db = Connection::open(env.db()).unwrap();
    db.pragma_update(None, "journal_mode", "wal").unwrap();
    db.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    schema(&db);
    for i in 0..50 {
        step(&mut db, i);
    }
    // Committed, still only in the -wal file.
    assert!(
        fs::metadata(env.root.join("app/memory.db-wal"))
            .unwrap()
            .len()
            > 0
    );
    let pending = Connection::open(env.db()).unwrap();
    pending.execute_batch("BEGIN IMMEDIATE; INSERT INTO messages (body) VALUES ('not yet'); UPDATE counter SET n = n + 1;").unwrap();
    let id = env.backup()["id"].as_str().unwrap().to_string();
    pending.execute_batch("ROLLBACK").unwrap();
    let restored = env.restore_db(&id);
    assert_eq!(assert_consistent(&restored), 50);
    assert!(!restored.with_file_name("memory.db-wal").exists());
}

#[test]
fn undecodable_database_falls_back_to_a_plain_copy_with_a_warning() {
    let env = Env::new();
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..20_000u32).map(|i| (i * 31 % 251) as u8));
    fs::write(env.db(), &bytes).unwrap();
    let out = env
        .snap(&["backup"])
        .arg(env.root.join("app"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("memory.db") && stderr.contains("plain file copy"),
        "{stderr}"
    );
    let restored = env.restore_db("latest");
    assert_eq!(fs::read(restored).unwrap(), bytes);
}

#[test]
fn a_small_change_to_a_database_stores_little() {
    let env = Env::new();
    let mut db = Connection::open(env.db()).unwrap();
    db.pragma_update(None, "journal_mode", "wal").unwrap();
    schema(&db);
    {
        let tx = db.transaction().unwrap();
        for i in 0..20_000u64 {
            tx.execute(
                "INSERT INTO messages (body) VALUES (?1)",
                [format!(
                    "row {i} {}",
                    "some realistic english words about the garden and the letter ".repeat(3)
                )],
            )
            .unwrap();
        }
        tx.execute("UPDATE counter SET n = 20000", []).unwrap();
        tx.commit().unwrap();
    }
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let size = fs::metadata(env.db()).unwrap().len();
    assert!(size > 3_000_000, "{size}");
    env.backup();
    for i in 0..50 {
        step(&mut db, 20_000 + i);
    }
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let second = env.backup();
    let added = second["bytes_added_packed"].as_u64().unwrap();
    assert!(
        added < size / 20,
        "a 50-row change stored {added} bytes of a {size}-byte database"
    );
    assert_eq!(assert_consistent(&env.restore_db("latest")), 20_050);
}

/// `snap check --sqlite` runs integrity_check on every database of a
/// snapshot from temporary copies: a sound one passes; one stored with a
/// damaged index (it opens, but its rows and index disagree) fails with
/// exit code 4 and SQLite's own words; the originals are never touched.
#[test]
fn check_sqlite_runs_integrity_check_on_every_database_of_a_snapshot() {
    let env = Env::new();
    {
        let db = Connection::open(env.db()).unwrap();
        schema(&db);
        db.execute_batch("CREATE INDEX by_body ON messages (body)")
            .unwrap();
        for i in 0..2000 {
            db.execute(
                "INSERT INTO messages (body) VALUES (?1)",
                [format!("value-{i:06}")],
            )
            .unwrap();
        }
    }
    fs::write(
        env.root.join("app/notes.md"),
        "not a database\n".repeat(100),
    )
    .unwrap();
    env.backup();
    let out = env.snap(&["--json", "check", "--sqlite"]).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dbs = v["sqlite"].as_array().unwrap();
    assert_eq!(dbs.len(), 1, "{v}");
    assert_eq!(dbs[0]["path"], "app/memory.db");
    assert_eq!(dbs[0]["ok"], true);

    // Damage a row's text in the table b-tree without changing lengths:
    // the file still opens, but the index no longer matches.
    let mut bytes = fs::read(env.db()).unwrap();
    let needle = b"value-001234";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at..at + 5].copy_from_slice(b"VALUE");
    fs::write(env.db(), &bytes).unwrap();
    let damaged = fs::read(env.db()).unwrap();
    let id = env.backup()["id"].as_str().unwrap().to_string();
    let out = env
        .snap(&["--json", "check", "--sqlite", &id[..8]])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let db = &v["sqlite"][0];
    assert_eq!(db["ok"], false, "{v}");
    assert!(db["message"].as_str().unwrap().contains("index"), "{v}");
    // The repository itself is sound; only the database is not.
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(
        fs::read(env.db()).unwrap(),
        damaged,
        "the original was changed"
    );
    // The text report names the database; an unknown snapshot is exit 10.
    let out = env.snap(&["check", "--sqlite"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("sqlite FAILED: app/memory.db"), "{text}");
    env.snap(&["check", "--sqlite", "ffffffff"])
        .assert()
        .code(10);
}
