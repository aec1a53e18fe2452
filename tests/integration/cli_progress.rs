//! Progress through the real binary: `--progress json` status lines parsed
//! (counts that only grow, totals that match what was done, a last line at
//! percent 1, stdout still one `--json` document), no progress output where
//! none was asked for, and the bar under a pseudo terminal (scanning first,
//! then a percentage, file counts that never go down). No speed is asserted.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{Env, pseudo_random, stderr_text};

/// A tree of `files` files of about `size` bytes each in a few folders,
/// plus an excluded `.cache` folder and one file over the size limit the
/// tests pass (`--exclude .cache --exclude-larger-than 2M`).
fn make_tree(root: &Path, files: usize, size: usize) {
    for i in 0..files {
        let dir = root.join(format!("d{}", i % 7));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), pseudo_random(size + i, i as u64)).unwrap();
    }
    fs::create_dir_all(root.join(".cache")).unwrap();
    fs::write(root.join(".cache/skipped"), b"left out by --exclude").unwrap();
    fs::write(root.join("huge"), pseudo_random(3 << 20, 99)).unwrap();
}

/// A new repository and a [`make_tree`] tree at `src` beside it.
fn env_with_tree(files: usize, size: usize) -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    make_tree(&src, files, size);
    (env, src)
}

const SELECTION: [&str; 4] = ["--exclude", ".cache", "--exclude-larger-than", "2M"];

/// Runs `snap FLAGS... backup SRC` with [`SELECTION`], which must succeed.
#[track_caller]
fn backup(env: &Env, flags: &[&str], src: &Path) -> std::process::Output {
    let out = env
        .cmd()
        .args(flags)
        .arg("backup")
        .arg(src)
        .args(SELECTION)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_text(&out));
    out
}

/// The JSON status lines of a command's stderr, in order; every other
/// stderr line must not look like JSON.
fn status_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert_eq!(value["message_type"], "status", "{line}");
            value
        })
        .collect()
}

/// Checks that counts and percent never go down from one line to the
/// next, that no count passes its total, and that the last line is a
/// `done` line at percent 1 with nothing left; returns the last line.
#[track_caller]
fn check_lines(lines: &[serde_json::Value]) -> serde_json::Value {
    assert!(!lines.is_empty(), "no status line was written");
    let n = |line: &serde_json::Value, field: &str| {
        line[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} is not a count in {line}"))
    };
    for pair in lines.windows(2) {
        for field in ["total_files", "files_done", "total_bytes", "bytes_done"] {
            assert!(
                n(&pair[1], field) >= n(&pair[0], field),
                "{field} went down: {} then {}",
                pair[0],
                pair[1]
            );
        }
        assert!(pair[1]["percent"].as_f64() >= pair[0]["percent"].as_f64());
    }
    for line in lines {
        assert!(n(line, "files_done") <= n(line, "total_files"), "{line}");
        assert!(n(line, "bytes_done") <= n(line, "total_bytes"), "{line}");
        let percent = line["percent"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&percent), "{line}");
        if line["phase"] == "scanning" {
            assert_eq!(percent, 0.0, "a percentage of growing totals: {line}");
            assert!(line["seconds_remaining"].is_null(), "{line}");
        }
    }
    let last = lines.last().unwrap().clone();
    assert_eq!(last["phase"], "done", "{last}");
    assert_eq!(last["percent"], 1.0, "{last}");
    assert_eq!(last["seconds_remaining"], 0, "{last}");
    assert_eq!(last["current_files"], serde_json::json!([]), "{last}");
    last
}

/// Runs `cmd` (with `--progress json` among its arguments), which must
/// succeed; returns its stdout and its last status line, after
/// [`check_lines`].
#[track_caller]
fn run_with_status(cmd: &mut assert_cmd::Command) -> (Vec<u8>, serde_json::Value) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr_text(&out));
    let last = check_lines(&status_lines(&stderr_text(&out)));
    (out.stdout, last)
}

