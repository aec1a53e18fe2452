//! SQLite databases: recognising them, training their compression
//! dictionary, and checking the ones stored in a snapshot.
//!
//! A database is recognised by its 16-byte header (or named with
//! `--sqlite GLOB`). Backup takes a consistent copy of it ([`capture`]) and
//! chunks that copy with fixed-size, page-aligned chunks: SQLite rewrites
//! pages in place, so fixed chunks keep an edit of a few rows to a few
//! chunks (see docs/SQLITE.md for the measurements behind the default size).
//! `snap diff` compares two stored versions row by row ([`rows`]).

mod capture;
pub mod rows;

pub use capture::{Capture, LOCK_TIMEOUT, capture};

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// The first 16 bytes of every SQLite 3 database.
pub const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Suffixes of the files SQLite keeps beside a database while it is in use.
pub const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Whether the file at `path` starts with the SQLite header.
pub fn has_header(path: &Path) -> bool {
    let open = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
        .or_else(|_| File::open(path));
    let Ok(mut file) = open else { return false };
    let mut header = [0u8; 16];
    file.read_exact(&mut header).is_ok() && &header == HEADER
}

/// Page size from a database header (bytes 16-17, big-endian; 1 means 65536).
pub fn page_size(header: &[u8]) -> u32 {
    match header.get(16..18) {
        Some([1, 0]) => 65536,
        Some(&[hi, lo]) => {
            let size = u32::from(u16::from_be_bytes([hi, lo]));
            if size.is_power_of_two() && (512..=32768).contains(&size) {
                size
            } else {
                4096
            }
        }
        _ => 4096,
    }
}

/// Whether a database has a non-empty write-ahead log or a hot journal
/// beside it, so its committed state may differ from what the main file's
/// metadata says.
pub fn has_pending_log(path: &Path) -> bool {
    COMPANIONS[..]
        .iter()
        .filter(|s| **s != "-shm")
        .any(|suffix| {
            let mut companion = path.as_os_str().to_owned();
            companion.push(suffix);
            std::fs::metadata(companion).is_ok_and(|m| m.len() > 0)
        })
}

/// Whether any of the `-wal`, `-shm` and `-journal` files is beside `path`.
fn has_companions(path: &Path) -> bool {
    COMPANIONS.iter().any(|suffix| {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        std::fs::symlink_metadata(companion).is_ok()
    })
}

/// Images smaller than this are compressed without a dictionary (one would
/// cost more than it saves).
pub const DICTIONARY_MIN_IMAGE: u64 = 1 << 20;

/// Pages sampled, evenly spread over the image, to train a dictionary.
const DICTIONARY_SAMPLES: u64 = 128;

/// Trains a zstd dictionary for the pages of a database image of `len` bytes:
/// 1/64 of the image, at most 64 KiB, learnt from 128 pages spread over it
/// (more samples took longer and compressed no better in docs/SQLITE.md).
/// `None` when the image is too small or zstd finds nothing to learn.
///
/// Pages are compressed one chunk at a time; alone, a 4 KiB page of text
/// compresses poorly. With a dictionary of the database's own vocabulary and
/// page layout, the pages changed by a session take 20% less (docs/SQLITE.md).
pub fn train_dictionary(image: &File, len: u64, page_size: u32) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    if len < DICTIONARY_MIN_IMAGE {
        return None;
    }
    let page_size = u64::from(page_size);
    let pages = len / page_size;
    let step = (pages / DICTIONARY_SAMPLES).max(1);
    let mut samples = Vec::new();
    for page in (0..pages)
        .step_by(step as usize)
        .take(DICTIONARY_SAMPLES as usize)
    {
        let mut buf = vec![0u8; page_size as usize];
        image.read_exact_at(&mut buf, page * page_size).ok()?;
        samples.push(buf);
    }
    let samples: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let size = (len / 64).min(64 << 10) as usize;
    crate::codec::compress::train(&samples, size).ok()
}

/// Runs `PRAGMA integrity_check` on a database file; `Ok(())` when it says "ok".
pub fn integrity_check(path: &Path) -> Result<(), String> {
    let db = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("does not open: {e}"))?;
    let result: String = db
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| format!("integrity_check failed to run: {e}"))?;
    if result == "ok" { Ok(()) } else { Err(result) }
}

/// What `PRAGMA integrity_check` says of one database stored in a snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseCheck {
    /// Its path in the snapshot.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Whether it opened and integrity_check said "ok".
    pub ok: bool,
    /// "ok", or what is wrong.
    pub message: String,
}

/// Runs `PRAGMA integrity_check` on every SQLite database (a file of whole
/// 512-byte multiples that starts with the SQLite header) in the snapshot with root `tree`, each
/// restored into a temporary file in `scratch` (removed right after), never
/// into its original place. Files that cannot be read from the repository
/// are errors (the repository check reports them); a database that is
/// stored intact but fails the check is reported in the result.
pub fn check_databases(
    repo: &crate::repo::Repository,
    tree: crate::id::TreeId,
    scratch: &Path,
    progress: &dyn crate::progress::Progress,
) -> crate::error::Result<Vec<DatabaseCheck>> {
    use crate::format::tree::NodeKind;
    use crate::ops::browse;
    use std::io::Write;

    let mut candidates = Vec::new();
    browse::walk(
        repo,
        &browse::root_node(tree),
        "",
        true,
        &mut |path, node| {
            // A database file is whole pages (512 bytes at least): only
            // such sizes are worth reading the first chunk of.
            if node.kind == NodeKind::File && node.size >= 512 && node.size % 512 == 0 {
                candidates.push((path.to_string(), node.clone()));
            }
            Ok(())
        },
    )?;
    let mut checks = Vec::new();
    for (path, node) in candidates {
        // The rule restore applies: a database whose chunks do not add up
        // to its size is damage, not a short image to check.
        let layout = repo.file_layout(&node)?;
        let Some((first, at)) = layout.first() else {
            continue;
        };
        let head = repo.read_blob_at(first, at)?;
        if !head.starts_with(HEADER) {
            continue;
        }
        progress.message(&format!("integrity_check {path}"));
        let mut file = tempfile::Builder::new()
            .prefix("snap-check-sqlite-")
            .tempfile_in(scratch)
            .map_err(|e| {
                crate::error::Error::io("cannot create a temporary file in", scratch, e)
            })?;
        let temp = file.path().to_path_buf();
        let failed = |e| crate::error::Error::io("cannot write", &temp, e);
        file.write_all(&head).map_err(failed)?;
        for (id, at) in &layout[1..] {
            file.write_all(&repo.read_blob_at(id, at)?)
                .map_err(failed)?;
        }
        file.flush().map_err(failed)?;
        let verdict = integrity_check(file.path());
        checks.push(DatabaseCheck {
            path,
            size: node.size,
            ok: verdict.is_ok(),
            message: verdict.err().unwrap_or_else(|| "ok".to_string()),
        });
    }
    Ok(checks)
}
