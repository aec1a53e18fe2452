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
//! [`restore_plan`] walks the snapshot against the target with the same
//! selection and overwrite rules and writes nothing: it is `--dry-run`,
//! the default policy's conflict check, the list `--delete` works from, and
//! what the CLI's `pre-restore` safety snapshot backs up.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use filetime::FileTime;
use globset::GlobSet;
use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{MAX_TREE_DEPTH, Node, NodeKind};
use crate::glob::glob_set;
use crate::ops::backup::kind_of;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::sync::{into_inner, lock};

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
#[derive(Debug, Clone, Default)]
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
}

pub use crate::format::snapshot::PRE_RESTORE_TAG;

/// What a restore does with one entry of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanAction {
    /// Nothing is there yet: create it.
    Create,
    /// Replace what is there.
    Overwrite,
    /// A file with the snapshot's size and mtime is there (`--overwrite if-changed`).
    Unchanged,
    /// Something else is there and stays (`--overwrite never`; a conflict by default).
    Keep,
    /// Not in the snapshot: removed (`--delete`).
    Delete,
}

impl PlanAction {
    /// The name used in plans and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanAction::Create => "create",
            PlanAction::Overwrite => "overwrite",
            PlanAction::Unchanged => "unchanged",
            PlanAction::Keep => "keep",
            PlanAction::Delete => "delete",
        }
    }
}

/// One entry of a [`RestorePlan`].
#[derive(Debug, Clone)]
pub struct PlanEntry {
    /// The entry's path in the target.
    pub path: PathBuf,
    /// What restore does with it.
    pub action: PlanAction,
    /// The snapshot's entry kind; for `Delete`, the kind of what is there.
    pub kind: NodeKind,
    /// Bytes of content: to write (create, overwrite), left as they are
    /// (unchanged, keep) or removed (delete).
    pub size: u64,
}

/// What a restore would do, computed without writing anything.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    /// Entries in walk order (a folder before what is below it). Without
    /// `list_all`, only the entries that touch existing data (overwrite,
    /// keep, delete).
    pub entries: Vec<PlanEntry>,
    /// Entries to create.
    pub create: u64,
    /// Existing entries to replace.
    pub overwrite: u64,
    /// Existing files left as they are because they match.
    pub unchanged: u64,
    /// Existing entries left as they are by the overwrite policy.
    pub keep: u64,
    /// Existing entries to remove.
    pub delete: u64,
    /// Content bytes to write.
    pub bytes_to_write: u64,
    /// Content bytes of unchanged files.
    pub bytes_unchanged: u64,
    /// Content bytes of files to remove.
    pub bytes_to_delete: u64,
    /// Whether entries that touch no existing data are listed too.
    list_all: bool,
}

impl RestorePlan {
    /// Whether the restore replaces or removes existing data.
    pub fn in_place(&self) -> bool {
        self.overwrite + self.delete > 0
    }

    /// Existing entries the restore replaces or removes: what a safety
    /// snapshot must hold. Entries below a replaced folder are not repeated.
    pub fn replaced_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for entry in &self.entries {
            if matches!(entry.action, PlanAction::Overwrite | PlanAction::Delete)
                && !paths.last().is_some_and(|p| entry.path.starts_with(p))
            {
                paths.push(entry.path.clone());
            }
        }
        paths
    }

    fn add(&mut self, path: &Path, action: PlanAction, kind: NodeKind, size: u64) {
        let size = if kind == NodeKind::File { size } else { 0 };
        match action {
            PlanAction::Create => {
                self.create += 1;
                self.bytes_to_write += size;
            }
            PlanAction::Overwrite => {
                self.overwrite += 1;
                self.bytes_to_write += size;
            }
            PlanAction::Unchanged => {
                self.unchanged += 1;
                self.bytes_unchanged += size;
            }
            PlanAction::Keep => self.keep += 1,
            PlanAction::Delete => {
                self.delete += 1;
                self.bytes_to_delete += size;
            }
        }
        if self.list_all || !matches!(action, PlanAction::Create | PlanAction::Unchanged) {
            self.entries.push(PlanEntry {
                path: path.to_path_buf(),
                action,
                kind,
                size,
            });
        }
    }
}

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
}