#[test]
fn backup_json_status_lines_count_what_the_backup_stores() {
    let (env, src) = env_with_tree(60, 40_000);
    let out = backup(&env, &["--json", "--progress", "json"], &src);
    // Standard output is still the one report document.
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = check_lines(&status_lines(&stderr_text(&out)));
    // The scan follows the walk's selection: the excluded folder and the
    // file over the limit are in neither the totals nor the report.
    assert_eq!(report["files"], 60);
    assert_eq!(last["files_done"], report["files"], "{last}");
    assert_eq!(last["total_files"], report["files"], "{last}");
    assert_eq!(last["bytes_done"], report["bytes"], "{last}");
    assert_eq!(last["total_bytes"], report["bytes"], "{last}");

    // Unchanged files count as done too (their content is reused).
    let out = backup(&env, &["--progress", "json"], &src);
    let last = check_lines(&status_lines(&stderr_text(&out)));
    assert_eq!(last["files_done"], 60, "{last}");
    assert_eq!(last["total_files"], 60, "{last}");
}

#[test]
fn restore_check_and_copy_json_totals_match_their_work() {
    let (env, src) = env_with_tree(30, 20_000);
    let report = env.backup(&[&src], &SELECTION);

    // Restore: the totals are those of the plan, --include applied.
    let (_, last) = run_with_status(
        env.cmd()
            .args(["--progress", "json", "restore", "latest"])
            .args(["--include", "src/d1/*", "--target"])
            .arg(env.path("out")),
    );
    let restored = fs::read_dir(env.path("out/src/d1")).unwrap().count() as u64;
    assert!(restored > 0);
    assert_eq!(last["files_done"], restored, "{last}");
    assert_eq!(last["total_files"], restored, "{last}");

    // check --read-data counts packs, and reads every byte of them.
    let (_, last) = run_with_status(
        env.cmd()
            .args(["--progress", "json", "check", "--read-data"]),
    );
    let packs = fs::read_dir(env.repo.join("data"))
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .count() as u64;
    assert_eq!(last["total_files"], packs, "{last}");
    assert_eq!(last["files_done"], packs, "{last}");

    // copy takes its totals from the snapshot summaries.
    let other = Env::new();
    let (_, last) = run_with_status(
        env.cmd()
            .args(["--progress", "json", "copy", "--to"])
            .arg(&other.repo),
    );
    assert_eq!(last["total_files"], report["files"], "{last}");
    assert_eq!(last["files_done"], report["files"], "{last}");
    assert_eq!(last["bytes_done"], report["bytes"], "{last}");

    // dump counts the files and content bytes it writes; stdout is the
    // archive alone.
    let (tar, last) = run_with_status(env.cmd().args(["--progress", "json", "dump", "latest"]));
    assert!(tar.len() as u64 > report["bytes"].as_u64().unwrap());
    assert_eq!(last["total_files"], report["files"], "{last}");
    assert_eq!(last["files_done"], report["files"], "{last}");
    assert_eq!(last["total_bytes"], report["bytes"], "{last}");
    assert_eq!(last["bytes_done"], report["bytes"], "{last}");
}

#[test]
fn prune_json_status_lines_cover_the_repacking() {
    let (env, src) = env_with_tree(20, 30_000);
    env.backup(&[&src], &SELECTION);
    // Half the files gone from the next snapshot, the first forgotten: the
    // packs holding both keep and drop data, so prune repacks.
    for i in (0..20).step_by(2) {
        fs::remove_file(src.join(format!("d{}/f{i}", i % 7))).unwrap();
    }
    env.backup(&[&src], &SELECTION);
    env.ok(["forget", "latest~1"]);
    let (stdout, last) = run_with_status(env.cmd().args(["--json", "--progress", "json"]).args([
        "prune",
        "--max-unused",
        "0%",
    ]));
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert!(last["total_files"].as_u64().unwrap() > 0, "{last} {report}");
    assert_eq!(last["files_done"], last["total_files"], "{last}");
}

