//! `snap backup`: walk the sources, reuse unchanged files from the parent
//! snapshot without reading them, chunk and store the rest, write trees
//! bottom-up, then the snapshot.
//!
//! Work runs on the rayon pool: directories' entries in parallel, and the
//! chunks of each read buffer in parallel. Memory is bounded by one read
//! buffer per worker plus the open packs, whatever the size of the tree or
//! the repository.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::format::tree::escape_path;
use crate::glob::glob_set;
use crate::sync::{into_inner, lock};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use globset::GlobSet;
use rayon::prelude::*;

use crate::codec::{Chunker, Dictionary, chunker};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::BlobKind;
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::{ListCut, Node, NodeKind, Tree, Xattr};
use crate::id::{SnapshotId, TreeId};
use crate::index::FileMemo;
use crate::ops::sqlite;
use crate::pack::BlobSaver;
use crate::progress::Progress;
use crate::repo::Repository;

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Source paths; each appears at the snapshot root under its last component.
    pub paths: Vec<PathBuf>,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name to record (default: this machine's).
    pub host: Option<String>,
    /// Snapshot time (default: now).
    pub time: Option<jiff::Timestamp>,
    /// Parent snapshot for change detection (default: the latest with the same host and paths).
    pub parent: Option<SnapshotId>,
    /// Read every file, ignoring the parent.
    pub force: bool,
    /// Glob patterns of paths to leave out (matched against the name and the full path).
    pub excludes: Vec<String>,
    /// Do not cross filesystem boundaries below each source.
    pub one_file_system: bool,
    /// Glob patterns of files to capture as SQLite databases (besides those
    /// recognised by their header).
    pub sqlite: Vec<String>,
    /// How long a capture waits for a writer that holds a database
    /// exclusively before storing a plain copy (`None`: 30 s).
    pub sqlite_lock_timeout: Option<Duration>,
    /// Set to stop the backup early; nothing half-done becomes visible.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Named sources (a profile's, or a stream), besides `paths`.
    pub sources: Vec<NamedSource>,
}

/// A source stored under a name of its own rather than its path's last
/// component: a path, a command's output, or standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSource {
    /// Where it appears in the snapshot: `name` or `folder/name` (made of `/`-separated parts).
    pub name: String,
    /// What it reads.
    pub input: SourceInput,
    /// Globs left out below this source only (matched against the name, the
    /// full path, and the path relative to the source).
    pub excludes: Vec<String>,
}

/// What a named source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// A file or folder.
    Path(PathBuf),
    /// The standard output of `sh -c COMMAND`, run in `dir` (default: the
    /// current folder). A failing command fails the backup: no snapshot is written.
    Command {
        /// The shell command.
        command: String,
        /// Its working folder.
        dir: Option<PathBuf>,
    },
    /// This process's standard input, read to its end.
    Stdin,
}

impl BackupOptions {
    /// Options backing up `paths` with defaults for everything else.
    pub fn new(paths: Vec<PathBuf>) -> Self {
        Self {
            paths,
            ..Self::default()
        }
    }
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new snapshot's id.
    pub id: SnapshotId,
    /// The snapshot (with its summary).
    pub snapshot: Snapshot,
    /// Everything that went wrong: files that could not be read and were
    /// skipped, the SQLite databases of `plain_copies` and the files of
    /// `changed_while_read`.
    pub warnings: Vec<String>,
    /// SQLite databases that could not be captured as databases and were
    /// stored as plain file copies instead (nothing of them was skipped).
    pub plain_copies: Vec<PathBuf>,
    /// Files that changed while they were read: stored as read, which may
    /// mix old and new content (nothing of them was skipped).
    pub changed_while_read: Vec<PathBuf>,
}

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    bytes_read: AtomicU64,
}

struct Walker<'a> {
    repo: &'a Repository,
    saver: BlobSaver<'a>,
    chunker: Chunker,
    excludes: GlobSet,
    sqlite_globs: GlobSet,
    options: &'a BackupOptions,
    progress: &'a dyn Progress,
    counters: Counters,
    warnings: Mutex<Vec<String>>,
    /// Databases stored as plain copies.
    plain_copies: Mutex<Vec<PathBuf>>,
    changed_while_read: Mutex<Vec<PathBuf>>,
    /// With a write-only key: file memos waiting to be written to the cache.
    memos: Option<Mutex<Vec<KeyedMemo>>>,
    /// Only these entries (and the folders leading to them) are backed up.
    selected: Option<SelectedPaths>,
}

