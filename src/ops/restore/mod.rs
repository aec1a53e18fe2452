//! `snap restore`: recreate a snapshot (or one path of it) under a target
//! folder, bit for bit, with metadata.
//!
//! Safety: names come only from validated trees (one path component each,
//! never `.`/`..`/`/`/NUL), existing entries are examined with `lstat` and
//! never followed, files are written to a temporary file in their final
//! folder and renamed into place. So nothing is ever written outside the
//! target, whatever the repository holds or the target already contains.
//! Every restored byte is verified against its chunk's hash.
//!
//! The work is split by role, as restic's `internal/restorer` is:
//! this file holds the options, the report and the entry point;
//! `plan` decides what is written, skipped and deleted (`--dry-run`, the
//! default policy's conflict check, the `--delete` list); `write` walks the
//! snapshot and writes contents; `metadata` applies modes, owners, times
//! and extended attributes after content; `links` makes symlinks and
//! (deferred) hard links; `safety` takes the `pre-restore` snapshot of what
//! a restore is about to replace or delete.

mod links;
mod metadata;
mod plan;
mod safety;
mod write;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use globset::GlobSet;

use crate::error::{Error, Result};
use crate::format::tree::{MAX_TREE_DEPTH, Node};
use crate::glob::glob_set;
use crate::id::SnapshotId;
use crate::progress::{Phase, Progress};
use crate::repo::Repository;
use crate::sync::{into_inner, lock};

use links::DeferredLink;
pub use plan::{
    PlanAction, PlanEntry, RestorePlan, check_source_names, refuse_conflicts, restore_plan,
    target_has_entries,
};

/// What to do where the target already has an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// Refuse to start when anything would be overwritten (the default).
    #[default]
    Refuse,
    /// Keep existing entries, restore the rest.
    Never,
    /// Replace files whose size or modification time differ.
    IfChanged,
    /// Replace everything.
    Always,
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Folder to restore into (created when missing).
    pub target: PathBuf,
    /// Existing entries policy.
    pub overwrite: Overwrite,
    /// Restore only paths matching one of these globs (paths as `snap ls` prints them).
    pub includes: Vec<String>,
    /// Leave out paths matching these globs.
    pub excludes: Vec<String>,
    /// Remove entries of the target (below the restored path) that are not
    /// in the snapshot; never excluded ones.
    pub delete: bool,
    /// Restore only these top-level entries of the snapshot (its sources).
    pub only: Vec<String>,
    /// Leave out these top-level entries of the snapshot.
    pub skip: Vec<String>,
    /// Before replacing or deleting anything that exists, back exactly that
    /// up into a snapshot tagged [`PRE_RESTORE_TAG`] (its id is in
    /// [`RestoreReport::safety_snapshot`]); if that snapshot cannot be
    /// complete, nothing is restored. On by default, for library callers
    /// as for `snap restore` (`--no-safety-snapshot` turns it off): a
    /// restore that destroys data should be undoable unless asked
    /// otherwise. A restore into an empty or new folder replaces nothing
    /// and takes none.
    pub safety_snapshot: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            target: PathBuf::new(),
            overwrite: Overwrite::default(),
            includes: Vec::new(),
            excludes: Vec::new(),
            delete: false,
            only: Vec::new(),
            skip: Vec::new(),
            safety_snapshot: true,
        }
    }
}

pub use crate::format::snapshot::PRE_RESTORE_TAG;

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Other entries (symlinks, fifos, devices, hard links).
    pub others: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries left as they were (existing, per the overwrite policy).
    pub skipped: u64,
    /// Entries removed because they are not in the snapshot (`--delete`).
    pub deleted: u64,
    /// Files that could not be restored because repository data is damaged.
    pub damaged: Vec<String>,
    /// Metadata that could not be applied, entries that cannot be restored here.
    pub warnings: Vec<String>,
    /// The `pre-restore` snapshot of what the restore replaced or deleted
    /// (see [`RestoreOptions::safety_snapshot`]); `None` when nothing
    /// existing was touched or the option was off.
    pub safety_snapshot: Option<SnapshotId>,
}

/// One restore's settings and what it has done so far, shared by the
/// parallel walk; its methods live in the files of their role.
struct Restorer<'a> {
    repo: &'a Repository,
    options: &'a RestoreOptions,
    progress: &'a dyn Progress,
    includes: Option<GlobSet>,
    excludes: GlobSet,
    only: HashSet<&'a str>,
    skip: HashSet<&'a str>,
    is_root: bool,
    /// (dev, inode) of multiply-linked files -> where the first was restored.
    links: Mutex<HashMap<(u64, u64), PathBuf>>,
    deferred_links: Mutex<Vec<DeferredLink>>,
    files: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    damaged: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
}

