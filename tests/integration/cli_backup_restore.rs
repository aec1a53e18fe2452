//! Backup and restore through the real `snap` binary, on trees generated in
//! temporary folders: round trips of every kind of entry, change detection,
//! snapshot selectors, `ls`/`cat`, partial restores, overwrite policies,
//! exit codes and messages of the documented failure cases (docs: CLI.md).

use crate::common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Env, SPARSE_LEN, assert_code, assert_same_tree, build_tree, dir_names, stderr_text};
use filetime::FileTime;
use serde_json::Value;

/// A small tree for tests that do not need every kind of entry.
fn small_tree(env: &Env) -> PathBuf {
    let root = env.path("src/proj");
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir_all(root.join("other")).unwrap();
    fs::write(root.join("dir/file.md"), "version 1\n").unwrap();
    fs::write(root.join("dir/sub/inner.txt"), "inner\n").unwrap();
    fs::write(root.join("dir/debug.log"), "log\n").unwrap();
    fs::write(root.join("other/a.txt"), "a\n").unwrap();
    fs::write(root.join("top.log"), "top log\n").unwrap();
    common::set_mtimes(&root);
    root
}

fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("`{field}` is not a string in {value}"))
}

fn u64_field(value: &Value, field: &str) -> u64 {
    value[field]
        .as_u64()
        .unwrap_or_else(|| panic!("`{field}` is not an unsigned number in {value}"))
}