/// A hard link to make once its first name is restored: where, which inode, its path in the snapshot.
type DeferredLink = (PathBuf, (u64, u64), String);

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

fn join_rel(prefix: &str, name: &[u8]) -> String {
    let name = crate::format::tree::escape_name(name);
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

/// Restores `node` (a snapshot's root from [`super::browse::root_node`], or
/// any node found in it) under `options.target`. `rel` is the node's path
/// in the snapshot (empty for the root).
pub fn restore(
    repo: &Repository,
    node: &Node,
    rel: &str,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let target = &options.target;
    let restorer = Restorer::new(repo, options, progress)?;
    if let Some(subtree) = node.subtree {
        super::browse::PathCount::default().refuse_too_many(repo, &subtree)?;
    }
    let is_snapshot_root = node.name.is_empty();
    // The plan finds what is in the way (refused by default) and what
    // `--delete` removes; with neither, restore needs no look ahead.
    let plan = if (options.overwrite == Overwrite::Refuse || options.delete)
        && target_has_entries(target)
    {
        Some(restorer.plan(node, rel, false)?)
    } else {
        None
    };
    if options.overwrite == Overwrite::Refuse
        && let Some(plan) = &plan
    {
        refuse_conflicts(plan)?;
    }
    fs::create_dir_all(target).map_err(|e| Error::io("cannot create restore target", target, e))?;
    if is_snapshot_root {
        restorer.restore_children(node, target, rel)?;
    } else {
        restorer.restore_node(node, &target.join(OsStr::from_bytes(&node.name)), rel)?;
    }
    restorer.make_deferred_links();
    let deleted = match &plan {
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
    })
}

/// What restoring `node` (as [`restore`] takes it) with `options` would do,
/// without writing anything. With `list_all`, every entry is listed;
/// otherwise only those that touch existing data.
pub fn restore_plan(
    repo: &Repository,
    node: &Node,
    rel: &str,
    options: &RestoreOptions,
    list_all: bool,
) -> Result<RestorePlan> {
    if let Some(subtree) = node.subtree {
        super::browse::PathCount::default().refuse_too_many(repo, &subtree)?;
    }
    Restorer::new(repo, options, &crate::progress::NoProgress)?.plan(node, rel, list_all)
}

/// Whether `target` exists and is not an empty folder: only then can a
/// restore into it replace or delete anything.
pub fn target_has_entries(target: &Path) -> bool {
    match fs::read_dir(target) {
        Ok(mut entries) => entries.next().is_some(),
        // Not a folder (restoring says so) or missing (nothing to replace).
        Err(_) => fs::symlink_metadata(target).is_ok(),
    }
}

/// The default policy's refusal: an error naming what is in the way when
/// the plan would keep (that is, not overwrite) any existing entry.
pub fn refuse_conflicts(plan: &RestorePlan) -> Result<()> {
    let mut conflicts = plan.entries.iter().filter(|e| e.action == PlanAction::Keep);
    let Some(first) = conflicts.next() else {
        return Ok(());
    };
    let more = conflicts.count();
    Err(Error::new(
        ErrorKind::Conflict,
        format!(
            "{} already exists{}; nothing was restored. Restore into an empty folder, or choose --overwrite never|if-changed|always",
            crate::format::tree::escape_path(&first.path),
            if more > 0 {
                format!(" (and {more} more entries)")
            } else {
                String::new()
            }
        ),
    ))
}

