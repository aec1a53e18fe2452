//! Consistent captures of live SQLite databases.
//!
//! Instead of copying the file, which tears when an app commits meanwhile
//! (and misses what still sits in the `-wal` file), snap opens it read-only
//! and copies it with SQLite's online backup API in a single step, inside
//! one read transaction: the copy is exactly one committed state, with the
//! write-ahead log folded in. Pages are read with `read()` through SQLite's
//! page cache (no memory map: mapped pages count in the process's RSS), so
//! memory stays bounded whatever the database's size.
//!
//! The copy goes to a scratch file in the temporary folder (`$TMPDIR`),
//! named `snap-sqlite-<pid>-<random>` and write-locked while it is written;
//! its name is removed as soon as the copy is done (the backup chunks it
//! through the open descriptor), so a backup stopped at any later point
//! leaves nothing behind. The scratch files of processes killed mid-copy
//! are removed by the next capture ([`sweep_scratch`]).
//!
//! When a database cannot be captured (encrypted with SQLCipher, damaged,
//! locked past the timeout) the caller falls back to a plain file copy and
//! warns, naming the file.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::has_companions;

/// How long a capture waits for a writer holding the database exclusively,
/// unless told otherwise (`snap backup --sqlite-lock-timeout`).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A captured database image in an unnamed temporary file.
pub struct Capture {
    /// The image: a complete, consistent database file, open at offset 0.
    /// Its name is already removed: dropping it frees the space.
    pub file: File,
    /// Its page size.
    pub page_size: u32,
}

/// Captures one committed state of the database at `path` into a temporary
/// file, waiting up to `timeout` for a writer that holds it exclusively
/// (and no longer once `cancel` is set). Errors are reasons for falling back
/// to a plain copy.
///
/// A database no connection has open (no `-wal`, `-shm` or `-journal`
/// beside it) is read without SQLite's locking, under a shared lock of
/// snap's own, so that reading it creates no file beside it (see
/// [`capture_idle`]); any other is opened read-only as an app's reader
/// would be.
pub fn capture(
    path: &Path,
    timeout: Duration,
    cancel: Option<&AtomicBool>,
) -> Result<Capture, String> {
    if let Some(capture) = capture_idle(path)? {
        return Ok(capture);
    }
    let source = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open it read-only: {e}"))?;
    copy_image(&source, timeout, cancel)
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
    let source = open_immutable(path).map_err(|e| format!("cannot open it read-only: {e}"))?;
    let capture = copy_image(&source, LOCK_TIMEOUT, None)?;
    if has_companions(path) || lock.stamp() != before {
        return Ok(None);
    }
    Ok(Some(capture))
}

/// Opens the database file at `path` read-only and immutable: SQLite
/// neither locks it nor looks for a journal or write-ahead log beside it.
pub(super) fn open_immutable(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
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

/// Copies the database `source` is connected to into a scratch file with
/// the online backup API, in one step: one committed state.
fn copy_image(
    source: &Connection,
    timeout: Duration,
    cancel: Option<&AtomicBool>,
) -> Result<Capture, String> {
    // SQLite waits for a writer in slices, so that a stop request is seen
    // between them; the loop below keeps the total to `timeout`.
    source
        .busy_timeout(timeout.min(BUSY_SLICE))
        .map_err(|e| e.to_string())?;
    // Every page is read with read() into SQLite's page cache (2 MiB by
    // default; clean pages are recycled), never through a memory map: a
    // mapped database counted in full in the process's RSS.
    source
        .execute_batch("PRAGMA mmap_size = 0;")
        .map_err(|e| e.to_string())?;
    let file = scratch_file()?;
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
                StepResult::Busy | StepResult::Locked
                    if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) =>
                {
                    return Err("stopped while waiting for a writer".to_string());
                }
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
    // Nothing opens it by name any more: the name goes now, the descriptor
    // keeps the content until the capture is dropped.
    Ok(Capture {
        file: file.into_file(),
        page_size,
    })
}

/// How long SQLite waits for a writer before the capture loop looks at the
/// stop request and the total timeout again.
const BUSY_SLICE: Duration = Duration::from_millis(100);

/// The start of every capture scratch file's name; the pid of the process
/// that writes it follows, then `-` and random characters.
const SCRATCH_PREFIX: &str = "snap-sqlite-";

/// Scratch files of a version that put no pid in their names
/// (`snap-sqlite-<random>`) are removed once they are this old and unlocked.
const UNNAMED_SCRATCH_AGE: Duration = Duration::from_secs(3600);

/// Creates a capture's scratch file in the temporary folder, named after
/// this process and write-locked (an open file description lock on its
/// first byte, which SQLite never locks) while it is open. Before the first
/// one, removes what killed processes left behind.
fn scratch_file() -> Result<tempfile::NamedTempFile, String> {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    SWEEP.call_once(|| sweep_scratch(&std::env::temp_dir()));
    let file = tempfile::Builder::new()
        .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
        .tempfile()
        .map_err(|e| format!("cannot create a temporary file: {e}"))?;
    // Without such locks (some network filesystems) the pid in the name
    // still keeps a live process's file from being swept.
    let _ = nix::fcntl::fcntl(
        file.as_file(),
        nix::fcntl::FcntlArg::F_OFD_SETLK(&first_byte(libc::F_WRLCK)),
    );
    Ok(file)
}