fn set_mtime(path: &Path, secs: i64, nanos: u32) {
    let t = FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

#[test]
fn round_trip_restores_every_kind_of_entry() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    let report = env.backup(&[&tree.root], &[]);
    assert_eq!(
        report["warnings"],
        Value::Array(vec![]),
        "backup warned: {report}"
    );
    assert_eq!(u64_field(&report, "files"), tree.files);
    assert_eq!(u64_field(&report, "files_new"), tree.files);

    let target = env.path("restored");
    env.restore("latest", &target);
    assert_eq!(dir_names(&target), vec![OsString::from("data")]);
    assert_same_tree(&tree.root, &target.join("data"));

    // Holes stay holes: only the chunks around the written bytes take space.
    let restored = fs::metadata(target.join("data/sparse.img")).unwrap();
    let allocated = restored.blocks() * 512;
    assert_eq!(restored.len(), SPARSE_LEN);
    assert!(
        allocated <= SPARSE_LEN / 4,
        "the sparse file takes {allocated} bytes on disk after restore (length {SPARSE_LEN}, source takes {})",
        fs::metadata(tree.root.join("sparse.img")).unwrap().blocks() * 512
    );

    // The comparison itself must see each kind of difference.
    let copy = target.join("data");
    fs::set_permissions(copy.join("script.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    set_mtime(&copy.join("dir/sub"), 1_000, 1);
    fs::write(copy.join("medium.bin"), b"changed").unwrap();
    fs::remove_file(copy.join("link_rel")).unwrap();
    std::os::unix::fs::symlink("elsewhere", copy.join("link_rel")).unwrap();
    fs::remove_file(copy.join("dir/hard_b")).unwrap();
    fs::write(copy.join("dir/hard_b"), b"shared by two names\n").unwrap();
    fs::write(copy.join("extra"), b"").unwrap();
    fs::remove_dir(copy.join("empty_dir")).unwrap();
    let mut expected_diffs = Vec::new();
    if tree.has_xattr {
        xattr::remove(copy.join("small.txt"), "user.snap").unwrap();
        expected_diffs.push("small.txt: user xattrs");
    }
    if common::is_root() {
        std::os::unix::fs::chown(copy.join("owned"), Some(0), Some(0)).unwrap();
        expected_diffs.push("owned: owner");
    }
    let diffs = common::compare_trees(&tree.root, &copy).join("\n");
    for expected in expected_diffs.into_iter().chain([
        "script.sh: mode",
        "dir/sub: mtime",
        "medium.bin: content differs",
        "link_rel: symlink target",
        "hard_a: hard links",
        "dir/hard_b: hard links",
        "extra: not in the source",
        "empty_dir: missing",
    ]) {
        assert!(
            diffs.contains(expected),
            "compare_trees missed `{expected}`:\n{diffs}"
        );
    }
}

#[test]
fn second_backup_without_changes_reads_and_adds_nothing() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    let first = env.backup(&[&tree.root], &[]);
    let second = env.backup(&[&tree.root], &[]);
    assert_eq!(
        second["parent"], first["id"],
        "the parent is the previous snapshot of the same paths"
    );
    assert_eq!(u64_field(&second, "files"), tree.files, "{second}");
    assert_eq!(
        u64_field(&second, "files_unchanged"),
        tree.files,
        "{second}"
    );
    assert_eq!(u64_field(&second, "files_new"), 0, "{second}");
    assert_eq!(u64_field(&second, "files_changed"), 0, "{second}");
    assert_eq!(u64_field(&second, "bytes_read"), 0, "{second}");
    assert_eq!(u64_field(&second, "bytes_added"), 0, "{second}");
    assert_eq!(u64_field(&second, "bytes_added_packed"), 0, "{second}");
    assert_eq!(u64_field(&second, "bytes"), u64_field(&first, "bytes"));
}

#[test]
fn changed_file_is_detected_and_both_versions_restore() {
    let env = Env::new();
    let root = small_tree(&env);
    let first = env.backup(&[&root], &[]);
    let files = u64_field(&first, "files");
    let old = fs::read(root.join("dir/file.md")).unwrap();
    fs::write(
        root.join("dir/file.md"),
        "version 2, longer than the first\n",
    )
    .unwrap();
    set_mtime(&root.join("dir/file.md"), 1_700_000_000, 42);

    let second = env.backup(&[&root], &[]);
    assert_eq!(u64_field(&second, "files_changed"), 1, "{second}");
    assert_eq!(u64_field(&second, "files_unchanged"), files - 1, "{second}");
    assert_eq!(u64_field(&second, "files_new"), 0, "{second}");

    let new_copy = env.path("new");
    env.restore("latest", &new_copy);
    assert_same_tree(&root, &new_copy.join("proj"));
    let old_copy = env.path("old");
    env.restore("latest~1", &old_copy);
    assert_eq!(fs::read(old_copy.join("proj/dir/file.md")).unwrap(), old);
}

#[test]
fn snapshots_json_has_every_field_oldest_first() {
    let env = Env::new();
    let root = small_tree(&env);
    // Taken out of time order: the listing sorts by snapshot time.
    let march = env.backup(
        &[&root],
        &[
            "--time",
            "2024-03-01T12:00:00Z",
            "--tag",
            "monthly",
            "--host",
            "alpha",
        ],
    );
    let january = env.backup(
        &[&root],
        &[
            "--time",
            "2024-01-02T03:04:05Z",
            "--tag",
            "a",
            "--tag",
            "b",
            "--host",
            "alpha",
        ],
    );
    let list = env.snapshots();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], january["id"], "oldest first: {list:?}");
    assert_eq!(list[1]["id"], march["id"], "oldest first: {list:?}");

    let source = fs::canonicalize(&root).unwrap().display().to_string();
    for row in &list {
        for field in [
            "id",
            "short_id",
            "time",
            "host",
            "paths",
            "tags",
            "parent",
            "files",
            "bytes",
            "bytes_added",
        ] {
            assert!(row.get(field).is_some(), "`{field}` missing in {row}");
        }
        let id = str_field(row, "id");
        assert_eq!(id.len(), 64, "{row}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{row}");
        assert!(id.starts_with(str_field(row, "short_id")), "{row}");
        assert_eq!(str_field(row, "short_id").len(), 8, "{row}");
        assert_eq!(row["host"], "alpha");
        assert_eq!(row["paths"], serde_json::json!([source]));
        assert_eq!(u64_field(row, "files"), 5);
        assert_eq!(u64_field(row, "bytes"), 30);
    }
    assert_eq!(list[0]["time"], "2024-01-02T03:04:05Z");
    assert_eq!(list[0]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(list[1]["tags"], serde_json::json!(["monthly"]));
    assert_eq!(list[1]["parent"], Value::Null);
    assert_eq!(
        list[0]["parent"], march["id"],
        "the January backup reused the latest snapshot as parent"
    );
    assert!(u64_field(&list[1], "bytes_added") > 0);
    assert_eq!(u64_field(&list[0], "bytes_added"), 0);
}

#[test]
fn snapshots_are_ordered_by_time_not_by_the_text_of_the_time() {
    let env = Env::new();
    let root = small_tree(&env);
    let later = env.backup(&[&root], &["--time", "2024-01-01T00:00:00.5Z"]);
    let earlier = env.backup(&[&root], &["--time", "2024-01-01T00:00:00Z"]);
    let list = env.snapshots();
    let ids: Vec<&Value> = list.iter().map(|s| &s["id"]).collect();
    assert_eq!(ids, vec![&earlier["id"], &later["id"]], "oldest first");
    let latest = env.json(["stats", "latest"]);
    assert_eq!(
        latest["id"], later["id"],
        "`latest` is the snapshot with the latest time"
    );
}