/// Absolute paths chosen by [`backup_selected`]: an entry is backed up when
/// it is one of them, lies below one, or is a folder leading to one.
struct SelectedPaths {
    chosen: HashSet<PathBuf>,
    leading: HashSet<PathBuf>,
}

impl SelectedPaths {
    fn new(paths: &[PathBuf]) -> Result<Self> {
        let mut chosen = HashSet::new();
        let mut leading = HashSet::new();
        for path in paths {
            // Resolved as the sources are, so the walk's paths compare equal.
            let absolute = absolute_path(path)?;
            leading.extend(absolute.ancestors().skip(1).map(Path::to_path_buf));
            chosen.insert(absolute);
        }
        Ok(Self { chosen, leading })
    }

    fn keeps(&self, path: &Path) -> bool {
        self.leading.contains(path) || path.ancestors().any(|a| self.chosen.contains(a))
    }
}

/// Longest source path followed (Linux's PATH_MAX); deeper entries are
/// skipped with a warning, which also bounds the walk's recursion.
const MAX_PATH_LEN: usize = 4096;

/// A file memo and the keyed hash of its path.
type KeyedMemo = ([u8; 32], FileMemo);

/// A source: its name in the snapshot (`/`-separated parts), what it
/// reads, and its own excludes.
struct Source {
    name: Vec<u8>,
    input: Input,
    excludes: Option<GlobSet>,
}

enum Input {
    /// An absolute path.
    Path(PathBuf),
    /// A command or standard input.
    Stream(SourceInput),
}

impl Source {
    /// What the snapshot's `paths` records: the absolute path, or the name of a stream.
    fn recorded_path(&self) -> String {
        match &self.input {
            Input::Path(path) => path.display().to_string(),
            Input::Stream(_) => String::from_utf8_lossy(&self.name).into_owned(),
        }
    }
}

fn resolve_sources(options: &BackupOptions) -> Result<Vec<Source>> {
    if options.paths.is_empty() && options.sources.is_empty() {
        return Err(Error::usage("nothing to back up: give at least one path"));
    }
    let mut sources = Vec::new();
    for path in &options.paths {
        fs::symlink_metadata(path).map_err(|e| Error::io("cannot back up", path, e))?;
        let absolute = absolute_path(path)?;
        let name = absolute
            .file_name()
            .map_or_else(|| b"root".to_vec(), |n| n.as_bytes().to_vec());
        sources.push(Source {
            name,
            input: Input::Path(absolute),
            excludes: None,
        });
    }
    for named in &options.sources {
        crate::profile::check_source_name(&named.name)?;
        let input = match &named.input {
            SourceInput::Path(path) => {
                fs::symlink_metadata(path).map_err(|e| {
                    Error::io(&format!("cannot back up source `{}`", named.name), path, e)
                })?;
                Input::Path(absolute_path(path)?)
            }
            stream => Input::Stream(stream.clone()),
        };
        let excludes = if named.excludes.is_empty() {
            None
        } else {
            Some(glob_set(&named.excludes, "exclude pattern")?)
        };
        sources.push(Source {
            name: named.name.as_bytes().to_vec(),
            input,
            excludes,
        });
    }
    if sources
        .iter()
        .filter(|s| matches!(s.input, Input::Stream(SourceInput::Stdin)))
        .count()
        > 1
    {
        return Err(Error::usage("standard input can be read only once"));
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    let by_name: HashMap<&[u8], &Source> = sources.iter().map(|s| (s.name.as_slice(), s)).collect();
    for (i, b) in sources.iter().enumerate() {
        // The same name, or a source at a folder of another's name (`a` and `a/b`).
        let same = (i > 0 && sources[i - 1].name == b.name).then(|| &sources[i - 1]);
        let folder = b
            .name
            .iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == b'/')
            .find_map(|(at, _)| by_name.get(&b.name[..at]).copied());
        if let Some(a) = same.or(folder) {
            return Err(Error::usage(format!(
                "{} and {} would both appear as `{}` in the snapshot; give them different names or back them up separately",
                a.recorded_path(),
                b.recorded_path(),
                String::from_utf8_lossy(&a.name)
            )));
        }
    }
    Ok(sources)
}

