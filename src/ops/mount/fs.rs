//! The FUSE file system: inode numbers for what the kernel has looked up,
//! and the requests it sends, answered from the repository.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};

use super::layout::{Folder, Listing, Shown};
use super::reader::{ChunkCache, OpenFile};
use crate::error::{ErrorKind, Result};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::id::TreeId;
use crate::ops::browse::root_node;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::sync::lock;

/// How long the kernel may keep what the virtual folders show: new
/// snapshots appear within it.
const VIRTUAL_TTL: Duration = Duration::from_secs(1);
/// How long the kernel may keep what a snapshot holds: it never changes.
const SNAPSHOT_TTL: Duration = Duration::from_secs(3600);
/// The snapshot list is read again at most this often.
const REFRESH_EVERY: Duration = Duration::from_secs(1);
/// Trees kept decoded; more and the cache starts over.
const KEPT_TREES: usize = 1024;

/// What an inode number stands for.
#[derive(Clone)]
enum Entry {
    Folder(Folder),
    Link(Vec<u8>),
    /// A node of a snapshot; `view` is the inode of the snapshot's root,
    /// which hard links are numbered within.
    Node {
        node: Arc<Node>,
        view: u64,
    },
}

/// Inode numbers handed to the kernel: the same path gets the same number
/// for as long as the kernel knows it, and the hard links of one file
/// within one snapshot share one.
///
/// The table holds what the kernel may still ask about, not everything
/// ever browsed: each `lookup` reply counts one reference, the kernel's
/// `forget` gives them back, and an entry with none left goes. Entries a
/// `readdir` made (the kernel keeps no reference to them) go with their
/// folder when that is forgotten: the kernel forgets a folder only after
/// everything it looked up in it. Numbers are never reused, so a number
/// the kernel no longer has cannot be taken for a new entry.
struct Inodes {
    slots: HashMap<u64, Slot>,
    /// The next number to hand out.
    next: u64,
    /// (parent inode, name) of every entry; ordered, so a folder's
    /// entries are one range.
    by_name: BTreeMap<(u64, Vec<u8>), u64>,
    /// (snapshot root inode, device, inode) of files with several links.
    hard_links: HashMap<(u64, u64, u64), u64>,
}

/// One inode number's entry.
struct Slot {
    entry: Entry,
    /// `lookup` replies the kernel has not forgotten yet.
    lookups: u64,
    /// Its names (parent inode, name): several for a hard-linked file.
    names: Vec<(u64, Vec<u8>)>,
}

impl Inodes {
    /// The table with the mount's root as inode 1, which is never forgotten.
    fn new() -> Self {
        let mut slots = HashMap::new();
        slots.insert(
            ROOT_INODE,
            Slot {
                entry: Entry::Folder(Folder::Root),
                lookups: 0,
                names: Vec::new(),
            },
        );
        Self {
            slots,
            next: ROOT_INODE + 1,
            by_name: BTreeMap::new(),
            hard_links: HashMap::new(),
        }
    }

    fn get(&self, ino: u64) -> Option<Entry> {
        self.slots.get(&ino).map(|slot| slot.entry.clone())
    }

