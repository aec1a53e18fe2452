//! Format longevity through the real binary: the committed fixture
//! repositories (tests/fixtures/README.md) restore and check forever, and
//! config features gate what a build may open: an unknown required feature
//! refuses the repository, an unknown optional one is ignored, and turning
//! the SQLite dictionary feature on survives SIGKILL.

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Env, assert_code, local_backend, stderr_text};
use snap::internals::format::config::{Config, Feature, FeatureEntry};

/// The committed fixture `name`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// An Env whose repository is a copy of fixture `name` (the committed one
/// is never opened, so no run can change it), with the fixture's
/// credential files copied next to it (mode 0600: git keeps no modes).
fn fixture_env(name: &str) -> Env {
    let env = Env::uninitialized();
    let from = fixture(name);
    let status = std::process::Command::new("cp")
        .arg("-R")
        .arg(from.join("repo"))
        .arg(&env.repo)
        .status()
        .unwrap();
    assert!(status.success(), "copy fixture {name}");
    for file in ["password", "identity.txt", "writer.key"] {
        if from.join(file).exists() {
            fs::copy(from.join(file), env.path(file)).unwrap();
            fs::set_permissions(env.path(file), fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    env
}

/// Restores the latest snapshot of fixture `name` with `credentials`
/// (paths relative to the Env), runs `check --read-data`, and compares the
/// restored tree with the manifest recorded when the fixture was made.
/// Returns the Env for further checks.
fn restore_fixture(name: &str, credentials: &[&str]) -> Env {
    let env = fixture_env(name);
    let args = |rest: &[&str]| -> Vec<std::ffi::OsString> {
        let mut all = Vec::new();
        for pair in credentials.chunks(2) {
            all.push(pair[0].into());
            all.push(env.path(pair[1]).into_os_string());
        }
        all.extend(rest.iter().map(Into::into));
        all
    };
    let target = env.path("restored");
    let mut restore = args(&["restore", "latest", "--target"]);
    restore.push(target.clone().into_os_string());
    env.ok(restore);
    env.ok(args(&["check", "--read-data"]));
    let recorded = fs::read_to_string(fixture(name).join("manifest.txt")).unwrap();
    let restored = common::manifest::manifest(&target.join("tree")).unwrap();
    assert_eq!(
        restored, recorded,
        "fixture {name}: the restore differs from the recorded tree"
    );
    env
}

/// The version byte of the config in `repo`.
fn config_version(repo: &Path) -> u8 {
    fs::read(repo.join("config")).unwrap()[8]
}

/// The names of the features on in the config of `repo`.
fn feature_names(repo: &Path) -> Vec<String> {
    let config = Config::from_bytes(&fs::read(repo.join("config")).unwrap()).unwrap();
    config.features.into_iter().map(|f| f.name).collect()
}

/// The node of `path` in the latest snapshot of the unencrypted `repo`.
fn latest_node(repo: &Path, path: &str) -> snap::Node {
    let repo = snap::Repository::open(local_backend(repo), &snap::NoProgress).unwrap();
    let (_, snapshot) = repo.snapshots().unwrap().pop().unwrap();
    snap::ops::browse::find_node(&repo, snapshot.tree, path).unwrap()
}

#[test]
fn fixture_plain() {
    let env = restore_fixture("plain", &[]);
    assert_eq!(env.snapshots().len(), 2);
    assert_eq!(config_version(&env.repo), 1);
}

#[test]
fn fixture_passphrase() {
    let env = restore_fixture("passphrase", &["--password-file", "password"]);
    assert_eq!(config_version(&env.repo), 1);
}

#[test]
fn fixture_recipient() {
    restore_fixture("recipient", &["--identity-file", "identity.txt"]);
}

#[test]
fn fixture_sqlite_dictionary() {
    let env = restore_fixture("sqlite-dictionary", &[]);
    assert_eq!(config_version(&env.repo), 2, "the required feature is on");
    let node = latest_node(&env.repo, "tree/data/big.sqlite");
    assert!(node.dictionary.is_some(), "the database has a dictionary");
    // A copy carries the dictionary, and with it the feature.
    let target = Env::new();
    assert_eq!(feature_names(&target.repo), ["metadata-twice"]);
    env.ok(["copy".as_ref(), "--to".as_ref(), target.repo.as_os_str()]);
    assert_eq!(
        feature_names(&target.repo),
        ["metadata-twice", "sqlite-dictionary"]
    );
    target.ok(["check", "--read-data"]);
}

#[test]
fn fixture_chunk_lists() {
    let env = restore_fixture("chunk-lists", &[]);
    assert_eq!(config_version(&env.repo), 1);
    for path in ["tree/data/zeros.bin", "tree/data/small.sqlite"] {
        let node = latest_node(&env.repo, path);
        assert!(node.content_depth >= 1, "{path} is stored as chunk lists");
        assert!(node.dictionary.is_none(), "{path} has no dictionary");
    }
}

#[test]
fn fixture_parity() {
    let env = restore_fixture("parity", &["--password-file", "password"]);
    assert_eq!(config_version(&env.repo), 2, "parity is a required feature");
    // The committed parity object still rebuilds each pack in turn.
    let password = env.path("password");
    let mut packs: Vec<PathBuf> = Vec::new();
    for folder in fs::read_dir(env.repo.join("data")).unwrap() {
        for pack in fs::read_dir(folder.unwrap().path()).unwrap() {
            packs.push(pack.unwrap().path());
        }
    }
    assert_eq!(packs.len(), 2, "a data pack and a metadata pack");
    for (i, pack) in packs.iter().enumerate() {
        let bytes = fs::read(pack).unwrap();
        fs::remove_file(pack).unwrap();
        let target = env.path(&format!("rebuilt-{i}"));
        let out = env
            .cmd()
            .arg("--password-file")
            .arg(&password)
            .args(["restore", "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert_code(&out, 0);
        let recorded = fs::read_to_string(fixture("parity").join("manifest.txt")).unwrap();
        let restored = common::manifest::manifest(&target.join("tree")).unwrap();
        assert_eq!(
            restored, recorded,
            "pack {i} rebuilt from the committed parity"
        );
        fs::write(pack, bytes).unwrap();
    }
}

#[test]
fn fixture_drill_records() {
    let env = restore_fixture("drill-records", &["--password-file", "password"]);
    assert_eq!(config_version(&env.repo), 1, "drill-records is optional");
    // The sealed record still names the snapshot, for snapshots and check.
    let password = env.path("password");
    let listed = common::run_json(
        env.cmd()
            .arg("--password-file")
            .arg(&password)
            .args(["snapshots", "--json"]),
    );
    let drill = &listed[0]["last_drill"];
    assert_eq!(drill["ok"], true, "{listed}");
    let out = env
        .cmd()
        .arg("--password-file")
        .arg(&password)
        .arg("check")
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("drill"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn fixture_write_only() {
    let env = restore_fixture("write-only", &["--password-file", "password"]);
    // The snapshot was written with the write-only key, which cannot read it.
    let out = env
        .cmd()
        .arg("--key-file")
        .arg(env.path("writer.key"))
        .args(["restore", "latest", "--target"])
        .arg(env.path("not-allowed"))
        .output()
        .unwrap();
    assert_code(&out, 5);
}

/// Rewrites the config of `repo` with `features` (name, required), keeping
/// everything else.
fn set_features(repo: &Path, features: &[(&str, bool)]) {
    let path = repo.join("config");
    let mut config = Config::from_bytes(&fs::read(&path).unwrap()).unwrap();
    config.features = features
        .iter()
        .map(|&(name, required)| FeatureEntry {
            name: name.to_owned(),
            required,
        })
        .collect();
    fs::write(&path, config.to_bytes()).unwrap();
}

#[test]
fn an_unknown_required_feature_refuses_the_repository() {
    let env = Env::new();
    set_features(&env.repo, &[("time-travel", true)]);
    assert_eq!(config_version(&env.repo), 2);
    for args in [&["snapshots"][..], &["check"]] {
        let out = env.run(args);
        assert_code(&out, 1);
        assert_eq!(
            stderr_text(&out),
            "snap: this repository uses time-travel; upgrade snap\n"
        );
    }
}

#[test]
fn an_unknown_optional_feature_is_ignored_and_kept() {
    let env = Env::new();
    set_features(&env.repo, &[("shiny-hints", false)]);
    assert_eq!(config_version(&env.repo), 1);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), "a\n").unwrap();
    env.backup(&[&src], &[]);
    env.ok(["check", "--read-data"]);
    // A database big enough for a dictionary turns its feature on, and the
    // unknown optional entry stays.
    database(&src.join("app.db"), 12_000);
    env.backup(&[&src], &[]);
    let config = Config::from_bytes(&fs::read(env.repo.join("config")).unwrap()).unwrap();
    let names: Vec<&str> = config.features.iter().map(|f| f.name.as_str()).collect();
    // The first backup of this build turned metadata-twice back on.
    assert_eq!(
        names,
        ["shiny-hints", "metadata-twice", "sqlite-dictionary"]
    );
    assert_eq!(config_version(&env.repo), 2);
    env.ok(["check", "--read-data"]);
}

/// A SQLite database of `rows` rows of text at `path` (12 000 rows make
/// about 1 MiB, enough for a dictionary).
fn database(path: &Path, rows: u32) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "PRAGMA page_size=4096; CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);",
    )
    .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for i in 0..rows {
        tx.execute(
            "INSERT INTO notes(body) VALUES (?1)",
            [format!(
                "note {i}: the quick brown fox jumps over the lazy dog {} times, then rests",
                i * 7919 % 10007
            )],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// A repository without dictionaries lacks the dictionary feature, also
/// after backups; the first dictionary turns it on.
#[test]
fn the_dictionary_feature_is_set_when_the_first_dictionary_is_stored() {
    let env = Env::new();
    assert_eq!(feature_names(&env.repo), ["metadata-twice"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    database(&src.join("small.db"), 100);
    env.backup(&[&src], &[]);
    assert_eq!(
        feature_names(&env.repo),
        ["metadata-twice"],
        "a small database gets none"
    );
    database(&src.join("big.db"), 12_000);
    env.backup(&[&src], &[]);
    assert_eq!(
        feature_names(&env.repo),
        ["metadata-twice", "sqlite-dictionary"]
    );
    env.ok(["check", "--read-data"]);
}

/// A failing config write (a torn one: part of it left in a temporary
/// file) fails the backup before any dictionary is stored, and leaves the
/// old config: `check` passes and the next backup turns the feature on.
#[test]
fn a_failed_config_rewrite_fails_the_backup_and_keeps_the_old_config() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    database(&src.join("app.db"), 12_000);
    let out = env
        .cmd()
        .env("SNAP_FAULTS", "write:config:1:short")
        .arg("backup")
        .arg(&src)
        .output()
        .unwrap();
    assert_code(&out, 1);
    assert_eq!(feature_names(&env.repo), ["metadata-twice"]);
    env.ok(["check"]);
    env.backup(&[&src], &[]);
    assert_eq!(
        feature_names(&env.repo),
        ["metadata-twice", "sqlite-dictionary"]
    );
    env.ok(["check", "--read-data"]);
}

/// Starts `snap backup SRC` into the Env's repository, silent.
fn spawn_backup(env: &Env, src: &Path) -> std::process::Child {
    env.spawnable()
        .args(["-q", "backup"])
        .arg(src)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// When the config of a backup of `src` into a new repository gets the
/// dictionary feature, measured from the start of the process.
fn time_to_feature(src: &Path) -> Duration {
    let env = Env::new();
    let started = Instant::now();
    let mut child = spawn_backup(&env, src);
    let dictionary = |repo: &Path| feature_names(repo).iter().any(|n| n == "sqlite-dictionary");
    while !dictionary(&env.repo) {
        if child.try_wait().unwrap().is_some() {
            assert!(dictionary(&env.repo), "the backup turned no feature on");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = started.elapsed();
    assert!(child.wait().unwrap().success());
    elapsed.max(Duration::from_millis(20))
}

/// SIGKILLs `snap backup` of a database that gets the repository's first
/// dictionary, at instants spread from half to one and a half times the
/// moment the config is rewritten (measured once), so kills land before,
/// around and after the rewrite: the config always decodes, with or
/// without the feature, `snap check` passes, and the next backup succeeds
/// with the feature on.
#[test]
fn a_killed_first_dictionary_backup_leaves_a_config_that_reads() {
    const RUNS: u32 = 10;
    let base = Env::uninitialized();
    let src = base.path("src");
    fs::create_dir(&src).unwrap();
    database(&src.join("app.db"), 24_000);
    let rewrite = time_to_feature(&src);
    let mut with = [0u32; 2];
    for run in 0..RUNS {
        let env = Env::new();
        let mut child = spawn_backup(&env, &src);
        std::thread::sleep(rewrite / 2 + rewrite * run / (RUNS - 1));
        child.kill().ok();
        child.wait().unwrap();

        let bytes = fs::read(env.repo.join("config")).unwrap();
        let config = Config::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("run {run}: the config does not decode: {e}"));
        assert_eq!(bytes[8], config.version(), "run {run}");
        with[usize::from(config.has_feature(Feature::SqliteDictionary))] += 1;
        env.ok(["check"]);
        env.backup(&[&src], &[]);
        let config = Config::from_bytes(&fs::read(env.repo.join("config")).unwrap()).unwrap();
        assert!(config.has_feature(Feature::SqliteDictionary), "run {run}");
        assert_eq!(config_version(&env.repo), 2, "run {run}");
        env.ok(["check", "--read-data"]);
    }
    println!(
        "after the kill: {} configs without the dictionary feature, {} with it (rewrite at {rewrite:?})",
        with[0], with[1]
    );
}

/// Git, rclone and some object-store mirrors keep no empty folders: a
/// repository copied that way (as the fixtures are) has no `locks/`,
/// `tmp/` or empty `data/xx/`. It still takes backups, forgets and prunes,
/// and check passes.
#[test]
fn a_repository_copied_without_its_empty_folders_takes_backups() {
    let env = fixture_env("plain");
    for folder in ["locks", "tmp"] {
        assert!(!env.repo.join(folder).exists(), "git kept {folder}/");
    }
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("new.md"), "written after the copy\n").unwrap();
    env.backup(&[&src], &[]);
    env.ok(["forget", "--keep-last", "1", "--prune"]);
    env.ok(["check", "--read-data"]);
    let target = env.path("restored");
    env.ok([
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(
        fs::read_to_string(target.join("src/new.md")).unwrap(),
        "written after the copy\n"
    );
}

/// The packs of the unencrypted `repo` that hold only trees and chunk lists.
fn metadata_packs(repo: &Path) -> Vec<PathBuf> {
    use snap::internals::format::pack::BlobKind;
    common::pack_trailers(repo)
        .into_iter()
        .filter(|(_, _, blobs)| blobs.iter().all(|b| b.kind != BlobKind::Data))
        .map(|(path, _, _)| path)
        .collect()
}

#[test]
fn fixture_metadata_twice() {
    let env = restore_fixture("metadata-twice", &[]);
    assert_eq!(config_version(&env.repo), 2, "the required feature is on");
    assert_eq!(feature_names(&env.repo), ["metadata-twice"]);
    let node = latest_node(&env.repo, "tree/data/zeros.bin");
    assert!(
        node.content_depth >= 1,
        "zeros.bin is stored as a chunk list"
    );
    // Either metadata pack alone holds every tree and the chunk list.
    let packs = metadata_packs(&env.repo);
    assert_eq!(packs.len(), 2, "{packs:?}");
    let mut warned = 0;
    for (i, pack) in packs.iter().enumerate() {
        let saved = fs::read(pack).unwrap();
        fs::remove_file(pack).unwrap();
        let target = env.path(&format!("without-{i}"));
        let out = env
            .cmd()
            .args(["restore", "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert_code(&out, 0);
        // Only the loss of the copy read first shows.
        warned += usize::from(stderr_text(&out).contains("read from their second copies"));
        let recorded = fs::read_to_string(fixture("metadata-twice").join("manifest.txt")).unwrap();
        let restored = common::manifest::manifest(&target.join("tree")).unwrap();
        assert_eq!(restored, recorded, "without metadata pack {i}");
        fs::write(pack, saved).unwrap();
    }
    assert_eq!(warned, 1, "one restore read the second copies");
}

/// A repository from before metadata-twice (the `plain` fixture: one copy
/// of everything) gets the feature from the first backup that stores a
/// tree, and its older trees their second copies from the next prune: then
/// any one metadata pack can go.
#[test]
fn an_older_repository_gets_metadata_twice_from_a_backup_and_a_prune() {
    let env = fixture_env("plain");
    assert!(feature_names(&env.repo).is_empty());
    assert_eq!(metadata_packs(&env.repo).len(), 2, "one per backup");
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("new.txt"), "new\n").unwrap();
    env.backup(&[&src], &[]);
    assert_eq!(feature_names(&env.repo), ["metadata-twice"]);
    assert_eq!(config_version(&env.repo), 2);
    env.ok(["prune", "--instant-delete"]);
    env.ok(["check", "--read-data"]);
    let packs = metadata_packs(&env.repo);
    assert!(packs.len() >= 2, "{packs:?}");
    for (i, pack) in packs.iter().enumerate() {
        let saved = fs::read(pack).unwrap();
        fs::remove_file(pack).unwrap();
        for snapshot in env.snapshots() {
            let id = snapshot["id"].as_str().unwrap().to_string();
            let target = env.path(&format!("restore-{i}-{id}"));
            let out = env
                .cmd()
                .args(["restore", &id, "--target"])
                .arg(&target)
                .output()
                .unwrap();
            assert_code(&out, 0);
        }
        fs::write(pack, saved).unwrap();
    }
}
