//! Small files through the real binary: a file of at most 256 KiB is read
//! whole with one read into a reused buffer, cut in memory, and checked for
//! the SQLite header from those same bytes. These tests pin that the result
//! is the one reading in steps gives: sizes at and around the threshold,
//! buffers reused by larger then smaller files, chunk cuts shared with large
//! files, SQLite headers that are and are not whole, and a file that holds
//! more than its size says.

use crate::common;

use std::fs;
use std::path::Path;

use common::{Env, assert_code, assert_same_tree, pseudo_random, stderr_text};

/// The size up to which a file is read whole.
const SMALL: usize = 256 * 1024;

/// Backs up `src`, which must give exit code 0, restores the snapshot into
/// `name` and checks every byte came back; returns the backup's report.
#[track_caller]
fn round_trip(env: &Env, src: &Path, name: &str) -> serde_json::Value {
    let report = env.backup(&[src], &[]);
    let id = report["id"].as_str().expect("snapshot id").to_string();
    let target = env.path(name);
    env.restore(&id, &target);
    assert_same_tree(src, &target.join("src"));
    report
}

#[test]
fn files_at_and_around_the_threshold_restore_byte_for_byte() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Larger files first in name order and smaller after them, so a worker's
    // buffer, left holding a larger file, is reused for a smaller one.
    let sizes = [
        SMALL + 1,
        SMALL,
        SMALL - 1,
        100_000,
        3_000,
        100,
        17,
        16,
        15,
        1,
        0,
    ];
    for (i, size) in sizes.iter().enumerate() {
        let name = format!("{i:02}-{size}");
        fs::write(src.join(name), pseudo_random(*size, i as u64 + 1)).unwrap();
    }
    let report = round_trip(&env, &src, "restored");
    assert_eq!(report["files_new"], sizes.len(), "{report}");
    let total: usize = sizes.iter().sum();
    assert_eq!(report["bytes_read"], total, "{report}");
    let out = env.run(["check", "--read-data"]);
    assert_code(&out, 0);
}

/// With chunks far below the threshold, a small file is cut into several
/// chunks in memory; a large file that starts with the same bytes is cut
/// while it is read in steps, and shares all but the last of those chunks.
#[test]
fn a_small_file_is_cut_where_a_large_file_with_its_bytes_is_cut() {
    let env = Env::uninitialized();
    common::init_small_repo(&env.repo, 16 * 1024);
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let head = pseudo_random(200_000, 5);
    fs::write(src.join("small"), &head).unwrap();
    let first = round_trip(&env, &src, "first");
    assert!(first["bytes_added"].as_u64().unwrap() >= 200_000, "{first}");

    let mut long = head.clone();
    long.extend(pseudo_random(200_000, 6));
    assert!(long.len() > SMALL);
    fs::write(src.join("large"), &long).unwrap();
    let second = round_trip(&env, &src, "second");
    // New: the 200,000 bytes of the tail, the last chunk of the head (at
    // most the maximum chunk, 64 KiB) and two small trees.
    let added = second["bytes_added"].as_u64().unwrap();
    assert!(added < 200_000 + 64 * 1024 + 4096, "{second}");
    assert_code(&env.run(["check", "--read-data"]), 0);
}

/// The header check looks at the bytes the one read took in: a file holding
/// the whole header is taken for a database (and, not being one, stored as a
/// plain copy with a warning); a file shorter than the header, or holding
/// all but its last byte, is an ordinary file.
#[test]
fn sqlite_headers_whole_and_cut_short_in_small_files() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let header = b"SQLite format 3\0";
    fs::write(src.join("short.db"), &header[..13]).unwrap();
    fs::write(src.join("almost.db"), &header[..15]).unwrap();
    let report = round_trip(&env, &src, "plain");
    assert_eq!(report["files_new"], 2, "{report}");

    fs::write(src.join("header-only.db"), header).unwrap();
    let out = env.run(["backup", src.to_str().unwrap()]);
    assert_code(&out, 3);
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("header-only.db") && stderr.contains("plain file copy"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short.db") && !stderr.contains("almost.db"),
        "{stderr}"
    );
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_same_tree(&src, &target.join("src"));
}

/// A file whose size says less than it holds (here a kernel file, whose
/// size is 0) is read to its end: the read that finds a byte more than
/// expected goes on reading in steps.
#[test]
fn a_file_holding_more_than_its_size_says_is_read_to_its_end() {
    let version = Path::new("/proc/version");
    let Ok(expected) = fs::read(version) else {
        eprintln!("skipped: no /proc/version");
        return;
    };
    assert!(!expected.is_empty());
    assert_eq!(fs::metadata(version).unwrap().len(), 0);
    let env = Env::new();
    let report = env.backup(&[version], &[]);
    assert_eq!(report["bytes_read"], expected.len(), "{report}");
    let target = env.path("restored");
    env.restore("latest", &target);
    assert_eq!(fs::read(target.join("version")).unwrap(), expected);
}
