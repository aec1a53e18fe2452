//! The walk: folders' entries backed up in parallel, trees written bottom
//! up, a file's content reused from the parent snapshot (or, with a
//! write-only key, from the local file memos) when its metadata says it is
//! unchanged, else read, chunked and stored.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, mpsc};

use globset::GlobSet;
use rayon::prelude::*;

use super::metadata::{
    content_stamp, kind_of, made_node, node_from_metadata, read_file_xattrs, read_xattrs,
};
use super::sources::{Input, SelectedPaths, Slot, Source, layout};
use super::{BackupOptions, Counters};
use crate::codec::{Chunker, Dictionary};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::BlobKind;
use crate::format::tree::{ListCut, Node, NodeKind, Tree, escape_path};
use crate::glob::{glob_set, glob_set_case};
use crate::id::{BlobId, TreeId};
use crate::index::FileMemo;
use crate::ops::sqlite::{Capture, HEADER, has_pending_log};
use crate::pack::BlobSaver;
use crate::progress::{FileStatus, Progress};
use crate::repo::Repository;
use crate::sync::lock;

/// The state of one backup's walk, shared by the rayon workers.
pub(super) struct Walker<'a> {
    pub(super) repo: &'a Repository,
    pub(super) saver: BlobSaver<'a>,
    pub(super) chunker: Chunker,
    excludes: GlobSet,
    iexcludes: GlobSet,
    pub(super) sqlite_globs: GlobSet,
    pub(super) options: &'a BackupOptions,
    pub(super) progress: &'a dyn Progress,
    pub(super) counters: Counters,
    pub(super) warnings: Mutex<Vec<String>>,
    /// Databases stored as plain copies.
    pub(super) plain_copies: Mutex<Vec<PathBuf>>,
    pub(super) changed_while_read: Mutex<Vec<PathBuf>>,
    /// With a write-only key: file memos waiting to be written to the cache.
    memos: Option<Mutex<Vec<KeyedMemo>>>,
    /// Only these entries (and the folders leading to them) are backed up.
    selected: Option<SelectedPaths>,
    /// The workers of the walk and of the files read in steps.
    pools: Pools,
    /// Where walk workers hand over files read in steps, while
    /// `backup_sources` runs.
    readers: Mutex<Option<mpsc::Sender<Handover>>>,
}

/// A file read in steps, handed over by a walk worker, which waits for the
/// answer without taking other work meanwhile.
struct Handover {
    path: PathBuf,
    what: Handed,
    parent: Option<Node>,
    answer: mpsc::SyncSender<(Result<Stored, ReadError>, Vec<BlobId>)>,
}

/// What a reader does with a handed-over file.
enum Handed {
    /// Capture it if it is a database, else read and chunk it (from the
    /// file the walk opened through its folder, when it did).
    File(Metadata, Option<File>),
    /// Store this capture of it (its header was checked already).
    Captured(Capture),
}

/// A backup's two worker pools, and its readers.
///
/// The walk (folders, `lstat`, extended attributes, and files small enough
/// to read in one go into a few KB) runs on many workers, most of which
/// wait for the disk when the files are not in the page cache: 16 reads in
/// flight instead of 4 took a first backup of 300,000 small files with a
/// cold page cache from 12.9 s to 8.7 s, for 0.6 MB a worker
/// (docs/PERFORMANCE.md). Their compression shares one zstd context per
/// core (`codec::compress`), so the extra workers neither hold contexts of
/// their own nor compete with each other for the cores.
///
/// Files read in steps through a buffer of a chunk and a read step (5 MiB:
/// large files, databases) are handed to as many reader threads as the
/// process's own pool has workers (2 per core), which bounds those
/// buffers; the chunks of each buffer are stored in parallel on the second
/// pool. The walk worker handing a file over blocks on a channel for the
/// answer. It must not wait the rayon way (`install` across pools): a
/// worker waiting so takes other walk jobs meanwhile, which hand over more
/// files, each with its own buffer, and a bound on them then deadlocks.
/// Peak RSS of the peer dataset's first backup: 73 MiB waiting the rayon
/// way, 62-66 MiB through the channel (4 walk workers: 53 MiB).
struct Pools {
    walk: rayon::ThreadPool,
    buffered: rayon::ThreadPool,
}

/// An entry looked at by `Walker::stat_entry`.
// The nodes are kept inline, as a folder's list of nodes always held them;
// only the folders waiting for their walk are boxed.
#[allow(clippy::large_enum_variant)]
enum Walked {
    /// Backed up (`None`: skipped).
    Done(Option<Node>),
    /// A folder, whose walk is still to do (boxed: a folder's entries wait
    /// in a list of these while its files are stored).
    Dir(Box<(Node, Metadata)>),
}