/// The snapshot path of `name` inside the folder at `prefix`.
fn join_rel(prefix: &str, name: &[u8]) -> String {
    let name = crate::format::tree::escape_name(name);
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Restores `node` (a snapshot's root from [`crate::ops::browse::root_node`],
/// or any node found in it) under `options.target`. `rel` is the node's
/// path in the snapshot (empty for the root). In one call: [`prepare`],
/// then [`PreparedRestore::run`].
pub fn restore(
    repo: &Repository,
    node: &Node,
    rel: &str,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    prepare(repo, node, rel, options)?.run(progress)
}

/// A restore checked and planned, with nothing written yet: a caller can
/// show [`Self::plan`] and ask before existing data is replaced, take the
/// safety snapshot when it wants to report it, then [`Self::run`].
pub struct PreparedRestore<'a> {
    repo: &'a Repository,
    node: &'a Node,
    rel: &'a str,
    options: &'a RestoreOptions,
    plan: Option<RestorePlan>,
    safety_snapshot: Option<SnapshotId>,
}

/// Checks and plans restoring `node` (as [`restore`] takes it): refuses
/// trees too large to walk, and, by default, a target where anything would
/// be in the way. The target is only looked at when it holds entries:
/// restoring into an empty or new folder replaces nothing.
pub fn prepare<'a>(
    repo: &'a Repository,
    node: &'a Node,
    rel: &'a str,
    options: &'a RestoreOptions,
) -> Result<PreparedRestore<'a>> {
    let planner = Restorer::new(repo, options, &crate::progress::NoProgress)?;
    if let Some(subtree) = node.subtree {
        crate::ops::browse::PathCount::default().refuse_too_many(repo, &subtree)?;
    }
    let plan = if target_has_entries(&options.target) {
        Some(planner.plan(node, rel, false)?)
    } else {
        None
    };
    if options.overwrite == Overwrite::Refuse
        && let Some(plan) = &plan
    {
        refuse_conflicts(plan)?;
    }
    Ok(PreparedRestore {
        repo,
        node,
        rel,
        options,
        plan,
        safety_snapshot: None,
    })
}

impl PreparedRestore<'_> {
    /// What the restore replaces, keeps and deletes in the target (only
    /// the entries that touch existing data); `None` when the target held
    /// nothing.
    pub fn plan(&self) -> Option<&RestorePlan> {
        self.plan.as_ref()
    }

    /// Takes the safety snapshot when the options ask for one and the
    /// restore replaces or deletes existing data; once only. [`Self::run`]
    /// calls it too, so calling it first only chooses when it happens.
    pub fn take_safety_snapshot(&mut self, progress: &dyn Progress) -> Result<Option<SnapshotId>> {
        if self.safety_snapshot.is_none()
            && self.options.safety_snapshot
            && let Some(plan) = self.plan.as_ref().filter(|p| p.in_place())
        {
            let id = safety::take(self.repo, &self.options.target, plan, progress)?;
            self.safety_snapshot = Some(id);
        }
        Ok(self.safety_snapshot)
    }

    /// Restores: the safety snapshot first (when due), then contents,
    /// deferred hard links, and the planned deletions (`delete`).
    pub fn run(mut self, progress: &dyn Progress) -> Result<RestoreReport> {
        let safety_snapshot = self.take_safety_snapshot(progress)?;
        let (node, rel, options) = (self.node, self.rel, self.options);
        let target = &options.target;
        let restorer = Restorer::new(self.repo, options, progress)?;
        progress.phase(Phase::Scanning);
        // The totals are for progress only: a snapshot the plan cannot walk
        // fails (or warns) in the restore itself, the same way as before.
        let planned = match &self.plan {
            Some(plan) => Some((plan.files_to_write, plan.bytes_to_write)),
            None => restorer
                .plan(node, rel, false)
                .ok()
                .map(|plan| (plan.files_to_write, plan.bytes_to_write)),
        };
        if let Some((files, bytes)) = planned {
            progress.found(files, bytes);
        }
        progress.phase(Phase::Working);
        fs::create_dir_all(target)
            .map_err(|e| Error::io("cannot create restore target", target, e))?;
        if node.name.is_empty() {
            restorer.restore_children(node, target, rel)?;
        } else {
            restorer.restore_node(node, &target.join(OsStr::from_bytes(&node.name)), rel)?;
        }
        restorer.make_deferred_links();
        let deleted = match &self.plan {
            Some(plan) if options.delete => restorer.delete_planned(plan),
            _ => 0,
        };
        let take = |m: Mutex<Vec<String>>| into_inner(m);
        Ok(RestoreReport {
            files: restorer.files.load(Ordering::Relaxed),
            dirs: restorer.dirs.load(Ordering::Relaxed),
            others: restorer.others.load(Ordering::Relaxed),
            bytes: restorer.bytes.load(Ordering::Relaxed),
            skipped: restorer.skipped.load(Ordering::Relaxed),
            deleted,
            damaged: take(restorer.damaged),
            warnings: take(restorer.warnings),
            safety_snapshot,
        })
    }
}

impl<'a> Restorer<'a> {
    fn new(
        repo: &'a Repository,
        options: &'a RestoreOptions,
        progress: &'a dyn Progress,
    ) -> Result<Self> {
        Ok(Restorer {
            repo,
            options,
            progress,
            includes: if options.includes.is_empty() {
                None
            } else {
                Some(glob_set(&options.includes, "pattern")?)
            },
            excludes: glob_set(&options.excludes, "pattern")?,
            only: options.only.iter().map(String::as_str).collect(),
            skip: options.skip.iter().map(String::as_str).collect(),
            is_root: nix::unistd::geteuid().is_root(),
            links: Mutex::new(HashMap::new()),
            deferred_links: Mutex::new(Vec::new()),
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            others: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            damaged: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// Records a warning (metadata not applied, entry not restorable here).
    fn warn(&self, text: String) {
        self.progress.warn(&text);
        lock(&self.warnings).push(text);
    }

    /// Records a file left out because repository data is damaged.
    fn damaged(&self, rel: &str, e: &Error) {
        self.progress.warn(&format!("cannot restore {rel}: {e}"));
        lock(&self.damaged).push(rel.to_string());
    }
}

/// Refuses trees nested deeper than any real filesystem allows.
fn check_depth(rel: &str) -> Result<()> {
    if rel.matches('/').count() >= MAX_TREE_DEPTH {
        return Err(Error::corrupt(
            format!("folder {}", rel.chars().take(100).collect::<String>()),
            format!("nested deeper than {MAX_TREE_DEPTH} levels"),
        ));
    }
    Ok(())
}