    /// Entries in the table.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.len()
    }

    fn push(&mut self, entry: Entry, name: (u64, Vec<u8>)) -> u64 {
        let ino = self.next;
        self.next += 1;
        self.by_name.insert(name.clone(), ino);
        self.slots.insert(
            ino,
            Slot {
                entry,
                lookups: 0,
                names: vec![name],
            },
        );
        ino
    }

    /// The inode of `name` in `parent`; a virtual entry is replaced each
    /// time (a link's target moves as snapshots come), a snapshot's never.
    fn child(&mut self, parent: u64, name: &[u8], entry: Entry) -> u64 {
        let key = (parent, name.to_vec());
        if let Some(&ino) = self.by_name.get(&key) {
            if !matches!(entry, Entry::Node { .. })
                && let Some(slot) = self.slots.get_mut(&ino)
            {
                slot.entry = entry;
            }
            return ino;
        }
        match &entry {
            Entry::Node { node, view } if node.kind == NodeKind::File && node.links > 1 => {
                let link = (*view, node.dev, node.inode);
                if let Some(&shared) = self.hard_links.get(&link)
                    && let Some(slot) = self.slots.get_mut(&shared)
                {
                    slot.names.push(key.clone());
                    self.by_name.insert(key, shared);
                    return shared;
                }
                let ino = self.push(entry, key);
                self.hard_links.insert(link, ino);
                ino
            }
            _ => self.push(entry, key),
        }
    }

    /// The inode of snapshot root `node` in `parent`: its own view.
    fn snapshot_root(&mut self, parent: u64, name: &[u8], node: Node) -> u64 {
        let key = (parent, name.to_vec());
        if let Some(&ino) = self.by_name.get(&key) {
            return ino;
        }
        let view = self.next;
        self.push(
            Entry::Node {
                node: Arc::new(node),
                view,
            },
            key,
        )
    }

    /// Counts a `lookup` reply for `ino`.
    fn looked_up(&mut self, ino: u64) {
        if let Some(slot) = self.slots.get_mut(&ino) {
            slot.lookups += 1;
        }
    }

    /// The kernel gives back `count` references to `ino`: with none left
    /// the entry goes, and so do the entries of its folder the kernel
    /// never looked up.
    fn forget(&mut self, ino: u64, count: u64) {
        if ino == ROOT_INODE {
            return;
        }
        let Some(slot) = self.slots.get_mut(&ino) else {
            return;
        };
        slot.lookups = slot.lookups.saturating_sub(count);
        if slot.lookups > 0 {
            return;
        }
        self.remove(ino);
        let listed: Vec<u64> = self
            .by_name
            .range((ino, Vec::new())..(ino + 1, Vec::new()))
            .map(|(_, &child)| child)
            .collect();
        for child in listed {
            if self.slots.get(&child).is_some_and(|slot| slot.lookups == 0) {
                self.remove(child);
            }
        }
    }

    fn remove(&mut self, ino: u64) {
        let Some(slot) = self.slots.remove(&ino) else {
            return;
        };
        for name in &slot.names {
            self.by_name.remove(name);
        }
        if let Entry::Node { node, view } = &slot.entry
            && node.kind == NodeKind::File
            && node.links > 1
        {
            let link = (*view, node.dev, node.inode);
            if self.hard_links.get(&link) == Some(&ino) {
                self.hard_links.remove(&link);
            }
        }
    }
}

/// The inode number of the mount's root folder.
const ROOT_INODE: u64 = 1;

/// The snapshot list and when it was read.
struct Snapshots {
    listing: Arc<Listing>,
    read_at: Option<Instant>,
}

/// A read-only view of a repository's snapshots.
pub struct SnapFs {
    repo: Repository,
    progress: Arc<dyn Progress>,
    snapshots: Mutex<Snapshots>,
    inodes: Mutex<Inodes>,
    trees: Mutex<HashMap<TreeId, Arc<Tree>>>,
    chunks: ChunkCache,
    open_files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    uid: u32,
    gid: u32,
}

impl SnapFs {
    /// A file system over `repo` keeping at most `cache_bytes` of chunks.
    pub fn new(repo: Repository, progress: Arc<dyn Progress>, cache_bytes: usize) -> Self {
        let inodes = Inodes::new();
        Self {
            repo,
            progress,
            snapshots: Mutex::new(Snapshots {
                listing: Arc::new(Listing::default()),
                read_at: None,
            }),
            inodes: Mutex::new(inodes),
            trees: Mutex::new(HashMap::new()),
            chunks: ChunkCache::new(cache_bytes),
            open_files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        }
    }

    /// Reads the snapshot list (and the index deltas new snapshots need)
    /// when it is older than [`REFRESH_EVERY`], so a backup made while
    /// mounted shows up without remounting.
    pub fn listing(&self) -> Result<Arc<Listing>> {
        let mut state = lock(&self.snapshots);
        if state.read_at.is_some_and(|at| at.elapsed() < REFRESH_EVERY) {
            return Ok(state.listing.clone());
        }
        self.repo.sync_cache(self.progress.as_ref())?;
        let (good, _damaged) = self
            .repo
            .read_every_snapshot(|id| self.repo.read_snapshot(id), true)?;
        state.listing = Arc::new(Listing::new(good));
        state.read_at = Some(Instant::now());
        Ok(state.listing.clone())
    }

    fn tree(&self, id: &TreeId) -> Result<Arc<Tree>> {
        if let Some(tree) = lock(&self.trees).get(id) {
            return Ok(tree.clone());
        }
        let tree = Arc::new(self.repo.read_tree(id)?);
        let mut trees = lock(&self.trees);
        if trees.len() >= KEPT_TREES {
            trees.clear();
        }
        trees.insert(*id, tree.clone());
        Ok(tree)
    }