#[test]
fn no_progress_output_unless_asked_for() {
    let (env, src) = env_with_tree(5, 1_000);
    // Not a terminal: auto shows nothing, and neither does none.
    for mode in [
        &["-q", "--progress", "auto"][..],
        &["-q", "--progress", "none"],
        &["-q"],
    ] {
        let out = backup(&env, mode, &src);
        assert_eq!(stderr_text(&out), "", "{mode:?}");
    }
    // A bar asked for by name is drawn on a pipe too, but not with -q.
    let bar = stderr_text(&backup(&env, &["--progress", "bar"], &src));
    assert!(bar.contains("backup [00:00:"), "{bar}");
    let quiet = backup(&env, &["-q", "--progress", "bar"], &src);
    assert_eq!(stderr_text(&quiet), "");
    // JSON lines asked for by name are written even with -q.
    let out = backup(&env, &["-q", "--progress", "json"], &src);
    check_lines(&status_lines(&stderr_text(&out)));
    // A mode that does not exist is a usage error naming the four.
    let out = env.run(["--progress", "fancy", "snapshots"]);
    common::assert_code(&out, 2);
    let text = stderr_text(&out);
    for mode in ["auto", "bar", "json", "none"] {
        assert!(text.contains(mode), "{text}");
    }
}

/// Every `DONE/TOTAL files` pair in the bar's frames, in order.
fn file_counts(text: &str) -> Vec<(u64, u64)> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[1].trim_end_matches(',') == "files")
        .filter_map(|w| {
            let (done, total) = w[0].split_once('/')?;
            Some((done.parse().ok()?, total.parse().ok()?))
        })
        .collect()
}

/// Every `N files, SIZE found` count of the scanning frames, in order.
fn found_counts(text: &str) -> Vec<u64> {
    text.split("scanning: ")
        .skip(1)
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn bar_on_a_terminal_shows_scanning_then_a_percentage_and_counts_only_grow() {
    let env = Env::new();
    let src = env.path("src");
    // The bar is drawn 5 times a second. A quiet machine reads these 23 MiB
    // in a tenth of a second, so the upload limit (which a local repository
    // keeps too) holds the backup in its working phase for a few seconds:
    // the frames then show the percentage whatever the machine's speed.
    make_tree(&src, 400, 60_000);
    let mut cmd = env.spawnable();
    cmd.arg("backup")
        .arg(&src)
        .args(SELECTION)
        .args(["--limit-upload", "4096"]);
    let options = rexpect::reader::Options::new()
        .timeout_ms(Some(120_000))
        .strip_ansi_escape_codes(true);
    let mut session = rexpect::session::spawn_with_options(cmd, options).unwrap();
    let text = session.exp_eof().unwrap();
    let status = session.process().wait().unwrap();
    assert!(
        matches!(status, rexpect::process::WaitStatus::Exited(_, 0)),
        "{status:?}\n{text}"
    );
    assert!(text.contains("snapshot "), "{text}");
    assert!(
        text.contains("backup [") && text.contains("scanning: "),
        "{text}"
    );
    let percents: Vec<u64> = text
        .split_whitespace()
        .filter_map(|w| w.strip_suffix('%')?.parse().ok())
        .collect();
    assert!(!percents.is_empty(), "no percentage in:\n{text}");
    assert!(percents.iter().all(|p| *p <= 100), "{percents:?}");
    assert!(percents.is_sorted(), "{percents:?}");
    let found = found_counts(&text);
    assert!(found.is_sorted(), "found counts went down: {found:?}");
    let counts = file_counts(&text);
    assert!(!counts.is_empty(), "no file counts in:\n{text}");
    assert!(
        counts.iter().map(|c| c.0).is_sorted(),
        "files done went down: {counts:?}"
    );
    assert!(
        counts.iter().map(|c| c.1).is_sorted(),
        "total files went down: {counts:?}"
    );
    assert!(
        counts.iter().all(|(done, total)| done <= total),
        "{counts:?}"
    );
}
