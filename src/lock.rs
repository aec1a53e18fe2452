//! Repository locks: `locks/<id>` files that say a backup or a prune is
//! running (layout in [`crate::format::lock`]).
//!
//! They never make a backup wait: a backup only announces itself, and a
//! prune deletes no pack while a backup is running (it defers the deletion
//! to a later run). Prunes exclude each other. A holder rewrites its lock
//! every [`REFRESH_EVERY`]; a lock is stale when its process is gone (same
//! host) or it was not refreshed for [`STALE_AFTER`]. `docs/PRUNE.md` has
//! the reasoning.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, FileKind};
use crate::codec::{BlobCodec, FileClass};
use crate::error::{Error, ErrorKind, Result};
use crate::format::lock::{Lock, LockKind, MAGIC, MAX_LEN};
use crate::format::{envelope, from_msgpack, open_envelope, to_msgpack};
use crate::progress::Progress;
use crate::repo::Repository;

/// How often a holder rewrites its lock.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// A lock not refreshed for this long is stale, whatever its host.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Seconds since the Unix epoch, now.
pub fn now_s() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Whether process `pid` exists on this host (a process of another user counts).
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) => true,
        Err(errno) => errno != nix::errno::Errno::ESRCH,
    }
}

/// Whether `lock` no longer stands for a running process: its process is
/// gone (when it is on this host) or it was not refreshed for [`STALE_AFTER`].
pub fn is_stale(lock: &Lock, now: i64, host: &str) -> bool {
    let limit = i64::try_from(STALE_AFTER.as_secs()).unwrap_or(i64::MAX);
    now.saturating_sub(lock.refreshed) > limit || (lock.host == host && !process_alive(lock.pid))
}

fn encode(codec: &BlobCodec, lock: &Lock) -> Result<Vec<u8>> {
    let body = codec.encode_file(FileClass::Index, &to_msgpack(lock))?;
    Ok(envelope(MAGIC, &body))
}

/// Reads lock `name`.
pub fn read(backend: &dyn Backend, codec: &BlobCodec, name: &str) -> Result<Lock> {
    let what = format!("lock {name}");
    let bytes = backend.read(FileKind::Lock, name)?;
    let body = open_envelope(MAGIC, &what, &bytes)?;
    let plain = codec.decode_file(FileClass::Index, &what, body, MAX_LEN)?;
    from_msgpack(&what, &plain)
}

/// Every lock file: its name and its content (or why it cannot be read).
/// Locks removed between listing and reading are left out.
pub fn read_all(backend: &dyn Backend, codec: &BlobCodec) -> Result<Vec<(String, Result<Lock>)>> {
    let mut out = Vec::new();
    for (name, _) in backend.list(FileKind::Lock)? {
        match read(backend, codec, &name) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            result => out.push((name, result)),
        }
    }
    Ok(out)
}

