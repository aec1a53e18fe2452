//! `snap check`, `snap repair index` and `snap repair snapshots` through the
//! real binary: a clean repository passes; every kind of rot is detected and
//! its cost named exactly (the paths `check` says are lost are the paths
//! `restore` cannot restore); the index is rebuilt from the packs alone;
//! repaired snapshots restore everything that was not damaged, bit for bit;
//! and a backup killed at any instant leaves a repository that checks clean.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{
    Env, SourceTree, assert_code, assert_same_tree, build_tree, chunk_location, compare_trees,
    exit_code, flip_byte, pseudo_random, snap_bin,
};
use serde_json::Value;
use snap::{NoProgress, Repository};

/// Deterministic choices (xorshift64), so a failing case reproduces.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// A repository with small packs and small chunks, so a few megabytes make
/// many packs, index deltas and chunk lists.
fn init_small(repo: &Path) {
    common::init_small_repo(repo, 32 << 10);
}

/// Files (relative to `root`) below `root/folder`, sorted.
fn files_below(root: &Path, folder: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(folder)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// `snap --json check ARGS...`: exit code and report.
fn check(env: &Env, args: &[&str]) -> (i32, Value) {
    let out = env
        .cmd()
        .arg("--json")
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    code_and_report(&out, "check")
}

/// The exit code of a `--json` command and the report it printed, which
/// it prints whether or not it succeeds.
#[track_caller]
fn code_and_report(out: &Output, command: &str) -> (i32, Value) {
    let code = exit_code(out);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{command} --json printed no JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

/// Snapshot id -> paths that the check's errors say it loses.
fn affected(report: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for error in report["errors"].as_array().unwrap() {
        for entry in error["affected"].as_array().unwrap() {
            let paths = out
                .entry(entry["snapshot"].as_str().unwrap().to_string())
                .or_default();
            for path in entry["paths"].as_array().unwrap() {
                paths.insert(path.as_str().unwrap().to_string());
            }
        }
    }
    out
}

/// Restores snapshot `id` into a fresh folder: exit code, the paths restore
/// reports as damaged, and the folder.
fn restore(env: &Env, id: &str, target: &Path) -> (i32, BTreeSet<String>) {
    let out = env
        .cmd()
        .args(["--json", "restore", id, "--target"])
        .arg(target)
        .output()
        .unwrap();
    let (code, report) = code_and_report(&out, "restore");
    let damaged = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    (code, damaged)
}

/// A source folder of files in nested folders, one large enough for chunk lists.
fn write_source(root: &Path, version: u64) {
    for dir in ["notes/2024", "notes/2025", "db", "media/raw"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::write(root.join("notes/2024/a.md"), b"# a\nsome words\n").unwrap();
    fs::write(
        root.join("notes/2025/b.md"),
        format!("# b, version {version}\n"),
    )
    .unwrap();
    fs::write(
        root.join("db/state.json"),
        pseudo_random(40_000, 10 + version),
    )
    .unwrap();
    fs::write(root.join("media/raw/photo.raw"), pseudo_random(300_000, 20)).unwrap();
    // More than 32 chunks of ~32 KiB: its chunk ids are stored as list blobs.
    fs::write(
        root.join("media/video.bin"),
        pseudo_random(1_600_000, 30 + version),
    )
    .unwrap();
    fs::write(
        root.join(format!("new-{version}.txt")),
        pseudo_random(5_000, 40 + version),
    )
    .unwrap();
}

/// The full source tree backed up twice, with `dir/file.md` edited in
/// between: two snapshots that share most of their data.
fn two_versions(env: &Env) -> SourceTree {
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    fs::write(
        tree.root.join("dir/file.md"),
        b"# title\n\nsecond version\n",
    )
    .unwrap();
    env.backup(&[&tree.root], &[]);
    tree
}

#[test]
fn clean_repository_passes_in_every_mode() {
    let env = Env::new();
    two_versions(&env);

    let (code, report) = check(&env, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["errors"].as_array().unwrap().len(), 0);
    for field in [
        "packs_read",
        "bytes_read",
        "snapshots",
        "packs",
        "trees",
        "blobs",
    ] {
        assert!(report[field].is_u64(), "{field} missing: {report:#}");
    }
    assert_eq!(report["snapshots"], 2);
    assert_eq!(report["packs_read"], 0);
    let packs = report["packs"].as_u64().unwrap();

    let (code, report) = check(&env, &["--read-data"]);
    assert_eq!((code, &report["ok"]), (0, &Value::Bool(true)), "{report:#}");
    assert_eq!(report["packs_read"].as_u64().unwrap(), packs);
    let pack_bytes: u64 = files_below(&env.repo, "data")
        .iter()
        .map(|p| fs::metadata(env.repo.join(p)).unwrap().len())
        .sum();
    assert_eq!(report["bytes_read"].as_u64().unwrap(), pack_bytes);

    // Slices 1/3..3/3 read every pack exactly once between them.
    let read: u64 = (1..=3)
        .map(|n| {
            let (code, report) = check(&env, &["--read-data-subset", &format!("{n}/3")]);
            assert_eq!(code, 0);
            report["packs_read"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(read, packs);
    let (code, report) = check(&env, &["--read-data-subset", "50%"]);
    assert_eq!(code, 0);
    assert_eq!(report["packs_read"].as_u64().unwrap(), packs.div_ceil(2));

    let out = env.run(["check"]);
    assert_code(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no errors were found"));
    for bad in ["0/3", "4/3", "abc", "150%"] {
        assert_code(&env.run(["check", "--read-data-subset", bad]), 2);
    }
}

/// What happens to one repository file in a rot case.
#[derive(Debug, Clone, Copy)]
enum Rot {
    FlipBits,
    Truncate,
    Delete,
}

fn apply_rot(path: &Path, rot: Rot, rng: &mut Rng) -> String {
    let mut bytes = fs::read(path).unwrap();
    let len = bytes.len() as u64;
    match rot {
        Rot::FlipBits => {
            let flips = 1 + rng.below(3);
            let mut at = Vec::new();
            for _ in 0..flips {
                let offset = rng.below(len) as usize;
                bytes[offset] ^= 1 << rng.below(8);
                at.push(offset);
            }
            fs::write(path, &bytes).unwrap();
            format!("flipped bits at {at:?} of {len}")
        }
        Rot::Truncate => {
            let keep = rng.below(len) as usize;
            bytes.truncate(keep);
            fs::write(path, &bytes).unwrap();
            format!("truncated from {len} to {keep} bytes")
        }
        Rot::Delete => {
            fs::remove_file(path).unwrap();
            "deleted".into()
        }
    }
}

/// Flips bits in, truncates and deletes random packs, index deltas and
/// snapshots. `check --read-data` must find every case, and the paths it
/// says each snapshot loses must be exactly those restore cannot restore.
#[test]
fn rot_is_always_detected_and_its_cost_named() {
    const CASES: u64 = 30;
    let env = Env::uninitialized();
    init_small(&env.repo);
    let src = env.path("src");
    for version in 0..3 {
        write_source(&src, version);
        env.backup(&[&src], &[]);
    }
    // Each case damages one file; afterwards that file and the index cache
    // (which check and restore may rebuild) are put back.
    let cache = env.repo_cache().join("index.redb");
    let pristine_cache = fs::read(&cache).unwrap();
    let targets = [
        ("pack", files_below(&env.repo, "data")),
        ("index delta", files_below(&env.repo, "index")),
        ("snapshot", files_below(&env.repo, "snapshots")),
    ];
    assert!(targets[0].1.len() >= 8, "too few packs: {:?}", targets[0].1);
    let snapshot_ids: Vec<String> = targets[2]
        .1
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();

    let mut detected = 0;
    let mut with_losses = 0;
    let mut failures = Vec::new();
    for case in 0..CASES {
        let mut rng = Rng::new(case + 1);
        let (what, files) = &targets[(case % 3) as usize];
        let rot = [Rot::FlipBits, Rot::Truncate, Rot::Delete][((case / 3) % 3) as usize];
        let victim = env
            .repo
            .join(&files[rng.below(files.len() as u64) as usize]);
        let original = fs::read(&victim).unwrap();
        let done = apply_rot(&victim, rot, &mut rng);
        let label = format!("case {case}: {what} {} {done}", victim.display());
        let result = judge_case(&env, &label, &snapshot_ids, rot, what);
        fs::write(&victim, original).unwrap();
        fs::write(&cache, &pristine_cache).unwrap();
        match result {
            Ok(lost_paths) => {
                detected += 1;
                with_losses += u64::from(lost_paths);
            }
            Err(why) => failures.push(why),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(detected, CASES, "detected {detected} of {CASES} cases");
    println!(
        "{detected} of {CASES} cases detected; {with_losses} of them lose paths, each named exactly"
    );
    assert!(
        with_losses >= CASES / 3,
        "only {with_losses} cases lost paths"
    );
}

/// Whether check found the damage and named exactly what restore loses;
/// `Ok(true)` when some snapshot lost paths.
fn judge_case(
    env: &Env,
    label: &str,
    snapshot_ids: &[String],
    rot: Rot,
    what: &str,
) -> Result<bool, String> {
    let (code, report) = check(env, &["--read-data"]);
    let found = if what == "snapshot" && matches!(rot, Rot::Delete) {
        // A deleted snapshot file is a forgotten snapshot: nothing is
        // damaged, and what only it used is reported as unused.
        code == 0
            && report["cleanup"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["kind"] == "unreferenced_blobs")
    } else {
        code == 4 && report["ok"] == false
    };
    if !found {
        return Err(format!("{label}: not detected (exit {code}): {report:#}"));
    }

    // The cost: what check names is exactly what restore cannot restore.
    let named = affected(&report);
    let mut wrong = Vec::new();
    for id in snapshot_ids {
        let target = env.path(&format!("restore-{}", &id[..8]));
        if !env.repo.join("snapshots").join(id).exists() {
            continue;
        }
        let unreadable =
            report["errors"].as_array().unwrap().iter().any(|e| {
                e["kind"] == "snapshot_damaged" && e["object"] == format!("snapshot {id}")
            });
        if unreadable {
            continue;
        }
        let lost = named.get(id).cloned().unwrap_or_default();
        let (code, damaged) = restore(env, id, &target);
        fs::remove_dir_all(&target).ok();
        let want = if lost.is_empty() { 0 } else { 4 };
        if code != want || damaged != lost {
            wrong.push(format!(
                "{label}: snapshot {}: check names {lost:?}, restore (exit {code}) lost {damaged:?}",
                &id[..8]
            ));
        }
    }
    if wrong.is_empty() {
        Ok(!named.is_empty())
    } else {
        Err(wrong.join("\n"))
    }
}

#[test]
fn repair_index_rebuilds_a_lost_index_from_the_packs() {
    let env = Env::new();
    let tree = two_versions(&env);
    common::set_mtimes(&tree.root);
    env.backup(&[&tree.root], &[]);
    let index_files = files_below(&env.repo, "index").len();

    fs::remove_dir_all(env.repo.join("index")).unwrap();
    fs::remove_dir_all(env.repo_cache()).unwrap();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 4, "{report:#}");
    assert!(
        report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "pack_unindexed"),
        "{report:#}"
    );

    let plan = env.json(["repair", "index", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert!(plan["packs"].as_u64().unwrap() > 0);
    assert!(
        !env.repo.join("index").exists(),
        "a dry run wrote something"
    );

    let done = env.json(["repair", "index"]);
    assert_eq!(done["left_out"].as_array().unwrap().len(), 0, "{done:#}");
    assert!(done["index_files_written"].as_u64().unwrap() >= 1);
    assert!(files_below(&env.repo, "index").len() <= index_files);
    let (code, report) = check(&env, &["--read-data"]);
    assert_eq!(code, 0, "{report:#}");

    let target = env.path("restored");
    env.restore("latest", &target);
    assert_same_tree(&tree.root, &target.join("data"));

    // A damaged delta (the cache still holding its entries) is replaced too.
    let delta = env.repo.join(&files_below(&env.repo, "index")[0]);
    let mut bytes = fs::read(&delta).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    fs::write(&delta, bytes).unwrap();
    assert_eq!(check(&env, &[]).0, 4);
    let done = env.json(["repair", "index"]);
    assert_eq!(
        done["damaged_index_files"].as_array().unwrap().len(),
        1,
        "{done:#}"
    );
    // The rebuilt delta may have exactly the name of the damaged one (same
    // packs, same bytes): then it replaced it.
    assert!(
        !delta.exists()
            || *blake3::hash(&fs::read(&delta).unwrap()).to_hex()
                == *delta.file_name().unwrap().to_string_lossy()
    );
    assert_eq!(check(&env, &["--read-data"]).0, 0);
}

#[test]
fn repair_snapshots_drops_only_what_is_damaged() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    let first = env.backup(&[&tree.root], &[]);
    let second = env.backup(&[&tree.root], &["--force"]);
    // Damage one file's chunk and the listing of one folder.
    let (pack, offset) = chunk_location(&env.repo, "data/medium.bin", false);
    flip_byte(&pack, offset);
    for (pack, offset) in common::tree_copies(&env.repo, "data/dir/sub/deeper") {
        flip_byte(&pack, offset);
    }

    let (code, report) = check(&env, &["--read-data"]);
    assert_eq!(code, 4, "{report:#}");
    let lost: BTreeSet<String> = ["data/dir/sub/deeper", "data/medium.bin"]
        .into_iter()
        .map(String::from)
        .collect();
    let named = affected(&report);
    for snapshot in [&first, &second] {
        assert_eq!(named[snapshot["id"].as_str().unwrap()], lost, "{report:#}");
    }

    // Restoring the damaged snapshot restores everything else and exits 4.
    let target = env.path("damaged-restore");
    let (code, damaged) = restore(&env, "latest", &target);
    assert_eq!((code, &damaged), (4, &lost));
    let mut diffs = compare_trees(&tree.root, &target.join("data"));
    diffs.sort();
    assert_eq!(
        diffs,
        ["dir/sub/deeper/note.txt: missing", "medium.bin: missing"],
        "restore of the damaged snapshot"
    );

    let plan = env.json(["repair", "snapshots", "--dry-run"]);
    assert_eq!(plan["snapshots"].as_array().unwrap().len(), 2, "{plan:#}");
    assert_eq!(env.snapshots().len(), 2, "a dry run wrote a snapshot");

    let done = env.json(["repair", "snapshots"]);
    let rows = done["snapshots"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{done:#}");
    for row in rows {
        assert_eq!(row["dropped"], serde_json::json!(["data/medium.bin"]));
        assert_eq!(row["emptied"], serde_json::json!(["data/dir/sub/deeper"]));
    }
    let snapshots = env.snapshots();
    assert_eq!(snapshots.len(), 4, "originals are kept");
    let repaired: Vec<&Value> = snapshots
        .iter()
        .filter(|s| s["tags"].as_array().unwrap().contains(&"repaired".into()))
        .collect();
    assert_eq!(repaired.len(), 2);

    // The repaired snapshots lose nothing more and restore the rest bit for bit.
    let (_, report) = check(&env, &["--read-data"]);
    let named = affected(&report);
    for snapshot in &repaired {
        let id = snapshot["id"].as_str().unwrap();
        assert!(!named.contains_key(id), "{report:#}");
        let target = env.path(&format!("repaired-{}", &id[..8]));
        let (code, damaged) = restore(&env, id, &target);
        assert_eq!((code, damaged.len()), (0, 0));
        let mut diffs = compare_trees(&tree.root, &target.join("data"));
        diffs.sort();
        assert_eq!(
            diffs,
            ["dir/sub/deeper/note.txt: missing", "medium.bin: missing"],
            "restore of repaired snapshot {id}"
        );
    }
}

/// SIGKILLs `snap backup` at random instants (uniform over the time a full
/// backup takes): after each kill `snap check` passes, and the next backup
/// succeeds and restores bit for bit.
#[test]
fn killed_backups_leave_a_repository_that_checks_clean() {
    const RUNS: u64 = 15;
    let env = Env::uninitialized();
    init_small(&env.repo);
    let src = env.path("src");
    fs::create_dir_all(src.join("stable")).unwrap();
    for i in 0..2 {
        fs::write(
            src.join(format!("stable/{i}.bin")),
            pseudo_random(10 << 20, 100 + i),
        )
        .unwrap();
    }
    // How long an uninterrupted backup of new content takes here: kills
    // land uniformly within it, whatever the machine's speed.
    fs::write(src.join("changing.bin"), pseudo_random(10 << 20, 999)).unwrap();
    let started = std::time::Instant::now();
    env.backup(&[&src], &["--force"]);
    let window = u64::try_from(started.elapsed().as_millis())
        .unwrap()
        .max(50);
    let mut rng = Rng::new(77);
    let mut killed_mid_backup = 0;
    for run in 0..RUNS {
        // New content every run, so each killed backup has packs to write.
        fs::write(
            src.join("changing.bin"),
            pseudo_random(10 << 20, 1000 + run),
        )
        .unwrap();
        let mut child = std::process::Command::new(snap_bin())
            .env_remove("SNAP_REPO")
            .env("XDG_CACHE_HOME", env.cache_home())
            .arg("-r")
            .arg(&env.repo)
            .args(["-q", "backup", "--force"])
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(window + 1)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_backup += 1;
        }
        child.kill().ok();
        child.wait().unwrap();

        let (code, report) = check(&env, &[]);
        assert_eq!(code, 0, "run {run}: check after the kill: {report:#}");
        env.backup(&[&src], &[]);
        let target = env.path(&format!("restore-{run}"));
        env.restore("latest", &target);
        assert_same_tree(&src, &target.join("src"));
        fs::remove_dir_all(&target).unwrap();
    }
    // Kill times are spread over one measured backup; on a loaded machine
    // some backups still finish first, so only a quarter must be hit.
    assert!(
        killed_mid_backup >= RUNS / 4,
        "only {killed_mid_backup} kills hit a running backup (window {window} ms)"
    );
    println!("{killed_mid_backup} of {RUNS} kills hit a running backup (window {window} ms)");
    let (code, report) = check(&env, &["--read-data"]);
    assert_eq!(code, 0, "{report:#}");
}

/// Regression: one damaged snapshot file made every selector fail, so no
/// other snapshot could be restored even by its id.
#[test]
fn damaged_snapshot_file_does_not_lock_out_the_others() {
    let env = Env::new();
    let src = env.path("src");
    write_source(&src, 0);
    let old = env.backup(&[&src], &[]);
    write_source(&src, 1);
    let new = env.backup(&[&src], &[]);
    let old_id = old["id"].as_str().unwrap();
    let old_file = env.repo.join("snapshots").join(old_id);
    let mut bytes = fs::read(&old_file).unwrap();
    bytes[20] ^= 1;
    fs::write(&old_file, bytes).unwrap();
    // The cache may hold a good copy of the snapshot file; drop it.
    fs::remove_dir_all(env.repo_cache()).unwrap();

    let target = env.path("restored");
    let (code, damaged) = restore(&env, new["id"].as_str().unwrap(), &target);
    assert_eq!((code, damaged.len()), (0, 0));
    assert_same_tree(&src, &target.join("src"));
    // `latest` could be the damaged one: it fails, naming it.
    let out = env.run(["ls", "latest"]);
    assert_code(&out, 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains(old_id));
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 4);
    assert_eq!(report["errors"][0]["kind"], "snapshot_damaged");
    assert_eq!(report["errors"][0]["affected"][0]["paths"][0], "/");
}

/// The packs of each kind a snapshot needs, so that deleting them loses
/// exactly what they hold: one for data, two for a tree or a chunk list
/// (stored twice).
struct PackKinds {
    data: Vec<PathBuf>,
    tree: Vec<PathBuf>,
    list: Vec<PathBuf>,
    dictionary: Vec<PathBuf>,
}

/// Writes, through the library, a snapshot whose blobs are spread so that
/// one pack holds only `lost.txt`'s chunk, one only the tree of `sub/`, one
/// only `big.bin`'s chunk list and one only `app.db`'s zstd dictionary
/// (whose chunks are in a pack of their own). Returns the pack files and
/// the content of every file.
fn write_pack_kinds(repo_path: &Path) -> (PackKinds, BTreeMap<&'static str, Vec<u8>>) {
    use snap::internals::codec::Dictionary;
    use snap::internals::format::pack::BlobKind;
    use snap::internals::format::tree::ChunkList;
    use snap::{BlobId, Node, NodeKind, Snapshot, Tree};

    let repo = Repository::open(common::local_backend(repo_path), &NoProgress).unwrap();
    let node = |name: &str, size: u64| Node {
        size,
        ..common::bare_node(name.as_bytes(), NodeKind::File)
    };
    // Each closure's blobs go into packs of their own (a flush seals them).
    let in_own_pack = |save: &dyn Fn(&snap::internals::pack::BlobSaver<'_>) -> BlobId| {
        let saver = repo.saver();
        let id = save(&saver);
        saver.flush().unwrap();
        let mut at = vec![repo.locate(&id).unwrap().pack];
        for copy in repo.cache().copies(&id).unwrap() {
            if !at.contains(&copy.pack) {
                at.push(copy.pack);
            }
        }
        let files = at
            .iter()
            .map(|id| {
                let hex = id.to_hex();
                repo_path.join("data").join(&hex[..2]).join(&hex)
            })
            .collect::<Vec<_>>();
        (id, files)
    };
    let mut files = BTreeMap::new();
    let lost = pseudo_random(3_000, 1);
    let (lost_chunk, data) = in_own_pack(&|s| s.save(BlobKind::Data, &lost).unwrap());
    files.insert("lost.txt", lost.clone());
    let ok = b"still here\n".to_vec();
    let inner = pseudo_random(2_000, 2);
    let pieces: Vec<Vec<u8>> = (0..40).map(|i| pseudo_random(100, 10 + i)).collect();
    let big: Vec<u8> = pieces.concat();
    let saver = repo.saver();
    let ok_chunk = saver.save(BlobKind::Data, &ok).unwrap();
    let inner_chunk = saver.save(BlobKind::Data, &inner).unwrap();
    let big_chunks: Vec<BlobId> = pieces
        .iter()
        .map(|p| saver.save(BlobKind::Data, p).unwrap())
        .collect();
    saver.flush().unwrap();
    files.insert("ok.txt", ok.clone());
    files.insert("sub/inner.bin", inner.clone());
    files.insert("big.bin", big.clone());
    let dictionary_bytes = b"SQLite format 3\0 page after page of rows ".repeat(50);
    let (dictionary_id, dictionary) =
        in_own_pack(&|s| s.save(BlobKind::Data, &dictionary_bytes).unwrap());
    let loaded = Dictionary::new(dictionary_id, dictionary_bytes.clone());
    let db = b"SQLite format 3\0 page after page of rows, and a new row ".repeat(20);
    let (db_chunk, _) = in_own_pack(&|s| s.save_with(BlobKind::Data, &db, Some(&loaded)).unwrap());
    files.insert("app.db", db.clone());
    let (big_list, list) = in_own_pack(&|s| {
        s.save(
            BlobKind::List,
            &ChunkList {
                ids: big_chunks.clone(),
            }
            .to_bytes(),
        )
        .unwrap()
    });
    let sub_nodes = vec![Node {
        content: vec![inner_chunk],
        ..node("inner.bin", inner.len() as u64)
    }];
    let (sub_tree, tree) = in_own_pack(&|s| {
        s.save(
            BlobKind::Tree,
            &Tree {
                nodes: sub_nodes.clone(),
            }
            .to_bytes(),
        )
        .unwrap()
    });
    let root = Tree {
        nodes: vec![
            Node {
                content: vec![db_chunk],
                dictionary: Some(dictionary_id),
                ..node("app.db", db.len() as u64)
            },
            Node {
                content: vec![big_list],
                content_depth: 1,
                ..node("big.bin", big.len() as u64)
            },
            Node {
                content: vec![lost_chunk],
                ..node("lost.txt", lost.len() as u64)
            },
            Node {
                content: vec![ok_chunk],
                ..node("ok.txt", ok.len() as u64)
            },
            Node {
                kind: NodeKind::Dir,
                mode: 0o755,
                subtree: Some(sub_tree),
                ..node("sub", 0)
            },
        ],
    };
    let (root_tree, _) = in_own_pack(&|s| s.save(BlobKind::Tree, &root.to_bytes()).unwrap());
    repo.write_snapshot(&Snapshot {
        time: "2024-01-01T00:00:00Z".into(),
        host: "test".into(),
        user: "test".into(),
        paths: vec!["/kinds".into()],
        tags: Vec::new(),
        parent: None,
        tree: root_tree,
        summary: snap::Summary::default(),
        program: "pack kinds test".into(),
        original: None,
    })
    .unwrap();
    (
        PackKinds {
            data,
            tree,
            list,
            dictionary,
        },
        files,
    )
}

/// Which of the [`PackKinds`] a case deletes.
type PackOf = fn(&PackKinds) -> &[PathBuf];

/// Regression: with the pack holding a SQLite database's dictionary gone,
/// `check --read-data` stopped with exit 10 ("cannot load its dictionary")
/// instead of reporting the damage. For a deleted pack of every kind, check
/// (with and without --read-data) names exactly the lost paths and checks
/// everything else, and restore restores everything else.
#[test]
fn deleted_pack_of_every_kind_costs_exactly_its_paths() {
    let cases: [(&str, PackOf, &[&str]); 4] = [
        ("data", |k| &k.data, &["lost.txt"]),
        ("tree", |k| &k.tree, &["sub"]),
        ("chunk list", |k| &k.list, &["big.bin"]),
        ("dictionary", |k| &k.dictionary, &["app.db"]),
    ];
    for (kind, pack, lost) in cases {
        let env = Env::new();
        let (packs, files) = write_pack_kinds(&env.repo);
        let (code, report) = check(&env, &["--read-data"]);
        assert_eq!(
            code, 0,
            "{kind}: the intact repository checks clean: {report:#}"
        );
        let on_disk = report["packs"].as_u64().unwrap();
        let copies = pack(&packs);
        assert_eq!(
            copies.len(),
            if kind == "data" || kind == "dictionary" {
                1
            } else {
                2
            }
        );
        if let [first, _] = copies {
            // One copy lost costs nothing: check names the pack, no path.
            fs::remove_file(first).unwrap();
            let (code, report) = check(&env, &["--read-data"]);
            assert_eq!(code, 4, "{kind}: {report:#}");
            assert!(affected(&report).is_empty(), "{kind}: {report:#}");
            let (code, damaged) = restore(&env, "latest", &env.path("one-copy"));
            assert_eq!((code, damaged.len()), (0, 0), "{kind}");
        }
        for file in copies {
            fs::remove_file(file).ok();
        }
        for args in [&[][..], &["--read-data"]] {
            let (code, report) = check(&env, args);
            assert_eq!(code, 4, "{kind} {args:?}: {report:#}");
            let paths: Vec<String> = affected(&report).into_values().flatten().collect();
            assert_eq!(paths, lost, "{kind} {args:?}: {report:#}");
            let left = on_disk - copies.len() as u64;
            assert_eq!(report["packs"], left, "{kind}: {report:#}");
            if !args.is_empty() {
                assert_eq!(report["packs_read"], left, "{kind}: {report:#}");
            }
        }
        let target = env.path("restored");
        let (code, damaged) = restore(&env, "latest", &target);
        assert_eq!(code, 4, "{kind}");
        assert_eq!(damaged.into_iter().collect::<Vec<_>>(), lost, "{kind}");
        for (path, content) in &files {
            let restored = fs::read(target.join(path));
            if lost.iter().any(|l| path.starts_with(l)) {
                assert!(restored.is_err(), "{kind}: {path} was restored");
            } else {
                assert_eq!(&restored.unwrap(), content, "{kind}: {path}");
            }
        }
    }
}

/// Distinct trees below the snapshots, counted through the library, and
/// the number of snapshots.
fn distinct_trees(repo_path: &Path) -> (u64, u64) {
    let repo = Repository::open(common::local_backend(repo_path), &NoProgress).unwrap();
    let mut seen = BTreeSet::new();
    let snapshots = repo.snapshots().unwrap();
    let mut stack: Vec<_> = snapshots.iter().map(|(_, s)| s.tree).collect();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for node in repo.read_tree(&id).unwrap().nodes {
            stack.extend(node.subtree);
        }
    }
    (seen.len() as u64, snapshots.len() as u64)
}

/// Regression: `check` reported another tree count on every run of an
/// unchanged repository (18, 19, 20, 21, 24): it counted walks, and threads
/// walking a shared subtree at once each counted it. Counts are now the
/// number of distinct trees, the same in every run and in text and JSON.
#[test]
fn check_counts_are_exact_and_repeatable() {
    let env = Env::new();
    let src = env.path("src");
    // Many identical folders: the same subtrees reached from many places.
    for i in 0..24 {
        for sub in ["a", "a/b", "c"] {
            fs::create_dir_all(src.join(format!("copy{i}/{sub}"))).unwrap();
        }
        fs::write(src.join(format!("copy{i}/a/b/same.txt")), b"same\n").unwrap();
        fs::write(src.join(format!("copy{i}/c/same.txt")), b"same too\n").unwrap();
    }
    env.backup(&[&src], &[]);
    fs::write(src.join("copy3/c/changed.txt"), b"changed\n").unwrap();
    env.backup(&[&src], &[]);
    let (trees, snapshots) = distinct_trees(&env.repo);
    let mut counts = BTreeSet::new();
    for _ in 0..6 {
        let (code, report) = check(&env, &[]);
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["snapshots"], snapshots);
        assert_eq!(report["trees"], trees, "{report:#}");
        counts.insert((report["trees"].to_string(), report["blobs"].to_string()));
        let out = env.run(["check"]);
        assert_code(&out, 0);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        let expected = format!(
            "checked {snapshots} snapshots, {trees} trees, {} blobs,",
            report["blobs"]
        );
        assert!(text.contains(&expected), "{expected:?} not in {text}");
    }
    assert_eq!(counts.len(), 1, "counts differ between runs: {counts:?}");
}
