//! Backups of many small files through the real binary: a pack holds at
//! most 8,192 blobs and a delta is written as soon as that many wait for
//! one, so what a backup keeps in memory depends on those bounds and not on
//! the number of files; the index cache those many small transactions
//! leave sparse is compacted after the backup; a backup killed after its
//! first delta leaves a repository that checks clean, and the next backup
//! reuses what was indexed.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, assert_code, assert_same_tree, pseudo_random};
use snap::internals::pack::MAX_PACK_BLOBS;

/// Files in the tree: a bit over six packs' worth of blobs.
const FILES: usize = 6 * MAX_PACK_BLOBS + 2_000;

/// `FILES` small files of distinct content (each one blob), 1,000 a folder;
/// returns their total size.
fn many_small_files(root: &Path) -> u64 {
    let mut total = 0;
    for i in 0..FILES {
        let dir = root.join(format!("d{:02}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&dir).unwrap();
        }
        let bytes = pseudo_random(20 + i % 40, i as u64 + 1);
        total += bytes.len() as u64;
        fs::write(dir.join(format!("f{i:05}")), bytes).unwrap();
    }
    total
}

/// Index deltas in the repository (not the temporary files they are
/// written through).
fn index_deltas(repo: &Path) -> usize {
    fs::read_dir(repo.join("index"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .count()
}

#[test]
fn a_backup_of_many_small_files_writes_a_delta_per_full_pack() {
    let env = Env::new();
    let src = env.path("src");
    let total = many_small_files(&src);
    let report = env.backup(&[&src], &[]);
    assert_eq!(report["files_new"], FILES, "{report}");
    assert_eq!(report["bytes_read"], total, "{report}");
    // Six full packs of data blobs and the rest: the first full ones get
    // their delta while the backup goes on, the rest at its end, so at
    // least two deltas (waiting for eight packs wrote one).
    let deltas = index_deltas(&env.repo);
    assert!(deltas >= 2, "{deltas} index deltas for {FILES} blobs");
    // Those many small index transactions leave the cache mostly free
    // pages; the backup merges its rows into the sorted run file and
    // compacts the rest, and lookups stay right (below).
    let files: Vec<(String, u64)> = fs::read_dir(env.repo_cache())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().len())
        })
        .collect();
    let cache: u64 = files.iter().map(|(_, len)| len).sum();
    assert!(
        files.iter().any(|(name, _)| name.ends_with(".blobs")),
        "no run file in {files:?}"
    );
    assert!(
        cache <= 120 * FILES as u64,
        "index cache of {cache} bytes for {FILES} blobs: {files:?}"
    );
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_same_tree(&src, &target.join("src"));
    assert_code(&env.run(["check", "--read-data"]), 0);
}

#[test]
fn a_backup_killed_after_its_first_delta_checks_clean_and_the_next_reuses_it() {
    let env = Env::new();
    let src = env.path("src");
    many_small_files(&src);
    // What a backup of it adds to an empty repository: data and trees.
    let reference = Env::new();
    let full = reference.backup(&[&src], &[])["bytes_added"]
        .as_u64()
        .unwrap();
    drop(reference);
    let mut child = env
        .spawnable()
        .args(["-q", "backup"])
        .arg(&src)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as one delta is in the repository, while it runs.
    let started = Instant::now();
    let running_with_a_delta = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Err(status);
        }
        if index_deltas(&env.repo) > 0 {
            break Ok(());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no index delta after 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    child.kill().ok();
    child.wait().unwrap();
    if let Err(status) = running_with_a_delta {
        panic!("the backup ended ({status}) before any index delta was written");
    }
    assert!(
        env.snapshots().is_empty(),
        "a killed backup wrote a snapshot"
    );

    assert_code(&env.run(["check"]), 0);
    let report = env.backup(&[&src], &[]);
    assert_eq!(report["files_new"], FILES, "{report}");
    let added = report["bytes_added"].as_u64().unwrap();
    // At least one full pack of files (20 bytes or more each) was reused.
    assert!(
        added <= full - MAX_PACK_BLOBS as u64 * 20,
        "the next backup added {added} of {full} bytes: nothing indexed was reused"
    );
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_same_tree(&src, &target.join("src"));
    assert_code(&env.run(["check", "--read-data"]), 0);
}

/// New files are opened relative to their open folder, which is closed
/// before the walk goes into the subfolders: a tree far deeper than the
/// descriptors the process may hold backs up whole, without a warning.
#[test]
fn a_tree_deeper_than_the_descriptor_limit_backs_up_whole() {
    let env = Env::new();
    let root = env.path("deep");
    let mut dir = root.clone();
    for level in 0..300 {
        dir = dir.join("d");
        fs::create_dir_all(&dir).unwrap();
        for file in 0..3 {
            fs::write(
                dir.join(format!("f{file}")),
                format!("level {level}, file {file}\n"),
            )
            .unwrap();
        }
    }
    let output = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 64 && exec \"$@\"", "sh"])
        .arg(common::snap_bin())
        .arg("-r")
        .arg(&env.repo)
        .args(["backup", "--json"])
        .arg(&root)
        .env_remove("SNAP_REPO")
        .env_remove("SNAP_CONFIG")
        .env("XDG_CACHE_HOME", env.cache_home())
        .output()
        .unwrap();
    assert_code(&output, 0);
    let stderr = common::stderr_text(&output);
    assert!(!stderr.contains("skipped"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["files_new"], 900, "{report}");
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_same_tree(&root, &target.join("deep"));
}