impl Walked {
    /// Takes out a folder waiting for its walk, leaving `Done(None)`;
    /// anything else stays as it is.
    fn take_dir(&mut self) -> Option<(Node, Metadata)> {
        match std::mem::replace(self, Walked::Done(None)) {
            Walked::Dir(dir) => Some(*dir),
            done => {
                *self = done;
                None
            }
        }
    }
}

/// An open folder, and the names it lists as regular files.
struct Folder {
    dir: File,
    regular: HashSet<OsString>,
}

impl Folder {
    /// Opens the folder at `path`, whose `lstat` gave `meta`; `None` when it
    /// cannot be opened or is no longer that folder.
    fn open(path: &Path, meta: &Metadata, regular: HashSet<OsString>) -> Option<Self> {
        if regular.is_empty() {
            // Nothing to open through it (say, every file is in the parent).
            return None;
        }
        let dir = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .ok()?;
        let opened = dir.metadata().ok()?;
        (opened.dev() == meta.dev() && opened.ino() == meta.ino()).then_some(Self { dir, regular })
    }

    /// Opens the entry `name` if the folder lists it as a regular file and
    /// it still is one once open (never following a symlink), with what it
    /// says of itself; `None` sends the caller the way of a full path.
    fn open_new(&self, name: &OsStr) -> Option<(File, Metadata)> {
        use nix::fcntl::{OFlag, openat};
        use nix::sys::stat::Mode;
        if !self.regular.contains(name) {
            return None;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
        let fd = match openat(&self.dir, name, flags | OFlag::O_NOATIME, Mode::empty()) {
            // Not the owner: O_NOATIME is refused, open without it.
            Err(nix::errno::Errno::EPERM) => openat(&self.dir, name, flags, Mode::empty()),
            other => other,
        }
        .ok()?;
        let file = File::from(fd);
        let meta = file.metadata().ok()?;
        meta.is_file().then_some((file, meta))
    }
}

/// Closes the readers' queue when dropped.
struct CloseReaders<'a>(&'a Mutex<Option<mpsc::Sender<Handover>>>);

impl Drop for CloseReaders<'_> {
    fn drop(&mut self) {
        lock(self.0).take();
    }
}

/// Workers of the walk: at least 16, and 2 per core beyond 8 cores.
/// `SNAP_WALK_THREADS` overrides it (for measuring).
fn walk_threads() -> usize {
    if let Some(n) = std::env::var("SNAP_WALK_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return n;
    }
    crate::sync::file_workers()
}

impl Pools {
    fn new() -> Result<Self> {
        let pool = |name: &'static str, threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(move |i| format!("snap-{name}-{i}"))
                .stack_size(crate::ops::WORKER_STACK)
                .build()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot start the backup's workers: {e}"),
                    )
                })
        };
        Ok(Self {
            walk: pool("walk", walk_threads())?,
            buffered: pool("read", rayon::current_num_threads())?,
        })
    }
}

impl<'a> Walker<'a> {
    /// A walker storing into `repo` what `options` selects.
    pub(super) fn new(
        repo: &'a Repository,
        options: &'a BackupOptions,
        progress: &'a dyn Progress,
        selected: Option<SelectedPaths>,
    ) -> Result<Self> {
        Ok(Self {
            repo,
            saver: if options.dry_run {
                BlobSaver::dry_run(repo)
            } else {
                repo.saver()
            },
            chunker: Chunker::new(repo.chunker_params()),
            excludes: glob_set(&options.excludes, "exclude pattern")?,
            iexcludes: glob_set_case(&options.iexcludes, "iexclude pattern", true)?,
            sqlite_globs: glob_set(&options.sqlite, "SQLite pattern")?,
            options,
            progress,
            counters: Counters::default(),
            warnings: Mutex::new(Vec::new()),
            plain_copies: Mutex::new(Vec::new()),
            changed_while_read: Mutex::new(Vec::new()),
            memos: (!repo.can_read() && !options.force).then(|| Mutex::new(Vec::new())),
            selected,
            pools: Pools::new()?,
            readers: Mutex::new(None),
        })
    }
}

/// Longest source path followed (Linux's PATH_MAX); deeper entries are
/// skipped with a warning, which also bounds the walk's recursion.
const MAX_PATH_LEN: usize = 4096;

/// Files up to this size are read whole with one read into a buffer each
/// worker reuses (see `Walker::store_small`); larger ones are read in steps.
const SMALL_FILE: u64 = 256 * 1024;