/// Sources arranged as the snapshot's folders: a source, or a folder made
/// for sources with nested names (`postgres/db.dump`).
enum Slot<'s> {
    Source(&'s Source),
    Folder(BTreeMap<Vec<u8>, Slot<'s>>),
}

fn layout(sources: &[Source]) -> BTreeMap<Vec<u8>, Slot<'_>> {
    let mut root = BTreeMap::new();
    for source in sources {
        let parts: Vec<&[u8]> = source.name.split(|&b| b == b'/').collect();
        let mut level = &mut root;
        for part in &parts[..parts.len() - 1] {
            let slot = level
                .entry(part.to_vec())
                .or_insert_with(|| Slot::Folder(BTreeMap::new()));
            level = match slot {
                Slot::Folder(children) => children,
                // resolve_sources refuses a source with another below it.
                Slot::Source(_) => unreachable!("a source cannot hold another"),
            };
        }
        level.insert(parts[parts.len() - 1].to_vec(), Slot::Source(source));
    }
    root
}

/// Where a source's walk happens: its filesystem, its root, its excludes.
struct Scope<'a> {
    dev: u64,
    root: &'a Path,
    excludes: Option<&'a GlobSet>,
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

/// The absolute form of `path`, resolving symlinks in its parent only (a
/// source that is itself a symlink is backed up as a symlink).
fn absolute_path(path: &Path) -> Result<PathBuf> {
    let canonical_parent = |p: &Path| -> Result<PathBuf> {
        let parent = match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::canonicalize(&parent).map_err(|e| Error::io("cannot resolve", &parent, e))
    };
    match path.file_name() {
        Some(name)
            if path
                .components()
                .next_back()
                .is_some_and(|c| matches!(c, std::path::Component::Normal(_))) =>
        {
            Ok(canonical_parent(path)?.join(name))
        }
        _ => fs::canonicalize(path).map_err(|e| Error::io("cannot resolve", path, e)),
    }
}

/// The latest snapshot with the same host and paths: the default parent.
pub fn find_parent(repo: &Repository, host: &str, paths: &[String]) -> Result<Option<SnapshotId>> {
    let mut sorted = paths.to_vec();
    sorted.sort();
    Ok(repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| {
            let mut p = s.paths.clone();
            p.sort();
            s.host == host && p == sorted
        })
        .map(|(id, _)| id))
}

pub use crate::host::hostname;
use crate::host::username;

/// Backs up `options.paths` into a new snapshot.
pub fn backup(
    repo: &Repository,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    backup_filtered(repo, options, None, progress)
}

/// Backs up only the entries `selected` below `options.paths` (with
/// everything under them and the folders leading to them): what a restore
/// is about to replace, for its safety snapshot.
pub fn backup_selected(
    repo: &Repository,
    options: &BackupOptions,
    selected: &[PathBuf],
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let selected = SelectedPaths::new(selected)?;
    backup_filtered(repo, options, Some(selected), progress)
}

