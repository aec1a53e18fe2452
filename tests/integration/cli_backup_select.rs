//! Backup selection options through the real binary: folders tagged by a
//! file or a CACHEDIR.TAG, files over a size, case-insensitive excludes,
//! path lists, the profile keys, and the errors for bad input.

use crate::common;

use std::fs;
use std::path::Path;

use common::{Env, assert_code, stderr_text};

/// Every path of the latest snapshot, as `snap ls -R latest` prints them.
fn listing(env: &Env) -> Vec<String> {
    let out = String::from_utf8(env.ok(["ls", "-R", "latest"])).unwrap();
    out.lines().map(str::to_string).collect()
}

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// data/{keep.txt, BIG.bin (4 KiB), Notes.JPG, tagged/{.nobackup, a},
/// cache/{CACHEDIR.TAG valid, c}, fake/{CACHEDIR.TAG invalid, f}}
fn tree(env: &Env) -> std::path::PathBuf {
    let root = env.path("src/data");
    write(&root.join("keep.txt"), b"keep");
    write(&root.join("BIG.bin"), &[7u8; 4096]);
    write(&root.join("Notes.JPG"), b"jpg");
    write(&root.join("tagged/.nobackup"), b"");
    write(&root.join("tagged/a"), b"a");
    write(
        &root.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n",
    );
    write(&root.join("cache/c"), b"c");
    write(&root.join("fake/CACHEDIR.TAG"), b"Signature: wrong\n");
    write(&root.join("fake/f"), b"f");
    root
}

/// What is left of `tree` with all four selection options: the folder with
/// an invalid CACHEDIR.TAG stays.
const SELECTED: [&str; 5] = [
    "data",
    "data/fake",
    "data/fake/CACHEDIR.TAG",
    "data/fake/f",
    "data/keep.txt",
];

/// The four selection options that give [`SELECTED`]: they leave out
/// `tagged`, `cache`, `BIG.bin` and `Notes.JPG`, four entries (a folder
/// once, whatever it holds).
const SELECTING: [&str; 7] = [
    "--exclude-if-present",
    ".nobackup",
    "--exclude-caches",
    "--exclude-larger-than",
    "1K",
    "--iexclude",
    "*.jpg",
];

#[test]
fn selection_flags_leave_out_what_they_name() {
    let env = Env::new();
    let root = tree(&env);
    env.backup(&[&root], &SELECTING);
    assert_eq!(listing(&env), SELECTED);
    // Without the flags everything is there; a plain --exclude keeps case.
    env.backup(
        &[&root],
        &["--exclude", "*.jpg", "--exclude-larger-than", "4K"],
    );
    let all = listing(&env);
    for path in [
        "data/BIG.bin",
        "data/Notes.JPG",
        "data/tagged/a",
        "data/cache/c",
    ] {
        assert!(all.contains(&path.to_string()), "{path} in {all:?}");
    }
}

#[test]
fn files_from_lists_paths_and_verbatim_takes_every_line() {
    let env = Env::new();
    let root = tree(&env);
    let list = env.path("list");
    fs::write(
        &list,
        format!("# the list\n\n  {}  \n", root.join("keep.txt").display()),
    )
    .unwrap();
    env.backup(&[], &["--files-from", list.to_str().unwrap()]);
    assert_eq!(listing(&env), vec!["keep.txt"]);

    let verbatim = env.path("verbatim");
    fs::write(&verbatim, format!("{}\n", root.join("Notes.JPG").display())).unwrap();
    env.backup(&[], &["--files-from-verbatim", verbatim.to_str().unwrap()]);
    assert_eq!(listing(&env), vec!["Notes.JPG"]);
    // A `#` line is a path there, and a missing one.
    fs::write(&verbatim, "# not a comment\n").unwrap();
    let out = env.run([
        "backup",
        "--files-from-verbatim",
        verbatim.to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr_text(&out).contains("# not a comment"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn bad_size_and_missing_list_file_are_one_line_errors() {
    let env = Env::new();
    let root = tree(&env);
    let out = env.run([
        "backup",
        root.to_str().unwrap(),
        "--exclude-larger-than",
        "lots",
    ]);
    assert_code(&out, 2);
    let err = stderr_text(&out);
    assert!(
        err.contains("--exclude-larger-than") && err.contains("`lots` is not a size"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let missing = env.path("no-such-list");
    for flag in ["--files-from", "--files-from-verbatim"] {
        let out = env.run(["backup", flag, missing.to_str().unwrap()]);
        assert_ne!(out.status.code(), Some(0));
        let err = stderr_text(&out);
        assert!(
            err.contains("cannot read files-from") && err.contains("no-such-list"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert!(env.snapshots().is_empty());
}

#[test]
fn profile_keys_select_like_the_flags() {
    let env = Env::new();
    let root = tree(&env);
    fs::write(env.path("list"), format!("{}\n", root.display())).unwrap();
    let profile = env.path("snap.toml");
    fs::write(
        &profile,
        format!(
            "repository = \"{}\"\n\
             exclude-if-present = [\".nobackup\"]\n\
             exclude-caches = true\n\
             exclude-larger-than = \"1K\"\n\
             iexclude = [\"*.jpg\"]\n\
             files-from = [\"list\"]\n",
            env.path("repo").display()
        ),
    )
    .unwrap();
    env.ok(["--config", profile.to_str().unwrap(), "backup"]);
    assert_eq!(listing(&env), SELECTED);
    fs::write(&profile, "exclude-larger-than = \"huge\"\n").unwrap();
    let out = env.run(["--config", profile.to_str().unwrap(), "backup", "x"]);
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("exclude-larger-than"),
        "{}",
        stderr_text(&out)
    );
}

fn text_backup(env: &Env, root: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    String::from_utf8(env.ok(&args)).unwrap()
}

#[test]
fn excluded_entries_are_counted_in_text_and_json_real_and_dry_run() {
    let env = Env::new();
    let root = tree(&env);
    let dry: Vec<&str> = SELECTING.iter().copied().chain(["--dry-run"]).collect();
    let report = env.backup(&[&root], &dry);
    assert_eq!(report["excluded"], 4, "{report}");
    assert_eq!(report["files"], 3, "{report}");
    let report = env.backup(&[&root], &SELECTING);
    assert_eq!(report["excluded"], 4, "{report}");
    assert_eq!(listing(&env), SELECTED);
    let text = text_backup(&env, &root, &SELECTING);
    assert!(text.contains(", 4 entries excluded\n"), "{text}");
    let text = text_backup(&env, &root, &dry);
    assert!(
        text.starts_with("dry run, nothing written: ") && text.contains(", 4 entries excluded\n"),
        "{text}"
    );
    // One entry, by --exclude: the singular.
    let text = text_backup(&env, &root, &["--exclude", "*.txt"]);
    assert!(text.contains(", 1 entry excluded\n"), "{text}");
    // Nothing left out: 0 in JSON, nothing said in text.
    assert_eq!(env.backup(&[&root], &[])["excluded"], 0);
    let text = text_backup(&env, &root, &[]);
    assert!(!text.contains("excluded"), "{text}");
    // -q says nothing of it either.
    let quiet: Vec<&str> = ["-q"].into_iter().chain(SELECTING).collect();
    assert_eq!(text_backup(&env, &root, &quiet), "");
}