/// Three snapshots of `proj/dir/file.md` with contents v1, v2, v3.
fn three_versions(env: &Env) -> (PathBuf, Vec<Value>) {
    let root = small_tree(env);
    let file = root.join("dir/file.md");
    let mut reports = Vec::new();
    for (i, time) in [
        Some("2024-01-02T03:04:05Z"),
        Some("2024-03-01T12:00:00Z"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        fs::write(&file, format!("v{}\n", i + 1)).unwrap();
        set_mtime(&file, 1_700_000_000 + i64::try_from(i).unwrap(), 0);
        let extra: Vec<&str> = time.map(|t| vec!["--time", t]).unwrap_or_default();
        reports.push(env.backup(&[&root], &extra));
    }
    (root, reports)
}

#[test]
fn selectors_pick_the_right_snapshot() {
    let env = Env::new();
    let (_, reports) = three_versions(&env);
    let id = |i: usize| str_field(&reports[i], "id").to_string();
    let cat = |selector: &str| -> String {
        let out = env.ok(["cat", &format!("{selector}:proj/dir/file.md")]);
        String::from_utf8(out).unwrap()
    };
    assert_eq!(cat("latest"), "v3\n");
    assert_eq!(cat("latest~1"), "v2\n");
    assert_eq!(cat("latest~2"), "v1\n");
    assert_eq!(cat(&id(0)[..8]), "v1\n");
    assert_eq!(cat(&id(1)), "v2\n");
    assert_eq!(cat(&id(1)[..8].to_ascii_uppercase()), "v2\n");
    // @TIME: the latest snapshot at or before TIME; a time's colons belong to it.
    assert_eq!(cat("@2024-01-02T03:04:05Z"), "v1\n");
    assert_eq!(cat("@2024-03-01T12:00:00Z"), "v2\n");
    assert_eq!(cat("@2024-03-01T11:59:59Z"), "v1\n");
    assert_eq!(cat("@2024-03-01T13:00:00+01:00"), "v2\n");
    // A date alone means the end of that day (local time; TZ=UTC here).
    assert_eq!(cat("@2024-01-02"), "v1\n");
    assert_eq!(cat("@2024-02-29"), "v1\n");
    assert_eq!(cat("@2024-03-01"), "v2\n");
    assert_eq!(cat("@2099-12-31"), "v3\n");
    // A date and time without offset is local time.
    assert_eq!(cat("@2024-03-01T12:00:00"), "v2\n");
    assert_eq!(cat("@2024-03-01T11:59:59"), "v1\n");
    for (selector, index) in [("latest", 2), ("latest~2", 0), ("@2024-03-01", 1)] {
        assert_eq!(
            env.json(["stats", selector])["id"],
            reports[index]["id"],
            "selector {selector}"
        );
    }
}

#[test]
fn selectors_that_match_nothing_or_are_malformed_have_distinct_exit_codes() {
    let env = Env::new();
    let (_, reports) = three_versions(&env);
    let ids: Vec<&str> = reports.iter().map(|r| str_field(r, "id")).collect();
    let unknown = (0u32..)
        .map(|n| format!("{n:08x}"))
        .find(|p| ids.iter().all(|id| !id.starts_with(p.as_str())))
        .unwrap();
    for selector in [
        unknown.as_str(),
        "latest~99",
        "latest~3",
        "@2024-01-02T03:04:04Z",
        "@2024-01-01",
        "@2024-01-02T03:04:05+01:00",
    ] {
        for args in [vec!["ls", selector], vec!["stats", selector]] {
            let out = env.run(&args);
            assert_code(&out, 10);
        }
        assert_code(
            &env.run(["cat", &format!("{selector}:proj/dir/file.md")]),
            10,
        );
        let target = env.path("never-created");
        let out = restore_output(&env, &[selector], &target);
        assert_code(&out, 10);
        assert!(!target.exists(), "a failed selector created the target");
    }
    for selector in [
        "latest~x",
        "latest~-1",
        "abc",
        "zzzz",
        "@not-a-time",
        "latest~1~2",
        "",
    ] {
        assert_code(&env.run(["ls", selector]), 2);
        assert_code(&env.run(["stats", selector]), 2);
    }
}

#[test]
fn ls_lists_children_and_json_has_the_documented_fields() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);

    let out = String::from_utf8(env.ok(["ls", "latest:data/dir/sub"])).unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["data/dir/sub/deeper", "data/dir/sub/trace.log"]
    );
    let out = String::from_utf8(env.ok(["ls", "latest"])).unwrap();
    assert_eq!(out.lines().collect::<Vec<_>>(), vec!["data"]);
    let out = String::from_utf8(env.ok(["ls", "--recursive", "latest:data/dir/sub"])).unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "data/dir/sub/deeper",
            "data/dir/sub/deeper/note.txt",
            "data/dir/sub/trace.log"
        ]
    );

    let rows = env.json(["ls", "latest:data"]);
    let rows = rows.as_array().expect("an array");
    let names: Vec<&str> = rows.iter().map(|r| str_field(r, "name")).collect();
    let expected_count = common::dir_names(&tree.root).len();
    assert_eq!(rows.len(), expected_count, "{names:?}");
    for row in rows {
        for field in ["path", "name", "type", "size", "mode", "mtime"] {
            assert!(row.get(field).is_some(), "`{field}` missing in {row}");
        }
        assert_eq!(
            str_field(row, "path"),
            format!("data/{}", str_field(row, "name"))
        );
    }
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {names:?}"))
    };
    for (name, kind) in [
        ("dir", "dir"),
        ("small.txt", "file"),
        ("link_rel", "symlink"),
        ("empty_dir", "dir"),
    ] {
        assert_eq!(row(name)["type"], kind, "{name}");
    }
    let script = row("script.sh");
    let meta = fs::symlink_metadata(tree.root.join("script.sh")).unwrap();
    assert_eq!(u64_field(script, "size"), meta.len());
    assert_eq!(u64_field(script, "mode"), u64::from(meta.mode() & 0o7777));
    assert_eq!(u64_field(script, "mode"), 0o755);
    let mtime: jiff::Timestamp = str_field(script, "mtime")
        .parse()
        .expect("mtime is RFC 3339");
    assert_eq!(
        mtime.as_nanosecond(),
        i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        "mtime keeps nanoseconds"
    );
    assert_eq!(u64_field(row("private.txt"), "mode"), 0o600);
    let fifo = env.json(["ls", "latest:data/dir"]);
    let pipe = fifo
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pipe")
        .unwrap();
    assert_eq!(pipe["type"], "fifo");

    assert_code(&env.run(["ls", "latest:data/no-such-entry"]), 10);
    assert_code(&env.run(["ls", "latest:data/small.txt/below-a-file"]), 10);
}