/// A lock this process holds; refreshed by a thread of its own and removed
/// when dropped.
pub struct RepoLock {
    backend: Arc<dyn Backend>,
    name: String,
    lock: Lock,
    stop: Option<crossbeam_channel::Sender<()>>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl RepoLock {
    /// Writes a new lock of `kind` and starts refreshing it.
    pub fn take(backend: Arc<dyn Backend>, codec: &BlobCodec, kind: LockKind) -> Result<Self> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).expect("the operating system's random source works");
        let name = hex::encode(random);
        let now = now_s();
        let lock = Lock {
            kind,
            host: crate::host::hostname(),
            pid: std::process::id(),
            started: now,
            refreshed: now,
        };
        backend.write(FileKind::Lock, &name, &encode(codec, &lock)?)?;
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let refresher = {
            let backend = Arc::clone(&backend);
            let codec = codec.clone();
            let name = name.clone();
            let mut lock = lock.clone();
            std::thread::spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(REFRESH_EVERY)
                {
                    lock.refreshed = now_s();
                    // A failed refresh is retried next time; the lock only
                    // turns stale after several missed refreshes.
                    if let Ok(bytes) = encode(&codec, &lock) {
                        let _ = backend.write(FileKind::Lock, &name, &bytes);
                    }
                }
            })
        };
        Ok(Self {
            backend,
            name,
            lock,
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    /// The lock's file name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the lock says.
    pub fn lock(&self) -> &Lock {
        &self.lock
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.refresher.take() {
            let _ = handle.join();
        }
        let _ = self.backend.remove(FileKind::Lock, &self.name);
    }
}

/// The error for a lock held by someone else.
pub fn held_by(what: &str, name: &str, lock: &Lock) -> Error {
    let since = jiff::Timestamp::from_second(lock.started)
        .map_or_else(|_| lock.started.to_string(), |t| t.to_string());
    Error::new(
        ErrorKind::Io,
        format!(
            "{what} is running (host {}, pid {}, since {since}); try again when it is done, or remove locks/{name} if it is not running",
            lock.host, lock.pid
        ),
    )
}

/// Locks as a repository's commands take and read them.
impl Repository {
    /// Announces a backup to prunes with a `locks/` file (removed when the
    /// returned guard drops), then brings the cache up to date. A prune
    /// deletes no pack while the announcement stands, and every obsolete
    /// mark written before it is in the cache afterwards, so this backup
    /// never reuses a blob of a pack that is about to go.
    pub fn start_backup(&self, progress: &dyn Progress) -> Result<RepoLock> {
        let lock = RepoLock::take(
            Arc::clone(self.shared_backend()),
            self.codec(),
            LockKind::Backup,
        )?;
        self.sync_cache(progress)?;
        Ok(lock)
    }

    /// Takes the prune lock, which excludes other prunes (never backups).
    /// Fails when another prune holds a lock that is not stale; removes
    /// stale locks of any kind on the way.
    pub fn lock_prune(&self) -> Result<RepoLock> {
        let mine = RepoLock::take(
            Arc::clone(self.shared_backend()),
            self.codec(),
            LockKind::Prune,
        )?;
        let (now, host) = (now_s(), crate::host::hostname());
        for (name, lock) in read_all(self.backend(), self.codec())? {
            match lock {
                _ if name == mine.name() => {}
                Ok(lock) if is_stale(&lock, now, &host) => {
                    self.backend().remove(FileKind::Lock, &name)?;
                }
                // Both of two prunes that start together may give up; never
                // do both go on.
                Ok(lock) if lock.kind == LockKind::Prune => {
                    return Err(held_by("another prune", &name, &lock));
                }
                _ => {}
            }
        }
        Ok(mine)
    }

    /// The backups running now: backup locks that are not stale, and locks
    /// that cannot be read (they may be backups). Stale locks are removed.
    pub fn running_backups(&self) -> Result<Vec<(String, Result<Lock>)>> {
        let (now, host) = (now_s(), crate::host::hostname());
        let mut running = Vec::new();
        for (name, lock) in read_all(self.backend(), self.codec())? {
            match lock {
                Ok(lock) if is_stale(&lock, now, &host) => {
                    self.backend().remove(FileKind::Lock, &name)?;
                }
                Ok(lock) if lock.kind == LockKind::Prune => {}
                other => running.push((name, other)),
            }
        }
        Ok(running)
    }
}

/// Removes temporary folders and files in `dir` whose name is one of
/// `prefixes` followed by the process id of a process that is gone.
pub fn clean_dead_temp(dir: &Path, prefixes: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let pid = prefixes.iter().find_map(|p| {
            name.strip_prefix(p)
                .and_then(|rest| rest.split('-').next())
                .and_then(|pid| pid.parse::<u32>().ok())
        });
        if let Some(pid) = pid
            && !process_alive(pid)
        {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(host: &str, pid: u32, refreshed: i64) -> Lock {
        Lock {
            kind: LockKind::Backup,
            host: host.into(),
            pid,
            started: refreshed,
            refreshed,
        }
    }

    #[test]
    fn staleness() {
        let now = 1_000_000;
        let me = std::process::id();
        assert!(!is_stale(&lock("here", me, now), now, "here"));
        // Not refreshed for longer than the limit: stale on any host.
        let old = now - i64::try_from(STALE_AFTER.as_secs()).unwrap() - 1;
        assert!(is_stale(&lock("elsewhere", me, old), now, "here"));
        // Another host's process cannot be checked: fresh means alive.
        assert!(!is_stale(
            &lock("elsewhere", u32::MAX - 1, now),
            now,
            "here"
        ));
        // A process that is gone on this host: stale at once.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        assert!(is_stale(&lock("here", gone, now), now, "here"));
    }

    #[test]
    fn take_refresh_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::backend::LocalBackend::new(dir.path());
        backend.create().unwrap();
        let backend: Arc<dyn Backend> = Arc::new(backend);
        let codec = BlobCodec::plain(3);
        let held = RepoLock::take(Arc::clone(&backend), &codec, LockKind::Prune).unwrap();
        let all = read_all(backend.as_ref(), &codec).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, held.name());
        assert_eq!(all[0].1.as_ref().unwrap(), held.lock());
        drop(held);
        assert!(read_all(backend.as_ref(), &codec).unwrap().is_empty());
    }
}
