//! `snap forget` and `snap prune` through the real binary: every keep
//! option on snapshots with chosen times, dry runs that change nothing,
//! space given back with every remaining snapshot restoring bit-identical,
//! backups running while prunes run, and prunes killed at random points.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Env, assert_code, contents, pseudo_random};
use serde_json::Value;

/// Restores snapshot `id` into a fresh folder and checks that `src` in it
/// holds exactly `expected`.
#[track_caller]
fn assert_restores(env: &Env, id: &str, expected: &BTreeMap<PathBuf, Option<Vec<u8>>>) {
    static RESTORES: AtomicU64 = AtomicU64::new(0);
    let target = env.path(&format!(
        "restore-{}",
        RESTORES.fetch_add(1, Ordering::Relaxed)
    ));
    env.restore(id, &target);
    let restored = contents(&target.join("src"));
    assert!(
        restored == *expected,
        "snapshot {id} does not restore to what was backed up: {} entries restored, {} expected",
        restored.len(),
        expected.len()
    );
    fs::remove_dir_all(&target).unwrap();
}

/// Bytes of the repository's objects (packs, index deltas, snapshots).
fn repo_bytes(env: &Env) -> u64 {
    fn size(path: &Path) -> u64 {
        if path.is_dir() {
            fs::read_dir(path)
                .unwrap()
                .map(|e| size(&e.unwrap().path()))
                .sum()
        } else {
            fs::metadata(path).map_or(0, |m| m.len())
        }
    }
    ["data", "index", "snapshots"]
        .iter()
        .map(|d| size(&env.repo.join(d)))
        .sum()
}

/// Names, sizes and contents of every repository file outside the cache
/// and the temporary folder: what "nothing changed" means.
fn fingerprint(env: &Env) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut all = contents(&env.repo);
    all.retain(|p, _| !p.starts_with("cache") && !p.starts_with("tmp"));
    all
}