/// Checks `--only`/`--skip` names against the snapshot root's entries;
/// an unknown name is a not-found error listing those that exist, and
/// restoring `rel` (a path in the snapshot) of a left-out source a usage error.
pub fn check_source_names(
    repo: &Repository,
    root: &Node,
    rel: &str,
    options: &RestoreOptions,
) -> Result<()> {
    if options.only.is_empty() && options.skip.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = match root.subtree {
        Some(tree) => repo
            .read_tree(&tree)?
            .nodes
            .iter()
            .map(|n| crate::format::tree::escape_name(&n.name))
            .collect(),
        None => Vec::new(),
    };
    let unknown: Vec<&str> = options
        .only
        .iter()
        .chain(&options.skip)
        .filter(|n| !names.contains(n))
        .map(String::as_str)
        .collect();
    if unknown.is_empty() {
        // Restoring one path of a source the flags leave out restores nothing.
        let source = rel.split('/').next().unwrap_or_default();
        if !rel.is_empty()
            && ((!options.only.is_empty() && !options.only.iter().any(|n| n == source))
                || options.skip.iter().any(|n| n == source))
        {
            return Err(Error::usage(format!(
                "{rel} belongs to `{source}`, which --only/--skip leave out; nothing to restore"
            )));
        }
        return Ok(());
    }
    Err(Error::not_found(format!(
        "the snapshot has no top-level entry {}; it has: {}",
        unknown
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if names.is_empty() {
            "nothing".to_string()
        } else {
            names.join(", ")
        }
    )))
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
}

/// What restore does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selection {
    /// Leave it (and what is below it) alone.
    Skip,
    /// A folder not itself selected: look for selected entries below it,
    /// touching nothing that is already there.
    Enter,
    /// Restore it.
    Restore,
}