fn backup_filtered(
    repo: &Repository,
    options: &BackupOptions,
    selected: Option<SelectedPaths>,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let started = Instant::now();
    crate::ops::tag::validate_tags(&options.tags)?;
    let sources = resolve_sources(options)?;
    // Held until the snapshot is written: a prune deletes nothing meanwhile.
    let _announced = repo.start_backup(progress)?;
    repo.clean_temp();
    let host = options.host.clone().unwrap_or_else(hostname);
    let paths: Vec<String> = sources.iter().map(Source::recorded_path).collect();
    let parent_id = match (options.force, options.parent) {
        (_, Some(id)) => Some(id),
        (true, None) => None,
        // A write-only key cannot read old snapshots; it remembers files locally instead.
        (false, None) if !repo.can_read() => None,
        (false, None) => find_parent(repo, &host, &paths)?,
    };
    let parent_root = match parent_id {
        Some(id) if !options.force => match repo.read_snapshot(&id) {
            Ok(snapshot) => Some(repo.read_tree(&snapshot.tree)?),
            // Forgotten since it was chosen: read everything instead.
            Err(e) if e.kind() == ErrorKind::NotFound && options.parent.is_none() => None,
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let walker = Walker {
        repo,
        saver: repo.saver(),
        chunker: Chunker::new(repo.chunker_params()),
        excludes: glob_set(&options.excludes, "exclude pattern")?,
        sqlite_globs: glob_set(&options.sqlite, "SQLite pattern")?,
        options,
        progress,
        counters: Counters::default(),
        warnings: Mutex::new(Vec::new()),
        plain_copies: Mutex::new(Vec::new()),
        changed_while_read: Mutex::new(Vec::new()),
        memos: (!repo.can_read() && !options.force).then(|| Mutex::new(Vec::new())),
        selected,
    };
    let result = walker.backup_sources(&sources, parent_root.as_ref());
    // Whatever happened, make what was stored durable and indexed, so the
    // next backup reuses it instead of uploading it again.
    let flushed = walker.saver.flush();
    let tree = result?;
    flushed?;
    walker.write_memos(0)?;

    let c = &walker.counters;
    let (bytes_added, bytes_added_packed) = walker.saver.added();
    let summary = Summary {
        files: c.files.load(Ordering::Relaxed),
        dirs: c.dirs.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        files_new: c.files_new.load(Ordering::Relaxed),
        files_changed: c.files_changed.load(Ordering::Relaxed),
        files_unchanged: c.files_unchanged.load(Ordering::Relaxed),
        bytes_read: c.bytes_read.load(Ordering::Relaxed),
        bytes_added,
        bytes_added_packed,
        duration_s: started.elapsed().as_secs_f64(),
    };
    let snapshot = Snapshot {
        time: options
            .time
            .unwrap_or_else(jiff::Timestamp::now)
            .to_string(),
        host,
        user: username(),
        paths,
        tags: options.tags.clone(),
        parent: parent_id,
        tree,
        summary,
        program: format!("snap {}", env!("CARGO_PKG_VERSION")),
        original: None,
    };
    let id = repo.write_snapshot(&snapshot)?;
    let warnings = into_inner(walker.warnings);
    let plain_copies = into_inner(walker.plain_copies);
    let changed_while_read = into_inner(walker.changed_while_read);
    Ok(BackupReport {
        id,
        snapshot,
        warnings,
        plain_copies,
        changed_while_read,
    })
}

fn nanos(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// A node with everything `lstat` tells about an entry.
fn node_from_metadata(name: Vec<u8>, kind: NodeKind, meta: &Metadata) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode() & 0o7777,
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
        xattrs: Vec::new(),
        target: None,
        content: Vec::new(),
        content_depth: 0,
        dictionary: None,
        subtree: None,
    }
}

/// A node snap makes itself (a folder for nested source names, a stream's
/// file): owned by this user, modified now.
fn made_node(name: Vec<u8>, kind: NodeKind, mode: u32) -> Node {
    let now = jiff::Timestamp::now();
    let now_ns = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
    Node {
        name,
        kind,
        mode,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        mtime_ns: now_ns,
        ctime_ns: now_ns,
        inode: 0,
        dev: 0,
        links: 0,
        rdev: 0,
        size: 0,
        xattrs: Vec::new(),
        target: None,
        content: Vec::new(),
        content_depth: 0,
        dictionary: None,
        subtree: None,
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

fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
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
enum ReadError {
    Source(io::Error),
    Repo(Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        ReadError::Source(e)
    }
}

impl Walker<'_> {
    fn check_cancel(&self) -> Result<()> {
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

    fn warn(&self, text: String) {
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
    fn write_memos(&self, threshold: usize) -> Result<()> {
        let Some(memos) = &self.memos else {
            return Ok(());
        };
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

    fn backup_sources(&self, sources: &[Source], parent_root: Option<&Tree>) -> Result<TreeId> {
        let tree = Tree {
            nodes: self.backup_slots(&layout(sources), parent_root)?,
        };
        self.saver.save(BlobKind::Tree, &tree.to_bytes())
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
                let log_beside = sqlite::has_pending_log(path);
                self.backup_entry(path, name, parent, &scope, log_beside)
            }
            Input::Stream(input) => self
                .backup_stream(&source.name, input, name, parent)
                .map(Some),
        }
    }

    /// Stores a command's output or standard input as one file, streaming it
    /// through the chunker. A failing command fails the backup.
    fn backup_stream(
        &self,
        full_name: &[u8],
        input: &SourceInput,
        name: Vec<u8>,
        parent: Option<&Node>,
    ) -> Result<Node> {
        let shown = String::from_utf8_lossy(full_name).into_owned();
        let mut child = None;
        let reader: Box<dyn io::Read> = match input {
            SourceInput::Command { command, dir } => {
                let mut cmd = crate::hooks::shell(command);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::inherit());
                if let Some(dir) = dir {
                    cmd.current_dir(dir);
                }
                let mut spawned = cmd.spawn().map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot run the command of `{shown}`: {e}"),
                    )
                })?;
                let stdout = spawned.stdout.take().expect("stdout is piped");
                child = Some(spawned);
                Box::new(stdout)
            }
            SourceInput::Stdin => Box::new(io::stdin().lock()),
            SourceInput::Path(_) => unreachable!("paths are not streams"),
        };
        let result = self.store_stream(reader, &shown);
        let status = match child.as_mut() {
            Some(child) => {
                if result.is_err() {
                    let _ = child.kill();
                }
                Some(child.wait().map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot wait for the command of `{shown}`: {e}"),
                    )
                })?)
            }
            None => None,
        };
        let (content, depth, read) = result?;
        if let Some(status) = status.filter(|s| !s.success()) {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the command of `{shown}` failed ({status}); its output was not saved and no snapshot was written"
                ),
            ));
        }
        let mut node = made_node(name, NodeKind::File, 0o600);
        node.content = content;
        node.content_depth = depth;
        node.size = read;
        let counter = if parent.is_some() {
            &self.counters.files_changed
        } else {
            &self.counters.files_new
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(read, Ordering::Relaxed);
        self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.progress.add_files(1);
        Ok(node)
    }

    /// Chunks and stores everything `reader` yields; returns the content ids,
    /// their depth and the length.
    fn store_stream(
        &self,
        reader: Box<dyn io::Read + '_>,
        shown: &str,
    ) -> Result<(Vec<crate::id::BlobId>, u8, u64)> {
        let mut ids = Vec::new();
        let read = self
            .chunker
            .chunk_batches(reader, u64::MAX, |chunks: &[&[u8]]| {
                self.store_chunks(chunks, None, &mut ids)
            })
            .map_err(|e| match e {
                ReadError::Source(e) => Error::new(
                    ErrorKind::Io,
                    format!("cannot read the data of `{shown}`: {e}; no snapshot was written"),
                ),
                ReadError::Repo(e) => e,
            })?;
        let (content, depth) = self.saver.save_content(ids)?;
        Ok((content, depth, read))
    }

    /// Stores a batch of chunks in parallel (compressed with `dictionary` if
    /// given), appending their ids.
    fn store_chunks(
        &self,
        chunks: &[&[u8]],
        dictionary: Option<&Dictionary>,
        ids: &mut Vec<crate::id::BlobId>,
    ) -> Result<(), ReadError> {
        self.check_cancel().map_err(ReadError::Repo)?;
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
        self.check_cancel()?;
        if path.as_os_str().len() > MAX_PATH_LEN {
            let shown: String = escape_path(path).chars().take(80).collect();
            self.warn(format!(
                "skipped {shown}...: path longer than {MAX_PATH_LEN} bytes"
            ));
            return Ok(None);
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                self.warn(format!("skipped {}: {e}", escape_path(path)));
                return Ok(None);
            }
        };
        let kind = kind_of(&meta);
        let mut node = node_from_metadata(name, kind, &meta);
        node.xattrs = read_xattrs(path);
        let parent = parent.filter(|p| p.kind == kind);
        match kind {
            NodeKind::Dir => {
                if self.options.one_file_system && meta.dev() != scope.dev {
                    // A mount point: keep the directory itself, not what is mounted there.
                    node.subtree = Some(
                        self.saver
                            .save(BlobKind::Tree, &Tree::default().to_bytes())?,
                    );
                    return Ok(Some(node));
                }
                match self.backup_dir(path, parent, scope)? {
                    Some(tree) => node.subtree = Some(tree),
                    None => return Ok(None),
                }
                self.counters.dirs.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::File => {
                if !self.backup_file(path, &meta, &mut node, parent, log_beside)? {
                    return Ok(None);
                }
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(target) => node.target = Some(target.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    self.warn(format!(
                        "skipped {}: cannot read link: {e}",
                        escape_path(path)
                    ));
                    return Ok(None);
                }
            },
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev | NodeKind::Socket => {}
        }
        Ok(Some(node))
    }

    fn backup_dir(
        &self,
        path: &Path,
        parent: Option<&Node>,
        scope: &Scope<'_>,
    ) -> Result<Option<TreeId>> {
        let entries = match fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) => {
                self.warn(format!("skipped {}: {e}", escape_path(path)));
                return Ok(None);
            }
        };
        let mut names: Vec<OsString> = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => self.warn(format!("skipped an entry of {}: {e}", escape_path(path))),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        names.retain(|name| {
            let child = path.join(name);
            !(self.excludes.is_match(name)
                || self.excludes.is_match(&child)
                || scope.excludes(name, &child))
                && self.selected.as_ref().is_none_or(|s| s.keeps(&child))
        });
        let logged = self.fold_sqlite_companions(path, &mut names);
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
        let nodes = names
            .par_iter()
            .map(|name| {
                let bytes = name.as_bytes();
                self.backup_entry(
                    &path.join(name),
                    bytes.to_vec(),
                    parents.get(bytes).copied(),
                    scope,
                    logged.contains(bytes),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let tree = Tree {
            nodes: nodes.into_iter().flatten().collect(),
        };
        Ok(Some(self.saver.save(BlobKind::Tree, &tree.to_bytes())?))
    }

    /// Whether the file at `path` is to be captured as a SQLite database.
    fn is_database(&self, path: &Path) -> bool {
        self.sqlite_globs.is_match(path) || sqlite::has_header(path)
    }

    /// Drops the `-wal`, `-shm` and `-journal` companions of databases from
    /// `names` (their content is folded into the database's capture) and
    /// returns the databases that have a non-empty log or journal beside them.
    fn fold_sqlite_companions(&self, dir: &Path, names: &mut Vec<OsString>) -> HashSet<Vec<u8>> {
        let present: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        let mut companions = HashSet::new();
        let mut logged = HashSet::new();
        for name in names.iter() {
            for suffix in sqlite::COMPANIONS {
                let Some(base) = name.as_bytes().strip_suffix(suffix.as_bytes()) else {
                    continue;
                };
                if !present.contains(base) || !self.is_database(&dir.join(OsStr::from_bytes(base)))
                {
                    continue;
                }
                companions.insert(name.clone());
                if suffix != "-shm" && fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > 0) {
                    logged.insert(base.to_vec());
                }
            }
        }
        names.retain(|n| !companions.contains(n));
        logged
    }

    /// Fills a file node's content; `false` when the file was skipped.
    fn backup_file(
        &self,
        path: &Path,
        meta: &Metadata,
        node: &mut Node,
        parent: Option<&Node>,
        log_beside: bool,
    ) -> Result<bool> {
        let memo = match parent {
            Some(_) => None,
            None => self.memo_parent(path, node)?,
        };
        let stored = self.store_file(path, meta, node, parent.or(memo.as_ref()), log_beside)?;
        if stored {
            self.remember(path, node)?;
        }
        Ok(stored)
    }

    /// Reuses the parent's content when the file is unchanged, else reads,
    /// chunks and stores it; `false` when the file was skipped.
    fn store_file(
        &self,
        path: &Path,
        meta: &Metadata,
        node: &mut Node,
        parent: Option<&Node>,
        log_beside: bool,
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
            return Ok(true);
        }
        let mut ids = Vec::new();
        let capture = if self.is_database(path) {
            let timeout = self
                .options
                .sqlite_lock_timeout
                .unwrap_or(sqlite::LOCK_TIMEOUT);
            match sqlite::capture(path, timeout) {
                Ok(capture) => Some(capture),
                Err(reason) => {
                    self.warn(format!(
                        "{}: not captured as a SQLite database ({reason}); stored as a plain file copy",
                        escape_path(path)
                    ));
                    lock(&self.plain_copies).push(path.to_path_buf());
                    None
                }
            }
        } else {
            None
        };
        let mut dictionary = None;
        let captured = capture.is_some();
        let read = if let Some(capture) = capture {
            let size =
                self.repo.config().sqlite_chunk.div_ceil(capture.page_size) * capture.page_size;
            let image = capture
                .file
                .reopen()
                .map_err(|e| Error::io("cannot read the capture of", path, e))?;
            dictionary = self.sqlite_dictionary(path, &image, capture.page_size, parent)?;
            chunker::fixed_batches(image, size as usize, |chunks: &[&[u8]]| {
                self.store_chunks(chunks, dictionary.as_ref(), &mut ids)
            })
        } else {
            let file = match open_source(path) {
                Ok(file) => file,
                Err(e) => {
                    self.counters.files.fetch_sub(1, Ordering::Relaxed);
                    self.warn(format!("skipped {}: {e}", escape_path(path)));
                    return Ok(false);
                }
            };
            let read = self
                .chunker
                .chunk_batches(&file, meta.len(), |chunks: &[&[u8]]| {
                    self.store_chunks(chunks, None, &mut ids)
                });
            if read.is_ok() {
                self.warn_if_changed(path, meta, &file);
            }
            read
        };
        let read = match read {
            Ok(read) => read,
            Err(ReadError::Source(e)) => {
                self.counters.files.fetch_sub(1, Ordering::Relaxed);
                self.warn(format!("skipped {}: {e}", escape_path(path)));
                return Ok(false);
            }
            Err(ReadError::Repo(e)) => return Err(e),
        };
        let cut = if captured {
            ListCut::Fixed
        } else {
            ListCut::ContentDefined
        };
        let (content, depth) = self.saver.save_content_cut(ids, cut)?;
        node.content = content;
        node.content_depth = depth;
        node.dictionary = dictionary.map(|d| d.id);
        node.size = read;
        let counter = if parent.is_some() {
            &self.counters.files_changed
        } else {
            &self.counters.files_new
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(read, Ordering::Relaxed);
        self.counters.bytes_read.fetch_add(read, Ordering::Relaxed);
        self.progress.add_files(1);
        Ok(true)
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
        let stamp = |m: &Metadata| {
            (
                m.len(),
                nanos(m.mtime(), m.mtime_nsec()),
                nanos(m.ctime(), m.ctime_nsec()),
                m.ino(),
                m.dev(),
            )
        };
        if stamp(before) != stamp(&after) {
            self.warn(format!(
                "{}: changed while it was read (size {} -> {} bytes); stored as read, which may mix old and new content",
                escape_path(path),
                before.len(),
                after.len()
            ));
            lock(&self.changed_while_read).push(path.to_path_buf());
        }
    }

    /// The dictionary to compress a database image's pages with: the one of
    /// its last snapshot, so unchanged pages keep their ids; else one
    /// trained on the image and stored now. `None` for small images, and for
    /// write-only keys, which cannot read a stored dictionary back.
    fn sqlite_dictionary(
        &self,
        path: &Path,
        image: &File,
        page_size: u32,
        parent: Option<&Node>,
    ) -> Result<Option<Dictionary>> {
        if !self.repo.can_read() {
            return Ok(None);
        }
        if let Some(id) = parent.and_then(|p| p.dictionary) {
            match self.repo.dictionary(&id) {
                Ok(dictionary) => return Ok(Some(dictionary)),
                Err(e) => self.warn(format!(
                    "{}: cannot load the dictionary of its last snapshot ({e}); training a new one",
                    escape_path(path)
                )),
            }
        }
        let len = image
            .metadata()
            .map_err(|e| Error::io("cannot read the capture of", path, e))?
            .len();
        let Some(bytes) = sqlite::train_dictionary(image, len, page_size) else {
            return Ok(None);
        };
        let id = self.saver.save(BlobKind::Data, &bytes)?;
        Ok(Some(Dictionary::new(id, bytes)))
    }
}
