//! The local filesystem backend. Writes are atomic: temporary file, fsync,
//! rename, fsync of the folder.
//!
//! Like restic, every folder snap creates is 0700 and every file 0600,
//! whatever the umask: a repository (and its cache) is readable by its owner
//! only. Files are written through `tempfile`, which creates them 0600.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::throttle::Throttle;
use super::{Backend, FileKind};
use crate::error::{Error, Result};
use crate::sync::lock;

/// A repository in a local folder.
pub struct LocalBackend {
    root: PathBuf,
    tmp: PathBuf,
    /// Recently read packs, kept open: restoring many small files reads
    /// many blobs from the same few packs. Packs are immutable, so a handle
    /// and its size stay valid.
    open_packs: Mutex<Vec<(String, Arc<File>, u64)>>,
    /// Upload and download limits: the bytes read from and written into
    /// the repository count.
    throttle: Throttle,
}

/// Packs kept open at most.
const OPEN_PACKS: usize = 32;

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let tmp = root.join("tmp");
        Self {
            root,
            tmp,
            open_packs: Mutex::new(Vec::new()),
            throttle: Throttle::default(),
        }
    }

    /// This backend, moving bytes no faster than `throttle` allows.
    #[must_use]
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// An open handle and the size of a file, from the cache for packs.
    fn open_for_read(
        &self,
        kind: FileKind,
        name: &str,
        path: &Path,
    ) -> std::io::Result<(Arc<File>, u64)> {
        if kind == FileKind::Pack {
            let open = lock(&self.open_packs);
            if let Some((_, file, size)) = open.iter().find(|(n, _, _)| n == name) {
                return Ok((Arc::clone(file), *size));
            }
        }
        let file = Arc::new(File::open(path)?);
        let size = file.metadata()?.len();
        if kind == FileKind::Pack {
            let mut open = lock(&self.open_packs);
            if open.len() >= OPEN_PACKS {
                open.remove(0);
            }
            open.push((name.to_string(), Arc::clone(&file), size));
        }
        Ok((file, size))
    }

    /// The repository folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: FileKind, name: &str) -> Result<PathBuf> {
        if kind == FileKind::Config {
            return Ok(self.root.join("config"));
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::usage(format!(
                "invalid {} name `{name}`",
                kind.noun()
            )));
        }
        let folder = self.root.join(kind.folder());
        Ok(if kind == FileKind::Pack {
            folder.join(&name[..2.min(name.len())]).join(name)
        } else {
            folder.join(name)
        })
    }
}

/// Mode of every folder snap creates for a repository or a cache.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file snap creates for a repository or a cache.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents as private folders (0700 whatever
/// the umask). Folders that already exist are left as they are: they may be
/// the user's.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    for folder in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(PRIVATE_DIR_MODE).create(folder) {
            Ok(()) => {}
            // Another process made it meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && folder.is_dir() => continue,
            Err(e) => return Err(Error::io("cannot create folder", folder, e)),
        }
        // The umask may have taken bits away from the owner.
        fs::set_permissions(folder, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
            .map_err(|e| Error::io("cannot set the mode of folder", folder, e))?;
    }
    Ok(())
}

/// Makes a file snap created private (0600), whatever the umask was when
/// a library (redb) created it.
pub fn make_private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        .map_err(|e| Error::io("cannot set the mode of", path, e))
}

/// Whether `dir` is a folder with something in it.
fn has_entries(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot list", dir, e)),
    }
}

/// fsyncs a folder so that a rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io("cannot sync folder", dir, e))
}

/// Makes the folder `path` goes into when it is missing, and returns it.
/// `init` creates every folder, but tools that copy or sync a repository
/// (rclone, git, some object-store mirrors) drop empty folders; a
/// repository copied back that way must still take backups.
fn ensure_parent(path: &Path) -> Result<&Path> {
    let dir = path.parent().expect("repository paths have a parent");
    if !dir.exists() {
        create_private_dir(dir)?;
        sync_dir(dir.parent().expect("repository folders have a parent"))?;
    }
    Ok(dir)
}