/// `snap backup SRC --time TIME EXTRA...`; returns the snapshot id.
#[track_caller]
fn backup_at(env: &Env, src: &Path, time: &str, extra: &[&str]) -> String {
    let mut args = vec!["--time", time];
    args.extend_from_slice(extra);
    env.backup(&[src], &args)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

/// The ids a `forget --dry-run --json` with `args` keeps.
#[track_caller]
fn kept_by(env: &Env, args: &[&str]) -> BTreeSet<String> {
    let mut all = vec!["forget", "--dry-run"];
    all.extend_from_slice(args);
    let v = env.json(&all);
    let kept = ids(&v["keep"]);
    let removed = ids(&v["remove"]);
    assert!(kept.is_disjoint(&removed));
    for entry in v["keep"].as_array().unwrap() {
        assert!(
            !entry["reasons"].as_array().unwrap().is_empty(),
            "a kept snapshot without reasons: {entry}"
        );
    }
    kept
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

#[test]
fn forget_keeps_the_newest_snapshot_of_each_bucket() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let times = [
        ("a", "2025-06-15T10:00:00Z"),
        ("b", "2025-12-31T23:00:00Z"),
        ("c", "2026-01-01T01:00:00Z"),
        ("d", "2026-01-01T09:00:00Z"),
        ("e", "2026-01-01T09:30:00Z"),
        ("f", "2026-01-05T12:00:00Z"),
        ("g", "2026-01-06T12:00:00Z"),
        ("h", "2026-02-01T08:00:00Z"),
        ("i", "2026-02-01T08:45:00Z"),
        ("j", "2026-02-03T00:00:00Z"),
    ];
    let mut id = BTreeMap::new();
    for (name, time) in times {
        fs::write(src.join("file"), name).unwrap();
        let tag: &[&str] = if name == "a" { &["--tag", "keep"] } else { &[] };
        let extra = [&["--host", "main"][..], tag].concat();
        id.insert(name, backup_at(&env, &src, time, &extra));
    }
    fs::write(src.join("file"), "k").unwrap();
    let other = backup_at(&env, &src, "2026-01-10T00:00:00Z", &["--host", "other"]);
    let s = |names: &str| -> BTreeSet<String> {
        names
            .chars()
            .map(|c| id[c.to_string().as_str()].clone())
            .collect()
    };
    let before = fingerprint(&env);

    // Groups: by host and paths unless told otherwise.
    let mut with_other = s("jih");
    with_other.insert(other.clone());
    assert_eq!(kept_by(&env, &["--keep-last", "3"]), with_other);
    assert_eq!(
        kept_by(&env, &["--keep-last", "1", "--group-by", ""]),
        s("j")
    );
    assert_eq!(
        kept_by(&env, &["--keep-last", "3", "--host", "nobody"]),
        BTreeSet::new()
    );
    let filter_host = |args: &[&str]| kept_by(&env, &[args, &["--host", "main"]].concat());
    // h and i share an hour (08:xx) and a day; c, d and e share a day.
    assert_eq!(filter_host(&["--keep-hourly", "3"]), s("jig"));
    assert_eq!(filter_host(&["--keep-daily", "4"]), s("jigf"));
    assert_eq!(filter_host(&["--keep-daily", "100"]), s("jigfeba"));
    // ISO weeks: 2025-12-31 and 2026-01-01 are both in 2026-W01.
    assert_eq!(filter_host(&["--keep-weekly", "4"]), s("jige"));
    assert_eq!(filter_host(&["--keep-monthly", "3"]), s("jgb"));
    assert_eq!(filter_host(&["--keep-yearly", "5"]), s("jb"));
    assert_eq!(filter_host(&["--keep-within", "2d"]), s("jih"));
    assert_eq!(filter_host(&["--keep-within", "1m"]), s("jihgf"));
    assert_eq!(filter_host(&["--keep-tag", "keep"]), s("a"));
    assert_eq!(
        filter_host(&["--keep-daily", "1", "--keep-tag", "keep"]),
        s("ja")
    );
    assert_eq!(filter_host(&["--keep-last", "unlimited"]), s("abcdefghij"));

    // Buckets are local days: in Berlin (UTC+1), b (23:00 UTC on New
    // Year's Eve) falls on January 1 with c, d and e.
    let berlin = env
        .cmd()
        .env("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
        .args([
            "--json",
            "forget",
            "--dry-run",
            "--keep-daily",
            "100",
            "--host",
            "main",
        ])
        .output()
        .unwrap();
    assert_code(&berlin, 0);
    let v: Value = serde_json::from_slice(&berlin.stdout).unwrap();
    assert_eq!(ids(&v["keep"]), s("jigfea"));

    // The reasons say which rules kept a snapshot.
    let v = env.json([
        "forget",
        "--dry-run",
        "--keep-last",
        "1",
        "--keep-daily",
        "2",
        "--host",
        "main",
    ]);
    let newest = &v["keep"][0];
    assert_eq!(newest["id"], id["j"].as_str());
    assert_eq!(
        newest["reasons"],
        serde_json::json!(["last snapshot", "daily snapshot"])
    );
    assert_eq!(
        v["keep"][1]["reasons"],
        serde_json::json!(["daily snapshot"])
    );
    assert_eq!(ids(&v["remove"]).len(), 8);
    assert!(v["remove"][0]["id"].is_string());

    // The human dry run lists every snapshot.
    let text = String::from_utf8(env.ok(["forget", "--dry-run", "--keep-daily", "2"])).unwrap();
    let listed = text
        .lines()
        .filter(|l| l.starts_with("  keep ") || l.starts_with("  remove "))
        .count();
    assert_eq!(listed, 11, "{text}");
    assert!(text.contains("daily snapshot"));

    // No policy and no ids: a usage error, never "forget everything".
    assert_code(&env.run(["forget"]), 2);
    assert_code(&env.run(["forget", "--dry-run"]), 2);
    assert_code(&env.run(["forget", "latest", "--keep-last", "1"]), 2);
    assert_code(&env.run(["forget", "--keep-within", "3x"]), 2);
    assert_code(
        &env.run(["forget", "--group-by", "colour", "--keep-last", "1"]),
        2,
    );
    assert_code(&env.run(["forget", "ffffffff"]), 10);
    assert_code(&env.run(["prune", "--max-unused", "150%", "--dry-run"]), 2);

    // Dry runs (also with --prune, and prune's own) changed nothing.
    env.ok([
        "forget",
        "--dry-run",
        "--keep-last",
        "1",
        "--prune",
        "--instant-delete",
    ]);
    env.ok(["prune", "--dry-run", "--instant-delete"]);
    assert!(
        fingerprint(&env) == before,
        "a dry run changed the repository"
    );

    // Forget by id and by selector, then by policy.
    let v = env.json(["forget", id["a"].as_str(), "latest~1", "--host", "main"]);
    assert_eq!(ids(&v["remove"]), set(&[&id["a"], &id["i"]]));
    let v = env.json(["forget", "--keep-daily", "2", "--host", "main"]);
    assert_eq!(ids(&v["keep"]), s("jh"));
    let left: BTreeSet<String> = env
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    let mut expected = s("jh");
    expected.insert(other);
    assert_eq!(left, expected);
}

/// `len` pseudo-random bytes, different for every `seed` (the generator
/// ignores a seed's lowest bit).
fn data(len: usize, seed: u64) -> Vec<u8> {
    pseudo_random(len, seed << 8)
}

/// A source folder whose state `n` has a shared file, and files that come
/// and go: state n holds `keep.bin` and `n-1.bin`, `n.bin` (of `size`).
fn write_state(src: &Path, n: u64, size: usize) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fs::create_dir_all(src.join("sub")).unwrap();
    let keep = src.join("keep.bin");
    if !keep.exists() {
        fs::write(&keep, data(size, 7)).unwrap();
    }
    for entry in fs::read_dir(src.join("sub")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let i: u64 = name.trim_end_matches(".bin").parse().unwrap();
        if i + 1 < n {
            fs::remove_file(path).unwrap();
        }
    }
    fs::write(src.join(format!("sub/{n}.bin")), data(size, 1000 + n)).unwrap();
    fs::write(src.join("counter"), n.to_string()).unwrap();
    contents(src)
}

#[test]
fn prune_gives_space_back_and_what_is_left_restores() {
    let env = Env::new();
    let src = env.path("src");
    let mut states = BTreeMap::new();
    for n in 0..6 {
        let state = write_state(&src, n, 1 << 20);
        let id = backup_at(&env, &src, &format!("2026-03-0{}T10:00:00Z", n + 1), &[]);
        states.insert(id, state);
    }
    // One pack that is half dead after a forget: both files in one backup,
    // then one of them removed.
    fs::write(src.join("half-a.bin"), data(1 << 20, 99)).unwrap();
    fs::write(src.join("half-b.bin"), data(1 << 20, 98)).unwrap();
    let with_both = backup_at(&env, &src, "2026-03-07T10:00:00Z", &[]);
    states.insert(with_both.clone(), contents(&src));
    fs::remove_file(src.join("half-b.bin")).unwrap();
    let last = backup_at(&env, &src, "2026-03-08T10:00:00Z", &[]);
    states.insert(last.clone(), contents(&src));
    let full = repo_bytes(&env);

    // Forget all but the last one: the default prune marks, deletes nothing.
    let v = env.json(["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(ids(&v["keep"]), set(&[&last]));
    let pruned = &v["prune"];
    assert!(!pruned["repack"].as_array().unwrap().is_empty(), "{pruned}");
    assert!(pruned["mark"].as_array().unwrap().len() >= 6, "{pruned}");
    assert_eq!(pruned["report"]["packs_deleted"], 0);
    assert!(
        repo_bytes(&env) >= full,
        "nothing is deleted before the grace period"
    );
    assert_restores(&env, &last, &states[&last]);
    assert_code(&env.run(["check"]), 0);

    // A dry run with a grace period of zero shows what goes now.
    let plan = env.json(["prune", "--dry-run", "--grace-period", "0s"]);
    let to_delete = plan["delete"].as_array().unwrap().len();
    assert!(to_delete >= 7, "{plan}");
    assert!(plan["bytes_freed"].as_u64().unwrap() > 6 << 20, "{plan}");

    let v = env.json(["prune", "--grace-period", "0s"]);
    assert_eq!(v["report"]["packs_deleted"], to_delete as u64, "{v}");
    assert!(v["report"]["deferred"].is_null());
    let after = repo_bytes(&env);
    // What is left: keep.bin, 4.bin, 5.bin, half-a.bin (1 MiB each) and
    // a little metadata.
    assert!(
        after < (4 << 20) + (256 << 10) && after + (4 << 20) < full,
        "the repository went from {full} to {after} bytes only"
    );
    assert_restores(&env, &last, &states[&last]);
    assert_code(&env.run(["check"]), 0);
    assert!(!env.holds_lock());
    // Nothing left to do.
    let again = env.json(["prune", "--instant-delete"]);
    assert_eq!(again["report"]["packs_deleted"], 0, "{again}");
    assert_eq!(again["report"]["blobs_copied"], 0, "{again}");

    // --instant-delete gives the space back in the same run.
    for n in 6..9 {
        let state = write_state(&src, n, 1 << 20);
        let id = backup_at(&env, &src, &format!("2026-03-1{n}T10:00:00Z"), &[]);
        states.insert(id, state);
    }
    let before = repo_bytes(&env);
    env.ok(["forget", "--keep-last", "1", "--prune", "--instant-delete"]);
    assert!(repo_bytes(&env) + (2 << 20) < before);
    for s in env.snapshots() {
        let id = s["id"].as_str().unwrap();
        assert_restores(&env, id, &states[id]);
    }
    assert_code(&env.run(["check"]), 0);
}

#[test]
fn backups_never_fail_or_lose_data_while_prunes_run() {
    let env = Env::new();
    let src = env.path("src");
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (states, prunes) = std::thread::scope(|scope| {
        let backups = scope.spawn(|| {
            // Stops the prunes also when a backup fails (and panics).
            let _stop = StopOnDrop(&stop);
            let mut states = BTreeMap::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let state = write_state(&src, n, 200 << 10);
                let out = env.run([
                    OsString::from("--json"),
                    "backup".into(),
                    src.clone().into(),
                ]);
                assert_code(&out, 0);
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                states.insert(v["id"].as_str().unwrap().to_string(), state);
                n += 1;
            }
            states
        });
        let prunes = scope.spawn(|| {
            let mut runs = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let args: &[&str] = match i % 3 {
                    0 => &[
                        "forget",
                        "--keep-last",
                        "2",
                        "--prune",
                        "--instant-delete",
                        "--max-unused",
                        "0%",
                    ],
                    1 => &["prune", "--grace-period", "0s", "--max-unused", "0%"],
                    _ => &["forget", "--keep-last", "3", "--prune", "--instant-delete"],
                };
                let v = env.json(args);
                runs.push(v);
                i += 1;
            }
            runs
        });
        (backups.join().unwrap(), prunes.join().unwrap())
    });
    assert!(states.len() >= 5, "only {} backups ran", states.len());
    assert!(prunes.len() >= 3, "only {} prunes ran", prunes.len());
    // Once nothing runs, a prune completes and deletes what was deferred.
    env.ok(["forget", "--keep-last", "4"]);
    let v = env.json(["prune", "--instant-delete"]);
    assert!(v["report"]["deferred"].is_null(), "{v}");
    let remaining = env.snapshots();
    assert!(remaining.len() >= 2);
    for s in &remaining {
        let id = s["id"].as_str().unwrap();
        assert_restores(&env, id, &states[id]);
    }
    assert_code(&env.run(["check"]), 0);
    let deleted: u64 = prunes
        .iter()
        .map(|v| {
            v.get("prune").unwrap_or(v)["report"]["packs_deleted"]
                .as_u64()
                .unwrap()
        })
        .sum();
    eprintln!(
        "{} backups, {} prunes ({} packs deleted while backups ran)",
        states.len(),
        prunes.len(),
        deleted
    );
}

/// Sets its flag when dropped, also while unwinding from a panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs `snap prune ARGS` in the background.
fn spawn_prune(env: &Env, args: &[&str]) -> Child {
    env_cmd(env)
        .arg("prune")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn env_cmd(env: &Env) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::snap_bin());
    cmd.env_remove("SNAP_REPO")
        .env("TZ", "UTC")
        .env("XDG_CACHE_HOME", env.cache_home())
        .arg("-r")
        .arg(&env.repo)
        .arg("-q");
    cmd
}

