//! `snap drill` through the binary: a clean drill passes and is recorded
//! (in the repository, in `snapshots`, in `check`), a flipped byte fails it
//! naming the damaged file, the drill hook sees the restored copy, a
//! sample is chosen by its seed, and records follow their snapshots
//! through `tag`, `forget` and `copy`.

use std::fs;
use std::path::Path;

use snap::{NoProgress, Repository};

use crate::common::{self, Env, assert_code, build_tree, flip_byte, stderr_text};

/// The drill record files in the repository.
fn records(repo: &Path) -> Vec<std::path::PathBuf> {
    match fs::read_dir(repo.join("drills")) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("list drills: {e}"),
    }
}

/// A SQLite database of `rows` rows at `path`.
fn database(path: &Path, rows: u32) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);")
        .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for i in 0..rows {
        tx.execute("INSERT INTO notes(body) VALUES (?1)", [format!("note {i}")])
            .unwrap();
    }
    tx.commit().unwrap();
}

/// `snap check` with `args`: its exit code and stdout.
fn check(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env.run([&["check"], args].concat());
    (
        common::exit_code(&out),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A repository with one snapshot of `data/f.txt` holding `content`.
fn one_file_backup(content: &[u8]) -> Env {
    let env = Env::new();
    fs::create_dir(env.path("data")).unwrap();
    fs::write(env.path("data/f.txt"), content).unwrap();
    env.backup(&[&env.path("data")], &[]);
    env
}

#[test]
fn a_clean_drill_passes_and_is_recorded() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    database(&tree.root.join("notes.db"), 500);
    common::set_mtimes(&tree.root);
    env.backup(&[&tree.root], &[]);
    let scratch = env.path("scratch");
    fs::create_dir(&scratch).unwrap();

    let out = env.run([
        "--json".as_ref(),
        "drill".as_ref(),
        "--scratch".as_ref(),
        scratch.as_os_str(),
    ]);
    assert_code(&out, 0);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report:#}");
    // Every file (both names of the hard link, the database) read back.
    assert_eq!(report["files"], tree.files + 1, "{report:#}");
    assert!(report["bytes"].as_u64().unwrap() > 5 << 20, "{report:#}");
    assert_eq!(report["differences"], serde_json::json!([]));
    assert_eq!(report["damaged"], serde_json::json!([]));
    assert_eq!(report["databases"][0]["path"], "data/notes.db");
    assert_eq!(report["databases"][0]["ok"], true);
    assert_eq!(
        report["seed"],
        serde_json::Value::Null,
        "no sample, no seed"
    );
    assert!(
        fs::read_dir(&scratch).unwrap().next().is_none(),
        "the scratch folder is removed"
    );

    // One record, encrypted like the rest, under an optional feature that
    // keeps the config readable by every build.
    assert_eq!(records(&env.repo).len(), 1);
    assert_eq!(
        report["record"].as_str().unwrap(),
        records(&env.repo)[0].file_name().unwrap().to_str().unwrap()
    );
    let config = fs::read(env.repo.join("config")).unwrap();
    let config = snap::internals::format::config::Config::from_bytes(&config).unwrap();
    let entry = config
        .features
        .iter()
        .find(|f| f.name == "drill-records")
        .expect("the drill-records feature is on");
    assert!(!entry.required, "drill-records is optional");

    let snapshots = env.snapshots();
    assert_eq!(snapshots[0]["last_drill"]["ok"], true);
    assert_eq!(snapshots[0]["last_drill"]["files"], tree.files + 1);
    let listing = String::from_utf8(env.ok(["snapshots"])).unwrap();
    assert!(
        listing.lines().next().unwrap().contains("drill"),
        "{listing}"
    );
    assert!(listing.contains(" ok "), "{listing}");

    let (code, text) = check(&env, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("last restore drill: passed"), "{text}");
    assert_eq!(check(&env, &["--drill-max-age", "7"]).0, 0);
    let json = env.json(["check", "--drill-max-age", "7"]);
    assert_eq!(json["drill"]["last"]["ok"], true, "{json:#}");
    assert_eq!(json["drill"]["max_age_days"], 7);
}

#[test]
fn check_warns_only_with_a_max_age_when_no_drill_passed() {
    let env = one_file_backup(b"content");
    let (code, text) = check(&env, &[]);
    assert_eq!(code, 0, "no max age, no warning: {text}");
    assert!(
        !text.contains("drill"),
        "nothing to say without drills: {text}"
    );
    let (code, text) = check(&env, &["--drill-max-age", "7"]);
    assert_eq!(code, 3, "{text}");
    assert!(
        text.contains("warning: no restore drill passed in the last 7 days (none ever did)"),
        "{text}"
    );
    // The profile's key works the same, and the flag wins over it.
    let profile = env.path("snap.toml");
    fs::write(&profile, "drill-max-age = 7\n").unwrap();
    let config = ["--config".as_ref(), profile.as_os_str(), "check".as_ref()];
    assert_code(&env.cmd().args(config).output().unwrap(), 3);

    env.ok(["drill"]);
    assert_code(&env.cmd().args(config).output().unwrap(), 0);
    assert_eq!(check(&env, &["--drill-max-age", "1"]).0, 0);
    // A drill from before this very moment is older than 0 days.
    let (code, text) = check(&env, &["--drill-max-age", "0"]);
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("(the last passed at "), "{text}");
}

