//! Injected storage faults (`SNAP_FAULTS`, src/backend/faulty.rs): a full
//! disk, an I/O error, a torn write or a lost acknowledgement at the N-th
//! repository call, for every N a command reaches. Each time the command
//! must fail cleanly (exit code 1, one line naming the operation and the
//! object, no panic) and lose nothing: afterwards `snap check` passes, every
//! snapshot that was there restores bit-identical, and running the command
//! again without faults succeeds.

use crate::common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use common::{assert_code, exit_code, pseudo_random, snap_command, stderr_text};
use serde_json::Value;

type Contents = BTreeMap<PathBuf, Vec<u8>>;

/// The files below `root`, relative, with their bytes (folders left out).
fn contents(root: &Path) -> Contents {
    common::contents(root)
        .into_iter()
        .filter_map(|(rel, bytes)| Some((rel, bytes?)))
        .collect()
}

/// Copies a folder tree (files and folders only).
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A world: a repository with small packs and chunks (so that a few hundred
/// kilobytes make many packs and index deltas), a source folder, and what
/// each snapshot holds.
struct World {
    dir: PathBuf,
    states: BTreeMap<String, Contents>,
}

impl World {
    fn repo(&self) -> PathBuf {
        self.dir.join("repo")
    }

    fn src(&self) -> PathBuf {
        self.dir.join("src")
    }

    fn snap(&self, args: &[&str], faults: Option<&str>) -> std::process::Output {
        let mut cmd = snap_command();
        cmd.arg("-r").arg(self.repo()).args(args);
        if let Some(faults) = faults {
            cmd.env("SNAP_FAULTS", faults);
        }
        cmd.output().unwrap()
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.snap(args, None);
        assert_code(&out, 0);
        out.stdout
    }

    /// Changes the source a little (one new file, one changed, one gone).
    fn change_source(&self, n: u64) {
        let src = self.src();
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(
            src.join(format!("sub/new-{n}.bin")),
            pseudo_random(150 << 10, 100 + n),
        )
        .unwrap();
        fs::write(src.join("changing.bin"), pseudo_random(120 << 10, 200 + n)).unwrap();
        let _ = fs::remove_file(src.join(format!("sub/new-{}.bin", n.wrapping_sub(2))));
    }

    /// Backs up the source; remembers what the snapshot holds.
    fn backup(&mut self) -> String {
        let src = self.src();
        let out = self.ok(&["--json", "backup", src.to_str().unwrap()]);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        self.states.insert(id.clone(), contents(&src));
        id
    }

    fn new(dir: PathBuf) -> Self {
        fs::create_dir_all(&dir).unwrap();
        common::init_small_repo(&dir.join("repo"), 16 << 10);
        let mut world = Self {
            dir,
            states: BTreeMap::new(),
        };
        fs::create_dir_all(world.src()).unwrap();
        fs::write(world.src().join("keep.bin"), pseudo_random(300 << 10, 7)).unwrap();
        for n in 0..3 {
            world.change_source(n);
            world.backup();
        }
        world.change_source(3);
        world
    }

    /// An independent copy of this world in `dir`.
    fn copy(&self, dir: PathBuf) -> Self {
        copy_tree(&self.dir, &dir);
        Self {
            dir,
            states: self.states.clone(),
        }
    }

    /// Remembers what the snapshot of a successful `backup` holds.
    fn record(&mut self, args: &[&str], out: &std::process::Output) {
        if args.contains(&"backup") {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            self.states.insert(id, contents(&self.src()));
        }
    }

    /// Snapshots this world does not know: taken of the source as it is now.
    fn adopt_new_snapshots(&mut self) {
        let listed: Value = serde_json::from_slice(&self.ok(&["--json", "snapshots"])).unwrap();
        for s in listed.as_array().unwrap() {
            let id = s["id"].as_str().unwrap();
            if !self.states.contains_key(id) {
                self.states.insert(id.to_string(), contents(&self.src()));
            }
        }
    }

    /// `snap check` passes and every remaining snapshot restores exactly;
    /// returns how many snapshots remain.
    #[track_caller]
    fn assert_intact(&self, context: &str) -> usize {
        let out = self.snap(&["check"], None);
        assert!(
            exit_code(&out) == 0,
            "{context}: check fails afterwards:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            stderr_text(&out)
        );
        let listed: Value = serde_json::from_slice(&self.ok(&["--json", "snapshots"])).unwrap();
        let ids: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect();
        for id in &ids {
            let expected = self
                .states
                .get(id)
                .unwrap_or_else(|| panic!("{context}: snapshot {id} appeared from nowhere"));
            let target = self.dir.join("restored");
            let out = self.snap(&["restore", id, "--target", target.to_str().unwrap()], None);
            assert!(
                exit_code(&out) == 0,
                "{context}: snapshot {id} does not restore:\n{}",
                stderr_text(&out)
            );
            assert!(
                contents(&target.join("src")) == *expected,
                "{context}: snapshot {id} restores different bytes"
            );
            fs::remove_dir_all(&target).unwrap();
        }
        ids.len()
    }
}

/// Runs `args` on copies of `base` with the fault `spec` (its `{n}` set to
/// 1, 2, ...) until a run gets through; checks each failed run as the file
/// comment says, then that the command succeeds without faults, leaving a
/// number of snapshots in `left`. Returns how many runs failed.
fn every_step(
    base: &World,
    name: &str,
    args: &[&str],
    spec: &str,
    left: std::ops::RangeInclusive<usize>,
) -> u64 {
    let mut failed = 0;
    for n in 1..200u64 {
        let mut world = base.copy(base.dir.with_file_name(format!("{name}-{n}")));
        let faults = spec.replace("{n}", &n.to_string());
        let context = format!("`snap {}` with SNAP_FAULTS={faults}", args.join(" "));
        let out = world.snap(args, Some(&faults));
        let stderr = stderr_text(&out);
        assert!(!stderr.contains("panicked"), "{context}: panic:\n{stderr}");
        if exit_code(&out) == 0 {
            // The fault was never reached: every step has been tried.
            world.record(args, &out);
            let remaining = world.assert_intact(&context);
            assert!(
                left.contains(&remaining),
                "{context}: {remaining} snapshots"
            );
            fs::remove_dir_all(&world.dir).unwrap();
            break;
        }
        failed += 1;
        assert_eq!(exit_code(&out), 1, "{context}: wrong exit code:\n{stderr}");
        assert!(
            stderr.contains("injected by SNAP_FAULTS"),
            "{context}: the error does not say what failed:\n{stderr}"
        );
        assert!(
            stderr.trim().lines().last().unwrap().starts_with("snap: "),
            "{context}: no error line:\n{stderr}"
        );
        if args.contains(&"backup") {
            // A lost acknowledgement of the snapshot write leaves a complete
            // snapshot behind an error: it must hold the source as it is.
            world.adopt_new_snapshots();
        }
        world.assert_intact(&format!("{context} (it said: {})", stderr.trim()));
        // Without faults the same command now succeeds and leaves the
        // repository as intact as a first try would have.
        let again = world.snap(args, None);
        assert!(
            exit_code(&again) == 0,
            "{context}: running it again without faults fails:\n{}",
            stderr_text(&again)
        );
        world.record(args, &again);
        let remaining = world.assert_intact(&format!("{context}, then again without faults"));
        assert!(
            left.contains(&remaining),
            "{context}: {remaining} snapshots"
        );
        fs::remove_dir_all(&world.dir).unwrap();
    }
    eprintln!("{name}: {failed} failing runs");
    failed
}

fn base(dir: &tempfile::TempDir) -> World {
    World::new(dir.path().join("base"))
}

#[test]
fn backup_survives_a_full_disk_an_io_error_or_a_torn_write_at_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let base = base(&dir);
    let src = base.src();
    let args = ["--json", "backup", src.to_str().unwrap()];
    for (name, spec) in [
        ("enospc", "write:any:{n}:enospc"),
        ("short", "write:any:{n}:short"),
        ("lost", "write:any:{n}:lost"),
        ("eio-read", "read:any:{n}:eio"),
    ] {
        let failed = every_step(&base, name, &args, spec, 4..=5);
        assert!(failed >= 2, "{name}: the backup made only {failed} calls");
    }
}

