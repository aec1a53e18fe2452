//! Where repository files live. The [`Backend`] trait is deliberately small
//! (read, read a range, write atomically, list, remove); retry, caching and
//! fault injection are wrappers around it, never code in callers.

pub mod faulty;
pub mod local;
pub mod private_cache;
pub mod s3;
pub mod throttle;

use std::path::Path;

use crate::error::Result;

pub use local::LocalBackend;
pub use private_cache::PrivateCache;
pub use s3::S3Backend;
pub use throttle::Limits;

/// Whether a repository location names object storage (`s3://...`)
/// rather than a local folder.
pub fn is_remote(location: &Path) -> bool {
    location.to_str().is_some_and(|l| l.starts_with("s3://"))
}

/// The backend for a repository location, composed here and nowhere else:
/// `s3://bucket/prefix` is S3-compatible object storage configured by the
/// `AWS_*` and `SNAP_S3_*` variables ([`s3`]), anything else a local folder;
/// either moves file contents no faster than `limits` ([`throttle`]: each
/// counts the bytes where they move), and is
/// wrapped in the fault injector when `SNAP_FAULTS` asks for faults
/// ([`faulty`], for tests). The index cache goes where the backend says
/// ([`Backend::cache_dir`]); an operation that must not share it wraps the
/// result in a [`PrivateCache`].
pub fn open(location: &Path, limits: Limits) -> Result<Box<dyn Backend>> {
    let throttle = throttle::Throttle::new(limits);
    let storage: Box<dyn Backend> = match location.to_str() {
        Some(url) if is_remote(location) => Box::new(S3Backend::new(url)?.with_throttle(throttle)),
        _ => Box::new(LocalBackend::new(location).with_throttle(throttle)),
    };
    faulty::Faulty::from_env(storage)
}

/// The kinds of repository files; each lives in its own folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `config`
    Config,
    /// `keys/<id>`
    Key,
    /// `data/<xx>/<id>`
    Pack,
    /// `index/<id>`
    Index,
    /// `snapshots/<id>`
    Snapshot,
    /// `locks/<id>`
    Lock,
    /// `drills/<id>`
    Drill,
    /// `parity/<id>`
    Parity,
}

impl FileKind {
    /// The folder of this kind (empty for the config).
    pub fn folder(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Pack => "data",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
            FileKind::Drill => "drills",
            FileKind::Parity => "parity",
        }
    }

    /// The kind's name in messages.
    pub fn noun(self) -> &'static str {
        match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Pack => "pack",
            FileKind::Index => "index delta",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
            FileKind::Drill => "drill record",
            FileKind::Parity => "parity object",
        }
    }
}

/// Storage for repository files. Names are the hex ids of the objects (the
/// config's name is ignored). Errors of kind `NotFound` mean the file is
/// absent; anything else is a failure of the storage.
pub trait Backend: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;

    /// Whether a repository config exists.
    fn exists(&self) -> Result<bool>;

    /// Creates whatever folders a new repository needs.
    fn create(&self) -> Result<()>;

    /// Reads a whole file.
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>>;

    /// Reads `length` bytes at `offset`.
    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u32) -> Result<Vec<u8>>;

    /// Writes a file atomically: it is either absent or complete, also after a crash.
    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()>;

    /// Stores the finished local file `path` under `name` (moved or uploaded), atomically.
    fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()>;

    /// Lists names and sizes of every file of a kind.
    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>>;

    /// Removes a file; removing an absent file is not an error.
    fn remove(&self, kind: FileKind, name: &str) -> Result<()>;

    /// A local folder for temporary files (packs being written).
    fn temp_dir(&self) -> &Path;

    /// Where this repository's index cache lives, when the backend has a
    /// natural place for it; `None` means the user's cache folder
    /// (`$XDG_CACHE_HOME/snap/<repository id>`).
    fn cache_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Where older versions of snap kept the index cache inside the
    /// repository, if they did: it is removed when the repository is opened.
    fn legacy_cache_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// Fails unless the location is free for a new repository (called by
    /// `init` before it writes anything, after it made sure that no
    /// repository is there).
    fn ensure_empty(&self) -> Result<()> {
        Ok(())
    }

    /// How many packs may be uploaded at once (object stores gain from
    /// overlapping requests; a local disk does not).
    fn parallel_writes(&self) -> usize {
        1
    }
}
