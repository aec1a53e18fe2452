//! `snap diff`, `snap log` and `snap find` through the real binary: golden
//! text and JSON output for every kind of change (renames, type changes,
//! permission-only changes, empty files and folders), content diffs of text
//! and SQLite files, versions across deletions, globs across snapshots, and
//! `@TIME` selectors at, before and after snapshot times in several zones.

use crate::common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use common::{Env, assert_code, stderr_text};
use filetime::FileTime;
use serde_json::{Value, json};

/// One mtime for every entry, so that only the changes a test makes show
/// (adding an entry to a folder would otherwise change the folder's mtime).
const MTIME: i64 = 1_700_000_000;

/// Sets the mtime of `root` and everything below it to [`MTIME`].
fn fix_times(root: &Path) {
    let time = FileTime::from_unix_time(MTIME, 0);
    filetime::set_symlink_file_times(root, time, time).unwrap();
    if fs::symlink_metadata(root).unwrap().is_dir() {
        for entry in fs::read_dir(root).unwrap() {
            fix_times(&entry.unwrap().path());
        }
    }
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// `snap backup ROOT --time TIME --host test`; returns the snapshot id.
fn backup_at(env: &Env, roots: &[&Path], time: &str) -> String {
    let report = env.backup(roots, &["--time", time, "--host", "test"]);
    report["id"].as_str().unwrap().to_string()
}

fn text(out: &[u8]) -> String {
    String::from_utf8(out.to_vec()).unwrap()
}

/// Runs a command that must succeed and returns stdout as text.
#[track_caller]
fn ok_text(env: &Env, args: &[&str]) -> String {
    text(&env.ok(args))
}

/// blake3 as hex.
fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// `snap log`'s content id of a file stored as one chunk: blake3 of depth 0
/// followed by the chunk id, which is the blake3 of the content.
fn file_content_id(content: &[u8]) -> String {
    let mut input = vec![0u8];
    input.extend_from_slice(blake3::hash(content).as_bytes());
    b3(&input)
}

/// A tree with one of each case the diff must name, backed up twice.
struct Changed {
    env: Env,
    root: PathBuf,
    before: String,
    after: String,
}

fn changed_tree() -> Changed {
    let env = Env::new();
    let root = env.path("src/proj");
    let p = |rel: &str| root.join(rel);
    write(&p("a.txt"), "alpha\n");
    write(&p("b.txt"), "bravo\n");
    write(&p("old_name.txt"), "rename me\n");
    write(&p("gone.txt"), "gone\n");
    write(&p("f2d"), "file, then folder\n");
    write(&p("f2l"), "file, then symlink\n");
    write(&p("d2f/x.txt"), "in a folder that becomes a file\n");
    write(&p("perm.sh"), "#!/bin/sh\n");
    chmod(&p("perm.sh"), 0o644);
    symlink("a.txt", p("link")).unwrap();
    write(&p("olddir/sub/deep.txt"), "deep\n");
    write(&p("same/one.txt"), "unchanged\n");
    fix_times(&root);
    let before = backup_at(&env, &[&root], "2026-01-10T10:00:00Z");

    write(&p("b.txt"), "bravo 2\n");
    fs::rename(p("old_name.txt"), p("new_name.txt")).unwrap();
    fs::remove_file(p("gone.txt")).unwrap();
    fs::remove_file(p("f2d")).unwrap();
    write(&p("f2d/inner.txt"), "inner\n");
    fs::remove_file(p("f2l")).unwrap();
    symlink("a.txt", p("f2l")).unwrap();
    fs::remove_dir_all(p("d2f")).unwrap();
    write(&p("d2f"), "now a file\n");
    chmod(&p("perm.sh"), 0o755);
    fs::remove_file(p("link")).unwrap();
    symlink("b.txt", p("link")).unwrap();
    fs::remove_dir_all(p("olddir")).unwrap();
    write(&p("empty.txt"), "");
    fs::create_dir(p("emptydir")).unwrap();
    fix_times(&root);
    let after = backup_at(&env, &[&root], "2026-01-20T10:00:00Z");
    Changed {
        env,
        root,
        before,
        after,
    }
}

const CHANGED_TEXT: &str = "\
M proj/b.txt
T proj/d2f
- proj/d2f/x.txt
+ proj/empty.txt
+ proj/emptydir
T proj/f2d
+ proj/f2d/inner.txt
T proj/f2l
- proj/gone.txt
M proj/link
+ proj/new_name.txt
- proj/old_name.txt
- proj/olddir
- proj/olddir/sub
- proj/olddir/sub/deep.txt
m proj/perm.sh
total: 3 files added (16 B), 4 files removed (52 B), 2 files modified (6 B -> 8 B), \
3 entries changed type, 1 dir added, 2 dirs removed, 1 metadata only
";

#[test]
fn diff_names_every_kind_of_change() {
    let c = changed_tree();
    let out = ok_text(&c.env, &["diff", &c.before, &c.after]);
    assert_eq!(out, CHANGED_TEXT);
}

#[test]
fn diff_json_has_every_change_with_sizes_and_the_stat() {
    let c = changed_tree();
    let got = c.env.json(["diff", &c.before, &c.after]);
    let row = |path: &str, change: &str, before: Value, after: Value| {
        (path.to_string(), change.to_string(), before, after)
    };
    let expected = [
        row("proj/b.txt", "modified", json!(6), json!(8)),
        row("proj/d2f", "type", json!(0), json!(11)),
        row("proj/d2f/x.txt", "removed", json!(32), Value::Null),
        row("proj/empty.txt", "added", Value::Null, json!(0)),
        row("proj/emptydir", "added", Value::Null, json!(0)),
        row("proj/f2d", "type", json!(18), json!(0)),
        row("proj/f2d/inner.txt", "added", Value::Null, json!(6)),
        row("proj/f2l", "type", json!(19), json!(0)),
        row("proj/gone.txt", "removed", json!(5), Value::Null),
        row("proj/link", "modified", json!(0), json!(0)),
        row("proj/new_name.txt", "added", Value::Null, json!(10)),
        row("proj/old_name.txt", "removed", json!(10), Value::Null),
        row("proj/olddir", "removed", json!(0), Value::Null),
        row("proj/olddir/sub", "removed", json!(0), Value::Null),
        row("proj/olddir/sub/deep.txt", "removed", json!(5), Value::Null),
        row("proj/perm.sh", "metadata", json!(10), json!(10)),
    ];
    let changes = got["changes"].as_array().unwrap();
    let summary: Vec<(String, String, Value, Value)> = changes
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["change"].as_str().unwrap().to_string(),
                c["size_before"].clone(),
                c["size_after"].clone(),
            )
        })
        .collect();
    assert_eq!(summary, expected);
    // Type changes say what the entry was and became.
    let types: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| c["change"] == "type")
        .map(|c| {
            (
                c["type_before"].as_str().unwrap(),
                c["type_after"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        [("dir", "file"), ("file", "dir"), ("file", "symlink")]
    );
    let total = json!({
        "files_added": 3, "files_removed": 4, "files_modified": 2,
        "dirs_added": 1, "dirs_removed": 2, "type_changed": 3, "metadata_changed": 1,
        "bytes_added": 16, "bytes_removed": 52, "bytes_before": 6, "bytes_after": 8,
    });
    assert_eq!(got["stat"]["total"], total);
    assert_eq!(got["stat"]["folders"], json!({ "proj": total }));
}

#[test]
fn diff_of_identical_snapshots_is_empty_and_exits_0() {
    let c = changed_tree();
    // A third backup of the unchanged tree has the same root tree.
    let again = backup_at(&c.env, &[&c.root], "2026-01-30T10:00:00Z");
    assert_eq!(
        ok_text(&c.env, &["diff", &c.after, &again]),
        "no differences\n"
    );
    let got = c.env.json(["diff", &c.after, &again]);
    assert_eq!(got["changes"], json!([]));
    assert_eq!(got["stat"]["folders"], json!({}));
}

#[test]
fn diff_restricted_to_a_path() {
    let c = changed_tree();
    let env = &c.env;
    assert_eq!(
        ok_text(env, &["diff", &c.before, &c.after, "proj/olddir"]),
        "- proj/olddir\n- proj/olddir/sub\n- proj/olddir/sub/deep.txt\n\
         total: 1 file removed (5 B), 2 dirs removed\n"
    );
    assert_eq!(
        ok_text(env, &["diff", &c.before, &c.after, "proj/b.txt"]),
        "M proj/b.txt\ntotal: 1 file modified (6 B -> 8 B)\n"
    );
    assert_eq!(
        ok_text(env, &["diff", &c.before, &c.after, "proj/f2d"]),
        "T proj/f2d\n+ proj/f2d/inner.txt\n\
         total: 1 file added (6 B), 1 entry changed type\n"
    );
    assert_eq!(
        ok_text(env, &["diff", &c.before, &c.after, "proj/same"]),
        "no differences\n"
    );
    // Trailing and doubled slashes name the same path (a leading one makes
    // it a path of this machine: tests/integration/cli_paths.rs).
    assert_eq!(
        ok_text(env, &["diff", &c.before, &c.after, "proj//emptydir/"]),
        "+ proj/emptydir\ntotal: 1 dir added\n"
    );
    let out = env.run(["diff", &c.before, &c.after, "proj/nowhere"]);
    assert_code(&out, 10);
    assert!(
        stderr_text(&out).contains("proj/nowhere"),
        "{}",
        stderr_text(&out)
    );
    let out = env.run(["diff", &c.before, "ffffffff", "proj"]);
    assert_code(&out, 10);
}

#[test]
fn diff_stat_groups_by_top_level_folder() {
    let env = Env::new();
    let notes = env.path("src/notes");
    let photos = env.path("src/photos");
    write(&notes.join("a.md"), "a\n");
    write(&notes.join("old.md"), "old\n");
    write(&photos.join("2025/one.jpg"), "jpeg bytes\n");
    fix_times(&notes);
    fix_times(&photos);
    let before = backup_at(&env, &[&notes, &photos], "2026-01-10T10:00:00Z");
    write(&notes.join("a.md"), "a, longer\n");
    fs::remove_file(notes.join("old.md")).unwrap();
    write(&photos.join("2026/two.jpg"), "more jpeg bytes\n");
    write(&photos.join("2026/three.jpg"), "3\n");
    fix_times(&notes);
    fix_times(&photos);
    let after = backup_at(&env, &[&notes, &photos], "2026-01-20T10:00:00Z");

    assert_eq!(
        ok_text(&env, &["diff", "--stat", &before, &after]),
        "notes: 1 file removed (4 B), 1 file modified (2 B -> 10 B)\n\
         photos: 2 files added (18 B), 1 dir added\n\
         total: 2 files added (18 B), 1 file removed (4 B), 1 file modified (2 B -> 10 B), 1 dir added\n"
    );
    // Below a path, the groups are the entries of that path.
    assert_eq!(
        ok_text(&env, &["diff", "--stat", &before, &after, "photos"]),
        "2026: 2 files added (18 B), 1 dir added\n\
         total: 2 files added (18 B), 1 dir added\n"
    );
    let got = env.json(["diff", "--stat", &before, &after]);
    assert_eq!(got["stat"]["folders"]["photos"]["files_added"], 2);
    assert_eq!(got["stat"]["folders"]["photos"]["bytes_added"], 18);
    assert_eq!(got["stat"]["folders"]["notes"]["files_removed"], 1);
    assert_eq!(got["stat"]["total"]["bytes_after"], 10);
    assert_eq!(got["changes"].as_array().unwrap().len(), 5);
}

#[test]
fn diff_shows_metadata_only_changes_of_folders_and_files() {
    let env = Env::new();
    let root = env.path("src/proj");
    write(&root.join("dir/f.txt"), "same\n");
    fix_times(&root);
    let before = backup_at(&env, &[&root], "2026-01-10T10:00:00Z");
    chmod(&root.join("dir"), 0o700);
    let t = FileTime::from_unix_time(MTIME + 60, 5);
    filetime::set_file_times(root.join("dir/f.txt"), t, t).unwrap();
    let after = backup_at(&env, &[&root], "2026-01-20T10:00:00Z");
    assert_eq!(
        ok_text(&env, &["diff", &before, &after]),
        "m proj/dir\nm proj/dir/f.txt\ntotal: 2 metadata only\n"
    );
}

#[test]
fn diff_content_shows_a_unified_diff_for_text_and_names_binary_files() {
    let env = Env::new();
    let root = env.path("src/proj");
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    write(&root.join("notes.md"), &lines);
    fs::write(root.join("blob.bin"), b"\x00\x01binary").unwrap();
    write(&root.join("unchanged.md"), "same\n");
    fix_times(&root);
    let before = backup_at(&env, &[&root], "2026-01-10T10:00:00Z");
    write(
        &root.join("notes.md"),
        &lines
            .replace("line 2\n", "line two\n")
            .replace("line 15\n", ""),
    );
    fs::write(root.join("blob.bin"), b"\x00\x02binary").unwrap();
    fix_times(&root);
    let after = backup_at(&env, &[&root], "2026-01-20T10:00:00Z");

    // The unified diff of notes.md, the same whether or not the path is given.
    let notes_diff = "\
M proj/notes.md
--- a/proj/notes.md
+++ b/proj/notes.md
@@ -1,5 +1,5 @@
 line 1
-line 2
+line two
 line 3
 line 4
 line 5
@@ -12,7 +12,6 @@
 line 12
 line 13
 line 14
-line 15
 line 16
 line 17
 line 18
";
    assert_eq!(
        ok_text(
            &env,
            &["diff", "--content", &before, &after, "proj/notes.md"]
        ),
        format!("{notes_diff}total: 1 file modified (151 B -> 145 B)\n")
    );
    assert_eq!(
        ok_text(&env, &["diff", "--content", &before, &after]),
        format!(
            "M proj/blob.bin\n  binary files differ\n{notes_diff}total: 2 files modified (159 B -> 153 B)\n"
        )
    );
    let got = env.json(["diff", "--content", &before, &after]);
    assert_eq!(got["changes"][0]["content"], json!({ "kind": "binary" }));
    assert_eq!(got["changes"][1]["content"]["kind"], "text");
    assert!(
        got["changes"][1]["content"]["diff"]
            .as_str()
            .unwrap()
            .contains("-line 2\n+line two\n")
    );
}

/// Creates (or replaces) a SQLite database with `sql`.
fn make_db(path: &Path, sql: &str) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(sql).unwrap();
    db.close().unwrap();
}

/// Backs up `proj/app.db` made with `create`, then again after `change` ran
/// on it; returns the two snapshot ids.
fn db_snapshots(env: &Env, create: &str, change: &str) -> (String, String) {
    let root = env.path("src/proj");
    fs::create_dir_all(&root).unwrap();
    let db = root.join("app.db");
    make_db(&db, create);
    fix_times(&root);
    let before = backup_at(env, &[&root], "2026-01-10T10:00:00Z");
    make_db(&db, change);
    fix_times(&root);
    let after = backup_at(env, &[&root], "2026-01-20T10:00:00Z");
    (before, after)
}

#[test]
fn diff_content_summarises_sqlite_changes_per_table() {
    let env = Env::new();
    let (before, after) = db_snapshots(
        &env,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
         INSERT INTO notes (body) VALUES ('one'), ('two'), ('three'), ('four'), ('five');
         CREATE TABLE tags (name TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID;
         INSERT INTO tags VALUES ('red', 1), ('green', 2);
         CREATE TABLE gone (x);
         INSERT INTO gone VALUES (1);
         CREATE TABLE still (v REAL, b BLOB);
         INSERT INTO still VALUES (1.5, x'00ff'), (NULL, NULL);",
        "INSERT INTO notes (body) VALUES ('six'), ('seven');
         DELETE FROM notes WHERE body = 'one';
         UPDATE notes SET body = upper(body) WHERE body IN ('two', 'three', 'four');
         INSERT INTO tags VALUES ('blue', 3);
         UPDATE tags SET n = 20 WHERE name = 'green';
         DROP TABLE gone;
         CREATE TABLE extra (k TEXT);
         INSERT INTO extra VALUES ('a'), ('b');
         CREATE INDEX notes_by_body ON notes (body);",
    );

    let out = ok_text(&env, &["diff", "--content", &before, &after, "proj/app.db"]);
    let size = |id: &str| {
        let rows = env.json(["ls", &format!("{id}:proj/app.db")]);
        rows[0]["size"].as_u64().unwrap()
    };
    let (sa, sb) = (size(&before), size(&after));
    let bytes = |n: u64| format!("{:.1} KiB", n as f64 / 1024.0);
    assert_eq!(
        out,
        format!(
            "\
M proj/app.db
  schema: index notes_by_body added
  schema: table extra added
  schema: table gone removed
  table extra: rows added 2, removed 0, changed 0
  table gone: rows added 0, removed 1, changed 0
  table notes: rows added 2, removed 1, changed 3
  table tags: rows added 1, removed 0, changed 1
total: 1 file modified ({} -> {})
",
            bytes(sa),
            bytes(sb)
        )
    );
    let got = env.json(["diff", "--content", &before, &after, "proj/app.db"]);
    let content = &got["changes"][0]["content"];
    assert_eq!(content["kind"], "sqlite");
    assert_eq!(
        content["tables"],
        json!([
            {"table": "extra", "rows_added": 2, "rows_removed": 0, "rows_changed": 0},
            {"table": "gone", "rows_added": 0, "rows_removed": 1, "rows_changed": 0},
            {"table": "notes", "rows_added": 2, "rows_removed": 1, "rows_changed": 3},
            {"table": "tags", "rows_added": 1, "rows_removed": 0, "rows_changed": 1},
        ])
    );
    assert_eq!(
        content["schema"],
        json!([
            {"type": "index", "name": "notes_by_body", "change": "added"},
            {"type": "table", "name": "extra", "change": "added"},
            {"type": "table", "name": "gone", "change": "removed"},
        ])
    );
}

#[test]
fn diff_content_compares_sqlite_rows_on_common_columns() {
    let env = Env::new();
    // A new column with a default changes the schema, not the rows.
    let (before, after) = db_snapshots(
        &env,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);
         INSERT INTO t (a) VALUES ('x'), ('y');",
        "ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 7;",
    );
    let got = env.json(["diff", "--content", &before, &after]);
    let content = &got["changes"][0]["content"];
    assert_eq!(content["tables"], json!([]));
    assert_eq!(
        content["schema"],
        json!([{"type": "table", "name": "t", "change": "changed"}])
    );
}

/// Snapshot ids and times for the `@TIME` tests: two snapshots that differ.
fn two_snapshots() -> (Env, String, String) {
    let env = Env::new();
    let root = env.path("src/proj");
    write(&root.join("f.txt"), "first\n");
    fix_times(&root);
    let first = backup_at(&env, &[&root], "2026-01-10T10:00:00Z");
    write(&root.join("f.txt"), "second\n");
    fix_times(&root);
    let second = backup_at(&env, &[&root], "2026-01-20T20:00:00Z");
    (env, first, second)
}

/// Which of the two snapshots `selector` names, by diffing it against the
/// first (`None`: it names none, exit code 10).
fn which(env: &Env, tz: &str, selector: &str, first: &str) -> Option<u8> {
    let out = env
        .cmd()
        .env("TZ", tz)
        .args(["--json", "diff", first, selector])
        .output()
        .unwrap();
    if out.status.code() == Some(10) {
        return None;
    }
    assert_code(&out, 0);
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(if got["changes"] == json!([]) { 1 } else { 2 })
}

#[test]
fn time_selectors_at_before_and_after_snapshot_times_in_several_zones() {
    let (env, first, _) = two_snapshots();
    let cases: &[(&str, &str, Option<u8>)] = &[
        // Exactly at a snapshot's time, and just before or after it.
        ("UTC", "@2026-01-10T10:00:00Z", Some(1)),
        ("UTC", "@2026-01-10T09:59:59Z", None),
        ("UTC", "@2026-01-10T10:00:01Z", Some(1)),
        ("UTC", "@2026-01-20T19:59:59.999Z", Some(1)),
        ("UTC", "@2026-01-20T20:00:00Z", Some(2)),
        ("UTC", "@2030-01-01T00:00:00Z", Some(2)),
        // The same instants written with offsets.
        ("UTC", "@2026-01-20T21:00:00+01:00", Some(2)),
        ("UTC", "@2026-01-20T20:59:59+01:00", Some(1)),
        ("UTC", "@2026-01-20T15:00:00-05:00", Some(2)),
        ("UTC", "@2026-01-21T05:00:00+09:00", Some(2)),
        ("UTC", "@2026-01-21T04:59:59+09:00", Some(1)),
        // A date is the end of that day, local time: 2026-01-20 ends at
        // 23:59:59Z in UTC, 14:59:59Z in Tokyo, 04:59:59Z the next day in New York.
        ("UTC", "@2026-01-20", Some(2)),
        ("Asia/Tokyo", "@2026-01-20", Some(1)),
        ("America/New_York", "@2026-01-20", Some(2)),
        ("UTC", "@2026-01-09", None),
        ("UTC", "@2026-01-10", Some(1)),
        // A local date-time without an offset is in the local zone.
        ("Asia/Tokyo", "@2026-01-21T04:59:59", Some(1)),
        ("Asia/Tokyo", "@2026-01-21T05:00:00", Some(2)),
    ];
    for (tz, selector, expected) in cases {
        assert_eq!(
            which(&env, tz, selector, &first),
            *expected,
            "{selector} with TZ={tz}"
        );
    }
}

#[test]
fn time_selectors_work_for_both_sides_of_diff() {
    let (env, _, _) = two_snapshots();
    assert_eq!(
        ok_text(&env, &["diff", "@2026-01-15", "@2026-01-20T20:00:00Z"]),
        "M proj/f.txt\ntotal: 1 file modified (6 B -> 7 B)\n"
    );
    assert_eq!(
        ok_text(&env, &["diff", "latest~1", "latest", "proj/f.txt"]),
        "M proj/f.txt\ntotal: 1 file modified (6 B -> 7 B)\n"
    );
    let out = env.run(["diff", "@2026-01-01", "latest"]);
    assert_code(&out, 10);
    let out = env.run(["diff", "@yesterday-ish", "latest"]);
    assert_code(&out, 2);
}

/// Snapshots of `proj/doc.md` going through versions, a metadata-only
/// change, a deletion and a type change. Returns the env and snapshot ids.
fn doc_history() -> (Env, Vec<String>) {
    let env = Env::new();
    let root = env.path("src/proj");
    let doc = root.join("doc.md");
    write(&root.join("other.txt"), "keeps the folder busy\n");
    let mut ids = Vec::new();
    let snap = |ids: &mut Vec<String>, time: &str| {
        fix_times(&root);
        ids.push(backup_at(&env, &[&root], time));
    };
    write(&doc, "v1\n");
    snap(&mut ids, "2026-01-01T00:00:00Z"); // 0: v1
    chmod(&doc, 0o600);
    snap(&mut ids, "2026-01-02T00:00:00Z"); // 1: same content, other mode
    write(&root.join("other.txt"), "something else changed\n");
    snap(&mut ids, "2026-01-03T00:00:00Z"); // 2: doc unchanged
    write(&doc, "version two\n");
    snap(&mut ids, "2026-01-04T00:00:00Z"); // 3: v2
    // 4: nothing changed at all (not even ctimes: no fix_times), same tree.
    ids.push(backup_at(&env, &[&root], "2026-01-05T00:00:00Z"));
    fs::remove_file(&doc).unwrap();
    snap(&mut ids, "2026-01-06T00:00:00Z"); // 5: deleted
    write(&doc, "version two\n");
    snap(&mut ids, "2026-01-07T00:00:00Z"); // 6: back, same content as v2
    fs::remove_file(&doc).unwrap();
    symlink("other.txt", &doc).unwrap();
    snap(&mut ids, "2026-01-08T00:00:00Z"); // 7: a symlink now
    (env, ids)
}

#[test]
fn log_lists_each_distinct_version_newest_first() {
    let (env, ids) = doc_history();
    let mtime = "2023-11-14T22:13:20Z";
    let symlink_id = b3(b"other.txt");
    let v2 = file_content_id(b"version two\n");
    let v1 = file_content_id(b"v1\n");
    let got = env.json(["log", "proj/doc.md"]);
    assert_eq!(
        got,
        json!([
            {"snapshot": ids[7], "time": "2026-01-08T00:00:00Z", "type": "symlink", "size": 0,
             "content_id": symlink_id, "mtime": mtime},
            {"snapshot": ids[6], "time": "2026-01-07T00:00:00Z", "type": "file", "size": 12,
             "content_id": v2, "mtime": mtime},
            {"snapshot": ids[3], "time": "2026-01-04T00:00:00Z", "type": "file", "size": 12,
             "content_id": v2, "mtime": mtime},
            {"snapshot": ids[0], "time": "2026-01-01T00:00:00Z", "type": "file", "size": 3,
             "content_id": v1, "mtime": mtime},
        ])
    );
    let short = |i: usize| ids[i][..8].to_string();
    let line = |i: usize, time: &str, kind: &str, size: &str, content: &str| {
        format!(
            "{}  {time}  {kind:<7}  {size:>10}  {}  2023-11-14 22:13:20\n",
            short(i),
            &content[..16]
        )
    };
    let expected = format!(
        "snapshot  time                 type           size  content           mtime\n{}{}{}{}",
        line(
            7,
            "2026-01-08 00:00:00",
            "symlink",
            "0 B",
            &b3(b"other.txt")
        ),
        line(6, "2026-01-07 00:00:00", "file", "12 B", &v2),
        line(3, "2026-01-04 00:00:00", "file", "12 B", &v2),
        line(0, "2026-01-01 00:00:00", "file", "3 B", &v1),
    );
    assert_eq!(ok_text(&env, &["log", "proj/doc.md"]), expected);
}

#[test]
fn log_of_folders_and_missing_paths() {
    let (env, ids) = doc_history();
    // A folder's version is its tree: anything below changes it. Snapshots 3
    // and 4 have the same tree, so 4 is not a new version.
    let got = env.json(["log", "proj"]);
    let snapshots: Vec<&str> = common::string_column(&got, "snapshot");
    let expect: Vec<&str> = [7, 6, 5, 3, 2, 1, 0]
        .iter()
        .map(|&i| ids[i].as_str())
        .collect();
    assert_eq!(snapshots, expect);
    assert!(got.as_array().unwrap().iter().all(|v| v["type"] == "dir"));

    let out = env.run(["log", "proj/never.md"]);
    assert_code(&out, 10);
    assert!(stderr_text(&out).contains("proj/never.md"));
    let out = env.run(["--json", "log", "proj/never.md"]);
    assert_code(&out, 10);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!([])
    );
    // Below something that is not a folder.
    assert_code(&env.run(["log", "proj/other.txt/x"]), 10);
    assert_code(&env.run(["log", ""]), 2);
}

