//! Links: symlinks are created as they are met (never followed, their
//! target stored as is); a hard link (a file with more than one name) is
//! restored once, its further names deferred and linked to it after
//! everything else is restored.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use filetime::FileTime;

use super::Restorer;
use crate::error::{Error, Result};
use crate::format::tree::Node;
use crate::sync::lock;

/// A hard link to make once its first name is restored: where, which inode, its path in the snapshot.
pub(super) type DeferredLink = (PathBuf, (u64, u64), String);

impl Restorer<'_> {
    /// Creates the symlink `node` at `dest`, unless the policy keeps what is there.
    pub(super) fn restore_symlink(&self, node: &Node, dest: &Path, rel: &str) -> Result<()> {
        if !self.clear_dest(dest, node)? {
            return Ok(());
        }
        let target = node.target.as_deref().unwrap_or_default();
        std::os::unix::fs::symlink(OsStr::from_bytes(target), dest)
            .map_err(|e| Error::io("cannot create symlink", dest, e))?;
        self.others.fetch_add(1, Ordering::Relaxed);
        self.apply_metadata(node, dest, rel);
        Ok(())
    }

    /// Whether the file `node` is a further name of a file already restored:
    /// then its link is deferred to [`Self::make_deferred_links`] and its
    /// content not written again. The first name is remembered.
    pub(super) fn defer_hard_link(&self, node: &Node, dest: &Path, rel: &str) -> bool {
        if node.links <= 1 || node.inode == 0 {
            return false;
        }
        let key = (node.dev, node.inode);
        let mut links = lock(&self.links);
        if links.contains_key(&key) {
            drop(links);
            lock(&self.deferred_links).push((dest.to_path_buf(), key, rel.to_string()));
            return true;
        }
        links.insert(key, dest.to_path_buf());
        false
    }

    /// Links each deferred name to its file's first name. Runs after the
    /// write pass, when every first name exists.
    pub(super) fn make_deferred_links(&self) {
        let deferred = std::mem::take(&mut *lock(&self.deferred_links));
        let links = lock(&self.links);
        for (dest, key, rel) in deferred {
            let Some(first) = links.get(&key) else {
                continue;
            };
            // The folder's metadata was already restored: lift a read-only
            // mode for the link and put mode and mtime back afterwards.
            let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
            let dir_meta = fs::symlink_metadata(&dir).ok();
            if let Some(meta) = &dir_meta {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode();
                if mode & 0o200 == 0 {
                    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(mode | 0o200));
                }
            }
            // The overwrite policy already chose to replace what is there.
            if fs::symlink_metadata(&dest).is_ok_and(|m| !m.is_dir()) {
                let _ = fs::remove_file(&dest);
            }
            let linked = fs::hard_link(first, &dest);
            if let Some(meta) = &dir_meta {
                let _ = fs::set_permissions(&dir, meta.permissions());
                let mtime = FileTime::from_last_modification_time(meta);
                let _ = filetime::set_symlink_file_times(&dir, mtime, mtime);
            }
            match linked {
                Ok(()) => {
                    self.others.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => self.warn(format!("cannot create hard link {rel}: {e}")),
            }
        }
    }
}
