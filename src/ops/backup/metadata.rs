//! What `lstat` and the extended attributes say of an entry, as a node:
//! kind, mode, owner, times, inode, device numbers, xattrs; and the nodes
//! snap makes itself (folders for nested source names, streams' files).

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::format::tree::{Node, NodeKind, Xattr};

/// Nanoseconds since the epoch from `stat`'s seconds and nanoseconds.
fn nanos(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// A node with everything `lstat` tells about an entry.
pub(super) fn node_from_metadata(name: Vec<u8>, kind: NodeKind, meta: &Metadata) -> Node {
    Node {
        uid: meta.uid(),
        gid: meta.gid(),
        mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        inode: meta.ino(),
        dev: meta.dev(),
        links: meta.nlink(),
        rdev: if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
            meta.rdev()
        } else {
            0
        },
        size: if kind == NodeKind::File {
            meta.len()
        } else {
            0
        },
        ..Node::new(name, kind, meta.mode() & 0o7777)
    }
}

/// A node snap makes itself (a folder for nested source names, a stream's
/// file): owned by this user, modified now.
pub(super) fn made_node(name: Vec<u8>, kind: NodeKind, mode: u32) -> Node {
    let now = jiff::Timestamp::now();
    let now_ns = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
    Node {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        mtime_ns: now_ns,
        ctime_ns: now_ns,
        ..Node::new(name, kind, mode)
    }
}

/// The kind of an entry, as `lstat` tells it.
pub(crate) fn kind_of(meta: &Metadata) -> NodeKind {
    let t = meta.file_type();
    if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_char_device() {
        NodeKind::Chardev
    } else if t.is_block_device() {
        NodeKind::Blockdev
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    }
}

/// The extended attributes of `path`, sorted by name (none when they
/// cannot be listed).
pub(super) fn read_xattrs(path: &Path) -> Vec<Xattr> {
    sorted_xattrs(xattr::list(path), |name| xattr::get(path, name))
}

/// The extended attributes of an open file, as [`read_xattrs`].
pub(super) fn read_file_xattrs(file: &File) -> Vec<Xattr> {
    use xattr::FileExt;
    sorted_xattrs(file.list_xattr(), |name| file.get_xattr(name))
}

fn sorted_xattrs(
    names: io::Result<xattr::XAttrs>,
    get: impl Fn(&OsStr) -> io::Result<Option<Vec<u8>>>,
) -> Vec<Xattr> {
    let Ok(names) = names else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = get(&name).ok().flatten()?;
            Some(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What identifies a file's content for change detection while it is read:
/// size, mtime, ctime, inode and device.
pub(super) fn content_stamp(m: &Metadata) -> (u64, i64, i64, u64, u64) {
    (
        m.len(),
        nanos(m.mtime(), m.mtime_nsec()),
        nanos(m.ctime(), m.ctime_nsec()),
        m.ino(),
        m.dev(),
    )
}