#[test]
fn find_lists_snapshots_with_matching_paths() {
    let env = Env::new();
    let root = env.path("src/proj");
    write(&root.join("a.md"), "a\n");
    // Hard links: `x` and `y` get byte-identical trees (same inode, times).
    write(&root.join("x/notes.txt"), "same folder content\n");
    fs::create_dir(root.join("y")).unwrap();
    fs::hard_link(root.join("x/notes.txt"), root.join("y/notes.txt")).unwrap();
    fix_times(&root);
    let s1 = backup_at(&env, &[&root], "2026-01-01T00:00:00Z");
    write(&root.join("sub/deeper/b.md"), "b\n");
    fix_times(&root);
    let s2 = backup_at(&env, &[&root], "2026-01-02T00:00:00Z");
    fs::remove_file(root.join("a.md")).unwrap();
    fix_times(&root);
    let s3 = backup_at(&env, &[&root], "2026-01-03T00:00:00Z");
    fs::remove_dir_all(root.join("sub")).unwrap();
    fix_times(&root);
    let _s4 = backup_at(&env, &[&root], "2026-01-04T00:00:00Z");

    // Matched against the file name, across every snapshot.
    assert_eq!(
        env.json(["find", "*.md"]),
        json!([
            {"snapshot": s1, "time": "2026-01-01T00:00:00Z", "paths": ["proj/a.md"]},
            {"snapshot": s2, "time": "2026-01-02T00:00:00Z",
             "paths": ["proj/a.md", "proj/sub/deeper/b.md"]},
            {"snapshot": s3, "time": "2026-01-03T00:00:00Z", "paths": ["proj/sub/deeper/b.md"]},
        ])
    );
    assert_eq!(
        ok_text(&env, &["find", "b.md"]),
        format!(
            "{}  2026-01-02 00:00:00\n  proj/sub/deeper/b.md\n{}  2026-01-03 00:00:00\n  proj/sub/deeper/b.md\n",
            &s2[..8],
            &s3[..8]
        )
    );
    // Matched against the whole path: `x` and `y` have the same tree, but
    // only the paths under `x` match.
    let got = env.json(["find", "proj/x/**"]);
    let rows = got.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|r| r["paths"] == json!(["proj/x/notes.txt"])),
        "{got}"
    );
    // Folders match too.
    let got = env.json(["find", "deeper"]);
    assert_eq!(got[0]["paths"], json!(["proj/sub/deeper"]));

    let out = env.run(["find", "*.pdf"]);
    assert_code(&out, 10);
    assert!(stderr_text(&out).contains("*.pdf"));
    assert_code(&env.run(["find", "a[.md"]), 2);
}