#[test]
fn cat_writes_the_exact_bytes() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    for file in [
        "big.bin",
        "medium.bin",
        "empty.txt",
        "dir/sub/deeper/note.txt",
    ] {
        let out = env.ok(["cat", &format!("latest:data/{file}")]);
        assert!(
            out == fs::read(tree.root.join(file)).unwrap(),
            "`cat` of {file} differs"
        );
    }
    let long = env.ok(["cat", &format!("latest:data/{}", common::long_name())]);
    assert_eq!(long, b"long name\n");
    assert_code(&env.run(["cat", "latest:data/missing"]), 10);
    assert_code(&env.run(["cat", "latest"]), 2);
    let out = env.run(["cat", "latest:data/dir"]);
    assert_ne!(common::exit_code(&out), 0, "`cat` of a folder must fail");
    assert!(out.stdout.is_empty());
}

#[test]
fn single_file_restore_places_only_that_file() {
    let env = Env::new();
    let (root, _) = three_versions(&env);
    let target = env.path("one-file");
    env.restore("latest~1:proj/dir/file.md", &target);
    assert_eq!(dir_names(&target), vec![OsString::from("file.md")]);
    assert_eq!(fs::read_to_string(target.join("file.md")).unwrap(), "v2\n");
    let meta = fs::metadata(target.join("file.md")).unwrap();
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_700_000_001, 0));
    assert_eq!(
        meta.mode() & 0o7777,
        fs::metadata(root.join("dir/file.md")).unwrap().mode() & 0o7777
    );
}

#[test]
fn directory_restore_places_the_folder_under_the_target() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    let target = env.path("dir-only");
    env.restore("latest:data/dir", &target);
    assert_eq!(dir_names(&target), vec![OsString::from("dir")]);
    // `dir/hard_b` is linked to `hard_a`, outside what was restored: only its content counts.
    let diffs: Vec<String> = common::compare_trees(&tree.root.join("dir"), &target.join("dir"))
        .into_iter()
        .filter(|d| !d.starts_with("hard_b: hard links"))
        .collect();
    assert!(diffs.is_empty(), "differences:\n  {}", diffs.join("\n  "));
}

