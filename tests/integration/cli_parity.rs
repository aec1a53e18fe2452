//! Reed-Solomon parity through the binary: every pack lost or damaged in
//! turn is rebuilt by restore, reported by check and written back by
//! `repair packs`; two lost packs in one group are named; groups stay
//! whole through prune, copy, a SIGKILL, and on S3, encrypted.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    Env, assert_code, assert_same_tree, flip_byte, local_backend, pseudo_random, s3,
    small_repo_options, snap_command, stderr_text, write_password_file,
};

/// A repository of 1 MiB packs with parity at `percent`, created from the
/// test process.
fn parity_env(percent: u32) -> Env {
    let env = Env::uninitialized();
    snap::Repository::init(
        local_backend(&env.repo),
        &snap::InitOptions {
            parity: snap::ParityLevel::from_percent(percent),
            ..small_repo_options(16 * 1024)
        },
        &snap::NoProgress,
    )
    .expect("init a repository with parity");
    env
}

/// A few files of incompressible bytes: `megabytes` MiB in all.
fn source(env: &Env, megabytes: usize, seed: u64) -> PathBuf {
    let root = env.path("src");
    fs::create_dir_all(root.join("sub")).unwrap();
    for i in 0..megabytes {
        let folder = if i % 2 == 0 {
            root.clone()
        } else {
            root.join("sub")
        };
        let bytes = pseudo_random(1 << 20, seed + i as u64);
        fs::write(folder.join(format!("file{i}")), bytes).unwrap();
    }
    fs::write(root.join("small.txt"), b"a small file\n").unwrap();
    root
}

fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for folder in fs::read_dir(repo.join("data")).unwrap() {
        for pack in fs::read_dir(folder.unwrap().path()).unwrap() {
            out.push(pack.unwrap().path());
        }
    }
    out.sort();
    out
}