#[test]
fn a_prune_killed_at_any_point_leaves_everything_restorable() {
    let env = Env::new();
    let src = env.path("src");
    let mut states = BTreeMap::new();
    let mut n = 0u64;
    let mut step = |env: &Env, states: &mut BTreeMap<String, _>| {
        let state = write_state(&src, n, 400 << 10);
        let id = backup_at(env, &src, &format!("2026-04-01T{:02}:00:00Z", n), &[]);
        states.insert(id, state);
        n += 1;
    };
    for _ in 0..4 {
        step(&env, &mut states);
    }
    // How long a full prune takes here, to spread the kills over it.
    env.ok(["forget", "--keep-last", "3"]);
    let started = Instant::now();
    env.ok(["prune", "--instant-delete", "--max-unused", "0%"]);
    let full = started.elapsed().max(Duration::from_millis(50));
    let mut seed = 0x5eed_u64;
    let mut killed = 0;
    for round in 0..10u32 {
        step(&env, &mut states);
        step(&env, &mut states);
        env.ok(["forget", "--keep-last", "3"]);
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let delay = full
            .mul_f64(f64::from(round) / 10.0 + (seed >> 40) as f64 / (1u64 << 24) as f64 / 10.0);
        let mut child = spawn_prune(&env, &["--instant-delete", "--max-unused", "0%"]);
        std::thread::sleep(delay);
        let _ = child.kill();
        if child.wait().unwrap().code().is_none() {
            killed += 1;
        }
        for s in env.snapshots() {
            let id = s["id"].as_str().unwrap();
            assert_restores(&env, id, &states[id]);
        }
        let v = env.json(["prune", "--instant-delete", "--max-unused", "0%"]);
        assert!(v["report"]["deferred"].is_null(), "round {round}: {v}");
    }
    eprintln!("{killed} of 10 prunes killed while running (a full prune takes {full:?})");
    // The kill times are spread over the measured duration of one prune;
    // on a loaded machine some prunes still finish first.
    assert!(
        killed >= 3,
        "only {killed} prunes were killed while running"
    );
    // After the last completed prune: nothing left over, everything checks.
    let v = env.json(["prune", "--instant-delete", "--dry-run"]);
    assert_eq!(v["totals"]["delete_packs"], 0, "{v}");
    assert_code(&env.run(["check"]), 0);
    for s in env.snapshots() {
        let id = s["id"].as_str().unwrap();
        assert_restores(&env, id, &states[id]);
    }
}