#[test]
fn forget_and_prune_survive_faults_at_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let base = base(&dir);
    let args = [
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--instant-delete",
        "--max-unused",
        "0%",
    ];
    for (name, spec) in [
        ("write", "write:any:{n}:enospc"),
        ("remove", "remove:any:{n}:eio"),
        ("lost-remove", "remove:any:{n}:lost"),
        ("lost-write", "write:index:{n}:lost"),
        ("list", "list:any:{n}:eio"),
    ] {
        let failed = every_step(&base, name, &args, spec, 1..=1);
        assert!(failed >= 1, "{name}: forget --prune made no such call");
    }
}

#[test]
fn repair_index_survives_faults_at_any_step() {
    let dir = tempfile::tempdir().unwrap();
    let base = base(&dir);
    for (name, spec) in [
        ("write", "write:index:{n}:enospc"),
        ("remove", "remove:index:{n}:eio"),
        ("read", "read:pack:{n}:eio"),
    ] {
        let failed = every_step(&base, name, &["repair", "index"], spec, 3..=3);
        assert!(failed >= 1, "{name}: repair index made no such call");
    }
}

#[test]
fn a_failed_key_change_keeps_the_old_way_in() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let pass = dir.path().join("pass");
    let new_pass = dir.path().join("new-pass");
    fs::write(&pass, "correct horse\n").unwrap();
    fs::write(&new_pass, "battery staple\n").unwrap();
    let snap = |args: &[&str], password: &Path, faults: Option<&str>| {
        let mut cmd = snap_command();
        cmd.arg("-r")
            .arg(&repo)
            .arg("--password-file")
            .arg(password)
            .args(args);
        if let Some(faults) = faults {
            cmd.env("SNAP_FAULTS", faults);
        }
        cmd.output().unwrap()
    };
    assert_code(&snap(&["init", "--encrypt"], &pass, None), 0);
    let src = dir.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"alpha").unwrap();
    assert_code(&snap(&["backup", src.to_str().unwrap()], &pass, None), 0);
    let new_pass_arg: OsString = new_pass.clone().into();
    for faults in [
        "write:key:1:enospc",
        "write:key:1:short",
        "remove:key:1:eio",
    ] {
        let out = snap(
            &[
                "key",
                "passwd",
                "--new-password-file",
                new_pass_arg.to_str().unwrap(),
            ],
            &pass,
            Some(faults),
        );
        assert_code(&out, 1);
        assert!(
            stderr_text(&out).contains("injected by SNAP_FAULTS"),
            "{faults}"
        );
        // The old passphrase still opens the repository.
        let out = snap(&["cat", "latest:src/a"], &pass, None);
        assert_code(&out, 0);
        assert_eq!(out.stdout, b"alpha");
        if faults.starts_with("remove") {
            // The new key was written before the old one was to go: both work.
            assert_code(&snap(&["cat", "latest:src/a"], &new_pass, None), 0);
            assert_code(
                &snap(
                    &[
                        "key",
                        "passwd",
                        "--new-password-file",
                        pass.to_str().unwrap(),
                    ],
                    &new_pass,
                    None,
                ),
                0,
            );
        }
    }
}

#[test]
fn reads_that_fail_are_errors_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let base = base(&dir);
    let target = dir.path().join("target");
    let id = base.states.keys().next().unwrap().clone();
    let out = base.snap(
        &["restore", &id, "--target", target.to_str().unwrap()],
        Some("read:pack:1+:eio"),
    );
    assert!(exit_code(&out) != 0);
    let stderr = stderr_text(&out);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("injected by SNAP_FAULTS"), "{stderr}");
    // An unreadable disk is not rot: check says it cannot read, not that
    // the repository is damaged.
    let out = base.snap(&["check", "--read-data"], Some("read:pack:1+:eio"));
    assert_eq!(exit_code(&out), 1, "{}", stderr_text(&out));
    base.assert_intact("after failed reads");
    // A bad SNAP_FAULTS is a usage error.
    assert_code(&base.snap(&["snapshots"], Some("write:pack:zero:eio")), 2);
}
