//! What the CLI prints for people, through the real `snap` binary: counts
//! with the right noun ("1 snapshot"), `-q` silencing every command's
//! report, the snapshots table sized to its content, and the undo hint
//! after an in-place restore running as printed.

use crate::common;

use std::fs;
use std::path::Path;

use common::{Env, assert_code, stderr_text};

fn stdout_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A source folder with one file, backed up once; returns the source.
fn one_file_snapshot(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    write(&src.join("a.txt"), "a v1\n");
    env.backup(&[&src], &[]);
    src
}

/// Runs `snap -r REPO ARGS...`, which must succeed and print `needle` on
/// stdout.
#[track_caller]
fn prints(env: &Env, args: &[&std::ffi::OsStr], needle: &str) {
    let out = env.run(args);
    assert_code(&out, 0);
    let text = stdout_text(&out);
    assert!(text.contains(needle), "`{needle}` not in: {text}");
}

#[test]
fn counts_of_one_are_singular() {
    let env = Env::new();
    let src = one_file_snapshot(&env);
    let os = |s: &'static str| std::ffi::OsStr::new(s);

    prints(&env, &[os("snapshots")], "\n1 snapshot (* = latest)");
    let target = env.path("target");
    prints(
        &env,
        &[
            os("restore"),
            os("latest"),
            os("--target"),
            target.as_os_str(),
        ],
        "restored 1 file, 1 dir, 0 other entries",
    );
    prints(&env, &[os("check")], "checked 1 snapshot, ");
    write(&src.join("b.txt"), "b\n");
    prints(
        &env,
        &[os("backup"), src.as_os_str()],
        ": 2 files (1 new, 0 changed, 1 unchanged), 1 dir,",
    );
    prints(&env, &[os("snapshots")], "\n2 snapshots (* = latest)");
    prints(
        &env,
        &[os("forget"), os("--keep-last"), os("1")],
        "kept 1, removed 1 snapshot\n",
    );
}

#[test]
fn quiet_silences_every_report() {
    let env = Env::uninitialized();
    let out = env.run(["-q", "init"]);
    assert_code(&out, 0);
    assert_eq!(stdout_text(&out), "", "init -q");
    assert_eq!(stderr_text(&out), "", "init -q");

    let src = env.path("src");
    write(&src.join("a.txt"), "a\n");
    let target = env.path("target");
    let runs: Vec<Vec<std::ffi::OsString>> = vec![
        vec!["backup".into(), src.clone().into()],
        vec!["backup".into(), src.clone().into()],
        vec![
            "restore".into(),
            "latest".into(),
            "--target".into(),
            target.into(),
        ],
        vec!["tag".into(), "--add".into(), "x".into(), "latest".into()],
        vec!["check".into()],
        vec!["check".into(), "--read-data".into()],
        vec!["forget".into(), "--keep-last".into(), "1".into()],
        vec!["prune".into()],
        vec![
            "forget".into(),
            "--keep-last".into(),
            "1".into(),
            "--prune".into(),
        ],
        vec!["repair".into(), "index".into()],
        vec!["repair".into(), "snapshots".into()],
    ];
    for args in runs {
        let out = env.cmd().arg("-q").args(&args).output().unwrap();
        assert_code(&out, 0);
        assert_eq!(stdout_text(&out), "", "-q {args:?} printed to stdout");
        assert_eq!(stderr_text(&out), "", "-q {args:?} printed to stderr");
    }

    // What was asked for is still printed: a listing, a dry run's plan.
    let out = env.run(["-q", "snapshots"]);
    assert!(
        stdout_text(&out).contains("1 snapshot"),
        "{}",
        stdout_text(&out)
    );
    let out = env.run(["-q", "forget", "--keep-last", "1", "--dry-run"]);
    assert!(
        stdout_text(&out).contains("would keep 1"),
        "{}",
        stdout_text(&out)
    );
}

#[test]
fn snapshots_table_fits_a_long_host() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), "a\n");
    let long = "build-runner-0123456789.eu-central-1.compute.internal.example.org";
    env.backup(&[&src], &["--host", long, "--tag", "nightly"]);
    env.backup(&[&src], &["--host", "lyra"]);

    let listed = stdout_text(&env.run(["snapshots"]));
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 4, "{listed}");
    // Every row puts its columns where the header does.
    let header = lines[0];
    let paths_at = header.find("paths").unwrap();
    let files_end = header.find("files").unwrap() + "files".len();
    for row in &lines[1..3] {
        // The header is ASCII: its byte offsets are character columns.
        let row: Vec<char> = row.chars().collect();
        let from_paths: String = row[paths_at..].iter().collect();
        assert!(from_paths.starts_with(src.to_str().unwrap()), "{listed}");
        assert_eq!(row[files_end - 1], '1', "{listed}");
    }
    assert!(!listed.contains(long), "{listed}");
    let shown = lines[1].split_whitespace().nth(3).unwrap();
    assert!(shown.ends_with('…'), "{listed}");
    assert!(long.starts_with(shown.trim_end_matches('…')), "{listed}");
    assert!(lines[2].contains(" lyra "), "{listed}");

    // Short content, narrow columns: no padding to fixed widths.
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), "a\n");
    env.backup(&[&src], &["--host", "h"]);
    let listed = stdout_text(&env.run(["snapshots"]));
    let header = listed.lines().next().unwrap();
    assert!(header.contains("host  tags  files"), "{listed}");
}

#[test]
fn the_undo_hint_after_a_restore_runs_as_printed() {
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("a.txt"), "a v1\n");
    env.backup(&[&src], &[]);
    // A target with a blank in its name: the hint must quote it.
    let target = env.path("my target");
    env.restore("latest", &target);
    let restored = target.join(src.strip_prefix("/").unwrap());
    let restored = if restored.exists() {
        restored
    } else {
        target.join("src")
    };
    let file = restored.join("a.txt");
    write(&file, "edited locally\n");

    let out = env.run([
        "restore".as_ref(),
        "latest".as_ref(),
        "--target".as_ref(),
        target.as_os_str(),
        "--overwrite".as_ref(),
        "always".as_ref(),
        "--yes".as_ref(),
    ]);
    assert_code(&out, 0);
    assert_eq!(fs::read_to_string(&file).unwrap(), "a v1\n");
    let err = stderr_text(&out);
    let hint = err
        .split("undo with `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or_else(|| panic!("no undo hint: {err}"));
    assert!(hint.contains("--yes"), "{hint}");

    // Run by a shell, as a user would paste it, without a terminal.
    let bin_dir = common::snap_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(hint)
        .env("PATH", path)
        .env_remove("SNAP_REPO")
        .env_remove("SNAP_CONFIG")
        .env("XDG_CACHE_HOME", env.cache_home())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert_eq!(fs::read_to_string(&file).unwrap(), "edited locally\n");
}

#[test]
fn init_docs_give_the_sqlite_chunk_default_of_the_help() {
    let out = common::snap_command()
        .args(["init", "--help"])
        .output()
        .unwrap();
    assert_code(&out, 0);
    let help = stdout_text(&out);
    let after = &help[help
        .find("--sqlite-chunk-size")
        .expect("the flag is in --help")..];
    let default = after
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no default in --help: {help}"));
    let docs =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/commands/init.md"))
            .unwrap();
    let line = docs
        .split("- `--sqlite-chunk-size`")
        .nth(1)
        .and_then(|rest| rest.split("\n- ").next())
        .expect("docs/commands/init.md describes --sqlite-chunk-size");
    assert!(
        line.contains(&format!("default {default}")),
        "--help says {default}, the docs: {line}"
    );
}
