//! The `pre-restore` safety snapshot: before a restore replaces or deletes
//! existing data, exactly that data is backed up, so the restore can be
//! undone by restoring the safety snapshot over the target.

use std::path::{Path, PathBuf};

use super::RestorePlan;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::PRE_RESTORE_TAG;
use crate::id::SnapshotId;
use crate::ops::backup::{BackupOptions, backup_selected};
use crate::progress::Progress;
use crate::repo::Repository;

/// Backs up exactly the existing entries `plan` replaces or deletes in
/// `target`, tagged [`PRE_RESTORE_TAG`]. Each top-level entry of the target
/// that holds one is a source, so the snapshot mirrors the target's layout.
/// A snapshot missing anything (unreadable files) is an error: the restore
/// must not go on without a complete copy of what it would destroy.
pub(super) fn take(
    repo: &Repository,
    target: &Path,
    plan: &RestorePlan,
    progress: &dyn Progress,
) -> Result<SnapshotId> {
    let replaced = plan.replaced_paths();
    let options = BackupOptions {
        tags: vec![PRE_RESTORE_TAG.to_string()],
        ..BackupOptions::new(top_level_sources(target, &replaced))
    };
    let report = backup_selected(repo, &options, &replaced, progress).map_err(|e| {
        Error::new(
            e.kind(),
            format!("cannot take the safety snapshot, so nothing was restored: {e}"),
        )
    })?;
    if !report.warnings.is_empty() {
        return Err(Error::new(
            ErrorKind::Io,
            format!(
                "the safety snapshot {} misses entries it could not read ({}), so nothing was restored; make them readable, or pass --no-safety-snapshot",
                report.id.short(),
                report.warnings.join("; ")
            ),
        ));
    }
    Ok(report.id)
}

/// The top-level entries of `target` that hold one of `replaced`, sorted
/// and each once.
fn top_level_sources(target: &Path, replaced: &[PathBuf]) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = replaced
        .iter()
        .filter_map(|p| p.strip_prefix(target).ok()?.components().next())
        .map(|first| target.join(first))
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use crate::backend::{LocalBackend, PrivateCache};
    use crate::format::snapshot::PRE_RESTORE_TAG;
    use crate::id::SnapshotId;
    use crate::ops::backup::{BackupOptions, backup};
    use crate::ops::browse::root_node;
    use crate::ops::restore::{Overwrite, RestoreOptions, restore};
    use crate::progress::NoProgress;
    use crate::repo::{InitOptions, Repository};

    /// A repository (its cache in `dir`, never the user's) holding one
    /// snapshot of `dir/src/notes.txt`, restored into `dir/target` and then
    /// edited there. Returns the repository and the snapshot.
    fn edited_restore(dir: &Path) -> (Repository, SnapshotId) {
        let backend = PrivateCache::new(Box::new(LocalBackend::new(dir.join("repo")))).unwrap();
        let repo =
            Repository::init(Box::new(backend), &InitOptions::default(), &NoProgress).unwrap();
        fs::create_dir(dir.join("src")).unwrap();
        fs::write(dir.join("src/notes.txt"), "v1\n").unwrap();
        let id = backup(
            &repo,
            &BackupOptions::new(vec![dir.join("src")]),
            &NoProgress,
        )
        .unwrap()
        .id;
        let options = RestoreOptions {
            target: dir.join("target"),
            ..RestoreOptions::default()
        };
        let into_empty = restore(&repo, &root(&repo, &id), "", &options, &NoProgress).unwrap();
        assert_eq!(into_empty.safety_snapshot, None, "nothing was replaced");
        fs::write(dir.join("target/src/notes.txt"), "edited locally\n").unwrap();
        (repo, id)
    }

    fn root(repo: &Repository, id: &SnapshotId) -> crate::format::tree::Node {
        root_node(repo.read_snapshot(id).unwrap().tree)
    }

    fn overwrite_all(dir: &Path, safety_snapshot: bool) -> RestoreOptions {
        RestoreOptions {
            target: dir.join("target"),
            overwrite: Overwrite::Always,
            safety_snapshot,
            ..RestoreOptions::default()
        }
    }

    #[test]
    fn a_library_restore_backs_up_what_it_replaces_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, id) = edited_restore(dir.path());
        let options = overwrite_all(dir.path(), true);
        let report = restore(&repo, &root(&repo, &id), "", &options, &NoProgress).unwrap();
        let safety = report.safety_snapshot.expect("a safety snapshot was taken");
        assert_eq!(
            fs::read_to_string(dir.path().join("target/src/notes.txt")).unwrap(),
            "v1\n"
        );
        assert_eq!(repo.snapshots().unwrap().len(), 2);
        let snapshot = repo.read_snapshot(&safety).unwrap();
        assert_eq!(snapshot.tags, [PRE_RESTORE_TAG]);
        // It holds the content the restore replaced.
        let undo = RestoreOptions {
            target: dir.path().join("undo"),
            ..RestoreOptions::default()
        };
        restore(&repo, &root(&repo, &safety), "", &undo, &NoProgress).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("undo/src/notes.txt")).unwrap(),
            "edited locally\n"
        );
    }

    #[test]
    fn a_library_restore_without_the_option_takes_no_safety_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, id) = edited_restore(dir.path());
        let options = overwrite_all(dir.path(), false);
        let report = restore(&repo, &root(&repo, &id), "", &options, &NoProgress).unwrap();
        assert_eq!(report.safety_snapshot, None);
        assert_eq!(repo.snapshots().unwrap().len(), 1);
        assert_eq!(
            fs::read_to_string(dir.path().join("target/src/notes.txt")).unwrap(),
            "v1\n"
        );
    }
}