    fn entry(&self, ino: INodeNo) -> std::result::Result<Entry, Errno> {
        lock(&self.inodes).get(ino.0).ok_or(Errno::ENOENT)
    }

    /// The children of a folder with their inode numbers, in listing
    /// order. The child named `looked_up` gets a kernel reference counted
    /// under the same lock that registers it, so a `forget` cannot remove
    /// it in between.
    fn children(
        &self,
        ino: u64,
        entry: &Entry,
        looked_up: Option<&OsStr>,
    ) -> Result<Vec<(u64, Vec<u8>, Entry)>> {
        let count = |inodes: &mut Inodes, child: u64, name: &[u8]| {
            if looked_up.is_some_and(|wanted| wanted.as_bytes() == name) {
                inodes.looked_up(child);
            }
        };
        match entry {
            Entry::Folder(folder) => {
                let listing = self.listing()?;
                let mut inodes = lock(&self.inodes);
                Ok(listing
                    .entries(folder)
                    .into_iter()
                    .map(|(name, shown)| {
                        let (child, entry) = match shown {
                            Shown::Folder(f) => {
                                let entry = Entry::Folder(f);
                                (inodes.child(ino, &name, entry.clone()), entry)
                            }
                            Shown::Link(target) => {
                                let entry = Entry::Link(target);
                                (inodes.child(ino, &name, entry.clone()), entry)
                            }
                            Shown::Snapshot(i) => {
                                let listed = &listing.snapshots[i];
                                let node = Node {
                                    mtime_ns: listed.time_ns,
                                    ctime_ns: listed.time_ns,
                                    name: name.clone(),
                                    ..root_node(listed.snapshot.tree)
                                };
                                let child = inodes.snapshot_root(ino, &name, node);
                                (child, inodes.get(child).expect("just added"))
                            }
                        };
                        count(&mut inodes, child, &name);
                        (child, name, entry)
                    })
                    .collect())
            }
            Entry::Node { node, view } => {
                let Some(subtree) = node.subtree else {
                    return Ok(Vec::new());
                };
                let tree = self.tree(&subtree)?;
                let mut inodes = lock(&self.inodes);
                Ok(tree
                    .nodes
                    .iter()
                    .map(|child| {
                        let entry = Entry::Node {
                            node: Arc::new(child.clone()),
                            view: *view,
                        };
                        let child_ino = inodes.child(ino, &child.name, entry.clone());
                        count(&mut inodes, child_ino, &child.name);
                        (child_ino, child.name.clone(), entry)
                    })
                    .collect())
            }
            Entry::Link(_) => Ok(Vec::new()),
        }
    }

    fn attr(&self, ino: u64, entry: &Entry) -> FileAttr {
        let newest = lock(&self.snapshots).listing.newest_time_ns();
        let (kind, perm, size, nlink, uid, gid, rdev, mtime_ns, ctime_ns) = match entry {
            Entry::Folder(_) => (
                FileType::Directory,
                0o555,
                0,
                2,
                self.uid,
                self.gid,
                0,
                newest,
                newest,
            ),
            Entry::Link(target) => (
                FileType::Symlink,
                0o777,
                target.len() as u64,
                1,
                self.uid,
                self.gid,
                0,
                newest,
                newest,
            ),
            Entry::Node { node, .. } => (
                file_type(node.kind),
                (node.mode & 0o7777) as u16,
                match node.kind {
                    NodeKind::Symlink => node.target.as_ref().map_or(0, |t| t.len() as u64),
                    NodeKind::File => node.size,
                    _ => 0,
                },
                match node.kind {
                    NodeKind::Dir => 2,
                    _ => u32::try_from(node.links.max(1)).unwrap_or(u32::MAX),
                },
                node.uid,
                node.gid,
                u32::try_from(node.rdev).unwrap_or(0),
                node.mtime_ns,
                node.ctime_ns,
            ),
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: system_time(mtime_ns),
            mtime: system_time(mtime_ns),
            ctime: system_time(ctime_ns),
            crtime: system_time(mtime_ns),
            kind,
            perm,
            nlink,
            uid,
            gid,
            rdev,
            blksize: 4096,
            flags: 0,
        }
    }

    /// An error the kernel gets as EIO; the user sees why on the mount's
    /// standard error.
    fn failed(&self, what: &str, e: &crate::error::Error) -> Errno {
        self.progress.warn(&format!("{what}: {e}"));
        match e.kind() {
            ErrorKind::NotFound => Errno::ENOENT,
            _ => Errno::EIO,
        }
    }