#[test]
fn a_flipped_byte_fails_the_drill_naming_the_damaged_file() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    env.ok(["drill"]);
    {
        let repo = Repository::open(common::local_backend(&env.repo), &NoProgress).unwrap();
        let (_, snapshot) = repo.snapshots().unwrap().pop().unwrap();
        let node = snap::ops::browse::find_node(&repo, snapshot.tree, "data/medium.bin").unwrap();
        let chunk = repo.file_chunks(&node).unwrap()[0];
        let (pack, at) = common::blob_middle(&env.repo, &repo, &chunk);
        flip_byte(&pack, at);
    }
    let out = env.run(["drill"]);
    assert_code(&out, 4);
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("the drill of snapshot") && stderr.contains("data/medium.bin"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("damaged: data/medium.bin"), "{stdout}");
    assert!(stdout.contains("the drill FAILED"), "{stdout}");

    let out = env.run(["--json", "drill"]);
    assert_code(&out, 4);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["damaged"], serde_json::json!(["data/medium.bin"]));
    // Only that file is lost: the others were restored and verified.
    assert_eq!(report["files"], tree.files - 1, "{report:#}");

    let snapshots = env.snapshots();
    assert_eq!(snapshots[0]["last_drill"]["ok"], false);
    assert_eq!(
        snapshots[0]["last_drill"]["failed_paths"],
        serde_json::json!(["data/medium.bin"])
    );
    let listing = String::from_utf8(env.ok(["snapshots"])).unwrap();
    assert!(listing.contains("FAILED"), "{listing}");
    let (_, text) = check(&env, &[]);
    assert!(text.contains("last restore drill: FAILED"), "{text}");
    assert!(text.contains("last passed restore drill: "), "{text}");
}