#[test]
fn restore_refuses_to_overwrite_existing_files_by_default() {
    let env = Env::new();
    let root = small_tree(&env);
    env.backup(&[&root], &[]);

    // A single file onto an existing one.
    let target = env.path("t1");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("file.md"), "local edits\n").unwrap();
    set_mtime(&target.join("file.md"), 1_500_000_000, 7);
    let out = restore_output(&env, &["latest:proj/dir/file.md"], &target);
    assert_code(&out, 1);
    assert!(
        stderr_text(&out).contains("file.md"),
        "the error names the file: {}",
        stderr_text(&out)
    );
    assert_eq!(
        fs::read_to_string(target.join("file.md")).unwrap(),
        "local edits\n"
    );
    let meta = fs::metadata(target.join("file.md")).unwrap();
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_500_000_000, 7));
    assert_eq!(dir_names(&target), vec![OsString::from("file.md")]);

    // A whole snapshot onto a tree holding one of its files: nothing at all is written.
    let target = env.path("t2");
    fs::create_dir_all(target.join("proj/dir")).unwrap();
    fs::write(target.join("proj/dir/file.md"), "local edits\n").unwrap();
    let before = common::list_tree(&target);
    let out = restore_output(&env, &["latest"], &target);
    assert_code(&out, 1);
    assert_eq!(
        common::list_tree(&target),
        before,
        "a refused restore wrote something"
    );
    assert_eq!(
        fs::read_to_string(target.join("proj/dir/file.md")).unwrap(),
        "local edits\n"
    );
}

#[test]
fn overwrite_always_replaces_and_never_keeps() {
    let env = Env::new();
    let root = small_tree(&env);
    env.backup(&[&root], &[]);
    let prepare = |name: &str| {
        let target = env.path(name);
        fs::create_dir_all(target.join("proj/dir")).unwrap();
        fs::write(target.join("proj/dir/file.md"), "local edits\n").unwrap();
        target
    };

    let target = prepare("always");
    let out = restore_output(&env, &["latest", "--yes", "--overwrite", "always"], &target);
    assert_code(&out, 0);
    assert_same_tree(&root, &target.join("proj"));

    let target = prepare("never");
    let out = restore_output(&env, &["latest", "--overwrite", "never"], &target);
    assert_code(&out, 0);
    assert_eq!(
        fs::read_to_string(target.join("proj/dir/file.md")).unwrap(),
        "local edits\n"
    );
    assert_eq!(
        fs::read_to_string(target.join("proj/dir/sub/inner.txt")).unwrap(),
        "inner\n",
        "the rest is restored"
    );
    assert_eq!(
        fs::read_to_string(target.join("proj/other/a.txt")).unwrap(),
        "a\n"
    );
}

#[test]
fn overwrite_always_restores_hard_links_over_an_earlier_restore() {
    let env = Env::new();
    let root = env.path("src/links");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join("one"), "shared\n").unwrap();
    fs::hard_link(root.join("one"), root.join("two")).unwrap();
    common::set_mtimes(&root);
    env.backup(&[&root], &[]);
    let target = env.path("target");
    env.restore("latest", &target);
    let out = restore_output(&env, &["latest", "--yes", "--overwrite", "always"], &target);
    assert_code(&out, 0);
    assert_same_tree(&root, &target.join("links"));
}

#[test]
fn restore_include_selects_files_and_whole_folders() {
    let env = Env::new();
    let root = small_tree(&env);
    env.backup(&[&root], &[]);
    for (include, expected) in [
        ("proj/dir/sub/inner.txt", vec!["proj/dir/sub/inner.txt"]),
        ("*.md", vec!["proj/dir/file.md"]),
        ("proj/dir/sub", vec!["proj/dir/sub/inner.txt"]),
        ("proj/other", vec!["proj/other/a.txt"]),
    ] {
        let target = env.path(&format!("t-{}", include.replace(['/', '*'], "_")));
        let out = restore_output(&env, &["latest", "--include", include], &target);
        assert_code(&out, 0);
        let files: Vec<String> = common::list_tree(&target)
            .into_iter()
            .filter(|p| target.join(p).is_file())
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(files, expected, "--include {include}");
        for file in expected {
            assert_eq!(
                fs::read(target.join(file)).unwrap(),
                fs::read(root.join(&file[5..])).unwrap()
            );
        }
    }
}

#[test]
fn restore_include_leaves_entries_outside_the_included_paths_alone() {
    let env = Env::new();
    let root = small_tree(&env);
    env.backup(&[&root], &[]);
    for policy in [None, Some("never"), Some("if-changed"), Some("always")] {
        let target = env.path(&format!("t-{}", policy.unwrap_or("default")));
        fs::create_dir_all(target.join("proj")).unwrap();
        // Where the snapshot has a folder and a file that are not included.
        fs::write(target.join("proj/other"), "mine\n").unwrap();
        fs::write(target.join("proj/top.log"), "mine\n").unwrap();
        let mut cmd = env.cmd();
        cmd.args(["restore", "latest", "--include", "proj/dir/**", "--target"])
            .arg(&target);
        if let Some(policy) = policy {
            cmd.args(["--overwrite", policy]);
        }
        let out = cmd.output().unwrap();
        // Nothing included is in the way, so even the default policy has no conflict.
        assert_code(&out, 0);
        for mine in ["proj/other", "proj/top.log"] {
            assert_eq!(
                fs::read_to_string(target.join(mine)).ok().as_deref(),
                Some("mine\n"),
                "--overwrite {policy:?} --include proj/dir/** replaced {mine}, which is not included"
            );
        }
        assert_eq!(
            fs::read_to_string(target.join("proj/dir/file.md")).unwrap(),
            "version 1\n"
        );
    }
}