impl Restorer<'_> {
    fn warn(&self, text: String) {
        self.progress.warn(&text);
        lock(&self.warnings).push(text);
    }

    fn damaged(&self, rel: &str, e: &Error) {
        self.progress.warn(&format!("cannot restore {rel}: {e}"));
        lock(&self.damaged).push(rel.to_string());
    }

    fn selection(&self, rel: &str, kind: NodeKind) -> Selection {
        // `--only`/`--skip` name the snapshot's top-level entries (its sources).
        let source = rel.split('/').next().unwrap_or_default();
        if (!self.only.is_empty() && !self.only.contains(source)) || self.skip.contains(source) {
            return Selection::Skip;
        }
        if self.excludes.is_match(rel) {
            return Selection::Skip;
        }
        match &self.includes {
            None => Selection::Restore,
            // An entry is included when it or one of its folders matches;
            // other folders are only entered to look for matches below them.
            Some(includes) => {
                if includes.is_match(rel)
                    || rel
                        .match_indices('/')
                        .any(|(i, _)| includes.is_match(&rel[..i]))
                {
                    Selection::Restore
                } else if kind == NodeKind::Dir {
                    Selection::Enter
                } else {
                    Selection::Skip
                }
            }
        }
    }

    /// Whether anything below the folder `dir` is selected (trees only are read).
    fn selects_below(&self, dir: &Node, rel: &str) -> Result<bool> {
        let Some(subtree) = dir.subtree else {
            return Ok(false);
        };
        check_depth(rel)?;
        for child in self.repo.read_tree(&subtree)?.nodes {
            let child_rel = join_rel(rel, &child.name);
            match self.selection(&child_rel, child.kind) {
                Selection::Restore => return Ok(true),
                Selection::Enter if self.selects_below(&child, &child_rel)? => return Ok(true),
                _ => {}
            }
        }
        Ok(false)
    }

    fn plan(&self, node: &Node, rel: &str, list_all: bool) -> Result<RestorePlan> {
        let mut plan = RestorePlan {
            list_all,
            ..RestorePlan::default()
        };
        let target = &self.options.target;
        if node.name.is_empty() {
            self.plan_children(node, target, rel, false, &mut plan)?;
        } else {
            let dest = target.join(OsStr::from_bytes(&node.name));
            self.plan_node(node, &dest, rel, false, &mut plan)?;
        }
        Ok(plan)
    }

    /// What the overwrite policy does with `existing`, in the way of `node`.
    fn existing_action(&self, existing: &fs::Metadata, node: &Node) -> PlanAction {
        match self.options.overwrite {
            Overwrite::Never | Overwrite::Refuse => PlanAction::Keep,
            Overwrite::IfChanged
                if node.kind == NodeKind::File
                    && existing.is_file()
                    && existing.len() == node.size
                    && FileTime::from_last_modification_time(existing)
                        == file_time(node.mtime_ns) =>
            {
                PlanAction::Unchanged
            }
            Overwrite::IfChanged | Overwrite::Always => PlanAction::Overwrite,
        }
    }

    /// Plans `node` at `dest` as [`Self::restore_node`] restores it. `fresh`:
    /// the folder holding `dest` is new (or replaces a non-folder), so
    /// nothing is there; the filesystem is not looked at, as a path through
    /// a symlink to be replaced would lead outside the target.
    fn plan_node(
        &self,
        node: &Node,
        dest: &Path,
        rel: &str,
        fresh: bool,
        plan: &mut RestorePlan,
    ) -> Result<()> {
        let selection = self.selection(rel, node.kind);
        if selection == Selection::Skip {
            return Ok(());
        }
        let existing = if fresh {
            None
        } else {
            fs::symlink_metadata(dest).ok()
        };
        if selection == Selection::Enter {
            if let Some(meta) = existing.as_ref().filter(|m| !m.is_dir()) {
                if !self.selects_below(node, rel)? {
                    return Ok(());
                }
                let action = self.existing_action(meta, node);
                plan.add(dest, action, NodeKind::Dir, 0);
                if action == PlanAction::Keep {
                    return Ok(());
                }
            }
            let real_dir = existing.as_ref().is_some_and(fs::Metadata::is_dir);
            return self.plan_children(node, dest, rel, !real_dir, plan);
        }
        match &existing {
            None => {
                plan.add(dest, PlanAction::Create, node.kind, node.size);
            }
            // An existing folder is merged with the snapshot's.
            Some(meta) if meta.is_dir() && node.kind == NodeKind::Dir => {}
            Some(meta) => {
                let action = self.existing_action(meta, node);
                plan.add(dest, action, node.kind, node.size);
                if action != PlanAction::Overwrite {
                    return Ok(());
                }
            }
        }
        if node.kind == NodeKind::Dir {
            let real_dir = existing.as_ref().is_some_and(fs::Metadata::is_dir);
            self.plan_children(node, dest, rel, !real_dir, plan)?;
        }
        Ok(())
    }

    /// Plans the entries of the folder `dir` at `dest` (`fresh`: as for [`Self::plan_node`]).
    fn plan_children(
        &self,
        dir: &Node,
        dest: &Path,
        rel: &str,
        fresh: bool,
        plan: &mut RestorePlan,
    ) -> Result<()> {
        let nodes = match dir.subtree {
            None => Vec::new(),
            Some(subtree) => {
                check_depth(rel)?;
                match self.repo.read_tree(&subtree) {
                    Ok(tree) => tree.nodes,
                    // A damaged listing: restoring reports it and goes on
                    // with the rest; nothing in that folder is deleted.
                    Err(e) if e.is_damage() => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
        };
        for child in &nodes {
            let child_rel = join_rel(rel, &child.name);
            let child_dest = dest.join(OsStr::from_bytes(&child.name));
            self.plan_node(child, &child_dest, &child_rel, fresh, plan)?;
        }
        if self.options.delete && !fresh && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
            let known: HashSet<&[u8]> = nodes.iter().map(|n| n.name.as_slice()).collect();
            for (name, path) in sorted_entries(dest)? {
                if !known.contains(name.as_bytes()) {
                    self.plan_delete(&path, &join_rel(rel, name.as_bytes()), plan)?;
                }
            }
        }
        Ok(())
    }

    /// Plans removing `path`, an entry of the target the snapshot does not
    /// have, and what is below it, except what `--exclude`/`--include`/
    /// `--skip` leave out. Symlinks are removed, never followed.
    fn plan_delete(&self, path: &Path, rel: &str, plan: &mut RestorePlan) -> Result<()> {
        check_depth(rel)?;
        let Ok(meta) = fs::symlink_metadata(path) else {
            return Ok(());
        };
        let kind = kind_of(&meta);
        match self.selection(rel, kind) {
            Selection::Skip => return Ok(()),
            Selection::Restore => plan.add(path, PlanAction::Delete, kind, meta.len()),
            // A folder only entered: look for selected entries below it.
            Selection::Enter => {}
        }
        if kind == NodeKind::Dir {
            for (name, child) in sorted_entries(path)? {
                self.plan_delete(&child, &join_rel(rel, name.as_bytes()), plan)?;
            }
        }
        Ok(())
    }

    /// Removes the plan's `Delete` entries, deepest first, checking each is
    /// still what was planned. A folder still holding entries left out of
    /// the restore stays. Returns how many were removed.
    fn delete_planned(&self, plan: &RestorePlan) -> u64 {
        let mut deleted = 0;
        for entry in plan.entries.iter().rev() {
            if entry.action != PlanAction::Delete {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&entry.path) else {
                continue;
            };
            let removed = if entry.kind == NodeKind::Dir {
                if !meta.is_dir() {
                    continue;
                }
                match fs::remove_dir(&entry.path) {
                    Err(e) if e.raw_os_error() == Some(nix::libc::ENOTEMPTY) => continue,
                    other => other,
                }
            } else {
                if meta.is_dir() {
                    continue;
                }
                fs::remove_file(&entry.path)
            };
            match removed {
                Ok(()) => deleted += 1,
                Err(e) => self.warn(format!(
                    "cannot delete {}: {e}",
                    crate::format::tree::escape_path(&entry.path)
                )),
            }
        }
        deleted
    }

    fn restore_children(&self, dir: &Node, dest: &Path, rel: &str) -> Result<()> {
        let Some(subtree) = dir.subtree else {
            return Ok(());
        };
        check_depth(rel)?;
        let tree = match self.repo.read_tree(&subtree) {
            Ok(tree) => tree,
            Err(e) if e.is_damage() => {
                self.damaged(if rel.is_empty() { "/" } else { rel }, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        tree.nodes.par_iter().try_for_each(|child| {
            let child_rel = join_rel(rel, &child.name);
            self.restore_node(
                child,
                &dest.join(OsStr::from_bytes(&child.name)),
                &child_rel,
            )
        })
    }

    /// Makes room for a new entry at `dest`; `false` when the policy keeps what is there.
    fn clear_dest(&self, dest: &Path, node: &Node) -> Result<bool> {
        let Ok(meta) = fs::symlink_metadata(dest) else {
            return Ok(true);
        };
        if self.existing_action(&meta, node) != PlanAction::Overwrite {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        // Files are replaced by rename; anything else in the way is removed
        // first (a symlink is removed itself, never followed).
        if meta.is_dir() {
            fs::remove_dir_all(dest).map_err(|e| Error::io("cannot replace", dest, e))?;
        } else if node.kind != NodeKind::File {
            fs::remove_file(dest).map_err(|e| Error::io("cannot replace", dest, e))?;
        }
        Ok(true)
    }

    fn restore_node(&self, node: &Node, dest: &Path, rel: &str) -> Result<()> {
        let selection = self.selection(rel, node.kind);
        if selection == Selection::Skip {
            return Ok(());
        }
        if selection == Selection::Enter {
            // Only a real folder (or nothing yet) is entered; whatever else is
            // there belongs to the user and is not what was asked for.
            let existing = fs::symlink_metadata(dest).ok();
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                // In the way of a selected entry below it? Then the overwrite
                // policy decides, as for any entry restore would replace.
                if !self.selects_below(node, rel)? || !self.clear_dest(dest, node)? {
                    return Ok(());
                }
                fs::create_dir(dest).map_err(|e| Error::io("cannot create folder", dest, e))?;
            }
            self.restore_children(node, dest, rel)?;
            if existing.is_none() && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
                self.apply_metadata(node, dest, rel);
            }
            return Ok(());
        }
        if self.includes.is_some()
            && let Some(parent) = dest.parent()
            && !parent.is_dir()
        {
            // Folders above an included entry were entered (and checked to be
            // real folders or absent), not created: create them now.
            fs::create_dir_all(parent).map_err(|e| Error::io("cannot create folder", parent, e))?;
        }
        match node.kind {
            NodeKind::Dir => {
                let existing = fs::symlink_metadata(dest).ok();
                let existed = existing.as_ref().is_some_and(fs::Metadata::is_dir);
                if existing.is_some() && !existed && !self.clear_dest(dest, node)? {
                    return Ok(());
                }
                if !existed {
                    fs::create_dir(dest).map_err(|e| Error::io("cannot create folder", dest, e))?;
                }
                self.restore_children(node, dest, rel)?;
                // An existing folder keeps its own metadata unless told to overwrite.
                let keep = existed
                    && matches!(self.options.overwrite, Overwrite::Never | Overwrite::Refuse);
                if !keep && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
                    self.dirs.fetch_add(1, Ordering::Relaxed);
                    self.apply_metadata(node, dest, rel);
                }
                Ok(())
            }
            NodeKind::File => self.restore_file(node, dest, rel),
            NodeKind::Symlink => {
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
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                if !self.clear_dest(dest, node)? {
                    return Ok(());
                }
                let mode = nix::sys::stat::Mode::from_bits_truncate(node.mode);
                let made = match node.kind {
                    NodeKind::Fifo => nix::unistd::mkfifo(dest, mode),
                    NodeKind::Chardev => {
                        nix::sys::stat::mknod(dest, nix::sys::stat::SFlag::S_IFCHR, mode, node.rdev)
                    }
                    _ => {
                        nix::sys::stat::mknod(dest, nix::sys::stat::SFlag::S_IFBLK, mode, node.rdev)
                    }
                };
                match made {
                    Ok(()) => {
                        self.others.fetch_add(1, Ordering::Relaxed);
                        self.apply_metadata(node, dest, rel);
                    }
                    Err(e) => self.warn(format!("cannot create {} {rel}: {e}", node.kind.as_str())),
                }
                Ok(())
            }
            NodeKind::Socket => {
                self.warn(format!("{rel} is a socket; sockets are not restored"));
                Ok(())
            }
        }
    }

    fn restore_file(&self, node: &Node, dest: &Path, rel: &str) -> Result<()> {
        if !self.clear_dest(dest, node)? {
            return Ok(());
        }
        if node.links > 1 && node.inode != 0 {
            let key = (node.dev, node.inode);
            let mut links = lock(&self.links);
            if links.contains_key(&key) {
                drop(links);
                lock(&self.deferred_links).push((dest.to_path_buf(), key, rel.to_string()));
                return Ok(());
            }
            links.insert(key, dest.to_path_buf());
        }
        if fs::symlink_metadata(dest).is_err() {
            // Nothing there: create the file in place (O_EXCL: a symlink
            // appearing meanwhile is not followed).
            use std::os::unix::fs::OpenOptionsExt;
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|e| Error::io("cannot create", dest, e))?;
            let written = self.write_content(node, &file, dest);
            drop(file);
            if let Err(e) = written {
                let _ = fs::remove_file(dest);
                if !e.is_damage() {
                    return Err(e);
                }
                self.damaged(rel, &e);
                return Ok(());
            }
            self.apply_metadata(node, dest, rel);
            self.files.fetch_add(1, Ordering::Relaxed);
            self.progress.add_files(1);
            return Ok(());
        }
        // Replacing: write beside it and rename over it, so a reader never
        // sees a half-written file.
        let dir = dest.parent().expect("restore destinations have a parent");
        let temp = tempfile::Builder::new()
            .prefix(".snap-restore-")
            .tempfile_in(dir)
            .map_err(|e| Error::io("cannot create a file in", dir, e))?;
        match self.write_content(node, temp.as_file(), temp.path()) {
            Ok(()) => {}
            Err(e) if e.is_damage() => {
                self.damaged(rel, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.apply_metadata(node, temp.path(), rel);
        // Durable before it takes the old file's name: a crash leaves the
        // old file or the new one, never a torn one.
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("cannot flush", temp.path(), e))?;
        temp.persist(dest)
            .map_err(|e| Error::io("cannot move restored file into", dest, e.error))?;
        self.files.fetch_add(1, Ordering::Relaxed);
        self.progress.add_files(1);
        Ok(())
    }

    /// Writes a file's chunks at their offsets, in parallel. All-zero chunks
    /// are left as holes, so sparse files stay sparse.
    fn write_content(&self, node: &Node, file: &File, path: &Path) -> Result<()> {
        let layout = self.repo.file_layout(node)?;
        let mut placed = Vec::with_capacity(layout.len());
        let mut offset = 0u64;
        for (id, location) in layout {
            placed.push((id, offset, location));
            offset += u64::from(location.raw_length);
        }
        file.set_len(node.size)
            .map_err(|e| Error::io("cannot size", path, e))?;
        placed.par_iter().try_for_each(|(id, at, location)| {
            let at = *at;
            let data = self.repo.read_blob_at(id, location)?;
            if data.iter().any(|&b| b != 0) {
                file.write_all_at(&data, at)
                    .map_err(|e| Error::io("cannot write", path, e))?;
            }
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.progress.add_bytes(data.len() as u64);
            Ok(())
        })
    }

    /// Owner (as root), permissions, extended attributes and times.
    fn apply_metadata(&self, node: &Node, path: &Path, rel: &str) {
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

    fn make_deferred_links(&self) {
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

/// The entries of the folder `dir`, in name order.
fn sorted_entries(dir: &Path) -> Result<Vec<(std::ffi::OsString, PathBuf)>> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        entries.push((entry.file_name(), entry.path()));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(entries)
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

fn file_time(ns: i64) -> FileTime {
    FileTime::from_unix_time(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaced_paths_name_each_replaced_entry_once_without_what_is_below() {
        let mut plan = RestorePlan::default();
        for (path, action, kind) in [
            ("t/a", PlanAction::Overwrite, NodeKind::File),
            ("t/b", PlanAction::Create, NodeKind::File),
            ("t/old", PlanAction::Delete, NodeKind::Dir),
            ("t/old/x", PlanAction::Delete, NodeKind::File),
            ("t/older", PlanAction::Delete, NodeKind::File),
            ("t/c", PlanAction::Unchanged, NodeKind::File),
            ("t/d", PlanAction::Keep, NodeKind::File),
        ] {
            plan.add(Path::new(path), action, kind, 3);
        }
        assert_eq!(
            plan.replaced_paths(),
            ["t/a", "t/old", "t/older"].map(PathBuf::from)
        );
        assert!(plan.in_place());
        // Without list_all, creates and unchanged files are counted, not listed.
        assert_eq!(plan.entries.len(), 5);
        assert_eq!((plan.create, plan.unchanged, plan.keep), (1, 1, 1));
        assert_eq!(
            (
                plan.bytes_to_write,
                plan.bytes_unchanged,
                plan.bytes_to_delete
            ),
            (6, 3, 6)
        );
    }
}
