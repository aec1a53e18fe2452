//! The import graph of src/: the layers below the commands (`repo`, `keys`,
//! `lock`, `index`, `pack`, `format`, `codec`, `backend`, `select`, `profile`,
//! `retention` and the small helpers) never reach up into `ops` or `cli`, and
//! `ops` never into `cli`. Run it with `cargo test --test integration
//! architecture::`; a failure lists each arrow that points up, with the file
//! it is in.

use std::fs;
use std::path::Path;

/// Top-level modules that commands (`ops`) and the command line (`cli`) build
/// on; none of them may import either.
const LOWER: &[&str] = &[
    "repo",
    "keys",
    "lock",
    "index",
    "pack",
    "parity",
    "format",
    "codec",
    "backend",
    "id",
    "error",
    "duration",
    "host",
    "progress",
    "select",
    "glob",
    "sync",
    "profile",
    "retention",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a source text names through `crate::`, including
/// those inside `crate::{a, b::c}` groups.
fn crate_imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            found.push(first_segment(&item));
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn no_import_points_up_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let module = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        let text = fs::read_to_string(file).unwrap();
        for target in crate_imports(&text) {
            let up = (LOWER.contains(&module.as_str()) && (target == "ops" || target == "cli"))
                || (module == "ops" && target == "cli");
            if up {
                upward.push(format!("{module} -> {target} ({})", rel.display()));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports that point up a layer:\n{}",
        upward.join("\n")
    );
}

#[test]
fn groups_and_paths_are_both_seen() {
    assert_eq!(
        crate_imports("use crate::{ops::x, repo::{A, B}};\nlet h = crate::host::hostname();"),
        ["ops", "repo", "host"]
    );
}