/// Writes `data` to `path` atomically (temp file in the same folder, fsync, rename, fsync folder).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().expect("repository paths have a parent");
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("cannot write", path, e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("cannot rename into", path, e.error))?;
    sync_dir(dir)
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn exists(&self) -> Result<bool> {
        match fs::metadata(self.root.join("config")) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("cannot access", &self.root, e)),
        }
    }

    fn create(&self) -> Result<()> {
        for kind in [
            FileKind::Key,
            FileKind::Pack,
            FileKind::Index,
            FileKind::Snapshot,
            FileKind::Lock,
        ] {
            create_private_dir(&self.root.join(kind.folder()))?;
        }
        for i in 0..=255u8 {
            create_private_dir(&self.root.join("data").join(format!("{i:02x}")))?;
        }
        create_private_dir(&self.tmp)?;
        sync_dir(&self.root.join("data"))?;
        sync_dir(&self.root)
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name)?;
        let data = fs::read(&path)
            .map_err(|e| Error::io(&format!("cannot read {}", kind.noun()), &path, e))?;
        self.throttle.download_blocking(data.len());
        Ok(data)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let path = self.path(kind, name)?;
        let read = || -> std::io::Result<Vec<u8>> {
            let (file, size) = self.open_for_read(kind, name, &path)?;
            // Check the range first: a lying index must not make us allocate.
            if offset.saturating_add(u64::from(length)) > size {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
            }
            let mut buf = vec![0u8; length as usize];
            self.throttle.download_blocking(buf.len());
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        };
        read().map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(
                    format!("pack {name}"),
                    format!("shorter than the index says ({length} bytes at offset {offset})"),
                )
            } else {
                Error::io(&format!("cannot read {}", kind.noun()), &path, e)
            }
        })
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(kind, name)?;
        if kind == FileKind::Pack {
            // A pack written back (`snap repair packs`) replaces a damaged
            // file that a kept handle would still read.
            lock(&self.open_packs).retain(|(n, _, _)| n != name);
        }
        ensure_parent(&path)?;
        self.throttle.upload_blocking(data.len());
        write_atomic(&path, data)
    }

    fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()> {
        let dest = self.path(kind, name)?;
        let dir = ensure_parent(&dest)?;
        // The pack was written into the repository's tmp folder: it counts
        // as written now that it joins the repository.
        let file = File::open(path).map_err(|e| Error::io("cannot sync", path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("cannot sync", path, e))?
            .len();
        self.throttle
            .upload_blocking(usize::try_from(size).unwrap_or(usize::MAX));
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", path, e))?;
        fs::rename(path, &dest).map_err(|e| Error::io("cannot move a new pack into", &dest, e))?;
        sync_dir(dir)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        let folder = self.root.join(kind.folder());
        let mut out = Vec::new();
        let mut dirs = vec![folder.clone()];
        if kind == FileKind::Pack {
            dirs.clear();
            let entries = match fs::read_dir(&folder) {
                Ok(entries) => entries,
                // A copy that dropped empty folders: no packs.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(Error::io("cannot list", &folder, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("cannot list", &folder, e))?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(entry.path());
                }
            }
        }
        for dir in dirs {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot list", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("cannot list", &dir, e))?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                    continue;
                }
                let meta = entry
                    .metadata()
                    .map_err(|e| Error::io("cannot stat", &entry.path(), e))?;
                if meta.is_file() {
                    out.push((name.to_string(), meta.len()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        let path = self.path(kind, name)?;
        if kind == FileKind::Pack {
            // A handle kept open would still read the removed pack.
            lock(&self.open_packs).retain(|(n, _, _)| n != name);
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove", &path, e)),
        }
    }

    fn temp_dir(&self) -> &Path {
        &self.tmp
    }

    /// A folder that holds anything (and is no repository) is refused:
    /// `snap init` writes nothing into it.
    fn ensure_empty(&self) -> Result<()> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(Error::usage(format!(
                "{} is not a folder; choose a new or empty folder for the repository",
                self.root.display()
            )));
        }
        if has_entries(&self.root)? {
            return Err(Error::usage(format!(
                "{} is not empty and not a snap repository; choose a new or empty folder (snap writes nothing into it)",
                self.root.display()
            )));
        }
        Ok(())
    }

    fn legacy_cache_dir(&self) -> Option<PathBuf> {
        Some(self.root.join(LEGACY_CACHE))
    }
}

/// The folder inside the repository where snap kept the index cache before
/// it moved to the user's cache folder.
const LEGACY_CACHE: &str = "cache";

impl LocalBackend {
    /// Whether `path` looks like a snap repository (has a config).
    pub fn is_repository(path: &Path) -> bool {
        path.join("config").is_file()
    }
}
