//! Restores people trust, through the real `snap` binary: `--dry-run` plans
//! that write nothing, the `pre-restore` safety snapshot and the
//! confirmation before replacing data, `--delete` (never outside the
//! target, never excluded entries), `--only`/`--skip` by source, and
//! atomic replacement (a damaged file leaves the old one in place).
//! The terminal prompt is driven through a real pseudo-terminal (`script`).

use crate::common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::{Env, assert_code, stderr_text};
use serde_json::Value;

/// Everything observable about a tree: per path, its kind, content or link
/// target, mode and mtime (ns). Symlinks are never followed.
fn fingerprint(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                "dir".to_string()
            } else {
                format!("file {:?}", fs::read(&path).unwrap())
            };
            let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                format!("{what} mode {:o} mtime {mtime}", meta.mode()),
            );
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// Two sources, `lyra` and `pps`, backed up into one snapshot; returns the
/// snapshot id.
fn backup_sources(env: &Env) -> String {
    let lyra = env.path("src/lyra");
    write(&lyra.join("a.md"), "a v1\n");
    write(&lyra.join("notes/b.md"), "b v1\n");
    write(&lyra.join("notes/c.md"), "c v1\n");
    write(&lyra.join("app.log"), "log v1\n");
    let pps = env.path("src/pps");
    write(&pps.join("db/data.bin"), "pps data\n");
    common::set_mtimes(&env.path("src"));
    env.backup(&[&lyra, &pps], &[])["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Restores `snap` into `target` with `extra` flags; stdin is not a terminal.
fn restore(env: &Env, snap: &str, target: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<OsString> = vec!["restore".into(), snap.into(), "--target".into()];
    args.push(target.into());
    args.extend(extra.iter().map(OsString::from));
    env.cmd()
        .args(args)
        .write_stdin("")
        .output()
        .expect("run snap")
}

fn restore_json(env: &Env, snap: &str, target: &Path, extra: &[&str]) -> Value {
    let mut args: Vec<OsString> = vec!["--json".into(), "restore".into(), snap.into()];
    args.push("--target".into());
    args.push(target.into());
    args.extend(extra.iter().map(OsString::from));
    let out = env.cmd().args(args).write_stdin("").output().unwrap();
    assert_code(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A restored target the user then changed: `lyra/a.md` edited, `lyra/notes/c.md`
/// removed, an extra file, an extra folder, `pps` untouched.
fn changed_target(env: &Env, name: &str) -> PathBuf {
    let target = env.path(name);
    assert_code(&restore(env, "latest", &target, &[]), 0);
    write(&target.join("lyra/a.md"), "a edited locally, longer\n");
    fs::remove_file(target.join("lyra/notes/c.md")).unwrap();
    write(&target.join("lyra/extra.txt"), "extra\n");
    write(&target.join("lyra/old/x.txt"), "old x\n");
    target
}

fn snapshot_count(env: &Env) -> usize {
    env.snapshots().len()
}

fn plan_actions(plan: &Value) -> BTreeMap<String, String> {
    plan["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let env = Env::new();
    backup_sources(&env);
    let target = changed_target(&env, "target");
    let before = fingerprint(&target);
    let snapshots = snapshot_count(&env);

    let plan = restore_json(
        &env,
        "latest",
        &target,
        &["--dry-run", "--overwrite", "if-changed", "--delete"],
    );
    let expected: BTreeMap<String, String> = [
        ("lyra/a.md", "overwrite"),
        ("lyra/app.log", "unchanged"),
        ("lyra/notes/b.md", "unchanged"),
        ("lyra/notes/c.md", "create"),
        ("lyra/extra.txt", "delete"),
        ("lyra/old", "delete"),
        ("lyra/old/x.txt", "delete"),
        ("pps/db/data.bin", "unchanged"),
    ]
    .into_iter()
    .map(|(p, a)| (p.to_string(), a.to_string()))
    .collect();
    assert_eq!(plan_actions(&plan), expected, "{plan:#}");
    assert_eq!(
        (
            &plan["create"],
            &plan["overwrite"],
            &plan["delete"],
            &plan["unchanged"],
            &plan["keep"]
        ),
        (&1.into(), &1.into(), &3.into(), &3.into(), &0.into()),
        "{plan:#}"
    );
    // a.md (5 B) and c.md (5 B) are written; app.log, b.md, data.bin are not.
    assert_eq!(plan["bytes"], 10, "{plan:#}");
    assert_eq!(plan["bytes_unchanged"], 7 + 5 + 9, "{plan:#}");
    assert_eq!(plan["bytes_deleted"], 6 + 6, "{plan:#}");
    assert_eq!(plan["in_place"], true);

    // The text form names each entry and the totals.
    let out = restore(
        &env,
        "latest",
        &target,
        &["--dry-run", "--overwrite", "if-changed", "--delete"],
    );
    assert_code(&out, 0);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "overwrite lyra/a.md (5 B)",
        "create    lyra/notes/c.md (5 B)",
        "delete    lyra/old/",
        "unchanged pps/db/data.bin (9 B)",
        "would create 1, overwrite 1, delete 3",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }

    // Without --delete nothing is planned for removal; with --overwrite always
    // the unchanged files are rewritten.
    let plan = restore_json(
        &env,
        "latest",
        &target,
        &["--dry-run", "--overwrite", "always"],
    );
    assert_eq!(plan["delete"], 0);
    assert_eq!(plan["unchanged"], 0);
    assert_eq!(plan["overwrite"], 4, "{plan:#}");

    // Nothing was written: not the target, not the repository.
    assert_eq!(fingerprint(&target), before);
    assert_eq!(snapshot_count(&env), snapshots);

    // Into a new folder: everything is created, and the folder is not made.
    let fresh = env.path("fresh");
    let plan = restore_json(&env, "latest", &fresh, &["--dry-run"]);
    assert_eq!(plan["in_place"], false);
    assert_eq!(plan["overwrite"], 0);
    assert_eq!(plan["bytes"], 5 + 5 + 5 + 7 + 9, "{plan:#}");
    assert!(!fresh.exists(), "--dry-run created the target");
}

#[test]
fn dry_run_with_the_default_policy_refuses_as_the_restore_would() {
    let env = Env::new();
    backup_sources(&env);
    let target = changed_target(&env, "target");
    let before = fingerprint(&target);
    let out = restore(&env, "latest", &target, &["--dry-run"]);
    assert_code(&out, 1);
    assert!(
        stderr_text(&out).contains("already exists"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(fingerprint(&target), before);
}

#[test]
fn in_place_restore_without_a_terminal_needs_yes_and_changes_nothing() {
    let env = Env::new();
    backup_sources(&env);
    let target = changed_target(&env, "target");
    let before = fingerprint(&target);
    let snapshots = snapshot_count(&env);
    for flags in [
        &["--overwrite", "always"][..],
        &["--overwrite", "if-changed"],
        &["--overwrite", "never", "--delete"],
        &["--overwrite", "always", "--no-safety-snapshot"],
    ] {
        let out = restore(&env, "latest", &target, flags);
        assert_code(&out, 2);
        let err = stderr_text(&out);
        assert!(
            err.contains("--yes") && err.contains("nothing was changed"),
            "{flags:?}: {err}"
        );
        assert_eq!(fingerprint(&target), before, "{flags:?}");
        assert_eq!(snapshot_count(&env), snapshots, "{flags:?}");
    }
    // `never` without --delete replaces nothing, so it needs no confirmation.
    let out = restore(&env, "latest", &target, &["--overwrite", "never"]);
    assert_code(&out, 0);
    assert_eq!(
        read(&target.join("lyra/notes/c.md")).as_deref(),
        Some("c v1\n")
    );
    assert_eq!(
        read(&target.join("lyra/a.md")).as_deref(),
        Some("a edited locally, longer\n")
    );
    assert_eq!(snapshot_count(&env), snapshots);
}

#[test]
fn restore_into_an_empty_or_new_folder_needs_no_confirmation() {
    let env = Env::new();
    backup_sources(&env);
    let empty = env.path("empty");
    fs::create_dir(&empty).unwrap();
    for target in [empty, env.path("new/deeper")] {
        let report = restore_json(&env, "latest", &target, &[]);
        assert_eq!(report["safety_snapshot"], Value::Null);
        assert_eq!(read(&target.join("lyra/a.md")).as_deref(), Some("a v1\n"));
    }
    assert_eq!(snapshot_count(&env), 1, "no safety snapshot was taken");
}

#[test]
fn yes_takes_a_safety_snapshot_that_brings_back_what_was_replaced() {
    let env = Env::new();
    let original = backup_sources(&env);
    let target = changed_target(&env, "target");
    let before = fingerprint(&target);

    let report = restore_json(
        &env,
        "latest",
        &target,
        &["--overwrite", "if-changed", "--delete", "--yes"],
    );
    let safety = report["safety_snapshot"].as_str().unwrap().to_string();
    assert_eq!(report["deleted"], 3, "{report:#}");
    assert_eq!(read(&target.join("lyra/a.md")).as_deref(), Some("a v1\n"));
    assert_eq!(
        read(&target.join("lyra/notes/c.md")).as_deref(),
        Some("c v1\n")
    );
    assert!(!target.join("lyra/extra.txt").exists());
    assert!(!target.join("lyra/old").exists());

    // The safety snapshot: tagged, this host's, the target's top-level
    // entries as paths, holding exactly what was replaced or deleted.
    let listed = env.snapshots();
    let row = listed.iter().find(|s| s["id"] == safety.as_str()).unwrap();
    assert_eq!(row["tags"], serde_json::json!(["pre-restore"]));
    let lyra = fs::canonicalize(&target).unwrap().join("lyra");
    assert_eq!(
        row["paths"],
        serde_json::json!([lyra.display().to_string()])
    );
    let ls = env.json(["ls", "--recursive", &safety]);
    let paths: Vec<&str> = common::string_column(&ls, "path");
    assert_eq!(
        paths,
        [
            "lyra",
            "lyra/a.md",
            "lyra/extra.txt",
            "lyra/old",
            "lyra/old/x.txt"
        ]
    );

    // `latest` still names the real snapshot, not the safety one.
    let out = env.ok(["ls", "latest"]);
    assert_eq!(String::from_utf8_lossy(&out), "lyra\npps\n");
    let latest = env.json([
        "restore",
        "latest",
        "--dry-run",
        "--target",
        "/nonexistent/x",
    ]);
    assert_eq!(latest["snapshot"], original.as_str());
    assert!(
        String::from_utf8_lossy(&env.ok(["snapshots"]))
            .lines()
            .any(|l| l.starts_with(&format!("*{}", &original[..8]))),
        "`snapshots` marks the real snapshot as latest"
    );

    // Restoring the safety snapshot over the target puts back every entry
    // it replaced or deleted, bit for bit (c.md, created by the restore, stays).
    let undo = restore_json(&env, &safety, &target, &["--overwrite", "always", "--yes"]);
    assert!(
        undo["safety_snapshot"].is_string(),
        "undoing is itself protected"
    );
    let mut after = fingerprint(&target);
    assert!(after.remove(Path::new("lyra/notes/c.md")).is_some());
    // Folders' mtimes change when entries come and go; compare the rest.
    let without_dirs = |m: &BTreeMap<PathBuf, String>| -> BTreeMap<PathBuf, String> {
        m.iter()
            .filter(|(_, v)| !v.starts_with("dir"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(without_dirs(&after), without_dirs(&before));
}

#[test]
fn no_safety_snapshot_skips_it() {
    let env = Env::new();
    backup_sources(&env);
    let target = changed_target(&env, "target");
    let report = restore_json(
        &env,
        "latest",
        &target,
        &["--overwrite", "always", "--yes", "--no-safety-snapshot"],
    );
    assert_eq!(report["safety_snapshot"], Value::Null);
    assert_eq!(snapshot_count(&env), 1);
    assert_eq!(read(&target.join("lyra/a.md")).as_deref(), Some("a v1\n"));
}

#[test]
fn safety_snapshot_failure_stops_the_restore() {
    if common::is_root() {
        return; // root reads unreadable files
    }
    let env = Env::new();
    backup_sources(&env);
    let target = changed_target(&env, "target");
    use std::os::unix::fs::PermissionsExt;
    let secret = target.join("lyra/a.md");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o200)).unwrap();
    let out = restore(&env, "latest", &target, &["--overwrite", "always", "--yes"]);
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    assert_code(&out, 1);
    assert!(
        stderr_text(&out).contains("nothing was restored"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(read(&secret).as_deref(), Some("a edited locally, longer\n"));
    assert!(!target.join("lyra/notes/c.md").exists());
}

#[test]
fn delete_removes_extras_but_not_excluded_ones_and_never_outside() {
    let env = Env::new();
    backup_sources(&env);
    let target = env.path("target");
    assert_code(&restore(&env, "latest", &target, &[]), 0);
    // Outside the target, reachable through symlinks planted inside it.
    let outside = env.path("outside");
    write(&outside.join("precious.txt"), "precious\n");
    write(&outside.join("notes/b.md"), "outside b\n");
    symlink(&outside, target.join("lyra/escape")).unwrap();
    symlink(outside.join("precious.txt"), target.join("lyra/file-link")).unwrap();
    write(&target.join("lyra/extra.txt"), "extra\n");
    write(&target.join("lyra/old/x.txt"), "x\n");
    write(&target.join("lyra/old/keep.cache"), "excluded\n");
    write(&target.join("lyra/mine.cache"), "excluded\n");
    write(&target.join("pps/db/extra.bin"), "extra\n");
    let outside_before = fingerprint(&outside);

    let report = restore_json(
        &env,
        "latest",
        &target,
        &[
            "--delete",
            "--overwrite",
            "if-changed",
            "--exclude",
            "*.cache",
            "--yes",
        ],
    );
    assert!(report["safety_snapshot"].is_string());
    for gone in [
        "lyra/escape",
        "lyra/file-link",
        "lyra/extra.txt",
        "lyra/old/x.txt",
        "pps/db/extra.bin",
    ] {
        assert!(
            fs::symlink_metadata(target.join(gone)).is_err(),
            "{gone} was not deleted"
        );
    }
    // Excluded entries stay, and so does the folder holding one.
    assert_eq!(
        read(&target.join("lyra/old/keep.cache")).as_deref(),
        Some("excluded\n")
    );
    assert_eq!(
        read(&target.join("lyra/mine.cache")).as_deref(),
        Some("excluded\n")
    );
    assert_eq!(
        fingerprint(&outside),
        outside_before,
        "deleted through a symlink"
    );

    // A symlink where the snapshot has a folder: `never` keeps it and does
    // not look through it; `always` replaces the link, not what it points to.
    fs::remove_dir_all(target.join("lyra/notes")).unwrap();
    symlink(outside.join("notes"), target.join("lyra/notes")).unwrap();
    // The plan replaces the link and never looks through it.
    let plan = restore_json(
        &env,
        "latest",
        &target,
        &[
            "--dry-run",
            "--delete",
            "--overwrite",
            "always",
            "--exclude",
            "*.cache",
        ],
    );
    let actions = plan_actions(&plan);
    assert_eq!(actions["lyra/notes"], "overwrite", "{plan:#}");
    assert_eq!(actions["lyra/notes/b.md"], "create", "{plan:#}");
    assert_eq!(actions["lyra/notes/c.md"], "create", "{plan:#}");
    let out = restore(
        &env,
        "latest",
        &target,
        &[
            "--delete",
            "--overwrite",
            "never",
            "--exclude",
            "*.cache",
            "--yes",
        ],
    );
    assert_code(&out, 0);
    assert!(
        fs::symlink_metadata(target.join("lyra/notes"))
            .unwrap()
            .is_symlink()
    );
    assert_eq!(fingerprint(&outside), outside_before);
    let out = restore(
        &env,
        "latest",
        &target,
        &[
            "--delete",
            "--overwrite",
            "always",
            "--exclude",
            "*.cache",
            "--yes",
        ],
    );
    assert_code(&out, 0);
    assert!(
        fs::symlink_metadata(target.join("lyra/notes"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        read(&target.join("lyra/notes/c.md")).as_deref(),
        Some("c v1\n")
    );
    assert_eq!(fingerprint(&outside), outside_before);
}

#[test]
fn delete_stays_below_the_restored_path() {
    let env = Env::new();
    backup_sources(&env);
    let target = env.path("target");
    write(&target.join("notes/extra.md"), "extra\n");
    write(&target.join("sibling.txt"), "not below the restored path\n");
    let report = restore_json(&env, "latest:lyra/notes", &target, &["--delete", "--yes"]);
    assert_eq!(report["deleted"], 1, "{report:#}");
    assert!(!target.join("notes/extra.md").exists());
    assert_eq!(read(&target.join("notes/b.md")).as_deref(), Some("b v1\n"));
    assert_eq!(
        read(&target.join("sibling.txt")).as_deref(),
        Some("not below the restored path\n")
    );
}

#[test]
fn only_and_skip_select_sources() {
    let env = Env::new();
    backup_sources(&env);
    let files = |target: &Path| -> Vec<PathBuf> {
        fingerprint(target)
            .into_iter()
            .filter(|(_, v)| v.starts_with("file"))
            .map(|(k, _)| k)
            .collect()
    };
    let only = env.path("only");
    assert_code(&restore(&env, "latest", &only, &["--only", "pps"]), 0);
    assert_eq!(files(&only), [PathBuf::from("pps/db/data.bin")]);

    let skip = env.path("skip");
    assert_code(&restore(&env, "latest", &skip, &["--skip", "pps"]), 0);
    assert!(files(&skip).iter().all(|p| p.starts_with("lyra")));
    assert_eq!(files(&skip).len(), 4);

    // Comma-separated, repeatable, and combined with --include.
    let both = env.path("both");
    assert_code(
        &restore(
            &env,
            "latest",
            &both,
            &["--only", "lyra,pps", "--skip", "pps", "--include", "*.md"],
        ),
        0,
    );
    assert_eq!(
        files(&both),
        ["lyra/a.md", "lyra/notes/b.md", "lyra/notes/c.md"]
            .map(PathBuf::from)
            .to_vec()
    );

    // --delete with --only leaves other top-level entries of the target alone.
    write(&only.join("junk/j.txt"), "junk\n");
    write(&only.join("pps/stale.txt"), "stale\n");
    let report = restore_json(
        &env,
        "latest",
        &only,
        &["--only", "pps", "--delete", "--overwrite", "never", "--yes"],
    );
    assert_eq!(report["deleted"], 1);
    assert!(only.join("junk/j.txt").exists());
    assert!(!only.join("pps/stale.txt").exists());

    // A path inside a source the flags leave out: nothing to restore.
    let none = env.path("none");
    let out = restore(&env, "latest:lyra/notes", &none, &["--only", "pps"]);
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("leave out"),
        "{}",
        stderr_text(&out)
    );
    assert!(!none.exists());

    // Unknown names: exit 10, naming what exists; nothing is written.
    for flags in [["--only", "lyra,chromadb"], ["--skip", "neo4j"]] {
        let out = restore(&env, "latest", &none, &flags);
        assert_code(&out, 10);
        let err = stderr_text(&out);
        assert!(err.contains("lyra, pps"), "{err}");
        assert!(!none.exists());
    }
}

/// Where the first chunk of `path` (in snapshot `id`) is stored: pack file and an offset inside it.
fn chunk_location(repo: &Path, id: &str, path: &str) -> (PathBuf, u64) {
    use snap::{NoProgress, Repository};
    let handle = Repository::open(common::local_backend(repo), &NoProgress).unwrap();
    let (_, snapshot) = handle
        .snapshots()
        .unwrap()
        .into_iter()
        .find(|(i, _)| i.to_hex() == id)
        .unwrap();
    let node = snap::ops::browse::find_node(&handle, snapshot.tree, path).unwrap();
    common::blob_middle(repo, &handle, &handle.file_chunks(&node).unwrap()[0])
}

#[test]
fn a_file_that_cannot_be_restored_keeps_its_old_content() {
    let env = Env::new();
    let id = backup_sources(&env);
    let target = changed_target(&env, "target");
    let (pack, offset) = chunk_location(&env.repo, &id, "lyra/a.md");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 0x55;
    fs::write(&pack, bytes).unwrap();

    let out = restore(&env, "latest", &target, &["--overwrite", "always", "--yes"]);
    assert_code(&out, 4);
    assert!(
        stderr_text(&out).contains("lyra/a.md"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(
        read(&target.join("lyra/a.md")).as_deref(),
        Some("a edited locally, longer\n"),
        "the damaged file replaced the old one"
    );
    assert_eq!(
        read(&target.join("lyra/notes/c.md")).as_deref(),
        Some("c v1\n")
    );
    let leftovers: Vec<_> = fingerprint(&target)
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".snap-restore-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Runs `snap ARGS` on a pseudo-terminal (util-linux `script`), typing `answer`.
fn on_terminal(env: &Env, args: &str, answer: &str) -> Output {
    let command = format!(
        "{} -r {} {args}",
        common::snap_bin().display(),
        env.repo.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("SNAP_REPO")
        .env("XDG_CACHE_HOME", env.cache_home())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs the prompt test on a pseudo-terminal");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn terminal_confirmation_proceeds_only_on_yes() {
    let env = Env::new();
    backup_sources(&env);
    let target = changed_target(&env, "target");
    let before = fingerprint(&target);
    let args = format!(
        "restore latest --overwrite always --target {}",
        target.display()
    );

    let out = on_terminal(&env, &args, "n\n");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_code(&out, 1);
    assert!(
        shown.contains("replaces 4 and deletes 0 existing entries"),
        "{shown}"
    );
    assert!(shown.contains("Proceed? [y/N]"), "{shown}");
    assert!(shown.contains("cancelled"), "{shown}");
    assert_eq!(fingerprint(&target), before);
    assert_eq!(snapshot_count(&env), 1);

    let out = on_terminal(&env, &args, "y\n");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_code(&out, 0);
    assert!(shown.contains("safety snapshot"), "{shown}");
    assert_eq!(read(&target.join("lyra/a.md")).as_deref(), Some("a v1\n"));
    assert_eq!(snapshot_count(&env), 2);
}