/// A lock request of `kind` on a file's first byte.
fn first_byte(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: i16::try_from(kind).expect("lock types fit in a short"),
        l_whence: i16::try_from(libc::SEEK_SET).expect("SEEK_SET fits in a short"),
        l_start: 0,
        l_len: 1,
        l_pid: 0,
    }
}

/// Removes from `dir` the capture scratch files that processes killed
/// mid-copy left behind (each as large as its database): regular files of
/// this user named `snap-sqlite-<pid>-...` whose process is gone and whose
/// lock nobody holds; and unlocked `snap-sqlite-<random>` files of older
/// versions, once an hour old. Best effort: what cannot be read is left.
pub(super) fn sweep_scratch(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let uid = nix::unistd::geteuid().as_raw();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(SCRATCH_PREFIX)) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.file_type().is_file() || meta.uid() != uid {
            continue;
        }
        let abandoned = match rest.split_once('-') {
            Some((pid, _)) => pid.parse::<i32>().is_ok_and(|pid| !process_alive(pid)),
            None => meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > UNNAMED_SCRATCH_AGE),
        };
        let path = entry.path();
        if abandoned && !write_locked(&path) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether a process `pid` exists (one of another user counts).
fn process_alive(pid: i32) -> bool {
    if pid <= 0 || u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return true;
    }
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Whether some open file holds the scratch lock of the file at `path`:
/// `true` when it cannot be opened, `false` on a filesystem without such
/// locks (the pid in the name decides alone).
fn write_locked(path: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return true;
    };
    let mut probe = first_byte(libc::F_RDLCK);
    match nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_OFD_GETLK(&mut probe)) {
        Ok(_) => i32::from(probe.l_type) != libc::F_UNLCK,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::sqlite::{
        HEADER, has_header, has_pending_log, integrity_check, train_dictionary,
    };

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
        let capture = capture(&path, LOCK_TIMEOUT, None).unwrap();
        let image = saved(&capture, dir.path());
        integrity_check(&image).unwrap();
        let copy = Connection::open(&image).unwrap();
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
                capture(Path::new(&path), LOCK_TIMEOUT, None).unwrap();
                started.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!("capture_s={:.3}", times[2]);
        let image = capture(Path::new(&path), LOCK_TIMEOUT, None).unwrap();
        let len = image.file.metadata().unwrap().len();
        let started = Instant::now();
        let dictionary = train_dictionary(&image.file, len, image.page_size).unwrap();
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
        let copy = Connection::open(saved(&capture, dir.path())).unwrap();
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
        assert!(capture(&path, LOCK_TIMEOUT, None).is_err());
    }

    /// Writes a capture's image to `dir/image.db`, to open it by name.
    fn saved(capture: &Capture, dir: &Path) -> std::path::PathBuf {
        use std::os::unix::fs::FileExt;
        let path = dir.join("image.db");
        let len = capture.file.metadata().unwrap().len();
        let mut bytes = vec![0; usize::try_from(len).unwrap()];
        capture.file.read_exact_at(&mut bytes, 0).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn sweep_keeps_live_and_locked_scratch_files_and_removes_abandoned_ones() {
        let dir = tempfile::tempdir().unwrap();
        // A pid above the kernel's maximum (4194304) belongs to no process.
        let dead = dir.path().join("snap-sqlite-2000000000-abcdef");
        let live = dir.path().join(format!(
            "snap-sqlite-{}-abcdef",
            std::os::unix::process::parent_id()
        ));
        let old_unnamed = dir.path().join("snap-sqlite-Xy12Zq");
        let other = dir.path().join("snap-sqlitefoo");
        for path in [&dead, &live, &old_unnamed, &other] {
            std::fs::write(path, b"x").unwrap();
        }
        let locked = dir.path().join("snap-sqlite-2000000001-abcdef");
        let holder = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&locked)
            .unwrap();
        nix::fcntl::fcntl(
            &holder,
            nix::fcntl::FcntlArg::F_OFD_SETLK(&first_byte(libc::F_WRLCK)),
        )
        .unwrap();
        let hour_ago = std::time::SystemTime::now() - UNNAMED_SCRATCH_AGE * 2;
        std::fs::File::options()
            .write(true)
            .open(&old_unnamed)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
        let young_unnamed = dir.path().join("snap-sqlite-Ab34Cd");
        std::fs::write(&young_unnamed, b"x").unwrap();

        sweep_scratch(dir.path());
        assert!(!dead.exists(), "a dead process's scratch file stays");
        assert!(!old_unnamed.exists(), "an old unnamed scratch file stays");
        assert!(live.exists() && locked.exists() && young_unnamed.exists() && other.exists());
        drop(holder);
        sweep_scratch(dir.path());
        assert!(
            !locked.exists(),
            "a released scratch file of a dead pid stays"
        );
    }
}
