//! Entries the selection options leave out of a backup are counted: in the
//! summary line and in `--json` (`excluded`), for a real backup and a dry
//! run alike, a left-out folder once whatever it holds.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::Env;

fn write(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

/// data/{keep.txt, big.bin (4 KiB), photo.JPG, old.tmp, tagged/{.nobackup, a, b},
/// cache/{CACHEDIR.TAG, c}}: five entries for the flags of [`SELECTING`].
fn tree(env: &Env) -> PathBuf {
    let root = env.path("src/data");
    write(&root.join("keep.txt"), b"keep");
    write(&root.join("big.bin"), &[7u8; 4096]);
    write(&root.join("photo.JPG"), b"jpg");
    write(&root.join("old.tmp"), b"tmp");
    write(&root.join("tagged/.nobackup"), b"");
    write(&root.join("tagged/a"), b"a");
    write(&root.join("tagged/b"), b"b");
    write(
        &root.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    );
    write(&root.join("cache/c"), b"c");
    root
}

const SELECTING: [&str; 9] = [
    "--exclude-if-present",
    ".nobackup",
    "--exclude-caches",
    "--exclude-larger-than",
    "1K",
    "--iexclude",
    "*.jpg",
    "--exclude",
    "*.tmp",
];

fn text_backup(env: &Env, root: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", root.to_str().unwrap()];
    args.extend_from_slice(extra);
    String::from_utf8(env.ok(&args)).unwrap()
}

#[test]
fn excluded_entries_are_counted_in_text_and_json_real_and_dry_run() {
    let env = Env::new();
    let root = tree(&env);
    let mut dry = SELECTING.to_vec();
    dry.push("--dry-run");
    let report = env.backup(&[&root], &dry);
    assert_eq!(report["excluded"], 5, "{report}");
    assert_eq!(report["files"], 1, "{report}");
    let report = env.backup(&[&root], &SELECTING);
    assert_eq!(report["excluded"], 5, "{report}");
    let text = text_backup(&env, &root, &SELECTING);
    assert!(text.contains(", 5 entries excluded\n"), "{text}");
    let mut dry = SELECTING.to_vec();
    dry.push("--dry-run");
    let text = text_backup(&env, &root, &dry);
    assert!(
        text.starts_with("dry run, nothing written: ") && text.contains(", 5 entries excluded\n"),
        "{text}"
    );
    // One entry: the singular.
    let text = text_backup(&env, &root, &["--exclude", "*.tmp"]);
    assert!(text.contains(", 1 entry excluded\n"), "{text}");
    // Nothing left out: 0 in JSON, nothing said in text.
    let report = env.backup(&[&root], &[]);
    assert_eq!(report["excluded"], 0, "{report}");
    let text = text_backup(&env, &root, &[]);
    assert!(!text.contains("excluded"), "{text}");
    // -q says nothing of it either.
    let mut quiet = vec!["-q"];
    quiet.extend_from_slice(&SELECTING);
    assert_eq!(text_backup(&env, &root, &quiet), "");
}
