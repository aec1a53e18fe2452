//! A wrapper that gives a repository an index cache of its own.
//!
//! The shared cache (`cache/index.redb`) admits one process at a time. A
//! long operation that must not keep others waiting (`prune`, which backups
//! must never wait for) opens the repository through this wrapper instead:
//! everything is passed through except [`Backend::cache_dir`], which points
//! at a temporary folder that is removed when the repository is dropped.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::{Backend, FileKind};
use crate::error::{Error, Result};

/// Prefix of the temporary folders, followed by the owner's process id, so
/// that leftovers of a killed process can be told from live ones.
pub const TEMP_PREFIX: &str = "cache-";

/// A backend whose index cache lives in a temporary folder of its own.
pub struct PrivateCache {
    inner: Box<dyn Backend>,
    dir: TempDir,
}

impl PrivateCache {
    /// Wraps `inner`; the cache goes to a new folder in the repository's
    /// temporary folder (the system's when that does not exist).
    pub fn new(inner: Box<dyn Backend>) -> Result<Self> {
        let parent = if inner.temp_dir().is_dir() {
            inner.temp_dir().to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
            .tempdir_in(&parent)
            .map_err(|e| Error::io("cannot create a temporary cache folder in", &parent, e))?;
        Ok(Self { inner, dir })
    }
}

impl Backend for PrivateCache {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn exists(&self) -> Result<bool> {
        self.inner.exists()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.inner.read(kind, name)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.inner.read_range(kind, name, offset, length)
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        self.inner.write(kind, name, data)
    }

    fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()> {
        self.inner.write_file(kind, name, path)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        self.inner.remove(kind, name)
    }

    fn legacy_cache_dir(&self) -> Option<PathBuf> {
        self.inner.legacy_cache_dir()
    }

    fn ensure_empty(&self) -> Result<()> {
        self.inner.ensure_empty()
    }

    fn temp_dir(&self) -> &Path {
        self.inner.temp_dir()
    }

    fn cache_dir(&self) -> Option<PathBuf> {
        Some(self.dir.path().to_path_buf())
    }

    fn parallel_writes(&self) -> usize {
        self.inner.parallel_writes()
    }
}