#[test]
fn missing_backup_path_exits_10_and_names_it() {
    let env = Env::new();
    let missing = env.path("does/not/exist");
    let out = env.cmd().arg("backup").arg(&missing).output().unwrap();
    assert_code(&out, 10);
    assert!(
        stderr_text(&out).contains(&missing.display().to_string()),
        "stderr should name {}: {}",
        missing.display(),
        stderr_text(&out)
    );
    assert!(env.snapshots().is_empty());
}

#[test]
fn non_repository_folder_is_reported_and_left_alone() {
    let env = Env::uninitialized();
    fs::create_dir(&env.repo).unwrap();
    fs::write(env.repo.join("notes.txt"), "not a repository").unwrap();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for args in [
        vec![OsString::from("snapshots")],
        vec!["backup".into(), src.clone().into()],
        vec!["ls".into(), "latest".into()],
    ] {
        let out = env.run(&args);
        assert_code(&out, 1);
        assert!(
            stderr_text(&out).contains("not a snap repository"),
            "{args:?}: {}",
            stderr_text(&out)
        );
    }
    assert_eq!(
        dir_names(&env.repo),
        vec![OsString::from("notes.txt")],
        "snap wrote into a folder that is not its own"
    );
    // A missing folder given with -r is not created either.
    let gone = env.path("nothing-here");
    let out = snap_at(&gone).arg("snapshots").output().unwrap();
    assert_code(&out, 1);
    assert!(!gone.exists());
}

/// `snap restore ARGS... --target TARGET`, for the tests that check a
/// failing restore or what it left behind (`Env::restore` insists on success).
fn restore_output(env: &Env, args: &[&str], target: &Path) -> Output {
    env.cmd()
        .arg("restore")
        .args(args)
        .arg("--target")
        .arg(target)
        .output()
        .unwrap()
}

fn snap_at(repo: &Path) -> assert_cmd::Command {
    let mut cmd = common::snap_command();
    cmd.arg("-r").arg(repo);
    cmd
}

#[test]
fn newer_repository_format_asks_for_an_upgrade() {
    let env = Env::new();
    let root = small_tree(&env);
    env.backup(&[&root], &[]);
    let config = env.repo.join("config");
    let mut bytes = fs::read(&config).unwrap();
    // A new repository has the required feature metadata-twice on.
    assert_eq!(bytes[8], 2, "byte 8 of the config is its format version");
    // Config version 2 is the one with required features; 3 is unknown.
    bytes[8] = 3;
    fs::write(&config, &bytes).unwrap();
    for args in [vec!["snapshots"], vec!["ls", "latest"]] {
        let out = env.run(&args);
        assert_code(&out, 1);
        let err = stderr_text(&out);
        assert!(err.contains("upgrade"), "{args:?}: {err}");
        assert!(err.contains("version 3"), "{args:?}: {err}");
    }
}

/// Runs `snap` as the unprivileged user `nobody` (for root, which reads everything).
fn snap_as_nobody(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(common::snap_bin())
        .env_remove("SNAP_REPO")
        .env_remove("XDG_CACHE_HOME")
        .env("HOME", home);
    cmd
}

/// Makes a folder readable again when dropped.
struct Reopen(PathBuf);

