//! SQLite databases through the real binary: consistent captures while a
//! writer commits (WAL and rollback journal), uncommitted transactions left
//! out, companions folded in, fallback to a plain copy, and small growth for
//! a small change.

use crate::common;

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
            .env_remove("SNAP_REPO")
            .env("XDG_CACHE_HOME", self.root.join("xdg-cache"));
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

    /// Runs `snap --json check ARGS`, expecting exit code 4 (damage found);
    /// returns the report.
    fn check_damaged(&self, args: &[&str]) -> serde_json::Value {
        let out = self.snap(&["--json", "check"]).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Backs up `app` with `args`, expecting exit code 3 (snapshot written,
    /// with warnings); returns standard error.
    fn backup_with_warnings(&self, args: &[&str]) -> (String, String) {
        let out = self
            .snap(&["backup"])
            .args(args)
            .arg(self.root.join("app"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
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
    let (_, stderr) = env.backup_with_warnings(&[]);
    assert!(
        stderr.contains("memory.db") && stderr.contains("plain file copy"),
        "{stderr}"
    );
    let restored = env.restore_db("latest");
    assert_eq!(fs::read(restored).unwrap(), bytes);
}

/// A database an app holds exclusively past `--sqlite-lock-timeout` is
/// stored as a plain copy with a warning naming it; the backup goes on.
#[test]
fn a_database_locked_past_the_timeout_falls_back_to_a_plain_copy() {
    let env = Env::new();
    let mut db = Connection::open(env.db()).unwrap();
    db.pragma_update(None, "journal_mode", "delete").unwrap();
    schema(&db);
    for i in 0..20 {
        step(&mut db, i);
    }
    fs::write(env.root.join("app/notes.md"), "a note\n").unwrap();
    let bytes = fs::read(env.db()).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = std::time::Instant::now();
    let (stdout, stderr) = env.backup_with_warnings(&["--sqlite-lock-timeout", "1"]);
    assert!(
        stderr.contains("memory.db")
            && stderr.contains("locked by a writer")
            && stderr.contains("plain file copy"),
        "{stderr}"
    );
    // The summary says what happened: nothing was skipped.
    assert!(
        stdout.contains(
            "1 SQLite database could not be captured as such and was stored as a plain file copy"
        ) && !stdout.contains("skipped"),
        "{stdout}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it waited {:?}",
        started.elapsed()
    );
    db.execute_batch("ROLLBACK").unwrap();
    assert_eq!(fs::read(env.restore_db("latest")).unwrap(), bytes);
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
    let v = env.check_damaged(&["--sqlite", &id[..8]]);
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

/// Words of English-like text from a small vocabulary, like a companion's
/// conversation log (a fixed sequence: the test sizes do not vary).
fn words() -> impl FnMut(usize) -> String {
    const WORDS: [&str; 24] = [
        "the", "tide", "came", "in", "at", "seven", "and", "sky", "was", "colour", "of", "slate",
        "we", "talked", "about", "garden", "letter", "morning", "quiet", "light", "remember",
        "session", "beach", "memory",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    move |count| {
        let mut text = Vec::with_capacity(count);
        for _ in 0..count {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(WORDS[(state % WORDS.len() as u64) as usize]);
        }
        text.join(" ")
    }
}

/// A database of `rows` messages of 60 words, in WAL mode, checkpointed.
fn conversations(env: &Env, rows: u64) -> Connection {
    let mut text = words();
    let mut db = Connection::open(env.db()).unwrap();
    db.pragma_update(None, "journal_mode", "wal").unwrap();
    db.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    schema(&db);
    let tx = db.transaction().unwrap();
    for _ in 0..rows {
        tx.execute("INSERT INTO messages (body) VALUES (?1)", [text(60)])
            .unwrap();
    }
    tx.execute("UPDATE counter SET n = ?1", [rows]).unwrap();
    tx.commit().unwrap();
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    db
}

/// Bytes of the repository's files (what a session adds to it).
fn repo_bytes(env: &Env) -> u64 {
    fn walk(dir: &Path) -> u64 {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    walk(&e.path())
                } else {
                    meta.len()
                }
            })
            .sum()
    }
    walk(&env.root.join("repo")) - second_copies(&env.root.join("repo"))
}

/// Bytes of the second copies of metadata packs (their first frame at
/// offset 10, FORMAT.md "Metadata twice"): the redundancy every repository
/// pays, not what a session's data costs.
fn second_copies(repo: &Path) -> u64 {
    common::pack_trailers(repo)
        .into_iter()
        .filter(|(_, _, blobs)| blobs.first().is_some_and(|b| b.offset == 10))
        .map(|(_, size, _)| size)
        .sum()
}

/// The dictionary of `path` in the latest snapshot, and where its blob is
/// stored (pack file, an offset inside the blob).
fn dictionary_of_latest(env: &Env, path: &str) -> Option<(snap::id::BlobId, PathBuf, u64)> {
    use snap::{NoProgress, Repository};
    let repo_dir = env.root.join("repo");
    let repo = Repository::open(common::local_backend(&repo_dir), &NoProgress).unwrap();
    let (_, snapshot) = repo.snapshots().unwrap().pop().unwrap();
    let node = snap::ops::browse::find_node(&repo, snapshot.tree, path).unwrap();
    let id = node.dictionary?;
    let (pack, offset) = common::blob_middle(&repo_dir, &repo, &id);
    Some((id, pack, offset))
}

/// Changes still in the `-wal` file (a session an app has not checkpointed)
/// cost at most 1.5x the log itself compressed at once (what restic stores
/// for them: a raw copy of the log), although snap stores the committed
/// pages of a consistent capture. The pages are compressed with the
/// database's own dictionary, and the chunk list is a tree of small lists.
#[test]
fn changes_still_in_the_log_cost_at_most_one_and_a_half_compressed_logs() {
    let env = Env::new();
    let mut db = conversations(&env, 24_000);
    let size = fs::metadata(env.db()).unwrap().len();
    assert!(size > 8_000_000, "{size}");
    env.backup();
    let before = repo_bytes(&env);
    // One session in one transaction (as benches/scripts/bench-sqlite.sh runs it):
    // 300 new messages and 10 edits spread over the database, committed
    // into the log and never checkpointed.
    let mut text = words();
    let tx = db.transaction().unwrap();
    for _ in 0..300 {
        tx.execute("INSERT INTO messages (body) VALUES (?1)", [text(60)])
            .unwrap();
    }
    for i in 0..10u64 {
        tx.execute(
            "UPDATE messages SET body = ?1 WHERE id = ?2",
            rusqlite::params![text(20), 1 + i * 2_400],
        )
        .unwrap();
    }
    tx.execute("UPDATE counter SET n = 24300", []).unwrap();
    tx.commit().unwrap();
    let wal = fs::read(env.root.join("app/memory.db-wal")).unwrap();
    assert!(
        wal.len() > 100_000,
        "the session is in the log: {}",
        wal.len()
    );
    let log_compressed = zstd::bulk::compress(&wal, 3).unwrap().len() as u64;
    env.backup();
    let added = repo_bytes(&env) - before;
    eprintln!("session added {added} bytes; the log compressed is {log_compressed} bytes");
    assert!(
        added * 2 <= log_compressed * 3,
        "the session added {added} bytes; the log compressed is {log_compressed} bytes"
    );
    drop(db);
    assert_eq!(assert_consistent(&env.restore_db("latest")), 24_300);
}

/// A database of a megabyte or more gets a zstd dictionary trained on its
/// pages; later snapshots reuse it (so unchanged pages keep their ids);
/// prune keeps it while a snapshot needs it; check --read-data verifies
/// every chunk through it.
#[test]
fn database_pages_share_one_dictionary_across_snapshots_and_prune() {
    let env = Env::new();
    let mut db = conversations(&env, 6_000);
    env.backup();
    let (first, _, _) =
        dictionary_of_latest(&env, "app/memory.db").expect("a dictionary for a 2 MB database");
    for i in 0..30 {
        step(&mut db, 6_000 + i);
    }
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    let second = env.backup();
    assert!(
        second["bytes_added_packed"].as_u64().unwrap() < 100_000,
        "{second}"
    );
    let (again, _, _) = dictionary_of_latest(&env, "app/memory.db").unwrap();
    assert_eq!(first, again, "the dictionary is carried from the parent");
    // The first snapshot goes; the dictionary stays for the second.
    env.snap(&["forget", "--keep-last", "1", "--prune"])
        .assert()
        .success();
    env.snap(&["check", "--read-data"]).assert().success();
    assert_eq!(assert_consistent(&env.restore_db("latest")), 6_030);
    // A small database gets none.
    let small = Connection::open(env.root.join("app/small.db")).unwrap();
    schema(&small);
    drop(small);
    env.backup();
    assert!(dictionary_of_latest(&env, "app/small.db").is_none());
}

/// `snap copy` carries dictionary-compressed databases to a repository with
/// the same ids (frames as they are, dictionary included) and to an
/// encrypted one (compressed again there, with a copy of the dictionary).
#[test]
fn copy_carries_dictionary_compressed_databases() {
    let env = Env::new();
    drop(conversations(&env, 6_000));
    env.backup();
    let password = env.root.join("password");
    fs::write(&password, "correct horse\n").unwrap();
    for (name, encrypted) in [("plain-copy", false), ("encrypted-copy", true)] {
        let target = env.root.join(name);
        // `snap` on the copy's repository, with its password when encrypted.
        let tool = |args: &[&str]| {
            let mut cmd = Command::cargo_bin("snap").unwrap();
            cmd.arg("-r")
                .arg(&target)
                .env_remove("SNAP_REPO")
                .env("XDG_CACHE_HOME", env.root.join("xdg-cache"));
            if encrypted {
                cmd.arg("--password-file").arg(&password);
            }
            cmd.args(args);
            cmd
        };
        tool(&["init"]).assert().success();
        let mut copy = env.snap(&["copy", "--to"]);
        copy.arg(&target);
        if encrypted {
            copy.arg("--to-password-file").arg(&password);
        }
        copy.assert().success();
        let restored = env.root.join(format!("{name}-restored"));
        tool(&["check", "--read-data"]).assert().success();
        tool(&["restore", "latest:app/memory.db", "--target"])
            .arg(&restored)
            .assert()
            .success();
        assert_eq!(assert_consistent(&restored.join("memory.db")), 6_000);
    }
}

/// A damaged dictionary is damage to every database compressed with it:
/// check names the database, and restore reports it while restoring the
/// other files.
#[test]
fn a_damaged_dictionary_names_the_database_that_needs_it() {
    let env = Env::new();
    drop(conversations(&env, 6_000));
    fs::write(env.root.join("app/notes.md"), "a note\n".repeat(50)).unwrap();
    env.backup();
    let (_, pack, offset) = dictionary_of_latest(&env, "app/memory.db").unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset as usize] ^= 0x55;
    fs::write(&pack, bytes).unwrap();
    let report = env.check_damaged(&["--read-data"]);
    assert!(report.to_string().contains("app/memory.db"), "{report}");
    let target = env.root.join("restored");
    let out = env
        .snap(&["restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory.db"));
    assert_eq!(
        fs::read_to_string(target.join("app/notes.md")).unwrap(),
        "a note\n".repeat(50)
    );
}
