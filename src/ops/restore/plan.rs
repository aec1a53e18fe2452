//! Deciding what a restore writes, skips and deletes, before anything is
//! written: the selection rules (`--include`/`--exclude`/`--only`/`--skip`),
//! the overwrite policy applied to what the target already holds, and the
//! `--delete` list. [`restore_plan`] walks the snapshot against the target
//! with these rules and writes nothing: it is `--dry-run`, the default
//! policy's conflict check, the list `--delete` works from, and what the
//! `pre-restore` safety snapshot backs up.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use filetime::FileTime;

use super::metadata::file_time;
use super::{Overwrite, RestoreOptions, Restorer, check_depth, join_rel};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Node, NodeKind};
use crate::ops::backup::kind_of;
use crate::repo::Repository;

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
    /// Files to write (created or replaced).
    pub files_to_write: u64,
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
        if kind == NodeKind::File && matches!(action, PlanAction::Create | PlanAction::Overwrite) {
            self.files_to_write += 1;
        }
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
        crate::ops::browse::PathCount::default().refuse_too_many(repo, &subtree)?;
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

/// What restore does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Selection {
    /// Leave it (and what is below it) alone.
    Skip,
    /// A folder not itself selected: look for selected entries below it,
    /// touching nothing that is already there.
    Enter,
    /// Restore it.
    Restore,
}

impl Restorer<'_> {
    /// Whether `rel` (of entry kind `kind`) is restored, entered or left alone.
    pub(super) fn selection(&self, rel: &str, kind: NodeKind) -> Selection {
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
    pub(super) fn selects_below(&self, dir: &Node, rel: &str) -> Result<bool> {
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

    /// What restoring `node` would do; see [`restore_plan`].
    pub(super) fn plan(&self, node: &Node, rel: &str, list_all: bool) -> Result<RestorePlan> {
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
    pub(super) fn existing_action(&self, existing: &fs::Metadata, node: &Node) -> PlanAction {
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
    pub(super) fn delete_planned(&self, plan: &RestorePlan) -> u64 {
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
