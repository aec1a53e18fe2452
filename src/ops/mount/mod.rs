//! `snap mount`: the repository's snapshots as a read-only FUSE file system.
//!
//! ```text
//! MOUNTPOINT/latest -> snapshots/<newest>
//! MOUNTPOINT/snapshots/2026-12-06T02:18:45_1a2b3c4d/...   local time, short id
//! MOUNTPOINT/ids/<id> -> ../snapshots/...
//! MOUNTPOINT/tags/<tag>/<snapshot>, latest  -> ../../snapshots/...
//! MOUNTPOINT/hosts/<host>/<snapshot>, latest -> ../../snapshots/...
//! ```
//!
//! Files are read lazily, chunk by chunk, through the calls restore and
//! `cat` use (`reader.rs`), with a cache of verified chunks bounded in
//! bytes. The snapshot list is read again (at most once a second) when the
//! kernel asks about the virtual folders, so new snapshots appear without
//! remounting. The mount goes through fuser's own FUSE protocol code and
//! the `fusermount3` helper, so no libfuse is needed.

mod fs;
mod layout;
mod reader;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::progress::Progress;
use crate::repo::Repository;

/// How a mount is served.
pub struct MountOptions {
    /// At most this many bytes of decoded chunks are kept in memory.
    pub cache_bytes: usize,
    /// Threads answering the kernel's requests.
    pub threads: usize,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            threads: 4,
        }
    }
}

/// How often the serving loop looks at `stop` and at the session.
const POLL: Duration = Duration::from_millis(100);

/// Mounts `repo` at `mountpoint` and serves it until `stop` is set (then
/// unmounts) or someone unmounts it (`fusermount3 -u`). `ready` is called
/// once the mount is in place.
pub fn mount(
    repo: Repository,
    mountpoint: &Path,
    options: &MountOptions,
    progress: Arc<dyn Progress>,
    stop: &AtomicBool,
    ready: &dyn Fn(),
) -> Result<()> {
    check_mountpoint(mountpoint)?;
    let fs = fs::SnapFs::new(repo, progress, options.cache_bytes);
    // Read the list once before mounting: a repository that cannot be
    // listed fails here with its own error, not as EIO in a file manager.
    fs.listing()?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("snap".to_string()),
        fuser::MountOption::Subtype("snap".to_string()),
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    config.n_threads = Some(options.threads.max(1));
    let session = fuser::Session::new(fs, mountpoint, &config).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!(
                "cannot mount at {}: {e} (snap mount needs /dev/fuse and fusermount3, from Debian's fuse3 package)",
                mountpoint.display()
            ),
        )
        .with_source(e)
    })?;
    let background = session.spawn().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot start serving the mount: {e}"),
        )
        .with_source(e)
    })?;
    ready();
    while !background.guard.is_finished() {
        if stop.load(Ordering::Relaxed) {
            return background.umount_and_join().map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "cannot unmount {0}: {e}; close what uses it, then run `fusermount3 -u {0}`",
                        mountpoint.display()
                    ),
                )
                .with_source(e)
            });
        }
        std::thread::sleep(POLL);
    }
    // Unmounted from outside: the session has ended on its own.
    background.join().map_err(|e| {
        Error::new(ErrorKind::Io, format!("the mount ended with an error: {e}")).with_source(e)
    })
}

/// Refuses a mount point that is not a folder, and names the leftover of a
/// mount whose process was killed (every access fails with ENOTCONN).
fn check_mountpoint(mountpoint: &Path) -> Result<()> {
    match std::fs::metadata(mountpoint) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::usage(format!(
            "{} is not a folder; snap mount needs an existing folder",
            mountpoint.display()
        ))),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(Error::new(
            ErrorKind::Io,
            format!(
                "{0} is still mounted by a snap mount that ended without unmounting (killed?); run `fusermount3 -u {0}` and mount again",
                mountpoint.display()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::usage(format!(
            "{} does not exist; create the folder first (mkdir)",
            mountpoint.display()
        ))),
        Err(e) => Err(Error::io("cannot use mount point", mountpoint, e)),
    }
}