impl Drop for Reopen {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn unreadable_file_is_skipped_with_a_warning_and_exit_3() {
    let env = Env::uninitialized();
    let src = env.path("src/data");
    fs::create_dir_all(src.join("closed_dir")).unwrap();
    fs::write(src.join("readable.txt"), "fine\n").unwrap();
    fs::write(src.join("secret.txt"), "nobody may read this\n").unwrap();
    fs::write(src.join("closed_dir/inside.txt"), "hidden\n").unwrap();
    fs::set_permissions(src.join("secret.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("closed_dir"), fs::Permissions::from_mode(0o000)).unwrap();
    // Without this a non-root run could not remove the temporary folder.
    let _reopen = Reopen(src.join("closed_dir"));

    // Root reads any file: run snap as `nobody` instead, when setpriv can.
    let nobody_home = if common::is_root() {
        let home = env.path("nobody");
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(env.path("src"), fs::Permissions::from_mode(0o755)).unwrap();
        let probe = snap_as_nobody(&home).arg("--version").output();
        if !probe.as_ref().is_ok_and(|o| o.status.success()) {
            println!("note: running as root and cannot run snap as nobody ({probe:?}); skipping");
            return;
        }
        Some(home)
    } else {
        None
    };
    let repo = nobody_home
        .as_ref()
        .map_or_else(|| env.repo.clone(), |home| home.join("repo"));
    let run = |args: &[&std::ffi::OsStr]| {
        let mut cmd = match &nobody_home {
            Some(home) => snap_as_nobody(home),
            None => {
                let mut cmd = std::process::Command::new(common::snap_bin());
                cmd.env_remove("SNAP_REPO")
                    .env("XDG_CACHE_HOME", common::cache_home());
                cmd
            }
        };
        cmd.arg("-r").arg(&repo).args(args).output().unwrap()
    };
    assert_code(&run(&["init".as_ref()]), 0);
    assert!(repo.join("config").is_file());

    let out = run(&["--json".as_ref(), "backup".as_ref(), src.as_os_str()]);
    assert_code(&out, 3);
    let err = stderr_text(&out);
    assert!(
        err.contains("warning") && err.contains("secret.txt"),
        "stderr: {err}"
    );
    assert!(err.contains("closed_dir"), "stderr: {err}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{report}");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("secret.txt")),
        "{report}"
    );

    let listing = run(&["ls".as_ref(), "--recursive".as_ref(), "latest".as_ref()]);
    assert_code(&listing, 0);
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert!(
        listing.lines().any(|l| l == "data/readable.txt"),
        "{listing}"
    );
    assert!(!listing.contains("secret.txt"), "{listing}");
    assert_eq!(u64_field(&report, "files"), 1, "{report}");
}

#[test]
fn two_sources_with_the_same_name_are_a_usage_error() {
    let env = Env::new();
    let a = env.path("a/data");
    let b = env.path("b/data");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let out = env.cmd().arg("backup").arg(&a).arg(&b).output().unwrap();
    assert_code(&out, 2);
    assert!(stderr_text(&out).contains("data"), "{}", stderr_text(&out));
    assert!(env.snapshots().is_empty());
}

#[test]
fn exclude_leaves_matching_files_out() {
    let env = Env::new();
    let root = small_tree(&env);
    let report = env.backup(&[&root], &["--exclude", "*.log"]);
    assert_eq!(u64_field(&report, "files"), 3, "{report}");
    let listing = String::from_utf8(env.ok(["ls", "--recursive", "latest"])).unwrap();
    assert!(!listing.contains(".log"), "{listing}");
    assert!(
        listing.lines().any(|l| l == "proj/dir/sub/inner.txt"),
        "{listing}"
    );
    let target = env.path("restored");
    env.restore("latest", &target);
    let restored: Vec<PathBuf> = common::list_tree(&target);
    assert!(
        restored
            .iter()
            .all(|p| p.extension().is_none_or(|e| e != "log")),
        "{restored:?}"
    );
    assert!(target.join("proj/other/a.txt").is_file());
}

/// `snap` with no `-r`, a fresh HOME and (optionally) XDG_DATA_HOME.
fn snap_default(home: &Path, data_home: Option<&Path>) -> assert_cmd::Command {
    let mut cmd = common::snap_command();
    cmd.env("HOME", home)
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    match data_home {
        Some(dir) => cmd.env("XDG_DATA_HOME", dir),
        None => cmd.env_remove("XDG_DATA_HOME"),
    };
    cmd
}

#[test]
fn default_repository_is_created_on_first_backup() {
    let env = Env::uninitialized();
    let root = small_tree(&env);
    for (home, data_home, expected) in [
        (
            env.path("home1"),
            Some(env.path("xdg-data")),
            env.path("xdg-data/snap/repo"),
        ),
        (
            env.path("home2"),
            None,
            env.path("home2/.local/share/snap/repo"),
        ),
    ] {
        fs::create_dir_all(&home).unwrap();
        let out = snap_default(&home, data_home.as_deref())
            .arg("backup")
            .arg(&root)
            .output()
            .unwrap();
        assert_code(&out, 0);
        let err = stderr_text(&out);
        assert!(
            err.contains("created") && err.contains(&expected.display().to_string()),
            "stderr: {err}"
        );
        assert!(
            expected.join("config").is_file(),
            "no repository at {}",
            expected.display()
        );

        let out = snap_default(&home, data_home.as_deref())
            .arg("backup")
            .arg(&root)
            .output()
            .unwrap();
        assert_code(&out, 0);
        assert!(
            !stderr_text(&out).contains("created"),
            "created twice: {}",
            stderr_text(&out)
        );

        let out = snap_default(&home, data_home.as_deref())
            .args(["--json", "snapshots"])
            .output()
            .unwrap();
        assert_code(&out, 0);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    }
}

#[test]
fn deep_folders_back_up_and_restore() {
    let env = Env::new();
    let root = env.path("src/deep");
    let mut leaf = root.clone();
    for _ in 0..1000 {
        leaf.push("d");
    }
    fs::create_dir_all(&leaf).unwrap();
    fs::write(leaf.join("leaf.txt"), "bottom\n").unwrap();
    let out = env.cmd().arg("backup").arg(&root).output().unwrap();
    assert_code(&out, 0);
    let target = env.path("t");
    env.restore("latest", &target);
    assert_eq!(
        fs::read_to_string(
            target
                .join(leaf.strip_prefix(env.path("src")).unwrap())
                .join("leaf.txt")
        )
        .unwrap(),
        "bottom\n"
    );
}

#[test]
fn snap_repo_variable_names_the_repository() {
    let env = Env::new();
    let root = small_tree(&env);
    let out = common::snap_command()
        .env("SNAP_REPO", &env.repo)
        .arg("backup")
        .arg(&root)
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(env.snapshots().len(), 1);
    // The variable is not the default location: a missing repository is not created.
    let missing = env.path("elsewhere");
    let out = common::snap_command()
        .env("SNAP_REPO", &missing)
        .arg("backup")
        .arg(&root)
        .output()
        .unwrap();
    assert_code(&out, 1);
    assert!(!missing.exists());
}

/// Asserts that snap succeeded without a word on stdout or stderr.
#[track_caller]
fn assert_silent_success(out: &Output) {
    assert_code(out, 0);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stderr.is_empty(), "{}", stderr_text(out));
}

