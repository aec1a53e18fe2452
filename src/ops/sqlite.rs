//! Consistent captures of live SQLite databases.
//!
//! A database is recognised by its 16-byte header (or named with
//! `--sqlite GLOB`). Instead of copying the file, which tears when an app
//! commits meanwhile (and misses what still sits in the `-wal` file), snap
//! opens it read-only and copies it with SQLite's online backup API in a
//! single step, inside one read transaction: the copy is exactly one
//! committed state, with the write-ahead log folded in. The copy goes to a
//! temporary file and is then chunked like any file, but with fixed-size,
//! page-aligned chunks: SQLite rewrites pages in place, so fixed chunks keep
//! an edit of a few rows to a few chunks (see docs/SQLITE.md for the
//! measurements behind the default size).
//!
//! When a database cannot be captured (encrypted with SQLCipher, damaged,
//! locked past the timeout) the caller falls back to a plain file copy and
//! warns, naming the file.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// The first 16 bytes of every SQLite 3 database.
pub const HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Suffixes of the files SQLite keeps beside a database while it is in use.
pub const COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// How long a capture waits for a writer holding the database exclusively,
/// unless told otherwise (`snap backup --sqlite-lock-timeout`).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

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

/// A captured database image in a temporary file.
pub struct Capture {
    /// The image: a complete, consistent database file.
    pub file: tempfile::NamedTempFile,
    /// Its page size.
    pub page_size: u32,
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

/// Captures one committed state of the database at `path` into a temporary
/// file, waiting up to `timeout` for a writer that holds it exclusively.
/// Errors are reasons for falling back to a plain copy.
///
/// A database no connection has open (no `-wal`, `-shm` or `-journal`
/// beside it) is read without SQLite's locking, under a shared lock of
/// snap's own, so that reading it creates no file beside it (see
/// [`capture_idle`]); any other is opened read-only as an app's reader
/// would be.
pub fn capture(path: &Path, timeout: Duration) -> Result<Capture, String> {
    if let Some(capture) = capture_idle(path)? {
        return Ok(capture);
    }
    let source = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open it read-only: {e}"))?;
    copy_image(&source, timeout)
}

/// Whether any of the `-wal`, `-shm` and `-journal` files is beside `path`.
fn has_companions(path: &Path) -> bool {
    COMPANIONS.iter().any(|suffix| {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        std::fs::symlink_metadata(companion).is_ok()
    })
}

/// Where SQLite's unix locks live in a database file (`os_unix.c`): the
/// pending byte at 1 GiB, then the reserved byte, then 510 shared bytes.
const PENDING_BYTE: i64 = 0x4000_0000;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;

/// A shared lock on a database file, taken the way SQLite's unix VFS takes
/// its own (a read lock on the pending byte, then on the shared range, then
/// the pending byte released), as an open file description lock: closing
/// another descriptor of the file in this process does not drop it.
///
/// While it is held, no SQLite connection can take the exclusive lock it
/// needs to write the file in rollback-journal mode, nor the one it needs
/// to delete a write-ahead log when it closes.
struct SharedLock {
    file: File,
}

impl SharedLock {
    /// `None` when a writer holds or is about to take the database
    /// exclusively, or when the filesystem has no such locks.
    fn take(path: &Path) -> Option<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
            .or_else(|_| File::open(path))
            .ok()?;
        let lock = |kind: libc::c_int, start: i64, len: i64| {
            let range = libc::flock {
                l_type: i16::try_from(kind).expect("lock types fit in a short"),
                l_whence: i16::try_from(libc::SEEK_SET).expect("SEEK_SET fits in a short"),
                l_start: start,
                l_len: len,
                l_pid: 0,
            };
            nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_SETLK(&range)).is_ok()
        };
        let locked = lock(libc::F_RDLCK, PENDING_BYTE, 1)
            && lock(libc::F_RDLCK, SHARED_FIRST, SHARED_SIZE)
            && lock(libc::F_UNLCK, PENDING_BYTE, 1);
        locked.then_some(Self { file })
    }

    /// What identifies the file's content: size, mtime, ctime, inode.
    fn stamp(&self) -> Option<(u64, i64, i64, i64, i64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = self.file.metadata().ok()?;
        Some((
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino(),
        ))
    }
}

/// Captures a database that no connection has open without creating,
/// writing or deleting anything beside it; `None` when it is in use (the
/// caller then opens it as a reader).
///
/// Opened read-only, SQLite creates a `-wal` and a `-shm` file beside a
/// write-ahead-log database and, being read-only, cannot remove them when it
/// closes; so an idle database is read as `immutable` instead (no locks, no
/// log), under a [`SharedLock`] taken first. The copy is one committed
/// state: without a `-wal` file the main file holds every commit; while the
/// lock is held no rollback-mode writer can write the file, and a
/// write-ahead log an app opens meanwhile cannot be deleted, so it is still
/// there when the copy is done, which is checked (with the file's size,
/// mtime, ctime and inode): then the copy is thrown away.
fn capture_idle(path: &Path) -> Result<Option<Capture>, String> {
    if has_companions(path) {
        return Ok(None);
    }
    let Some(lock) = SharedLock::take(path) else {
        return Ok(None);
    };
    let before = lock.stamp();
    if before.is_none() || has_companions(path) {
        return Ok(None);
    }
    let source = Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| format!("cannot open it read-only: {e}"))?;
    let capture = copy_image(&source, LOCK_TIMEOUT)?;
    if has_companions(path) || lock.stamp() != before {
        return Ok(None);
    }
    Ok(Some(capture))
}