#[test]
fn prune_stops_on_damage_and_while_another_prune_runs() {
    let env = Env::new();
    let src = env.path("src");
    write_state(&src, 0, 100 << 10);
    let old = backup_at(&env, &src, "2026-05-01T10:00:00Z", &[]);
    write_state(&src, 1, 100 << 10);
    write_state(&src, 2, 100 << 10);
    backup_at(&env, &src, "2026-05-02T10:00:00Z", &[]);
    env.ok(["forget", old.as_str()]);

    // Another prune holds the lock (this test process stands in for it).
    let repo = snap::Repository::open(common::local_backend(&env.repo), &snap::NoProgress).unwrap();
    let held = repo.lock_prune().unwrap();
    let before = fingerprint(&env);
    let out = env.run(["prune", "--instant-delete"]);
    assert_code(&out, 1);
    assert!(
        common::stderr_text(&out).contains("another prune is running"),
        "{}",
        common::stderr_text(&out)
    );
    assert!(fingerprint(&env) == before);
    drop(held);
    drop(repo);

    // A damaged snapshot: prune cannot know what it uses, so it stops.
    let snapshot = common::first_entry(&env.repo.join("snapshots"));
    let good = fs::read(&snapshot).unwrap();
    common::flip_byte(&snapshot, u64::MAX); // the last byte
    let before = fingerprint(&env);
    assert_code(&env.run(["prune", "--instant-delete"]), 4);
    assert!(
        fingerprint(&env) == before,
        "a prune on a damaged repository changed it"
    );
    fs::write(&snapshot, &good).unwrap();

    // A damaged index delta: the same.
    let delta = common::first_entry(&env.repo.join("index"));
    let good = fs::read(&delta).unwrap();
    common::flip_byte(&delta, 20);
    assert_code(&env.run(["prune", "--instant-delete"]), 4);
    fs::write(&delta, &good).unwrap();

    let v = env.json(["prune", "--instant-delete"]);
    assert!(v["report"]["packs_deleted"].as_u64().unwrap() > 0, "{v}");
}