#[test]
fn quiet_backup_and_restore_print_nothing() {
    let env = Env::new();
    let root = small_tree(&env);
    let out = env
        .cmd()
        .arg("-q")
        .arg("backup")
        .arg(&root)
        .output()
        .unwrap();
    assert_silent_success(&out);
    let out = env
        .cmd()
        .args(["-q", "restore", "latest", "--target"])
        .arg(env.path("t"))
        .output()
        .unwrap();
    assert_silent_success(&out);
}

#[test]
fn file_and_symlink_sources_round_trip() {
    let env = Env::new();
    let dir = env.path("src");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("single.txt"), "just a file\n").unwrap();
    std::os::unix::fs::symlink("single.txt", dir.join("alias")).unwrap();
    common::set_mtimes(&dir);
    let report = env.backup(&[&dir.join("single.txt"), &dir.join("alias")], &[]);
    assert_eq!(u64_field(&report, "files"), 1, "{report}");
    let listing = String::from_utf8(env.ok(["ls", "latest"])).unwrap();
    assert_eq!(
        listing.lines().collect::<Vec<_>>(),
        vec!["alias", "single.txt"]
    );
    // A source that is a symlink is kept as a symlink, not followed.
    let target = env.path("t");
    env.restore("latest", &target);
    assert_eq!(
        dir_names(&target),
        vec![OsString::from("alias"), OsString::from("single.txt")]
    );
    for name in ["alias", "single.txt"] {
        assert_same_tree(&dir.join(name), &target.join(name));
    }
}

#[test]
fn non_utf8_names_can_be_addressed_as_ls_prints_them() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let root = env.path("src/data");
    fs::create_dir_all(&root).unwrap();
    fs::write(root.join(common::non_utf8_name()), "latin-1 name\n").unwrap();
    env.backup(&[&root], &[]);
    let listed = env.ok(["ls", "latest:data"]);
    let printed = listed.strip_suffix(b"\n").expect("one line");
    // CLI.md: SNAP:PATH names a path exactly as `snap ls` prints it.
    let mut arg = b"latest:".to_vec();
    arg.extend_from_slice(printed);
    let out = env
        .cmd()
        .arg("cat")
        .arg(OsStr::from_bytes(&arg))
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(out.stdout, b"latin-1 name\n");
    // And as the raw bytes of the name.
    let mut raw = b"latest:data/".to_vec();
    raw.extend_from_slice(common::non_utf8_name().as_bytes());
    let out = env
        .cmd()
        .arg("cat")
        .arg(OsStr::from_bytes(&raw))
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(out.stdout, b"latin-1 name\n");
}
