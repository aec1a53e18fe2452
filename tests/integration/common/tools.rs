//! Outside programs some tests need (the reference `age` and `zstd`,
//! PostgreSQL's server and clients): a test either finds what it needs or
//! skips with one line saying what is missing and how to install it.
//!
//! Under CI (`CI` set to anything but `false` or `0`, as `.ci/run` does) a
//! missing program fails the test instead: CI never passes by skipping.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Whether missing programs fail the tests instead of skipping them.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The executable `program` on `PATH`, if any.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `found`, or, when it is `None`, a skip: one line on the test process's
/// stderr (written past the test harness's capture, so `cargo test` shows
/// it) naming the test, `what` is missing and `install`. Panics instead
/// under CI.
#[track_caller]
pub fn require<T>(found: Option<T>, what: &str, install: &str) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    assert!(
        !strict(),
        "{test} needs {what} ({install}); CI must have it (.ci/run installs it)"
    );
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test} needs {what} ({install})"
    );
    None
}

/// Whether `program` is on `PATH`; when it is not, the test skips (see
/// [`require`]): `if !require_program("age", "apt-get install age") { return; }`.
#[track_caller]
pub fn require_program(program: &str, install: &str) -> bool {
    require(find_program(program), program, install).is_some()
}
