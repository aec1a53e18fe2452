//! The manifest of a directory tree: one line per entry, sorted by path,
//! `TYPE MODE SIZE BLAKE3 PATH` (mode in octal, `-` where it does not
//! apply; a symlink's size and hash are those of its target text). The
//! fixture repositories record the manifest of the tree they were made
//! from (`examples/fixture_manifest.rs` prints it for tests/fixtures/make.sh)
//! and their test compares it with the manifest of a restore.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The manifest of the tree at `root` (which itself is the entry `.`).
pub fn manifest(root: &Path) -> io::Result<String> {
    let mut lines = Vec::new();
    entry(root, ".", &mut lines)?;
    lines.sort();
    Ok(lines.into_iter().map(|(_, line)| line + "\n").collect())
}

/// Adds the line of `path` (named `rel` in the manifest) and, for a
/// directory, those of everything below it. Lines are keyed by the path's
/// bytes, so the order does not depend on the locale.
fn entry(path: &Path, rel: &str, lines: &mut Vec<(Vec<u8>, String)>) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let mode = meta.permissions().mode() & 0o7777;
    let line = if meta.file_type().is_symlink() {
        let target = fs::read_link(path)?;
        let bytes = target.as_os_str().as_bytes();
        let hash = blake3::hash(bytes);
        format!("symlink - {} {hash} {rel}", bytes.len())
    } else if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            let child_rel = if rel == "." {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel}/{}", name.to_string_lossy())
            };
            entry(&path.join(&name), &child_rel, lines)?;
        }
        format!("dir {mode:04o} - - {rel}")
    } else if meta.is_file() {
        let mut hasher = blake3::Hasher::new();
        io::copy(&mut fs::File::open(path)?, &mut hasher)?;
        format!("file {mode:04o} {} {} {rel}", meta.len(), hasher.finalize())
    } else {
        format!("other {mode:04o} - - {rel}")
    };
    lines.push((rel.as_bytes().to_vec(), line));
    Ok(())
}