thread_local! {
    /// The worker's buffer for small files: it grows to the largest small
    /// file the worker has read and is zeroed only as it grows.
    static SMALL_BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// What storing a file's content gave: the length read, the dictionary its
/// chunks were compressed with, and whether it was captured as a database.
pub(super) type Stored = (u64, Option<Dictionary>, bool);

/// Reads a file expected to hold `expected` bytes into `buf` (grown as
/// needed), asking for one byte more, so that one read takes in a file of
/// the expected length and a file that grew shows it; returns the bytes
/// read, `expected + 1` when the file holds more. A read that ends exactly
/// at the expected length is taken as the end of the file: the check after
/// reading compares the file's size and times with those the walk saw.
fn read_small(mut file: &File, expected: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    let want = expected.saturating_add(1);
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let mut filled = 0;
    while filled < want {
        match file.read(&mut buf[filled..want]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == expected {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A file memo and the keyed hash of its path.
type KeyedMemo = ([u8; 32], FileMemo);

/// Where a source's walk happens: its filesystem, its root, its excludes.
pub(super) struct Scope<'a> {
    pub(super) dev: u64,
    pub(super) root: &'a Path,
    pub(super) excludes: Option<&'a GlobSet>,
}

impl Scope<'_> {
    fn excludes(&self, name: &OsStr, path: &Path) -> bool {
        self.excludes.is_some_and(|globs| {
            globs.is_match(name)
                || globs.is_match(path)
                || path
                    .strip_prefix(self.root)
                    .is_ok_and(|relative| globs.is_match(relative))
        })
    }
}

/// The first bytes of a valid `CACHEDIR.TAG` (bford.info/cachedir).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Whether `dir` holds a `CACHEDIR.TAG` file starting with the signature.
fn has_cachedir_tag(dir: &Path) -> bool {
    let path = dir.join("CACHEDIR.TAG");
    if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
    open_source(&path).is_ok_and(|mut f| f.read_exact(&mut head).is_ok())
        && head == CACHEDIR_SIGNATURE
}

/// The file the walk opened through its folder, else `path` opened.
fn open_unless_opened(path: &Path, opened: Option<File>) -> io::Result<File> {
    opened.map_or_else(|| open_source(path), Ok)
}

/// Opens a file for reading without updating its access time where allowed:
/// backing up must not modify what is backed up.
fn open_source(path: &Path) -> io::Result<File> {
    match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path),
        other => other,
    }
}

/// A failure while chunking a file: reading the source (skip the file with a
/// warning) or storing into the repository (fail the backup).
pub(super) enum ReadError {
    Source(io::Error),
    Repo(Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Source(e)
    }
}

impl Walker<'_> {
    pub(super) fn check_cancel(&self) -> Result<()> {
        if self
            .options
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(Error::new(
                ErrorKind::Interrupted,
                "backup interrupted; no snapshot was written, and what was already stored will be reused by the next backup",
            ));
        }
        Ok(())
    }

    pub(super) fn warn(&self, text: String) {
        self.progress.warn(&text);
        lock(&self.warnings).push(text);
    }

    /// The cache key of a source path: keyed, so the cache reveals no names.
    fn memo_key(&self, path: &Path) -> [u8; 32] {
        let mut input = b"snap file memo\0".to_vec();
        input.extend_from_slice(path.as_os_str().as_bytes());
        self.repo.codec().id(&input).0
    }

    /// Writes waiting file memos to the cache once more than `threshold` wait.
    pub(super) fn write_memos(&self, threshold: usize) -> Result<()> {
        let Some(memos) = &self.memos else {
            return Ok(());
        };
        if self.options.dry_run {
            // Memos of a dry run would let the next backup skip files whose
            // content it never stored.
            return Ok(());
        }
        let batch = {
            let mut memos = lock(memos);
            if memos.len() <= threshold {
                return Ok(());
            }
            std::mem::take(&mut *memos)
        };
        self.repo.cache().put_file_memos(&batch)
    }

    fn remember(&self, path: &Path, node: &Node) -> Result<()> {
        let Some(memos) = &self.memos else {
            return Ok(());
        };
        let memo = FileMemo {
            size: node.size,
            mtime_ns: node.mtime_ns,
            ctime_ns: node.ctime_ns,
            inode: node.inode,
            content: node.content.clone(),
            content_depth: node.content_depth,
            dictionary: node.dictionary,
        };
        lock(memos).push((self.memo_key(path), memo));
        self.write_memos(4096)
    }

    /// A file memo standing in for a parent node (write-only keys), when its
    /// content is still in the repository.
    fn memo_parent(&self, path: &Path, node: &Node) -> Result<Option<Node>> {
        if self.memos.is_none() {
            return Ok(None);
        }
        let Some(memo) = self.repo.cache().file_memo(&self.memo_key(path))? else {
            return Ok(None);
        };
        for id in memo.content.iter().chain(&memo.dictionary) {
            if !self.repo.cache().contains(id)? {
                return Ok(None);
            }
        }
        Ok(Some(Node {
            size: memo.size,
            mtime_ns: memo.mtime_ns,
            ctime_ns: memo.ctime_ns,
            inode: memo.inode,
            content: memo.content,
            content_depth: memo.content_depth,
            dictionary: memo.dictionary,
            ..node.clone()
        }))
    }

    pub(super) fn backup_sources(
        &self,
        sources: &[Source],
        parent_root: Option<&Tree>,
    ) -> Result<TreeId> {
        let (jobs, queue) = mpsc::channel();
        let queue = Mutex::new(queue);
        *lock(&self.readers) = Some(jobs);
        std::thread::scope(|scope| {
            // Closing the queue ends the readers, on every way out (an
            // error, a panic), before the scope waits for them.
            let _closing = CloseReaders(&self.readers);
            for i in 0..rayon::current_num_threads().max(1) {
                std::thread::Builder::new()
                    .name(format!("snap-read-{i}"))
                    .stack_size(crate::ops::WORKER_STACK)
                    .spawn_scoped(scope, || self.read_handed(&queue))
                    .map_err(|e| {
                        Error::new(
                            ErrorKind::Io,
                            format!("cannot start the backup's readers: {e}"),
                        )
                    })?;
            }
            self.pools.walk.install(|| {
                let tree = Tree {
                    nodes: self.backup_slots(&layout(sources), parent_root)?,
                };
                self.saver.save(BlobKind::Tree, &tree.to_bytes())
            })
        })
    }

    /// A reader's loop: stores the files handed over until the queue
    /// closes. A panic while storing one is that file's error.
    fn read_handed(&self, queue: &Mutex<mpsc::Receiver<Handover>>) {
        loop {
            let Ok(job) = lock(queue).recv() else {
                return;
            };
            let mut ids = Vec::new();
            let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.pools.buffered.install(|| {
                    self.store_handed(&job.path, job.what, job.parent.as_ref(), &mut ids)
                })
            }))
            .unwrap_or_else(|_| {
                Err(ReadError::Repo(Error::new(
                    ErrorKind::Io,
                    format!("storing {} panicked", escape_path(&job.path)),
                )))
            });
            // The walk worker is gone only when the backup is failing.
            let _ = job.answer.send((stored, ids));
        }
    }

    /// Stores a handed-over file, on a reader: a database through a
    /// capture, anything else chunked as it is read.
    fn store_handed(
        &self,
        path: &Path,
        what: Handed,
        parent: Option<&Node>,
        ids: &mut Vec<BlobId>,
    ) -> Result<Stored, ReadError> {
        match what {
            Handed::Captured(capture) => self.store_capture(path, capture, parent, ids),
            Handed::File(meta, opened) => match self.capture_database(path) {
                Some(capture) => self.store_capture(path, capture, parent, ids),
                None => self
                    .store_plain(path, &meta, opened, ids)
                    .map(|read| (read, None, false)),
            },
        }
    }

    /// Hands a file read in steps over to the readers and waits, blocked,
    /// for what storing it gave (see `Pools`).
    fn hand_over(
        &self,
        path: &Path,
        what: Handed,
        parent: Option<&Node>,
        ids: &mut Vec<BlobId>,
    ) -> Result<Stored, ReadError> {
        let stopped = || {
            ReadError::Repo(Error::new(
                ErrorKind::Io,
                "the backup's readers have stopped",
            ))
        };
        let (answer, answered) = mpsc::sync_channel(1);
        let job = Handover {
            path: path.to_path_buf(),
            what,
            parent: parent.cloned(),
            answer,
        };
        let sent = lock(&self.readers)
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            return Err(stopped());
        }
        let (stored, handed) = answered.recv().map_err(|_| stopped())?;
        ids.extend(handed);
        stored
    }

    /// The nodes of one folder of sources, in name order.
    fn backup_slots(
        &self,
        slots: &BTreeMap<Vec<u8>, Slot<'_>>,
        parent_tree: Option<&Tree>,
    ) -> Result<Vec<Node>> {
        let nodes = slots
            .par_iter()
            .map(|(name, slot)| {
                let parent = parent_tree.and_then(|t| t.find(name));
                match slot {
                    Slot::Source(source) => self.backup_source(source, name.clone(), parent),
                    Slot::Folder(children) => {
                        let parent_tree = match parent.filter(|p| p.kind == NodeKind::Dir) {
                            Some(Node {
                                subtree: Some(id), ..
                            }) => self.repo.read_tree(id).ok(),
                            _ => None,
                        };
                        let tree = Tree {
                            nodes: self.backup_slots(children, parent_tree.as_ref())?,
                        };
                        let mut node = made_node(name.clone(), NodeKind::Dir, 0o755);
                        node.subtree = Some(self.saver.save(BlobKind::Tree, &tree.to_bytes())?);
                        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
                        Ok(Some(node))
                    }
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(nodes.into_iter().flatten().collect())
    }

    /// Backs up one source: a path walked from its root, or a stream.
    fn backup_source(
        &self,
        source: &Source,
        name: Vec<u8>,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        match &source.input {
            Input::Path(path) => {
                let scope = Scope {
                    dev: fs::symlink_metadata(path).map(|m| m.dev()).unwrap_or(0),
                    root: path,
                    excludes: source.excludes.as_ref(),
                };
                let log_beside = has_pending_log(path);
                self.backup_entry(path, name, parent, &scope, log_beside)
            }
            Input::Stream(input) => self
                .backup_stream(&source.name, input, name, parent)
                .map(Some),
        }
    }

    /// Stores a batch of chunks in parallel (compressed with `dictionary` if
    /// given), appending their ids.
    pub(super) fn store_chunks(
        &self,
        chunks: &[&[u8]],
        dictionary: Option<&Dictionary>,
        ids: &mut Vec<BlobId>,
    ) -> Result<(), ReadError> {
        self.check_cancel().map_err(ReadError::Repo)?;
        if let [chunk] = chunks {
            // One chunk (every small file): no parallel batch to set up.
            let id = self
                .saver
                .save_with(BlobKind::Data, chunk, dictionary)
                .map_err(ReadError::Repo)?;
            ids.push(id);
            self.progress.add_bytes(chunk.len() as u64);
            return Ok(());
        }
        let batch: Vec<_> = chunks
            .par_iter()
            .map(|chunk| self.saver.save_with(BlobKind::Data, chunk, dictionary))
            .collect::<Result<_>>()
            .map_err(ReadError::Repo)?;
        ids.extend(batch);
        let bytes: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        self.progress.add_bytes(bytes);
        Ok(())
    }

    /// Backs up one entry; `None` when it was skipped with a warning.
    fn backup_entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
        scope: &Scope<'_>,
        log_beside: bool,
    ) -> Result<Option<Node>> {
        match self.stat_entry(path, name, parent, log_beside, None)? {
            Walked::Done(node) => Ok(node),
            Walked::Dir(dir) => {
                let (node, meta) = *dir;
                self.finish_dir(path, node, &meta, parent, scope)
            }
        }
    }

    /// Backs up one entry, except that a folder is only looked at
    /// (`Walked::Dir`): its walk is left to the caller. A regular file
    /// that the parent snapshot does not have is opened relative to
    /// `folder` (the open folder holding it, with the names it lists as
    /// regular files), which spares the kernel a lookup of the full path
    /// for `lstat`, `open` and the extended attributes.
    fn stat_entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
        log_beside: bool,
        folder: Option<&Folder>,
    ) -> Result<Walked> {
        self.check_cancel()?;
        if path.as_os_str().len() > MAX_PATH_LEN {
            let shown: String = escape_path(path).chars().take(80).collect();
            self.warn(format!(
                "skipped {shown}...: path longer than {MAX_PATH_LEN} bytes"
            ));
            return Ok(Walked::Done(None));
        }
        if parent.is_none()
            && let Some((file, meta)) = folder.and_then(|f| f.open_new(OsStr::from_bytes(&name)))
        {
            let mut node = node_from_metadata(name, NodeKind::File, &meta);
            node.xattrs = read_file_xattrs(&file);
            return self
                .file_entry(path, node, &meta, None, log_beside, Some(file))
                .map(Walked::Done);
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                self.warn(format!("skipped {}: {e}", escape_path(path)));
                return Ok(Walked::Done(None));
            }
        };
        let kind = kind_of(&meta);
        let mut node = node_from_metadata(name, kind, &meta);
        node.xattrs = read_xattrs(path);
        let parent = parent.filter(|p| p.kind == kind);
        match kind {
            NodeKind::Dir => return Ok(Walked::Dir(Box::new((node, meta)))),
            NodeKind::File => {
                return self
                    .file_entry(path, node, &meta, parent, log_beside, None)
                    .map(Walked::Done);
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(target) => node.target = Some(target.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    self.warn(format!(
                        "skipped {}: cannot read link: {e}",
                        escape_path(path)
                    ));
                    return Ok(Walked::Done(None));
                }
            },
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev | NodeKind::Socket => {}
        }
        Ok(Walked::Done(Some(node)))
    }

    /// Backs up a regular file whose node `meta` filled (from the open
    /// file when the walk opened it, `opened`); `None` when it is left out
    /// or skipped.
    fn file_entry(
        &self,
        path: &Path,
        mut node: Node,
        meta: &Metadata,
        parent: Option<&Node>,
        log_beside: bool,
        opened: Option<File>,
    ) -> Result<Option<Node>> {
        if self.too_large(meta) {
            self.counters.excluded.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let stored = self.backup_file(path, meta, &mut node, parent, log_beside, opened)?;
        Ok(stored.then_some(node))
    }

    /// Walks a folder `stat_entry` looked at, into its node's subtree.
    fn finish_dir(
        &self,
        path: &Path,
        mut node: Node,
        meta: &Metadata,
        parent: Option<&Node>,
        scope: &Scope<'_>,
    ) -> Result<Option<Node>> {
        let parent = parent.filter(|p| p.kind == NodeKind::Dir);
        if self.options.one_file_system && meta.dev() != scope.dev {
            // A mount point: keep the directory itself, not what is mounted there.
            node.subtree = Some(
                self.saver
                    .save(BlobKind::Tree, &Tree::default().to_bytes())?,
            );
            return Ok(Some(node));
        }
        if self.tagged_to_skip(path) {
            self.counters.excluded.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        match self.backup_dir(path, meta, parent, scope)? {
            Some(tree) => node.subtree = Some(tree),
            None => return Ok(None),
        }
        self.counters.dirs.fetch_add(1, Ordering::Relaxed);
        Ok(Some(node))
    }

    /// Whether the entry `name` of the folder at `dir` is backed up: not
    /// excluded, and selected (the walk and the scan share this rule).
    pub(super) fn keeps(&self, dir: &Path, name: &OsStr, scope: &Scope<'_>) -> bool {
        !self.excluded(dir, name, scope) && self.selected(dir, name)
    }

    /// Whether an exclude pattern (`--exclude`, `--iexclude`, the source's
    /// own excludes) leaves `dir/name` out; such entries are counted.
    fn excluded(&self, dir: &Path, name: &OsStr, scope: &Scope<'_>) -> bool {
        let child = dir.join(name);
        self.excludes.is_match(name)
            || self.excludes.is_match(&child)
            || self.iexcludes.is_match(name)
            || self.iexcludes.is_match(&child)
            || scope.excludes(name, &child)
    }

    /// Whether `--files-from` (when given) selects `dir/name`.
    fn selected(&self, dir: &Path, name: &OsStr) -> bool {
        self.selected
            .as_ref()
            .is_none_or(|s| s.keeps(&dir.join(name)))
    }

    /// Whether a file of this size is left out (`exclude_larger_than`).
    pub(super) fn too_large(&self, meta: &Metadata) -> bool {
        self.options
            .exclude_larger_than
            .is_some_and(|limit| meta.len() > limit)
    }

    /// Whether `dir` holds a file that asks to leave it out
    /// (`exclude_if_present`, or a valid `CACHEDIR.TAG` with `exclude_caches`).
    pub(super) fn tagged_to_skip(&self, dir: &Path) -> bool {
        let present = self
            .options
            .exclude_if_present
            .iter()
            .any(|name| fs::symlink_metadata(dir.join(name)).is_ok());
        present || (self.options.exclude_caches && has_cachedir_tag(dir))
    }

    fn backup_dir(
        &self,
        path: &Path,
        meta: &Metadata,
        parent: Option<&Node>,
        scope: &Scope<'_>,
    ) -> Result<Option<TreeId>> {
        let parent_tree = match parent.and_then(|p| p.subtree) {
            Some(id) => match self.repo.read_tree(&id) {
                Ok(tree) => Some(tree),
                Err(e) => {
                    self.progress.warn(&format!(
                        "cannot use the parent's listing of {}: {e}",
                        escape_path(path)
                    ));
                    None
                }
            },
            None => None,
        };
        let parents: HashMap<&[u8], &Node> = parent_tree
            .iter()
            .flat_map(|t| t.nodes.iter().map(|n| (n.name.as_slice(), n)))
            .collect();
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                self.warn(format!("skipped {}: {e}", escape_path(path)));
                return Ok(None);
            }
        };
        let mut names: Vec<OsString> = Vec::new();
        // Files the folder lists as regular (its own type, no `lstat`) and
        // the parent lacks: those are opened through the folder.
        let mut regular = HashSet::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name();
                    if entry.file_type().is_ok_and(|t| t.is_file())
                        && !parents.contains_key(name.as_bytes())
                    {
                        regular.insert(name.clone());
                    }
                    names.push(name);
                }
                Err(e) => self.warn(format!("skipped an entry of {}: {e}", escape_path(path))),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names.retain(|name| {
            if self.excluded(path, name, scope) {
                self.counters.excluded.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            self.selected(path, name)
        });
        let logged = self.fold_sqlite_companions(path, &mut names);
        // First every entry but the subfolders' walks, with the folder open;
        // then, the folder closed, the subfolders: open folders stay as few
        // as the walks in progress, however deep the tree.
        let folder = Folder::open(path, meta, regular);
        let mut walked = names
            .par_iter()
            .map(|name| {
                let bytes = name.as_bytes();
                self.stat_entry(
                    &path.join(name),
                    bytes.to_vec(),
                    parents.get(bytes).copied(),
                    logged.contains(bytes),
                    folder.as_ref(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        drop(folder);
        walked.par_iter_mut().try_for_each(|walked| {
            if let Some((node, meta)) = walked.take_dir() {
                let child = path.join(OsStr::from_bytes(&node.name));
                let parent = parents.get(node.name.as_slice()).copied();
                *walked = Walked::Done(self.finish_dir(&child, node, &meta, parent, scope)?);
            }
            Ok::<_, Error>(())
        })?;
        let tree = Tree {
            nodes: walked
                .into_iter()
                .filter_map(|walked| match walked {
                    Walked::Done(node) => node,
                    Walked::Dir(_) => None,
                })
                .collect(),
        };
        Ok(Some(self.saver.save(BlobKind::Tree, &tree.to_bytes())?))
    }

    /// Fills a file node's content; `false` when the file was skipped.
    fn backup_file(
        &self,
        path: &Path,
        meta: &Metadata,
        node: &mut Node,
        parent: Option<&Node>,
        log_beside: bool,
        opened: Option<File>,
    ) -> Result<bool> {
        let memo = match parent {
            Some(_) => None,
            None => self.memo_parent(path, node)?,
        };
        let stored = self.store_file(
            path,
            meta,
            node,
            parent.or(memo.as_ref()),
            log_beside,
            opened,
        )?;
        if stored {
            self.remember(path, node)?;
        }
        Ok(stored)
    }

    /// Reuses the parent's content when the file is unchanged, else reads,
    /// chunks and stores it (from `opened` when the walk opened it already);
    /// `false` when the file was skipped.
    fn store_file(
        &self,
        path: &Path,
        meta: &Metadata,
        node: &mut Node,
        parent: Option<&Node>,
        log_beside: bool,
        opened: Option<File>,
    ) -> Result<bool> {
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        // A database with a write-ahead log (or hot journal) beside it may have
        // committed changes its own metadata does not show.
        if !log_beside
            && let Some(p) = parent
            && p.size == node.size
            && p.mtime_ns == node.mtime_ns
            && p.ctime_ns == node.ctime_ns
            && p.inode == node.inode
        {
            node.content = p.content.clone();
            node.content_depth = p.content_depth;
            node.dictionary = p.dictionary;
            self.counters
                .files_unchanged
                .fetch_add(1, Ordering::Relaxed);
            self.counters.bytes.fetch_add(node.size, Ordering::Relaxed);
            self.progress.add_files(1);
            self.progress.add_bytes(node.size);
            self.progress.file(FileStatus::Unchanged, path);
            return Ok(true);
        }
        self.progress.current(&escape_path(path));
        let mut ids = Vec::new();
        let stored = if meta.len() <= SMALL_FILE && !self.sqlite_globs.is_match(path) {
            self.store_small(path, meta, parent, opened, &mut ids)
        } else {
            // Read in steps: captured when it is a database, else chunked
            // as it is read.
            self.hand_over(path, Handed::File(meta.clone(), opened), parent, &mut ids)
        };
        let (read, dictionary, captured) = match stored {
            Ok(stored) => stored,
            Err(ReadError::Source(e)) => {
                self.counters.files.fetch_sub(1, Ordering::Relaxed);
                self.warn(format!("skipped {}: {e}", escape_path(path)));
                return Ok(false);
            }
            Err(ReadError::Repo(e)) => return Err(e),
        };
        let (content, depth) = self
            .saver
            .save_content_cut(ids, ListCut::for_file(captured))?;
        node.content = content;
        node.content_depth = depth;
        node.dictionary = dictionary.map(|d| d.id);
        node.size = read;
        self.count_read(path, parent.is_some(), read);
        Ok(true)
    }

    /// Counts a file that was read and stored (`changed` when the parent had
    /// it, else new) and its `read` bytes.
    pub(super) fn count_read(&self, path: &Path, changed: bool, read: u64) {
        let (counter, status) = if changed {
            (&self.counters.files_changed, FileStatus::Changed)
        } else {
            (&self.counters.files_new, FileStatus::New)
        };
        self.progress.file(status, path);
        counter.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(read, Ordering::Relaxed);
        self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.progress.add_files(1);
    }

    /// Stores a file of at most `SMALL_FILE` bytes with one open and one
    /// read into this worker's buffer, which is reused from file to file
    /// and never zeroed again; the SQLite header check looks at those bytes
    /// instead of opening the file a second time.
    fn store_small(
        &self,
        path: &Path,
        meta: &Metadata,
        parent: Option<&Node>,
        opened: Option<File>,
        ids: &mut Vec<BlobId>,
    ) -> Result<Stored, ReadError> {
        let file = open_unless_opened(path, opened)?;
        // Taken out rather than borrowed: storing may run another file's job
        // on this thread (rayon steals work while it waits), which then
        // starts with a buffer of its own.
        let mut buf = SMALL_BUFFER.take();
        let stored = self.store_small_from(path, meta, parent, &file, &mut buf, ids);
        SMALL_BUFFER.set(buf);
        stored
    }

    fn store_small_from(
        &self,
        path: &Path,
        meta: &Metadata,
        parent: Option<&Node>,
        file: &File,
        buf: &mut Vec<u8>,
        ids: &mut Vec<BlobId>,
    ) -> Result<Stored, ReadError> {
        let expected = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        let filled = read_small(file, expected, buf)?;
        let data = &buf[..filled];
        if data.starts_with(HEADER)
            && let Some(capture) = self.capture_checked(path)
        {
            return self.hand_over(path, Handed::Captured(capture), parent, ids);
        }
        let read = if filled > expected {
            // Grown since its metadata was read: go on reading in steps.
            let size_hint = (filled as u64).saturating_add(1 << 20);
            self.chunker
                .chunk_batches(data.chain(file), size_hint, |chunks: &[&[u8]]| {
                    self.store_chunks(chunks, None, ids)
                })?
        } else if filled == 0 {
            // An empty file has no chunks.
            0
        } else if filled <= self.chunker.params().min_size as usize {
            self.store_chunks(std::slice::from_ref(&data), None, ids)?;
            filled as u64
        } else {
            let mut chunks = Vec::new();
            self.chunker.chunk_slice(data, &mut chunks);
            self.store_chunks(&chunks, None, ids)?;
            filled as u64
        };
        self.warn_if_changed(path, meta, file);
        Ok((read, None, false))
    }

    /// Reads, chunks and stores a file that is not captured as a database,
    /// appending the chunks' ids; returns the length read.
    fn store_plain(
        &self,
        path: &Path,
        meta: &Metadata,
        opened: Option<File>,
        ids: &mut Vec<BlobId>,
    ) -> Result<u64, ReadError> {
        let file = open_unless_opened(path, opened)?;
        let read = self
            .chunker
            .chunk_batches(&file, meta.len(), |chunks: &[&[u8]]| {
                self.store_chunks(chunks, None, ids)
            });
        if read.is_ok() {
            self.warn_if_changed(path, meta, &file);
        }
        read
    }

    /// Warns when the file read from `file` is not the one `before`
    /// described: written to, truncated or replaced while it was read. What
    /// was read is stored as it is (the node keeps the metadata from before
    /// the read, so the next backup reads the file again).
    fn warn_if_changed(&self, path: &Path, before: &Metadata, file: &File) {
        let after = match file.metadata() {
            Ok(after) => after,
            Err(e) => {
                self.warn(format!(
                    "{}: cannot tell whether it changed while it was read ({e}); stored as read",
                    escape_path(path)
                ));
                lock(&self.changed_while_read).push(path.to_path_buf());
                return;
            }
        };
        if content_stamp(before) != content_stamp(&after) {
            self.warn(format!(
                "{}: changed while it was read (size {} -> {}); stored as read, which may mix old and new content",
                escape_path(path),
                before.len(),
                crate::plural::count(after.len(), "byte", "bytes")
            ));
            lock(&self.changed_while_read).push(path.to_path_buf());
        }
    }
}
