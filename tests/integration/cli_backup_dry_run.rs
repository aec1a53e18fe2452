//! `snap backup --dry-run` and `-v`, through the real binary: a dry run
//! leaves the repository byte for byte as it was, and what it says it would
//! add is what the real backup after it adds; `-v` lists exactly the new
//! and changed files, `-vv` every file with its status.

use crate::common;

use std::collections::BTreeSet;
use std::fs;

use common::manifest::manifest;
use common::{Env, pseudo_random, run_json, stderr_text};

const COUNTED: [&str; 6] = [
    "files_new",
    "files_changed",
    "files_unchanged",
    "bytes_read",
    "bytes_added",
    "bytes_added_packed",
];

#[test]
fn dry_run_writes_nothing_and_predicts_the_real_backup() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"hello").unwrap();
    fs::write(src.join("sub/big"), pseudo_random(300_000, 7)).unwrap();
    // The same bytes twice: the second copy is deduplicated within the run.
    fs::write(src.join("sub/copy"), pseudo_random(300_000, 7)).unwrap();

    for round in 0..2 {
        let before = manifest(&env.repo).unwrap();
        let dry = env.backup(&[&src], &["--dry-run"]);
        assert_eq!(dry["dry_run"], true);
        assert!(dry["id"].is_null(), "{dry}");
        assert_eq!(
            manifest(&env.repo).unwrap(),
            before,
            "round {round}: a dry run changed the repository"
        );
        assert!(!env.holds_lock());
        let real = env.backup(&[&src], &[]);
        assert_eq!(real["dry_run"], false);
        for field in COUNTED {
            assert_eq!(dry[field], real[field], "round {round}: {field}");
        }
        if round == 0 {
            assert_eq!(real["files_new"], 3);
            assert!(real["bytes_added"].as_u64().unwrap() < 600_000);
            fs::write(src.join("a.txt"), b"hello again").unwrap();
            fs::write(src.join("new.txt"), pseudo_random(5_000, 9)).unwrap();
        } else {
            assert_eq!(real["files_new"], 1);
            assert_eq!(real["files_changed"], 1);
            assert_eq!(real["files_unchanged"], 2);
        }
    }
    assert_eq!(env.snapshots().len(), 2);

    let text = String::from_utf8(env.ok([
        "backup".as_ref(),
        src.as_os_str(),
        "--dry-run".as_ref(),
        "-q".as_ref(),
    ]))
    .unwrap();
    assert!(
        text.contains("dry run, nothing written: 4 files (0 new, 0 changed, 4 unchanged)")
            && text.contains("would add"),
        "{text}"
    );
}

/// The files `-v` listed with each status, from the backup's stderr.
fn listed(stderr: &str) -> BTreeSet<String> {
    stderr
        .lines()
        .filter(|l| {
            ["new  ", "changed  ", "unchanged  "]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn verbose_lists_new_and_changed_files() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for name in ["a", "b", "c"] {
        fs::write(src.join(name), name).unwrap();
    }
    let line = |status: &str, name: &str| format!("{status:<9}  {}", src.join(name).display());
    let first = env.run(["backup".as_ref(), src.as_os_str(), "-v".as_ref()]);
    assert!(first.status.success(), "{}", stderr_text(&first));
    let want: BTreeSet<String> = ["a", "b", "c"].iter().map(|n| line("new", n)).collect();
    assert_eq!(listed(&stderr_text(&first)), want);

    fs::write(src.join("b"), "bb").unwrap();
    fs::write(src.join("d"), "d").unwrap();
    for dry in [true, false] {
        let mut cmd = env.cmd();
        cmd.arg("--json").arg("backup").arg(&src).arg("--verbose");
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr_text(&out));
        let want: BTreeSet<String> = [line("changed", "b"), line("new", "d")].into();
        assert_eq!(listed(&stderr_text(&out)), want, "dry run: {dry}");
    }

    let out = env.run(["backup".as_ref(), src.as_os_str(), "-vv".as_ref()]);
    assert!(out.status.success());
    let want: BTreeSet<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| line("unchanged", n))
        .collect();
    assert_eq!(listed(&stderr_text(&out)), want);
    // Without -v nothing is listed.
    let out = run_json(
        env.cmd()
            .arg("--json")
            .arg("backup")
            .arg(&src)
            .arg("--dry-run"),
    );
    assert_eq!(out["files_unchanged"], 4);
}