/// A `file:` URI naming `path` with `immutable=1`; every byte but
/// unreserved ones and `/` is percent-encoded, so `?`, `#` and `%` in names
/// (and names that are not UTF-8) stay part of the path.
fn immutable_uri(path: &Path) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            let _ = write!(uri, "%{byte:02X}");
        }
    }
    uri.push_str("?immutable=1");
    uri
}

/// Copies the database `source` is connected to into a temporary file with
/// the online backup API, in one step: one committed state.
fn copy_image(source: &Connection, timeout: Duration) -> Result<Capture, String> {
    source.busy_timeout(timeout).map_err(|e| e.to_string())?;
    // The first 256 MiB are read through a memory map: no read() call per
    // page (0.042 s instead of 0.054-0.070 s for 50 MB). Mapped pages are
    // page cache, but count in the process's RSS: the cap bounds that.
    source
        .execute_batch("PRAGMA mmap_size = 268435456;")
        .map_err(|e| e.to_string())?;
    let file = tempfile::Builder::new()
        .prefix("snap-sqlite-")
        .tempfile()
        .map_err(|e| format!("cannot create a temporary file: {e}"))?;
    let mut image = Connection::open(file.path()).map_err(|e| e.to_string())?;
    // The image is a scratch copy: no journal, no fsync.
    image
        .execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;",
        )
        .map_err(|e| e.to_string())?;
    {
        let backup = Backup::new(source, &mut image).map_err(|e| format!("cannot read it: {e}"))?;
        let started = Instant::now();
        // One step copies every page inside one read transaction: a single
        // committed state, whatever writers do meanwhile.
        loop {
            match backup
                .step(-1)
                .map_err(|e| format!("cannot read it: {e}"))?
            {
                StepResult::Done => break,
                StepResult::Busy | StepResult::Locked if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                StepResult::Busy | StepResult::Locked => {
                    return Err(format!(
                        "locked by a writer for more than {}s",
                        timeout.as_secs_f64()
                    ));
                }
                StepResult::More => {}
                _ => return Err("unexpected result from the backup API".to_string()),
            }
        }
    }
    let page_size: u32 = image
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    // The image is a plain database now: no log beside it.
    image
        .close()
        .map_err(|(_, e)| format!("cannot finish the copy: {e}"))?;
    Ok(Capture { file, page_size })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_folds_the_wal_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "wal").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer.execute("CREATE TABLE t (x INTEGER)", []).unwrap();
        for i in 0..100 {
            writer.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        assert!(has_header(&path));
        assert!(has_pending_log(&path));
        let capture = capture(&path, LOCK_TIMEOUT).unwrap();
        integrity_check(capture.file.path()).unwrap();
        let copy = Connection::open(capture.file.path()).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 100);
        assert_eq!(capture.page_size, 4096);
    }

    /// Timing for benches/scripts/bench-sqlite.sh: `SNAP_BENCH_DB=path cargo test
    /// --release --lib -- --ignored sqlite_capture_timing --nocapture`.
    #[test]
    #[ignore = "benchmark helper"]
    fn sqlite_capture_timing() {
        let Some(path) = std::env::var_os("SNAP_BENCH_DB") else {
            return;
        };
        let mut times: Vec<f64> = (0..5)
            .map(|_| {
                let started = Instant::now();
                capture(Path::new(&path), LOCK_TIMEOUT).unwrap();
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("capture_s={:.3}", times[2]);
        let image = capture(Path::new(&path), LOCK_TIMEOUT).unwrap();
        let len = image.file.as_file().metadata().unwrap().len();
        let started = Instant::now();
        let dictionary = train_dictionary(image.file.as_file(), len, image.page_size).unwrap();
        println!(
            "train_s={:.3} dictionary_bytes={}",
            started.elapsed().as_secs_f64(),
            dictionary.len()
        );
    }

    #[test]
    fn idle_capture_escapes_names_and_leaves_no_log() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir
            .path()
            .join(std::ffi::OsStr::from_bytes(b"a ?#%25 \xe9"));
        std::fs::create_dir(&folder).unwrap();
        let path = folder.join("x?immutable=0#.db");
        let writer = Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "wal").unwrap();
        writer.execute("CREATE TABLE t (x INTEGER)", []).unwrap();
        writer.execute("INSERT INTO t VALUES (7)", []).unwrap();
        drop(writer);
        assert!(!has_companions(&path));
        let capture = capture_idle(&path).unwrap().expect("an idle database");
        assert!(!has_companions(&path), "the capture left a log beside it");
        let copy = Connection::open(capture.file.path()).unwrap();
        let x: i64 = copy.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(x, 7);
    }

    #[test]
    fn not_a_database_fails_to_capture() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.db");
        let mut bytes = HEADER.to_vec();
        bytes.extend(std::iter::repeat_n(0xAB, 8192));
        std::fs::write(&path, bytes).unwrap();
        assert!(has_header(&path));
        assert!(capture(&path, LOCK_TIMEOUT).is_err());
    }
}
