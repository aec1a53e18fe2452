//! Metadata applied after content: owner (only as root), permissions,
//! extended attributes and times, on the entry itself and never through a
//! symlink. A folder gets its metadata after all its children are restored,
//! so its mtime and a read-only mode survive. What cannot be applied is a
//! warning, never a failed restore.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use filetime::FileTime;

use super::Restorer;
use crate::format::tree::{Node, NodeKind};

impl Restorer<'_> {
    /// Owner (as root), permissions, extended attributes and times.
    pub(super) fn apply_metadata(&self, node: &Node, path: &Path, rel: &str) {
        let symlink = node.kind == NodeKind::Symlink;
        if self.is_root
            && let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
        {
            self.warn(format!("cannot set owner of {rel}: {e}"));
        }
        if !symlink {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(node.mode)) {
                self.warn(format!("cannot set permissions of {rel}: {e}"));
            }
        }
        for attr in &node.xattrs {
            if let Err(e) = xattr::set(path, OsStr::from_bytes(&attr.name), &attr.value) {
                self.warn(format!(
                    "cannot set extended attribute {} on {rel}: {e}",
                    String::from_utf8_lossy(&attr.name)
                ));
            }
        }
        // utimensat without following links, and without opening the entry
        // (opening a fifo would block).
        let mtime = file_time(node.mtime_ns);
        if let Err(e) = filetime::set_symlink_file_times(path, mtime, mtime) {
            self.warn(format!("cannot set times of {rel}: {e}"));
        }
    }
}

/// A stored time (ns since the epoch, possibly negative) as `filetime` takes it.
pub(super) fn file_time(ns: i64) -> FileTime {
    FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}
