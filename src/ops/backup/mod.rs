//! `snap backup`: walk the sources, reuse unchanged files from the parent
//! snapshot without reading them, chunk and store the rest, write trees
//! bottom-up, then the snapshot.
//!
//! Work runs on two rayon pools of the walker's own (`walk.rs`, `Pools`):
//! directories' entries in parallel on many walk workers (most wait for the
//! disk when nothing is cached); files read in steps are handed over to
//! as many reader threads as the process's pool has workers, and the
//! chunks of each read buffer are stored in parallel on the second pool.
//! Memory is bounded by one read buffer per reader, one zstd context per
//! core, the open packs and the packs waiting for their index delta,
//! whatever the size of the tree or the repository.
//!
//! One file per role, as restic's `internal/archiver` and rustic_core's
//! `archiver/` do: this file holds the options, the report and the
//! orchestration (choose the parent, walk, flush, write the snapshot);
//! `sources.rs` resolves what to back up (paths, named sources, commands,
//! standard input); `walk.rs` walks folders, builds trees and reuses what
//! the parent already stored; `metadata.rs` turns `lstat` into nodes;
//! `sqlite.rs` stores live SQLite databases through consistent captures.

mod metadata;
mod scan;
mod sources;
mod sqlite;
mod walk;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::id::SnapshotId;
use crate::progress::{Phase, Progress};
use crate::repo::Repository;
use crate::sync::into_inner;

pub(crate) use metadata::kind_of;
use sources::{SelectedPaths, Source, resolve_sources};
use walk::Walker;

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
    /// Like `excludes`, matched ignoring case.
    pub iexcludes: Vec<String>,
    /// Leave out a folder (all of it) that holds a file of one of these names.
    pub exclude_if_present: Vec<String>,
    /// Leave out a folder (all of it) that holds a valid `CACHEDIR.TAG`.
    pub exclude_caches: bool,
    /// Leave out regular files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
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
    /// Read, chunk, hash and compress as usual, but write nothing to the
    /// repository (no packs, index deltas, snapshot or lock) and no file
    /// memos to the cache; the report tells what would have been added.
    pub dry_run: bool,
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
    /// The new snapshot's id (a dry run: all zeros, as nothing was written).
    pub id: SnapshotId,
    /// Nothing was written: `snapshot.summary` tells what would have been.
    pub dry_run: bool,
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
    /// Entries the selection left out (`excludes`, `iexcludes`,
    /// `exclude_if_present`, `exclude_caches`, `exclude_larger_than`, a
    /// source's own excludes): a folder left out counts once, whatever it
    /// holds. They are not warnings.
    pub excluded: u64,
}

/// What the walk counted, for the snapshot's summary.
#[derive(Default)]
struct Counters {
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    files_new: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    bytes_read: AtomicU64,
    /// Entries the selection options left out.
    excluded: AtomicU64,
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
    // A dry run writes nothing, so it takes no lock either.
    let _announced = if options.dry_run {
        repo.sync_cache(progress)?;
        None
    } else {
        let lock = repo.start_backup(progress)?;
        repo.clean_temp();
        Some(lock)
    };
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
    let walker = Walker::new(repo, options, progress, selected)?;
    // The scan runs beside the walk: work starts at once, and the totals
    // grow until the scan reports them complete. Nobody looking (a cron
    // job, `--progress none`): no scan, no second walk of the sources.
    let scan = progress.shows_totals();
    progress.phase(if scan {
        Phase::Scanning
    } else {
        Phase::Working
    });
    let walked = AtomicBool::new(false);
    let (result, indexed) = std::thread::scope(|scope| {
        if scan {
            scope.spawn(|| walker.scan_sources(&sources, &walked));
        }
        // Index deltas are written beside the walk; the indexer stops once
        // the saver is closed, which the guard does even on a panic.
        let indexer = scope.spawn(|| walker.saver.index_in_background());
        let closing = CloseOnDrop(&walker.saver);
        let result = walker.backup_sources(&sources, parent_root.as_ref());
        walked.store(true, Ordering::Relaxed);
        let closed = closing.close();
        let indexed = indexer
            .join()
            .unwrap_or_else(|_| Err(Error::new(ErrorKind::Io, "the indexer panicked")));
        (result, closed.and(indexed))
    });
    // Whatever happened, make what was stored durable and indexed, so the
    // next backup reuses it instead of uploading it again.
    let flushed = indexed.and(walker.saver.flush());
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
    let id = if options.dry_run {
        SnapshotId([0; 32])
    } else {
        repo.write_snapshot(&snapshot)?
    };
    let excluded = walker.counters.excluded.load(Ordering::Relaxed);
    let warnings = into_inner(walker.warnings);
    let plain_copies = into_inner(walker.plain_copies);
    let changed_while_read = into_inner(walker.changed_while_read);
    Ok(BackupReport {
        id,
        dry_run: options.dry_run,
        snapshot,
        warnings,
        plain_copies,
        changed_while_read,
        excluded,
    })
}

/// Closes a saver when dropped, unless [`CloseOnDrop::close`] did: a thread
/// indexing in the background then stops even when the walk panicked.
struct CloseOnDrop<'s, 'r>(&'s crate::pack::BlobSaver<'r>);

impl CloseOnDrop<'_, '_> {
    fn close(self) -> Result<()> {
        let result = self.0.close();
        std::mem::forget(self);
        result
    }
}

impl Drop for CloseOnDrop<'_, '_> {
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}
