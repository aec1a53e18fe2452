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
    use crate::ops::restore::{Overwrite, RestoreOptions, RestoreReport, restore};
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
        let into_empty = restore_whole(&repo, &id, &into(&dir.join("target")));
        assert_eq!(into_empty.safety_snapshot, None, "nothing was replaced");
        fs::write(dir.join("target/src/notes.txt"), "edited locally\n").unwrap();
        (repo, id)
    }

    /// Restores all of snapshot `id` through the library.
    fn restore_whole(
        repo: &Repository,
        id: &SnapshotId,
        options: &RestoreOptions,
    ) -> RestoreReport {
        let root = root_node(repo.read_snapshot(id).unwrap().tree);
        restore(repo, &root, "", options, &NoProgress).unwrap()
    }

    /// The library's default options, restoring into `target`.
    fn into(target: &Path) -> RestoreOptions {
        RestoreOptions {
            target: target.to_path_buf(),
            ..RestoreOptions::default()
        }
    }

    /// Restores `id` over the edited target, replacing everything.
    fn overwrite_all(
        dir: &Path,
        repo: &Repository,
        id: &SnapshotId,
        safety_snapshot: bool,
    ) -> RestoreReport {
        let options = RestoreOptions {
            overwrite: Overwrite::Always,
            safety_snapshot,
            ..into(&dir.join("target"))
        };
        let report = restore_whole(repo, id, &options);
        assert_eq!(notes(&dir.join("target")), "v1\n");
        report
    }

    fn notes(restored: &Path) -> String {
        fs::read_to_string(restored.join("src/notes.txt")).unwrap()
    }

    #[test]
    fn a_library_restore_backs_up_what_it_replaces_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, id) = edited_restore(dir.path());
        let report = overwrite_all(dir.path(), &repo, &id, true);
        let safety = report.safety_snapshot.expect("a safety snapshot was taken");
        assert_eq!(repo.snapshots().unwrap().len(), 2);
        assert_eq!(repo.read_snapshot(&safety).unwrap().tags, [PRE_RESTORE_TAG]);
        // It holds the content the restore replaced.
        restore_whole(&repo, &safety, &into(&dir.path().join("undo")));
        assert_eq!(notes(&dir.path().join("undo")), "edited locally\n");
    }

    #[test]
    fn a_library_restore_without_the_option_takes_no_safety_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, id) = edited_restore(dir.path());
        let report = overwrite_all(dir.path(), &repo, &id, false);
        assert_eq!(report.safety_snapshot, None);
        assert_eq!(repo.snapshots().unwrap().len(), 1);
    }
}