#[test]
fn the_drill_hook_gets_the_restored_copy() {
    let env = one_file_backup(b"the content\n");
    let id = env.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let profile = env.path("snap.toml");
    fs::write(
        &profile,
        "[hooks]\ndrill = 'echo \"$SNAP_SNAPSHOT\" > hook.log; cat \"$SNAP_DRILL_DIR/data/f.txt\" >> hook.log; echo \"$SNAP_DRILL_DIR\" >> hook.log'\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .args(["--config".as_ref(), profile.as_os_str(), "drill".as_ref()])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let log = fs::read_to_string(env.path("hook.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], id);
    assert_eq!(lines[1], "the content");
    assert!(
        !Path::new(lines[2]).exists(),
        "the scratch folder the hook saw is gone: {log}"
    );

    fs::write(
        &profile,
        "[hooks]\ndrill = 'echo app does not start; exit 7'\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .args([
            "--config".as_ref(),
            profile.as_os_str(),
            "--json".as_ref(),
            "drill".as_ref(),
        ])
        .output()
        .unwrap();
    assert_code(&out, 1);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["hook"]["ok"], false);
    assert!(
        stderr_text(&out).contains("[hook drill] app does not start"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(env.snapshots()[0]["last_drill"]["ok"], false);
}

#[test]
fn a_sample_is_chosen_by_its_seed() {
    let env = Env::new();
    let data = env.path("data");
    fs::create_dir(&data).unwrap();
    for i in 0..200 {
        fs::write(data.join(format!("f{i:03}.txt")), format!("file {i}")).unwrap();
    }
    env.backup(&[&data], &[]);
    let sampled = |extra: &[&str]| env.json([&["drill", "--sample", "20%"], extra].concat());
    let first = sampled(&[]);
    let seed = first["seed"]
        .as_u64()
        .expect("a sampled drill prints its seed");
    let files = first["files"].as_u64().unwrap();
    assert!((15..=70).contains(&files), "20% of 200 files: {first:#}");
    assert_eq!(first["sample_percent"], 20.0);
    let again = sampled(&["--seed", &seed.to_string()]);
    assert_eq!(again["files"], files, "the same seed drills the same files");
    let other = sampled(&["--seed", &(seed ^ 1).to_string()]);
    assert!(other["files"].as_u64().unwrap() > 0, "{other:#}");
    assert_eq!(env.json(["drill", "--sample", "100%"])["files"], 200);
    assert_eq!(env.snapshots()[0]["last_drill"]["sample_percent"], 100.0);

    for bad in ["0%", "150%", "ten"] {
        let out = env.run(["drill", "--sample", bad]);
        assert_code(&out, 2);
        assert!(
            stderr_text(&out).contains("--sample"),
            "{}",
            stderr_text(&out)
        );
    }
    let out = env.run(["drill", "--scratch", "/nonexistent/snap-drill"]);
    assert_code(&out, 2);
    assert!(stderr_text(&out).contains("is not a folder"));
    assert_code(&env.run(["drill", "latest~5"]), 10);
}

#[test]
fn records_follow_snapshots_through_tag_forget_and_copy() {
    let env = one_file_backup(b"one");
    fs::write(env.path("data/f.txt"), b"two").unwrap();
    env.backup(&[&env.path("data")], &[]);
    env.ok(["drill", "latest~1"]);
    env.ok(["drill"]);
    assert_eq!(records(&env.repo).len(), 2);

    // `tag` writes the snapshot under a new id: its drill stays its own.
    let before = env.snapshots()[1]["id"].as_str().unwrap().to_owned();
    env.ok(["tag", "latest", "--add", "drilled"]);
    let snapshots = env.snapshots();
    assert_ne!(snapshots[1]["id"], before.as_str());
    assert_eq!(snapshots[1]["last_drill"]["ok"], true, "{snapshots:#?}");

    // A copy leaves the records behind.
    let target = Env::new();
    env.ok(["copy".as_ref(), "--to".as_ref(), target.repo.as_os_str()]);
    assert!(records(&target.repo).is_empty());
    assert!(target.snapshots().iter().all(|s| s["last_drill"].is_null()));

    // Forgetting a snapshot removes its record, and only its, and says so.
    let old = snapshots[0]["id"].as_str().unwrap().to_owned();
    let out = String::from_utf8(env.ok(["forget", &old])).unwrap();
    assert!(
        out.ends_with("kept 0, removed 1 snapshot and 1 drill record\n"),
        "{out}"
    );
    assert_eq!(records(&env.repo).len(), 1);
    assert_eq!(env.snapshots()[0]["last_drill"]["ok"], true);

    // --json counts them too; a forget that removes none says nothing of them.
    env.ok(["drill"]);
    env.backup(&[&env.path("data")], &[]);
    let report = env.json(["forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(report["drill_records_removed"], 0, "{report:#}");
    assert_eq!(records(&env.repo).len(), 2, "a dry run removed a record");
    let report = env.json(["forget", "--keep-last", "1"]);
    assert_eq!(report["remove"].as_array().unwrap().len(), 1, "{report:#}");
    assert_eq!(report["drill_records_removed"], 2, "{report:#}");
    assert!(records(&env.repo).is_empty());
    let out = String::from_utf8(env.ok(["forget", "--keep-last", "1"])).unwrap();
    assert!(out.ends_with("kept 1, removed 0 snapshots\n"), "{out}");
}

#[test]
fn a_drill_record_is_sealed_in_an_encrypted_repository() {
    let env = Env::uninitialized();
    let run = |args: &[&std::ffi::OsStr]| {
        env.cmd()
            .env("SNAP_PASSWORD", "drill password")
            .args(args)
            .output()
            .unwrap()
    };
    assert_code(&run(&["init".as_ref(), "--encrypt".as_ref()]), 0);
    let data = env.path("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("secret-name.txt"), b"secret content").unwrap();
    assert_code(&run(&["backup".as_ref(), data.as_os_str()]), 0);
    assert_code(&run(&["drill".as_ref()]), 0);
    let record = fs::read(&records(&env.repo)[0]).unwrap();
    assert!(record.starts_with(b"SNAPDRIL\x01age-encryption.org/v1"));
    assert!(!record.windows(11).any(|w| w == b"secret-name"));
    let out = run(&["--json".as_ref(), "snapshots".as_ref()]);
    assert_code(&out, 0);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["last_drill"]["ok"], true, "{rows:#}");
}

/// A damaged folder listing fails the drill naming the folder, and the
/// failed drill is recorded (a drill of all files and of a sample).
#[test]
fn a_damaged_folder_listing_fails_the_drill_naming_the_folder() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    for (pack, at) in common::tree_copies(&env.repo, "data/dir/sub") {
        flip_byte(&pack, at);
    }
    for args in [
        &["--json", "drill"][..],
        &["--json", "drill", "--sample", "100%"],
    ] {
        let before = records(&env.repo).len();
        let out = env.run(args);
        assert_code(&out, 4);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", stderr_text(&out)));
        assert_eq!(report["ok"], false);
        assert_eq!(
            report["damaged"],
            serde_json::json!(["data/dir/sub"]),
            "{report:#}"
        );
        assert_eq!(records(&env.repo).len(), before + 1, "no drill record");
        let snapshots = env.snapshots();
        assert_eq!(snapshots[0]["last_drill"]["ok"], false);
        assert_eq!(
            snapshots[0]["last_drill"]["failed_paths"],
            serde_json::json!(["data/dir/sub"])
        );
    }
    let out = env.run(["drill"]);
    assert_code(&out, 4);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("damaged: data/dir/sub"), "{stdout}");
}