fn parity_objects(repo: &Path) -> Vec<PathBuf> {
    match fs::read_dir(repo.join("parity")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// `snap --json check ARGS` with its exit code and report, whatever the code.
fn check_json(env: &Env, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--json", "check"];
    all.extend(args);
    let out = env.run(all);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json: {e}: {}", stderr_text(&out)));
    (common::exit_code(&out), report)
}

fn problem_kinds(report: &serde_json::Value) -> Vec<(String, String)> {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_owned(),
                p["object"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `snap restore latest --target TARGET`, whatever its exit code.
fn restore_latest(env: &Env, target: &Path) -> Output {
    env.cmd()
        .args(["restore", "latest", "--target"])
        .arg(target)
        .output()
        .unwrap()
}

/// Restores the latest snapshot into a new folder, which must match `root`.
#[track_caller]
fn restores_whole(env: &Env, root: &Path, target: &str) -> Output {
    let target = env.path(target);
    let out = restore_latest(env, &target);
    assert_code(&out, 0);
    assert_same_tree(root, &target.join("src"));
    out
}

#[test]
fn every_pack_lost_or_flipped_is_rebuilt_by_restore_reported_by_check_and_written_back() {
    let env = parity_env(10);
    let root = source(&env, 4, 1);
    env.backup(&[&root], &[]);
    let all = packs(&env.repo);
    assert!(all.len() >= 4, "1 MiB packs: {} packs", all.len());
    let status = env.json(["parity", "status"]);
    assert_eq!(status["protected_packs"], all.len() as u64, "{status}");
    assert_eq!(status["percent"], 10);
    // Trees and chunk lists are in two packs: a restore may read the other
    // copy of a lost metadata pack instead of rebuilding it.
    let metadata: Vec<PathBuf> = common::pack_trailers(&env.repo)
        .into_iter()
        .filter(|(_, _, blobs)| {
            blobs
                .iter()
                .all(|b| b.kind != snap::internals::format::pack::BlobKind::Data)
        })
        .map(|(path, _, _)| path)
        .collect();
    assert!(!metadata.is_empty(), "the trees are in metadata packs");
    for (i, pack) in all.iter().enumerate() {
        for damage in ["delete", "flip"] {
            let original = fs::read(pack).unwrap();
            if damage == "delete" {
                fs::remove_file(pack).unwrap();
            } else {
                flip_byte(pack, original.len() as u64 / 2);
            }
            let out = restores_whole(&env, &root, &format!("out-{i}-{damage}"));
            assert!(
                metadata.contains(pack)
                    || stderr_text(&out)
                        .contains(&format!("pack {} is missing or damaged", name(pack))),
                "restore names the rebuilt pack: {}",
                stderr_text(&out)
            );
            let (code, report) = check_json(&env, &["--read-data"]);
            assert_eq!(code, 4, "{report}");
            assert_eq!(
                problem_kinds(&report),
                [("pack_repairable".to_owned(), format!("pack {}", name(pack)))],
                "{report}"
            );
            assert!(
                report["errors"][0]["affected"]
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "nothing is lost: {report}"
            );
            let repaired = env.json(["repair", "packs"]);
            assert_eq!(repaired["rebuilt"][0], name(pack), "{repaired}");
            assert_eq!(fs::read(pack).unwrap(), original, "written back as it was");
            env.ok(["check", "--read-data"]);
        }
    }
}

#[test]
fn two_lost_packs_in_one_group_are_named_with_what_is_lost() {
    let env = parity_env(10);
    let root = source(&env, 4, 2);
    env.backup(&[&root], &[]);
    assert_eq!(parity_objects(&env.repo).len(), 1, "one group");
    let all = packs(&env.repo);
    // The two largest are data packs: files are lost, the structure too
    // when the metadata pack is among them.
    let mut by_size = all.clone();
    by_size.sort_by_key(|p| std::cmp::Reverse(fs::metadata(p).unwrap().len()));
    fs::remove_file(&by_size[0]).unwrap();
    flip_byte(&by_size[1], 1000);
    let out = restore_latest(&env, &env.path("out"));
    assert_code(&out, 4);
    let err = stderr_text(&out);
    assert!(err.contains("cannot be rebuilt"), "{err}");
    assert!(
        err.contains(&name(&by_size[0])) && err.contains(&name(&by_size[1])),
        "{err}"
    );
    assert!(
        err.contains("lost 2 packs") && err.contains("1 parity shard"),
        "{err}"
    );
    let (code, report) = check_json(&env, &["--read-data"]);
    assert_eq!(code, 4);
    let text = report.to_string();
    assert!(text.contains("cannot be rebuilt"), "{report}");
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| !p["affected"].as_array().unwrap().is_empty()),
        "check names the lost files: {report}"
    );
    let out = env.run(["repair", "packs"]);
    assert_code(&out, 4);
    assert!(String::from_utf8_lossy(&out.stdout).contains("is lost"));
}

#[test]
fn parity_turned_on_later_protects_new_packs_and_repair_groups_the_old_ones() {
    let env = Env::uninitialized();
    common::init_small_repo(&env.repo, 16 * 1024);
    let root = source(&env, 2, 3);
    env.backup(&[&root], &[]);
    let before = packs(&env.repo).len();
    let out = env.run(["parity", "enable", "15%"]);
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("multiple of 10%"),
        "{}",
        stderr_text(&out)
    );
    env.ok(["parity", "enable", "20%"]);
    let config = fs::read(env.repo.join("config")).unwrap();
    assert!(
        config.windows(6).any(|w| w == b"parity"),
        "the feature is in the config"
    );
    assert_eq!(config[8], 2, "a required feature: config version 2");
    fs::write(root.join("new"), pseudo_random(3 << 20, 9)).unwrap();
    env.backup(&[&root], &[]);
    let status = env.json(["parity", "status"]);
    assert_eq!(status["percent"], 20);
    let all = packs(&env.repo).len() as u64;
    assert_eq!(status["protected_packs"], all - before as u64, "{status}");
    let repaired = env.json(["repair", "packs"]);
    assert_eq!(repaired["newly_protected"], before as u64, "{repaired}");
    assert_eq!(env.json(["parity", "status"])["protected_packs"], all);
    // Two parity shards: two lost packs of a group are rebuilt.
    let old = &packs(&env.repo)[..2];
    for pack in old {
        fs::remove_file(pack).unwrap();
    }
    restores_whole(&env, &root, "out");
}

#[test]
fn prune_reforms_groups_and_copy_computes_parity_in_the_target() {
    let env = parity_env(10);
    let root = source(&env, 3, 4);
    env.backup(&[&root], &[]);
    fs::remove_file(root.join("file0")).unwrap();
    fs::remove_file(root.join("sub/file1")).unwrap();
    env.backup(&[&root], &[]);
    let pruned =
        String::from_utf8(env.ok(["forget", "--keep-last", "1", "--prune", "--instant-delete"]))
            .unwrap();
    assert!(pruned.contains("deleted"), "{pruned}");
    let status = env.json(["parity", "status"]);
    assert_eq!(status["orphans"], serde_json::json!([]), "{status}");
    assert_eq!(status["protected_packs"], status["packs"], "{status}");
    env.ok(["check", "--read-data"]);
    for pack in packs(&env.repo) {
        fs::remove_file(&pack).unwrap();
        restores_whole(&env, &root, &format!("out-{}", name(&pack)));
        env.ok(["repair", "packs"]);
    }
    let target = env.path("target");
    common::run_ok(
        snap_command()
            .env("XDG_CACHE_HOME", env.cache_home())
            .arg("-r")
            .arg(&target)
            .args(["init", "--parity", "10%"]),
    );
    env.ok([
        std::ffi::OsStr::new("copy"),
        std::ffi::OsStr::new("--to"),
        target.as_os_str(),
    ]);
    let status = common::run_json(
        snap_command()
            .env("XDG_CACHE_HOME", env.cache_home())
            .arg("--json")
            .arg("-r")
            .arg(&target)
            .args(["parity", "status"]),
    );
    assert!(status["packs"].as_u64().unwrap() > 0);
    assert_eq!(status["protected_packs"], status["packs"], "{status}");
}

/// Kills `snap ARGS` after `delay` (it may have finished by then).
fn kill_after(env: &Env, args: &[&str], delay: std::time::Duration) {
    let mut child = env.spawnable().args(args).spawn().unwrap();
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigkill_during_backup_or_prune_leaves_check_clean_and_no_orphan_parity() {
    let env = parity_env(10);
    let root = source(&env, 12, 5);
    env.backup(&[&root], &[]);
    for (round, ms) in [30u64, 120, 300, 700].into_iter().enumerate() {
        fs::write(
            root.join(format!("more{round}")),
            pseudo_random(4 << 20, 50 + round as u64),
        )
        .unwrap();
        kill_after(
            &env,
            &["backup", root.to_str().unwrap()],
            std::time::Duration::from_millis(ms),
        );
        let (code, report) = check_json(&env, &[]);
        assert_eq!(code, 0, "round {round}: {report}");
        let status = env.json(["parity", "status"]);
        assert_eq!(status["orphans"], serde_json::json!([]), "{status}");
    }
    env.backup(&[&root], &[]);
    for (round, ms) in [20u64, 80, 200, 500].into_iter().enumerate() {
        fs::remove_file(root.join(format!("more{round}"))).ok();
        env.backup(&[&root], &[]);
        env.ok(["forget", "--keep-last", "1"]);
        kill_after(
            &env,
            &["prune", "--instant-delete"],
            std::time::Duration::from_millis(ms),
        );
        let (code, report) = check_json(&env, &[]);
        assert_eq!(code, 0, "round {round}: {report}");
        let status = env.json(["parity", "status"]);
        assert_eq!(status["orphans"], serde_json::json!([]), "{status}");
    }
    env.ok(["prune", "--instant-delete"]);
    env.ok(["check", "--read-data"]);
    restores_whole(&env, &root, "out");
}

#[test]
fn an_encrypted_s3_repository_rebuilds_a_lost_pack() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let location = format!("s3://{bucket}/parity");
    let password = dir.path().join("password");
    write_password_file(&password, "correct horse");
    let port = s3::server().port;
    let cmd = || {
        let mut cmd = snap_command();
        cmd.envs(s3::aws_env(port))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .arg("-r")
            .arg(&location)
            .arg("--password-file")
            .arg(&password);
        cmd
    };
    common::run_ok(cmd().args(["init", "--encrypt", "--parity", "10%"]));
    let root = dir.path().join("src");
    fs::create_dir_all(&root).unwrap();
    for i in 0..10 {
        fs::write(
            root.join(format!("f{i}")),
            pseudo_random(20_000 * (i + 1), i as u64),
        )
        .unwrap();
    }
    common::run_ok(cmd().arg("backup").arg(&root));
    let vars: std::collections::HashMap<_, _> = s3::aws_env(port).into_iter().collect();
    let backend =
        snap::backend::S3Backend::with_vars(&location, |name| vars.get(name).cloned()).unwrap();
    use snap::backend::{Backend, FileKind};
    let parity = backend.list(FileKind::Parity).unwrap();
    assert_eq!(parity.len(), 1, "one group for a ten-file session");
    let data: Vec<(String, u64)> = backend.list(FileKind::Pack).unwrap();
    let largest = data.iter().max_by_key(|(_, size)| *size).unwrap();
    backend.remove(FileKind::Pack, &largest.0).unwrap();
    let target = dir.path().join("out");
    let out = cmd()
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_same_tree(&root, &target.join("src"));
    common::run_ok(cmd().args(["repair", "packs"]));
    assert!(backend.list(FileKind::Pack).unwrap().contains(largest));
    common::run_ok(cmd().args(["check", "--read-data"]));
}

#[test]
fn a_prune_stopped_at_each_step_of_reforming_a_group_leaves_no_orphan_parity() {
    // The steps in order: the new parity object is written, the old one
    // removed, then the packs deleted. A failure at each leaves groups
    // that name only packs that exist, and the next prune finishes.
    for fault in [
        "write:parity:1:eio",
        "remove:parity:1:eio",
        "remove:pack:1+:eio",
    ] {
        let env = parity_env(10);
        let root = source(&env, 3, 6);
        env.backup(&[&root], &[]);
        fs::remove_file(root.join("file0")).unwrap();
        env.backup(&[&root], &[]);
        env.ok(["forget", "--keep-last", "1"]);
        let out = env
            .cmd()
            .env("SNAP_FAULTS", fault)
            .args(["prune", "--instant-delete"])
            .output()
            .unwrap();
        assert_code(&out, 1);
        let (code, report) = check_json(&env, &[]);
        assert_eq!(code, 0, "{fault}: {report}");
        let status = env.json(["parity", "status"]);
        assert_eq!(
            status["orphans"],
            serde_json::json!([]),
            "{fault}: {status}"
        );
        env.ok(["prune", "--instant-delete"]);
        // Packs whose group was never written (the parity write failed)
        // are unprotected until `repair packs` groups them.
        env.ok(["repair", "packs"]);
        let status = env.json(["parity", "status"]);
        assert_eq!(
            status["protected_packs"], status["packs"],
            "{fault}: {status}"
        );
        env.ok(["check", "--read-data"]);
        restores_whole(&env, &root, "out");
    }
}
