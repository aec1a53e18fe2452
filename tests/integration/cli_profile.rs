//! Profiles through the real binary: lookup order, relative paths, named
//! sources with their excludes, hooks, standard input and command streams,
//! retention and the critical-source check.

use crate::common;

use std::fs;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use common::{Env, assert_code, pseudo_random, snap_bin, stderr_text};

/// A test folder holding a profile folder (`profile/`), with snap run from
/// a chosen folder and an empty user config folder (so a real
/// `~/.config/snap/snap.toml` never leaks in).
struct Profiled {
    env: Env,
}

impl Profiled {
    fn new(profile: &str) -> Self {
        let env = Env::uninitialized();
        fs::create_dir_all(env.path("profile")).unwrap();
        fs::create_dir_all(env.path("xdg")).unwrap();
        fs::write(env.path("profile/snap.toml"), profile).unwrap();
        Self { env }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.env.path(rel)
    }

    /// `snap` run in the profile's folder.
    fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(snap_bin());
        cmd.current_dir(self.path("profile"))
            .env_remove("SNAP_REPO")
            .env_remove("SNAP_CONFIG")
            .env("TZ", "UTC")
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("XDG_CACHE_HOME", self.env.cache_home());
        cmd
    }

    fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.std_cmd())
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert_code(&out, 0);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                stderr_text(&out)
            )
        })
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_code(&out, 0);
        out
    }

    fn write(&self, rel: &str, content: &[u8]) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn snapshot_count(&self) -> usize {
        self.json(&["snapshots"]).as_array().unwrap().len()
    }

    /// Every path of the latest snapshot, as `snap ls --recursive` prints them.
    fn listing(&self) -> Vec<String> {
        let out = self.ok(&["ls", "latest", "--recursive"]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

const SOURCES_PROFILE: &str = r#"
repository = "../repo"
exclude = ["*.log"]

[[source]]
name = "notes"
path = "../data/notes"
critical = true
exclude = ["cache", "drafts/old"]

[[source]]
name = "db"
path = "../data/app"

[[source]]
name = "dumps/listing.txt"
command = "ls"
"#;

#[test]
fn profile_sources_appear_at_the_root_under_their_names_with_their_excludes() {
    let p = Profiled::new(SOURCES_PROFILE);
    p.write("data/notes/a.md", b"alpha");
    p.write("data/notes/debug.log", b"global exclude");
    p.write("data/notes/cache/c.bin", b"source exclude by name");
    p.write(
        "data/notes/drafts/old/o.md",
        b"source exclude by relative path",
    );
    p.write("data/notes/drafts/new.md", b"kept");
    p.write("data/app/state.json", b"{}");
    p.write("data/app/cache/kept.bin", b"the notes' exclude is not db's");
    p.ok(&["init"]);
    assert!(
        p.path("repo/config").is_file(),
        "repository relative to the profile"
    );
    let first = p.json(&["backup"]);
    assert_eq!(first["files_unchanged"], 0);
    assert_eq!(
        p.listing(),
        [
            "db",
            "db/cache",
            "db/cache/kept.bin",
            "db/state.json",
            "dumps",
            "dumps/listing.txt",
            "notes",
            "notes/a.md",
            "notes/drafts",
            "notes/drafts/new.md",
        ]
    );
    // The command ran in the profile's folder.
    let listing = p.ok(&["cat", "latest:dumps/listing.txt"]);
    assert_eq!(String::from_utf8_lossy(&listing.stdout), "snap.toml\n");
    // The snapshot records the absolute paths (and the stream's name), so the
    // next backup finds it as its parent and skips unchanged files.
    let snapshots = p.json(&["snapshots"]);
    let paths = snapshots[0]["paths"].as_array().unwrap();
    assert!(
        paths
            .iter()
            .any(|v| v.as_str().unwrap().ends_with("/data/notes"))
    );
    assert!(paths.iter().any(|v| v == "dumps/listing.txt"));
    let second = p.json(&["backup"]);
    assert_eq!(second["parent"], first["id"]);
    assert_eq!(second["files_unchanged"], 4, "{second}");
    assert_eq!(second["bytes_read"], "snap.toml\n".len());
    // Paths on the command line replace the sources for that run (the
    // profile's excludes still apply).
    let out = p.ok(&["backup", "../data/notes"]);
    drop(out);
    assert_eq!(
        p.listing(),
        [
            "notes",
            "notes/a.md",
            "notes/cache",
            "notes/cache/c.bin",
            "notes/drafts",
            "notes/drafts/new.md",
            "notes/drafts/old",
            "notes/drafts/old/o.md"
        ]
    );
}

#[test]
fn profile_lookup_order_is_flag_then_env_then_current_folder_then_user_config() {
    let p = Profiled::new("repository = \"repo-cwd\"\n");
    fs::create_dir_all(p.path("xdg/snap")).unwrap();
    fs::write(p.path("xdg/snap/snap.toml"), "repository = \"repo-xdg\"\n").unwrap();
    fs::write(p.path("flag.toml"), "repository = \"repo-flag\"\n").unwrap();
    fs::write(p.path("env.toml"), "repository = \"repo-env\"\n").unwrap();
    let flag = p.path("flag.toml");
    let env = p.path("env.toml");
    let init = |cmd: &mut assert_cmd::Command| assert_code(&cmd.arg("init").output().unwrap(), 0);

    init(p.cmd().arg("--config").arg(&flag).env("SNAP_CONFIG", &env));
    assert!(p.path("repo-flag/config").is_file(), "--config wins");
    init(p.cmd().env("SNAP_CONFIG", &env));
    assert!(p.path("repo-env/config").is_file(), "SNAP_CONFIG next");
    init(&mut p.cmd());
    assert!(
        p.path("profile/repo-cwd/config").is_file(),
        "./snap.toml next"
    );
    init(p.cmd().current_dir(p.path("xdg")));
    assert!(
        p.path("xdg/snap/repo-xdg/config").is_file(),
        "user config last"
    );
    // `~/` is the home folder.
    fs::write(p.path("home.toml"), "repository = \"~/repo-home\"\n").unwrap();
    fs::create_dir_all(p.path("home")).unwrap();
    init(
        p.cmd()
            .env("HOME", p.path("home"))
            .arg("--config")
            .arg(p.path("home.toml")),
    );
    assert!(p.path("home/repo-home/config").is_file(), "~ expanded");
    // -r beats the profile.
    init(p.cmd().arg("-r").arg(p.path("repo-flagged")));
    assert!(p.path("repo-flagged/config").is_file());
    // A --config that does not exist is a usage error.
    let out = p
        .cmd()
        .args(["--config", "/nonexistent/snap.toml", "snapshots"])
        .output()
        .unwrap();
    assert_code(&out, 2);
    assert!(stderr_text(&out).contains("/nonexistent/snap.toml"));
}

#[test]
fn a_typo_in_the_profile_is_an_error_naming_the_key_and_line() {
    let p = Profiled::new(
        "repository = \"../repo\"\n[[source]]\nname = \"a\"\npath = \".\"\nexcludes = [\"*.log\"]\n",
    );
    let out = p.run(&["backup"]);
    assert_code(&out, 2);
    let err = stderr_text(&out);
    assert!(err.contains("excludes"), "{err}");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("snap.toml"), "{err}");
    assert!(!p.path("repo").exists(), "nothing written");
}

#[test]
fn backup_without_sources_or_paths_is_a_usage_error() {
    let p = Profiled::new("repository = \"../repo\"\n");
    p.ok(&["init"]);
    let out = p.run(&["backup"]);
    assert_code(&out, 2);
    assert!(stderr_text(&out).contains("nothing to back up"));
    let out = p.run(&["backup", "--stdin-name", "x"]);
    assert_code(&out, 2);
    for name in ["../x", "a//b", "/abs", "."] {
        let out = p.run(&[
            "backup",
            "--stdin-from-command",
            "echo x",
            "--stdin-name",
            name,
        ]);
        assert_code(&out, 2);
    }
    assert_eq!(p.snapshot_count(), 0);
}

#[test]
fn a_stream_named_inside_another_source_is_a_usage_error() {
    let p = Profiled::new("repository = \"../repo\"\n");
    p.ok(&["init"]);
    p.write("data/a/f", b"f");
    p.write("data/a.b/g", b"g");
    // A backup of both folders plus a stream stored as `name`.
    let with_stream = |name: &str| {
        p.run(&[
            "backup",
            "../data/a",
            "../data/a.b",
            "--stdin-from-command",
            "echo x",
            "--stdin-name",
            name,
        ])
    };
    // `a` sorts next to `a.b`, not next to `a/b`: the clash is still found.
    for name in ["a/b", "a", "a.b/c/d"] {
        let out = with_stream(name);
        assert_code(&out, 2);
        assert!(
            stderr_text(&out).contains("would both appear"),
            "{}",
            stderr_text(&out)
        );
    }
    let out = with_stream("b/c");
    assert_code(&out, 0);
    assert_eq!(p.listing(), ["a", "a/f", "a.b", "a.b/g", "b", "b/c"]);
}

fn hooks_profile(before: &str, timeout: &str) -> String {
    format!(
        r#"
repository = "../repo"
hook-timeout = "{timeout}"
[[source]]
name = "data"
path = "../data"
[hooks]
before-backup = "{before}"
after-backup = "echo after $SNAP_COMMAND exit=$SNAP_EXIT_CODE id=$SNAP_SNAPSHOT_ID >> ../hooks.log"
on-failure = "echo failure exit=$SNAP_EXIT_CODE error=$SNAP_ERROR >> ../hooks.log"
before-restore = "echo before-restore $SNAP_RESTORE_TARGET >> ../hooks.log"
after-restore = "echo after-restore exit=$SNAP_EXIT_CODE >> ../hooks.log"
"#
    )
}

/// A profile with [`hooks_profile`]'s hooks, one file in its source and
/// an initialized repository: ready for a backup that runs the hooks.
fn hooked(before: &str, timeout: &str) -> Profiled {
    let p = Profiled::new(&hooks_profile(before, timeout));
    p.write("data/f.txt", b"content");
    p.ok(&["init"]);
    p
}

fn hook_log(p: &Profiled) -> Vec<String> {
    fs::read_to_string(p.path("hooks.log"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn hooks_run_in_order_around_backup_and_restore() {
    let p = hooked(
        "echo before $SNAP_HOOK >> ../hooks.log; echo said by the hook",
        "5m",
    );
    let out = p.cmd().args(["--json", "backup"]).output().unwrap();
    assert_code(&out, 0);
    // Hook output goes to stderr with a prefix, never into the JSON on stdout.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(stderr_text(&out).contains("[hook before-backup] said by the hook"));
    let id = report["id"].as_str().unwrap();
    assert_eq!(
        hook_log(&p),
        [
            "before before-backup".to_string(),
            format!("after backup exit=0 id={id}")
        ]
    );
    fs::remove_file(p.path("hooks.log")).unwrap();
    let target = p.path("restored");
    p.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(
        hook_log(&p),
        [
            format!("before-restore {}", target.display()),
            "after-restore exit=0".to_string()
        ]
    );
    assert_eq!(fs::read(target.join("data/f.txt")).unwrap(), b"content");
    // Bad usage is refused before any hook runs.
    fs::remove_file(p.path("hooks.log")).unwrap();
    assert_code(&p.run(&["backup", "--stdin-name", "x"]), 2);
    assert!(hook_log(&p).is_empty(), "{:?}", hook_log(&p));
}

#[test]
fn after_and_failure_hooks_run_when_the_backup_fails() {
    // The source does not exist: the backup fails after the before-hook.
    let p = Profiled::new(&hooks_profile("echo before >> ../hooks.log", "5m"));
    p.ok(&["init"]);
    let out = p.run(&["backup"]);
    assert_code(&out, 10);
    let log = hook_log(&p);
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[0], "before");
    assert_eq!(log[1], "after backup exit=10 id=");
    assert!(log[2].starts_with("failure exit=10 error="), "{log:?}");
    assert!(log[2].contains("data"), "{log:?}");
    assert_eq!(p.snapshot_count(), 0);
}

#[test]
fn a_failing_before_hook_aborts_the_backup_cleanly() {
    let p = hooked("echo before >> ../hooks.log; exit 7", "5m");
    let out = p.run(&["backup"]);
    assert_code(&out, 1);
    let err = stderr_text(&out);
    assert!(err.contains("before-backup hook"), "{err}");
    assert!(err.contains("exit status: 7"), "{err}");
    assert_eq!(p.snapshot_count(), 0, "nothing was backed up");
    let packs: Vec<PathBuf> = fs::read_dir(p.path("repo/data"))
        .unwrap()
        .flat_map(|dir| fs::read_dir(dir.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert!(packs.is_empty(), "no pack written: {packs:?}");
    let log = hook_log(&p);
    assert_eq!(log[0], "before");
    assert_eq!(log[1], "after backup exit=1 id=");
    assert!(log[2].starts_with("failure exit=1"), "{log:?}");
}

#[test]
fn a_hook_that_runs_too_long_is_stopped_with_its_children() {
    let p = hooked("sleep 300 & echo $! > ../child.pid; wait", "2s");
    let out = p.run(&["backup"]);
    assert_code(&out, 1);
    assert!(stderr_text(&out).contains("did not finish within 2s"));
    assert_eq!(p.snapshot_count(), 0);
    let pid: i32 = fs::read_to_string(p.path("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The hook's own child got the signal too (it may linger as a zombie
    // until it is reaped; it must not be running).
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .trim_start()
        .chars()
        .next();
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "the hook's child still runs: {stat}"
    );
}

/// Runs `snap ARGS` with `input` on standard input.
fn with_stdin(p: &Profiled, args: &[&str], input: &[u8]) -> Output {
    // snap may refuse before it reads all of stdin: a failed write is fine.
    let (out, _) = common::output_with_stdin(
        p.std_cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        input,
    );
    out
}

#[test]
fn stdin_round_trips_and_a_second_copy_is_deduplicated() {
    let p = Profiled::new("repository = \"../repo\"\n");
    p.ok(&["init"]);
    let dump = pseudo_random(6 << 20, 9);
    let out = with_stdin(
        &p,
        &[
            "--json",
            "backup",
            "--stdin",
            "--stdin-name",
            "postgres/mydb.dump",
        ],
        &dump,
    );
    assert_code(&out, 0);
    let first: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(first["bytes"], dump.len());
    let back = p.ok(&["cat", "latest:postgres/mydb.dump"]);
    assert!(back.stdout == dump, "cat returns the stream unchanged");
    assert_eq!(p.listing(), ["postgres", "postgres/mydb.dump"]);

    // The same dump again (as a command's output this time) stores almost nothing.
    fs::write(p.path("dump.bin"), &dump).unwrap();
    let second = p.json(&[
        "backup",
        "--stdin-from-command",
        "cat ../dump.bin",
        "--stdin-name",
        "postgres/mydb.dump",
    ]);
    assert_eq!(second["bytes"], dump.len());
    let added = second["bytes_added_packed"].as_u64().unwrap();
    assert!(
        added < dump.len() as u64 / 100,
        "a repeated stream added {added} bytes"
    );
    let back = p.ok(&["cat", "latest:postgres/mydb.dump"]);
    assert!(back.stdout == dump);
}

#[test]
fn a_failing_dump_command_writes_no_snapshot() {
    let p = Profiled::new("repository = \"../repo\"\n");
    p.ok(&["init"]);
    for command in ["echo partial; exit 3", "echo partial; kill -9 $$"] {
        let out = p.run(&[
            "backup",
            "--stdin-from-command",
            command,
            "--stdin-name",
            "db.dump",
        ]);
        assert_code(&out, 1);
        let err = stderr_text(&out);
        assert!(err.contains("no snapshot was written"), "{err}");
        assert_eq!(p.snapshot_count(), 0);
    }
    // A profile source that is a failing command fails the whole backup.
    let p = Profiled::new(
        "repository = \"../repo\"\n[[source]]\nname = \"ok\"\npath = \".\"\n[[source]]\nname = \"pg\"\ncommand = \"echo half; false\"\n",
    );
    p.ok(&["init"]);
    assert_code(&p.run(&["backup"]), 1);
    assert_eq!(p.snapshot_count(), 0);
    // The repository stays consistent (only unreferenced data is left).
    let out = p.run(&["check"]);
    assert_code(&out, 0);
}

#[test]
fn forget_without_a_policy_uses_the_profile_retention() {
    let p = Profiled::new("repository = \"../repo\"\n[retention]\nkeep-last = 2\n");
    p.ok(&["init"]);
    for i in 0..4 {
        let out = with_stdin(
            &p,
            &["backup", "--stdin", "--stdin-name", "n.txt"],
            format!("{i}").as_bytes(),
        );
        assert_code(&out, 0);
    }
    let plan = p.json(&["forget"]);
    assert_eq!(plan["keep"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(plan["remove"].as_array().unwrap().len(), 2, "{plan}");
    assert_eq!(p.snapshot_count(), 2);
    // Flags on the command line replace the profile's policy.
    p.ok(&["forget", "--keep-last", "1"]);
    assert_eq!(p.snapshot_count(), 1);

    // Without [retention], forget with no policy stays a usage error.
    let bare = Profiled::new("repository = \"../repo\"\n");
    bare.ok(&["init"]);
    assert_code(&bare.run(&["forget"]), 2);
}

#[test]
fn check_warns_when_a_critical_source_is_missing_or_empty() {
    let p = Profiled::new(
        r#"
repository = "../repo"
[[source]]
name = "memories"
path = "../data/memories"
critical = true
[[source]]
name = "db.sqlite"
path = "../data/db.sqlite"
critical = true
[[source]]
name = "scratch"
path = "../data/scratch"
"#,
    );
    p.write("data/memories/m.md", b"remember");
    p.write("data/db.sqlite", b"not really a database, but not empty");
    fs::create_dir_all(p.path("data/scratch")).unwrap();
    p.ok(&["init"]);
    // No snapshot yet: every critical source is missing.
    assert_code(&p.run(&["check"]), 3);

    p.ok(&["backup"]);
    let report = p.json(&["check"]);
    assert_eq!(report["warnings"], serde_json::json!([]), "{report}");

    // An empty critical folder and a 0-byte critical file.
    fs::remove_file(p.path("data/memories/m.md")).unwrap();
    fs::write(p.path("data/db.sqlite"), b"").unwrap();
    p.ok(&["backup"]);
    let out = p.cmd().args(["--json", "check"]).output().unwrap();
    assert_code(&out, 3);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    let warnings: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("`memories` is empty") && warnings[0].contains("empty folder"));
    assert!(warnings[1].contains("`db.sqlite` is empty") && warnings[1].contains("0-byte"));

    // A latest snapshot of other paths lacks them.
    p.ok(&["backup", "../data/scratch"]);
    let out = p.run(&["check"]);
    assert_code(&out, 3);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("lacks the critical source `memories`"),
        "{text}"
    );
    assert!(
        text.contains("lacks the critical source `db.sqlite`"),
        "{text}"
    );
}

#[test]
fn the_profile_supplies_the_password_relative_to_its_folder() {
    let p = Profiled::new(
        "repository = \"../repo\"\npassword-file = \"secret.pass\"\n[[source]]\nname = \"n\"\npath = \"secret.pass\"\n",
    );
    fs::write(p.path("profile/secret.pass"), "correct horse\n").unwrap();
    let init = p
        .cmd()
        .env_remove("SNAP_PASSWORD")
        .args(["init", "--encrypt"])
        .output()
        .unwrap();
    assert_code(&init, 0);
    assert_code(
        &p.cmd()
            .env_remove("SNAP_PASSWORD")
            .arg("backup")
            .output()
            .unwrap(),
        0,
    );
    // A password command from a profile runs in the profile's folder.
    fs::write(
        p.path("profile/snap.toml"),
        "repository = \"../repo\"\npassword-command = \"cat secret.pass\"\n",
    )
    .unwrap();
    let out = p
        .cmd()
        .current_dir(p.path("xdg"))
        .env_remove("SNAP_PASSWORD")
        .arg("--config")
        .arg(p.path("profile/snap.toml"))
        .args(["cat", "latest:n"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(out.stdout, b"correct horse\n");
    // The command line wins over the profile: a wrong password is refused.
    fs::write(p.path("wrong.pass"), "wrong\n").unwrap();
    let out = p
        .cmd()
        .env_remove("SNAP_PASSWORD")
        .arg("--password-file")
        .arg(p.path("wrong.pass"))
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_code(&out, 5);
}