    fn ttl(entry: &Entry) -> Duration {
        match entry {
            Entry::Node { .. } => SNAPSHOT_TTL,
            _ => VIRTUAL_TTL,
        }
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Chardev => FileType::CharDevice,
        NodeKind::Blockdev => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

fn entry_type(entry: &Entry) -> FileType {
    match entry {
        Entry::Folder(_) => FileType::Directory,
        Entry::Link(_) => FileType::Symlink,
        Entry::Node { node, .. } => file_type(node.kind),
    }
}

fn system_time(ns: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

impl Filesystem for SnapFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let parent_entry = match self.entry(parent) {
            Ok(entry) => entry,
            Err(e) => return reply.error(e),
        };
        let found = match &parent_entry {
            // Only the named child is registered: a lookup in a large
            // folder costs one tree read, not an inode per entry.
            Entry::Node { node, view } => {
                let Some(subtree) = node.subtree else {
                    return reply.error(Errno::ENOTDIR);
                };
                match self.tree(&subtree) {
                    Ok(tree) => tree.find(name.as_bytes()).map(|child| {
                        let entry = Entry::Node {
                            node: Arc::new(child.clone()),
                            view: *view,
                        };
                        let mut inodes = lock(&self.inodes);
                        let ino = inodes.child(parent.0, name.as_bytes(), entry.clone());
                        inodes.looked_up(ino);
                        (ino, entry)
                    }),
                    Err(e) => return reply.error(self.failed("cannot read a folder", &e)),
                }
            }
            Entry::Folder(_) => match self.children(parent.0, &parent_entry, Some(name)) {
                Ok(children) => children
                    .into_iter()
                    .find(|(_, child, _)| child.as_slice() == name.as_bytes())
                    .map(|(ino, _, entry)| (ino, entry)),
                Err(e) => return reply.error(self.failed("cannot list the snapshots", &e)),
            },
            Entry::Link(_) => return reply.error(Errno::ENOTDIR),
        };
        match found {
            Some((ino, entry)) => {
                reply.entry(&Self::ttl(&entry), &self.attr(ino, &entry), Generation(0))
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    /// The kernel gives back references. (`batch_forget` is fuser's
    /// default, which calls this for each inode: fuser 0.18 keeps the
    /// batch's element type private.)
    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        lock(&self.inodes).forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.entry(ino) {
            Ok(entry) => reply.attr(&Self::ttl(&entry), &self.attr(ino.0, &entry)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.entry(ino) {
            Ok(Entry::Link(target)) => reply.data(&target),
            Ok(Entry::Node { node, .. }) if node.kind == NodeKind::Symlink => {
                reply.data(node.target.as_deref().unwrap_or_default());
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let node = match self.entry(ino) {
            Ok(Entry::Node { node, .. }) if node.kind == NodeKind::File => node,
            Ok(_) => return reply.error(Errno::EISDIR),
            Err(e) => return reply.error(e),
        };
        match OpenFile::open(&self.repo, &node) {
            Ok(file) => {
                let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
                lock(&self.open_files).insert(handle, Arc::new(file));
                // A snapshot's files never change: the kernel may keep
                // their pages from one open to the next.
                reply.opened(FileHandle(handle), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(self.failed(&format!("cannot open {}", node.display_name()), &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = lock(&self.open_files).get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        match file.read(&self.repo, &self.chunks, offset, size as usize) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(self.failed("cannot read a file", &e)),
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        lock(&self.open_files).remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entry = match self.entry(ino) {
            Ok(entry) => entry,
            Err(e) => return reply.error(e),
        };
        let children = match self.children(ino.0, &entry, None) {
            Ok(children) => children,
            Err(e) => return reply.error(self.failed("cannot list a folder", &e)),
        };
        let dots = [
            (ino.0, b".".to_vec(), FileType::Directory),
            (ino.0, b"..".to_vec(), FileType::Directory),
        ];
        let listed = dots.into_iter().chain(
            children
                .into_iter()
                .map(|(child, name, entry)| (child, name, entry_type(&entry))),
        );
        for (i, (child, name, kind)) in listed.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let value = match self.entry(ino) {
            Ok(Entry::Node { node, .. }) => node
                .xattrs
                .iter()
                .find(|x| x.name == name.as_bytes())
                .map(|x| x.value.clone()),
            Ok(_) => None,
            Err(e) => return reply.error(e),
        };
        match value {
            Some(value) => reply_sized(reply, size, &value),
            None => reply.error(Errno::ENODATA),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        match self.entry(ino) {
            Ok(Entry::Node { node, .. }) => {
                for xattr in &node.xattrs {
                    names.extend_from_slice(&xattr.name);
                    names.push(0);
                }
            }
            Ok(_) => {}
            Err(e) => return reply.error(e),
        }
        reply_sized(reply, size, &names);
    }
}

/// Answers an xattr request: its size when asked with 0, else the bytes.
fn reply_sized(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(u32::try_from(value.len()).unwrap_or(u32::MAX));
    } else if value.len() <= size as usize {
        reply.data(value);
    } else {
        reply.error(Errno::ERANGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node_entry(name: &[u8], kind: NodeKind, view: u64) -> Entry {
        Entry::Node {
            node: Arc::new(Node::new(name.to_vec(), kind, 0o644)),
            view,
        }
    }

    fn hard_linked(name: &[u8], view: u64) -> Entry {
        let mut node = Node::new(name.to_vec(), NodeKind::File, 0o644);
        (node.links, node.dev, node.inode) = (2, 7, 42);
        Entry::Node {
            node: Arc::new(node),
            view,
        }
    }

    /// A snapshot root below the mount's root and three files in it, the
    /// first looked up once (as `lookup` registers it), the others only
    /// listed (as `readdir` does).
    fn browsed() -> (Inodes, u64, Vec<u64>) {
        let mut inodes = Inodes::new();
        let view = inodes.snapshot_root(ROOT_INODE, b"snap", root_node(crate::id::BlobId([7; 32])));
        inodes.looked_up(view);
        let files: Vec<u64> = [&b"a"[..], b"b", b"c"]
            .iter()
            .map(|name| inodes.child(view, name, node_entry(name, NodeKind::File, view)))
            .collect();
        inodes.looked_up(files[0]);
        (inodes, view, files)
    }

    #[test]
    fn an_entry_goes_when_the_kernel_forgets_its_last_lookup() {
        let (mut inodes, view, files) = browsed();
        assert_eq!(inodes.len(), 5);
        inodes.looked_up(files[0]);
        inodes.forget(files[0], 1);
        assert!(inodes.get(files[0]).is_some(), "one lookup is left");
        inodes.forget(files[0], 1);
        assert!(inodes.get(files[0]).is_none());
        assert_eq!(inodes.len(), 4);
        // Listed again, it gets a new number: the old one is never reused.
        let again = inodes.child(view, b"a", node_entry(b"a", NodeKind::File, view));
        assert!(again > files[2]);
    }

    #[test]
    fn a_forgotten_folder_takes_the_entries_only_listed_in_it() {
        let (mut inodes, view, files) = browsed();
        inodes.forget(view, 1);
        // `a` is still looked up: it stays until the kernel forgets it.
        assert!(inodes.get(view).is_none());
        assert!(inodes.get(files[0]).is_some());
        assert!(inodes.get(files[1]).is_none() && inodes.get(files[2]).is_none());
        inodes.forget(files[0], 1);
        assert_eq!(inodes.len(), 1, "only the root is left");
        assert!(inodes.by_name.is_empty());
        // The root is never forgotten.
        inodes.forget(ROOT_INODE, 1);
        assert!(inodes.get(ROOT_INODE).is_some());
    }

    #[test]
    fn hard_links_share_a_number_until_both_names_are_forgotten() {
        let mut inodes = Inodes::new();
        let view = inodes.snapshot_root(ROOT_INODE, b"snap", root_node(crate::id::BlobId([7; 32])));
        let first = inodes.child(view, b"x", hard_linked(b"x", view));
        let second = inodes.child(view, b"y", hard_linked(b"y", view));
        assert_eq!(first, second);
        inodes.looked_up(first);
        inodes.looked_up(second);
        inodes.forget(first, 2);
        assert!(inodes.get(first).is_none());
        assert!(inodes.hard_links.is_empty() && inodes.by_name.len() == 1);
        let relisted = inodes.child(view, b"y", hard_linked(b"y", view));
        assert_ne!(relisted, first);
        assert_eq!(inodes.child(view, b"x", hard_linked(b"x", view)), relisted);
    }

    /// A forget for a number the table does not hold (already gone) is
    /// no error.
    #[test]
    fn forgetting_an_unknown_number_changes_nothing() {
        let (mut inodes, _, _) = browsed();
        inodes.forget(9999, 3);
        assert_eq!(inodes.len(), 5);
    }
}
