//! Through the real binary: tags split at commas and filtered by restic's
//! rule, `snap tag`, the one duration grammar, names printed unambiguously
//! and accepted back, and secrets kept from hooks and commands.

use crate::common;

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Env, assert_code, snap_command, stderr_text};
use serde_json::Value;

fn stdout_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A folder `src` with one small file, backed up with `extra` arguments;
/// returns the new snapshot's id.
fn backup(env: &Env, extra: &[&str]) -> String {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), b"content\n").unwrap();
    env.backup(&[&src], extra)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn tags(snapshot: &Value) -> Vec<String> {
    snapshot["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

fn ids(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn snapshot_files(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(env.repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- tags

#[test]
fn comma_separated_tags_are_two_tags_and_keep_tag_keeps_them() {
    let env = Env::new();
    let tagged = backup(&env, &["--tag", "session-end,daily"]);
    let untagged = backup(&env, &[]);
    let listed = env.snapshots();
    assert_eq!(tags(&listed[0]), ["session-end", "daily"]);
    // Before, the one tag "session-end,daily" did not match and the
    // snapshot was removed.
    let plan = env.json(["forget", "--keep-tag", "session-end"]);
    assert_eq!(plan["keep"][0]["id"], tagged.as_str(), "{plan}");
    assert_eq!(plan["remove"][0]["id"], untagged.as_str(), "{plan}");
    assert_eq!(ids(&env.snapshots()), [tagged]);
}

#[test]
fn tag_filters_match_all_of_a_list_or_any_of_repeated_lists() {
    let env = Env::new();
    let ab = backup(&env, &["--tag", "a,b"]);
    let a = backup(&env, &["--tag", "a"]);
    let c = backup(&env, &["--tag", "c"]);
    let listed = |filters: &[&str]| {
        let mut args = vec!["snapshots"];
        args.extend(filters);
        match env.json(args) {
            Value::Array(rows) => ids(&rows),
            other => panic!("{other}"),
        }
    };
    assert_eq!(listed(&["--tag", "a,b"]), std::slice::from_ref(&ab));
    assert_eq!(listed(&["--tag", "a"]), [ab.clone(), a]);
    assert_eq!(
        listed(&["--tag", "b", "--tag", "c"]),
        [ab.clone(), c.clone()]
    );
    assert_eq!(listed(&["--tag", "a,c"]), Vec::<String>::new());
    // forget --tag narrows the snapshots considered by the same rule.
    let plan = env.json([
        "forget",
        "--dry-run",
        "--tag",
        "a,b",
        "--keep-last",
        "0",
        "--keep-tag",
        "zzz",
    ]);
    assert_eq!(plan["remove"].as_array().unwrap().len(), 1, "{plan}");
    assert_eq!(plan["remove"][0]["id"], ab.as_str());
    // copy --tag copies only what the filter lets through.
    let target = env.path("target");
    snap_command()
        .arg("-r")
        .arg(&target)
        .arg("init")
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["--json", "copy", "--tag", "b", "--tag", "c", "--to"])
        .arg(&target)
        .output()
        .unwrap();
    assert_code(&out, 0);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let copied: Vec<&str> = common::string_column(&report["copied"], "source");
    assert_eq!(copied, [ab.as_str(), c.as_str()]);
}

#[test]
fn empty_and_blank_tags_are_refused_and_nothing_is_written() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for bad in ["a,,b", " ", "", "a,"] {
        let out = env
            .cmd()
            .arg("backup")
            .arg(&src)
            .args(["--tag", bad])
            .output()
            .unwrap();
        assert_code(&out, 2);
        assert!(
            stderr_text(&out).contains("empty tag"),
            "{bad:?}: {}",
            stderr_text(&out)
        );
    }
    assert!(env.snapshots().is_empty());
    backup(&env, &[]);
    for args in [
        &["tag", "latest", "--add", "x,,y"][..],
        &["tag", "latest", "--set", " "],
        &["snapshots", "--tag", ""],
        &["forget", "--keep-tag", "a,"],
    ] {
        assert_code(&env.run(args), 2);
    }
    assert_eq!(tags(&env.snapshots()[0]), Vec::<String>::new());
}

#[test]
fn tag_rewrites_the_snapshot_under_a_new_id_keeping_everything_else() {
    let env = Env::new();
    backup(&env, &["--tag", "first"]);
    let old = backup(&env, &["--tag", "keep,old"]);
    let before: Vec<Value> = env.snapshots();
    let out = env.run(["tag", &old[..8], "--add", "x,y", "--remove", "old"]);
    assert_code(&out, 0);
    assert!(
        stdout_text(&out).contains("1 snapshot changed,"),
        "{}",
        stdout_text(&out)
    );
    let after = env.snapshots();
    assert_eq!(after.len(), 2);
    let new = &after[1];
    assert_ne!(new["id"], old.as_str());
    assert!(
        !snapshot_files(&env).contains(&old),
        "the old file is removed"
    );
    assert_eq!(tags(new), ["keep", "x", "y"]);
    for field in [
        "time",
        "host",
        "paths",
        "parent",
        "tree",
        "files",
        "dirs",
        "bytes",
        "bytes_added",
    ] {
        assert_eq!(new[field], before[1][field], "{field}");
    }
    // --set replaces; the first snapshot is untouched throughout.
    env.ok(["tag", "latest", "--set", "only"]);
    let after = env.snapshots();
    assert_eq!(tags(&after[1]), ["only"]);
    assert_eq!(after[0], before[0]);
    // Asking for the tags a snapshot already has changes nothing.
    let files = snapshot_files(&env);
    let out = env.json(["tag", "latest", "--add", "only"]);
    assert_eq!(out["changed"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(snapshot_files(&env), files);
    // The repository stays whole and the snapshot restores.
    env.ok(["check"]);
    assert_eq!(env.ok(["cat", "latest:src/f.txt"]), b"content\n");
    assert_code(&env.run(["tag", "latest", "--set", "a", "--add", "b"]), 2);
    assert_code(&env.run(["tag", "latest"]), 2);
    assert_code(
        &env.run(["tag", "--tag", "nothing-has-this", "--add", "z"]),
        10,
    );
}

/// A retag that fails between writing the new snapshot and removing the old
/// one leaves both (same tree); one that fails writing leaves the old one.
/// Either way nothing is lost and `check` passes.
#[test]
fn a_failed_retag_leaves_the_old_snapshot_or_both_never_none() {
    let env = Env::new();
    let old = backup(&env, &["--tag", "t"]);
    for (faults, expected) in [
        ("write:snapshot:1:enospc", 1),
        ("write:snapshot:1:short", 1),
        ("remove:snapshot:1:eio", 2),
    ] {
        let out = env
            .cmd()
            .env("SNAP_FAULTS", faults)
            .args(["tag", "latest", "--add", "x"])
            .output()
            .unwrap();
        assert_code(&out, 1);
        let listed = env.snapshots();
        assert_eq!(listed.len(), expected, "{faults}");
        assert!(listed.iter().any(|s| s["id"] == old.as_str()), "{faults}");
        assert!(listed.iter().all(|s| s["tree"] == listed[0]["tree"]));
        env.ok(["check"]);
        if expected == 2 {
            // The extra one is an ordinary snapshot: forget removes it.
            env.ok(["forget", &old[..8]]);
        }
    }
}

#[test]
fn latest_passes_over_safety_snapshots_after_retagging() {
    let env = Env::new();
    let normal = backup(&env, &[]);
    backup(&env, &["--tag", "pre-restore"]);
    // `latest` is the normal snapshot, not the newer safety snapshot.
    let out = env.json(["tag", "latest", "--add", "seen"]);
    assert_eq!(out["changed"][0]["old"], normal.as_str(), "{out}");
    // Asked for by tag, the safety snapshot is reachable, and stays one.
    env.ok([
        "tag",
        "latest",
        "--tag",
        "pre-restore",
        "--add",
        "looked-at",
    ]);
    let listed = env.snapshots();
    let safety = listed
        .iter()
        .find(|s| tags(s).contains(&"pre-restore".to_string()))
        .unwrap();
    assert_eq!(tags(safety), ["pre-restore", "looked-at"]);
    let out = env.json(["tag", "latest", "--add", "again"]);
    assert_eq!(
        out["changed"][0]["tags"],
        serde_json::json!(["seen", "again"]),
        "{out}"
    );
}

#[test]
fn a_write_only_key_cannot_retag() {
    let env = Env::uninitialized();
    let with_password = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("SNAP_PASSWORD", "pw").args(args);
        cmd
    };
    with_password(&["init", "--encrypt"]).assert().success();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), b"x").unwrap();
    with_password(&["backup", "--tag", "t"])
        .arg(&src)
        .assert()
        .success();
    let key = env.path("writer.key");
    with_password(&["key", "add", "--write-only", "--output"])
        .arg(&key)
        .assert()
        .success();
    let files = snapshot_files(&env);
    for args in [&["tag", "latest", "--add", "x"][..], &["tag", "--set", "x"]] {
        let out = env
            .cmd()
            .env_remove("SNAP_PASSWORD")
            .arg("--key-file")
            .arg(&key)
            .args(args)
            .output()
            .unwrap();
        assert_code(&out, 5);
    }
    assert_eq!(snapshot_files(&env), files);
}

// ----------------------------------------------------------- durations

#[test]
fn keep_within_bare_m_means_months_with_a_warning_and_the_plan_says_so() {
    let env = Env::new();
    backup(&env, &[]);
    let out = env.run(["forget", "--dry-run", "--keep-within", "30m"]);
    assert_code(&out, 0);
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("warning: --keep-within `30m`")
            && stderr.contains("30 months")
            && stderr.contains("`mo`")
            && stderr.contains("`min`"),
        "{stderr}"
    );
    assert!(
        stdout_text(&out).contains("within 30 months"),
        "{}",
        stdout_text(&out)
    );
    let out = env.run(["forget", "--dry-run", "--keep-within", "1y2mo"]);
    assert_code(&out, 0);
    assert!(
        !stderr_text(&out).contains("warning"),
        "{}",
        stderr_text(&out)
    );
    assert!(stdout_text(&out).contains("within 1 year 2 months"));
    let out = env.run(["forget", "--dry-run", "--keep-within", "90min"]);
    assert!(stdout_text(&out).contains("within 90 minutes"));
    for bad in ["3x", "30", "1d1d", "0d"] {
        assert_code(&env.run(["forget", "--dry-run", "--keep-within", bad]), 2);
    }
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn grace_period_and_lock_timeout_take_the_same_grammar() {
    let env = Env::new();
    backup(&env, &[]);
    let out = env.run(["prune", "--dry-run", "--grace-period", "30m"]);
    assert_code(&out, 0);
    assert!(
        stderr_text(&out)
            .contains("--grace-period `30m`: `m` is taken as minutes here (30 minutes)"),
        "{}",
        stderr_text(&out)
    );
    assert!(
        stdout_text(&out).contains("grace period: 30 minutes"),
        "{}",
        stdout_text(&out)
    );
    // 1y2mo was refused by the old --grace-period parser.
    let out = env.run(["prune", "--dry-run", "--grace-period", "1y2mo"]);
    assert_code(&out, 0);
    assert!(stdout_text(&out).contains("grace period: 1 year 2 months"));
    let out = env.json(["prune", "--dry-run", "--grace-period", "1h30min"]);
    assert_eq!(out["grace_period_s"], 5400);
    assert_code(&env.run(["prune", "--grace-period", "1hour"]), 2);
    let src = env.path("src");
    for ok in ["2min", "1", "0.5", "1m"] {
        let out = env
            .cmd()
            .arg("backup")
            .arg(&src)
            .args(["--sqlite-lock-timeout", ok])
            .output()
            .unwrap();
        assert_code(&out, 0);
        assert_eq!(
            stderr_text(&out).contains("`m` is taken as minutes"),
            ok == "1m"
        );
    }
    assert_code(
        &env.cmd()
            .arg("backup")
            .arg(&src)
            .args(["--sqlite-lock-timeout", "2x"])
            .output()
            .unwrap(),
        2,
    );
}

#[test]
fn profile_durations_use_the_grammar_and_warn_on_a_bare_m() {
    let env = Env::new();
    backup(&env, &[]);
    let profile = env.path("snap.toml");
    let run = |text: &str| {
        fs::write(&profile, text).unwrap();
        env.cmd()
            .arg("--config")
            .arg(&profile)
            .arg("snapshots")
            .output()
            .unwrap()
    };
    let out = run("hook-timeout = \"2m\"\n[retention]\nkeep-within = \"6m\"\n");
    assert_code(&out, 0);
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("hook-timeout `2m`: `m` is taken as minutes here (2 minutes)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("keep-within `6m`: `m` is taken as months here (6 months)"),
        "{stderr}"
    );
    let out = run("hook-timeout = \"1h 30min\"\n[retention]\nkeep-within = \"1y2mo\"\n");
    assert_code(&out, 0);
    assert!(
        !stderr_text(&out).contains("warning"),
        "{}",
        stderr_text(&out)
    );
    let out = run("hook-timeout = \"10 minutes\"\n");
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("hook-timeout"),
        "{}",
        stderr_text(&out)
    );
}

// --------------------------------------------------------------- names

/// A snapshot of `src` holding the files `names` (content: the index).
fn names_env(names: &[&[u8]]) -> Env {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for (i, name) in names.iter().enumerate() {
        fs::write(
            src.join(OsString::from_vec(name.to_vec())),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    env.backup(&[&src], &[]);
    env
}

fn ls_lines(env: &Env) -> Vec<Vec<u8>> {
    env.ok(["ls", "latest:src"])
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn a_literal_backslash_name_and_a_non_utf8_name_print_apart_and_are_reached() {
    // `a\xffb` spelled with a backslash, and `a`, byte 0xff, `b`: both
    // used to print as `a\xffb`.
    let literal: &[u8] = b"a\\xffb";
    let raw: &[u8] = b"a\xffb";
    let env = names_env(&[literal, raw]);
    let lines = ls_lines(&env);
    let shown: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).unwrap())
        .collect();
    assert_eq!(shown, ["src/a\\\\xffb", "src/a\\xffb"]);
    for (printed, index) in [(&shown[0], 0), (&shown[1], 1)] {
        let want = format!("file {index}\n");
        assert_eq!(
            env.ok(["cat", &format!("latest:{printed}")]),
            want.as_bytes(),
            "{printed}"
        );
        let log = env.json(["log", printed.as_str()]);
        assert_eq!(log.as_array().unwrap().len(), 1, "{printed}: {log}");
        let target = env.path(&format!("restored-{index}"));
        let out = env
            .cmd()
            .args(["restore", &format!("latest:{printed}"), "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert_code(&out, 0);
        let names: Vec<Vec<u8>> = fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        let expected = if index == 0 { literal } else { raw };
        assert_eq!(names, [expected.to_vec()]);
        assert_eq!(
            fs::read(target.join(OsString::from_vec(expected.to_vec()))).unwrap(),
            want.as_bytes()
        );
    }
    // JSON carries the same escaped form, and the bytes in hex.
    let rows = env.json(["ls", "latest:src"]);
    assert_eq!(rows[0]["name"], "a\\\\xffb");
    assert_eq!(rows[1]["name"], "a\\xffb");
    assert_eq!(rows[0]["name_hex"], "615c78666662");
    assert_eq!(rows[1]["name_hex"], "61ff62");
    assert_eq!(rows[1]["path"], "src/a\\xffb");
    // A raw non-UTF-8 argument still names the file.
    let mut arg = b"latest:src/".to_vec();
    arg.extend_from_slice(raw);
    let out = env
        .cmd()
        .arg("cat")
        .arg(OsString::from_vec(arg))
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(out.stdout, b"file 1\n");
}

#[test]
fn control_characters_in_names_are_escaped_and_the_printed_name_works() {
    let nasty: &[u8] = b"bell\x07esc\x1b[31mred\nline";
    let env = names_env(&[nasty, "rtl\u{202e}txt".as_bytes()]);
    let all = env.ok(["ls", "-l", "latest:src"]);
    assert!(
        !all.iter().any(|&b| b < 0x20 && b != b'\n'),
        "raw control bytes in ls output: {:?}",
        String::from_utf8_lossy(&all)
    );
    let lines = ls_lines(&env);
    let shown: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8(l.clone()).unwrap())
        .collect();
    assert_eq!(
        shown,
        [
            "src/bell\\x07esc\\x1b[31mred\\x0aline",
            "src/rtl\\u{202e}txt"
        ]
    );
    assert_eq!(
        env.ok(["cat", &format!("latest:{}", shown[0])]),
        b"file 0\n"
    );
    assert_eq!(
        env.ok(["cat", &format!("latest:{}", shown[1])]),
        b"file 1\n"
    );
    // find and diff print the same escaped names.
    let found = stdout_text(&env.run(["find", "*bell*"]));
    assert!(
        found.contains("bell\\x07esc\\x1b[31mred\\x0aline"),
        "{found}"
    );
    let target = env.path("restored");
    let out = env
        .cmd()
        .args(["restore", &format!("latest:{}", shown[0]), "--target"])
        .arg(&target)
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(
        fs::read(target.join(OsString::from_vec(nasty.to_vec()))).unwrap(),
        b"file 0\n"
    );
}

#[test]
fn snapshot_hosts_and_tags_reach_the_terminal_escaped() {
    let env = Env::new();
    backup(&env, &["--host", "evil\x1b[2Jhost", "--tag", "bell\x07tag"]);
    for args in [
        &["snapshots"][..],
        &[
            "forget",
            "--dry-run",
            "--keep-last",
            "1",
            "--group-by",
            "host,tags",
        ],
    ] {
        let out = env.ok(args);
        let text = String::from_utf8_lossy(&out);
        assert!(
            !out.iter().any(|&b| b == 0x1b || b == 0x07),
            "{args:?}: {text:?}"
        );
        assert!(text.contains("evil\\x1b[2Jhost"), "{args:?}: {text}");
    }
}

// ------------------------------------------------------------- secrets

const SECRETS: [&str; 4] = [
    "SNAP_PASSWORD",
    "SNAP_NEW_PASSWORD",
    "SNAP_TO_PASSWORD",
    "SNAP_FROM_PASSWORD",
];

fn assert_no_secrets(dump: &Path) {
    let text = fs::read_to_string(dump).unwrap_or_else(|e| panic!("{}: {e}", dump.display()));
    for name in SECRETS {
        assert!(
            !text.contains(&format!("{name}=")),
            "{name} reached {}:\n{text}",
            dump.display()
        );
        assert!(
            !text.contains("hunter2"),
            "a secret value reached {}",
            dump.display()
        );
    }
    assert!(text.contains("MY_OWN_VARIABLE=stays"), "{text}");
    assert!(text.contains("AWS_ACCESS_KEY_ID=AKIAEXAMPLE"), "{text}");
}

#[test]
fn hooks_and_commands_never_see_password_variables() {
    let env = Env::uninitialized();
    let secrets = |cmd: &mut assert_cmd::Command| {
        for name in SECRETS {
            cmd.env(name, "hunter2");
        }
        cmd.env("MY_OWN_VARIABLE", "stays")
            .env("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE");
    };
    let mut init = env.cmd();
    secrets(&mut init);
    init.args(["init", "--encrypt"]).assert().success();
    let dir = env.path("profile");
    fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("snap.toml");
    fs::write(
        &profile,
        format!(
            r#"repository = "{}"
[[source]]
name = "dump"
command = "env > command.env; echo dumped"
[hooks]
before-backup = "env > hook.env"
"#,
            env.repo.display()
        ),
    )
    .unwrap();
    let mut backup = snap_command();
    secrets(&mut backup);
    let out = backup
        .arg("--config")
        .arg(&profile)
        .arg("backup")
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_no_secrets(&dir.join("hook.env"));
    assert_no_secrets(&dir.join("command.env"));
    // --stdin-from-command and --password-command too.
    let mut stdin = env.cmd();
    secrets(&mut stdin);
    let stdin_dump = env.path("stdin.env");
    let out = stdin
        .arg("backup")
        .arg("--stdin-from-command")
        .arg(format!("env > {}", stdin_dump.display()))
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_no_secrets(&stdin_dump);
    let password_dump = env.path("password.env");
    let mut by_command = env.cmd();
    secrets(&mut by_command);
    let out = by_command
        .env_remove("SNAP_PASSWORD")
        .arg("--password-command")
        .arg(format!("env > {}; echo hunter2", password_dump.display()))
        .arg("snapshots")
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_no_secrets(&password_dump);
}

#[test]
fn a_password_file_others_can_read_gets_a_warning() {
    let env = Env::uninitialized();
    let file: PathBuf = env.path("password");
    fs::write(&file, "pw\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let run = |args: &[&str]| {
        env.cmd()
            .env_remove("SNAP_PASSWORD")
            .arg("--password-file")
            .arg(&file)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["init", "--encrypt"]);
    assert_code(&out, 0);
    assert!(
        !stderr_text(&out).contains("chmod"),
        "{}",
        stderr_text(&out)
    );
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["snapshots"]);
    assert_code(&out, 0);
    let warnings: Vec<String> = stderr_text(&out)
        .lines()
        .filter(|l| l.contains("chmod 600"))
        .map(String::from)
        .collect();
    assert_eq!(warnings.len(), 1, "{}", stderr_text(&out));
    assert!(
        warnings[0].contains(&file.display().to_string()),
        "{}",
        warnings[0]
    );
}
