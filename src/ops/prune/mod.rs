//! `snap prune`: give back the space of blobs no snapshot uses.
//!
//! [`prune_plan`] finds the live blobs (every blob reachable from a
//! snapshot; trees and chunk lists are read once each, memoized by id) and
//! decides, pack by pack, what happens:
//!
//! - a pack holding nothing live is *marked* obsolete;
//! - a pack whose dead share exceeds `max_unused` is *repacked*: its live
//!   blobs are copied, frames as they are, into new packs, then it is marked;
//! - a pack marked by an earlier run that still holds live blobs (a backup
//!   reused them before it saw the mark) has those blobs *rescued* the same
//!   way;
//! - a marked pack is *deleted* once its mark is older than the grace
//!   period (at once with `instant_delete`), and so are packs that no index
//!   delta names (left by killed processes).
//!
//! [`prune`] executes the plan in the write order the repository relies on:
//! new packs, then the index delta naming them and carrying the marks; then
//! the index deltas that named deleted packs are rewritten without them;
//! packs are deleted last. It deletes nothing while a backup is running
//! (the next prune catches up), so backups never wait for a prune and never
//! lose a blob to one. `docs/PRUNE.md` has the protocol and why it is safe.
//!
//! Memory stays flat in the number of blobs: the live set is a temporary
//! redb table, the index is streamed from the cache's B-tree, and only
//! per-pack numbers are kept in memory.
//!
//! The parts: `live` walks the snapshots into the live set, `plan`
//! decides each pack's fate, `execute` copies, marks and deletes; this
//! module holds the options, the report and the entry points.

mod execute;
mod live;
mod plan;

use std::time::Duration;

use crate::backend::{Backend, PrivateCache};
use crate::error::{Error, Result};
use crate::keys::Credentials;
use crate::progress::Progress;
use crate::repo::Repository;

pub use plan::{Fate, PackUsage, PlanTotals, PlannedPack, PrunePlan, fate, prune_plan};

/// How `prune` works.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneOptions {
    /// A pack whose dead bytes exceed this share (0.0 to 1.0) of its blob
    /// bytes is repacked; 1.0 or more never repacks.
    pub max_unused: f64,
    /// Delete packs in this run instead of after the grace period.
    pub instant_delete: bool,
    /// How long a marked pack stays before a later prune deletes it.
    pub grace: Duration,
    /// Only plan: take no lock; [`prune`] refuses such a plan.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: 0.05,
            instant_delete: false,
            grace: Duration::from_secs(3600),
            dry_run: false,
        }
    }
}

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Blobs copied into new packs.
    pub blobs_copied: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Their bytes.
    pub bytes_written: u64,
    /// Packs marked obsolete.
    pub packs_marked: u64,
    /// Index deltas written.
    pub deltas_written: u64,
    /// Index deltas deleted (superseded).
    pub deltas_deleted: u64,
    /// Packs deleted (orphans included).
    pub packs_deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
    /// Packs kept back because a snapshot written during the prune uses them.
    pub packs_kept_for_new_snapshots: u64,
    /// Why deletion was put off to a later prune, if it was.
    pub deferred: Option<String>,
}

/// Prefix of prune's temporary folders, followed by its process id.
const TEMP_PREFIX: &str = "prune-";

/// Opens the repository for a prune, with an index cache of the prune's
/// own ([`PrivateCache`]), so that backups never wait for the shared cache
/// while a prune runs.
pub fn open(
    backend: Box<dyn Backend>,
    credentials: &Credentials,
    progress: &dyn Progress,
) -> Result<Repository> {
    let backend = PrivateCache::new(backend)?;
    Repository::open_with(Box::new(backend), credentials, progress)
}

/// Executes a plan made by [`prune_plan`] (not a dry-run plan).
pub fn prune(repo: &Repository, plan: PrunePlan, progress: &dyn Progress) -> Result<PruneReport> {
    if plan.lock.is_none() {
        return Err(Error::usage(
            "this prune plan was made for a dry run and holds no lock; plan again to prune",
        ));
    }
    let mut report = PruneReport::default();
    let written = execute::copy_and_mark(repo, &plan, &mut report, progress)?;
    execute::delete_garbage(repo, plan, &written, &mut report, progress)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{FileKind, LocalBackend};
    use crate::error::ErrorKind;
    use crate::id::SnapshotId;
    use crate::ops::backup::{BackupOptions, backup};
    use crate::progress::NoProgress;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicI64, Ordering};

    /// A backend whose repository writes and removals (not lock files)
    /// start failing after `left` of them, as if the process died there.
    struct Crashing {
        inner: LocalBackend,
        left: AtomicI64,
    }

    impl Crashing {
        fn step(&self, kind: FileKind) -> Result<()> {
            if kind != FileKind::Lock && self.left.fetch_sub(1, Ordering::SeqCst) <= 0 {
                return Err(Error::new(ErrorKind::Io, "injected crash"));
            }
            Ok(())
        }
    }

    impl Backend for Crashing {
        fn location(&self) -> String {
            self.inner.location()
        }
        fn exists(&self) -> Result<bool> {
            self.inner.exists()
        }
        fn create(&self) -> Result<()> {
            self.inner.create()
        }
        fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
            self.inner.read(kind, name)
        }
        fn read_range(
            &self,
            kind: FileKind,
            name: &str,
            offset: u64,
            length: u32,
        ) -> Result<Vec<u8>> {
            self.inner.read_range(kind, name, offset, length)
        }
        fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
            self.step(kind)?;
            self.inner.write(kind, name, data)
        }
        fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()> {
            self.step(kind)?;
            self.inner.write_file(kind, name, path)
        }
        fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
            self.inner.list(kind)
        }
        fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
            self.step(kind)?;
            self.inner.remove(kind, name)
        }
        fn temp_dir(&self) -> &Path {
            self.inner.temp_dir()
        }
        fn cache_dir(&self) -> Option<PathBuf> {
            self.inner.cache_dir()
        }
    }

    /// Copies a repository, leaving out its cache and empty pack folders.
    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_name() == "cache" {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                let empty = std::fs::read_dir(entry.path()).unwrap().next().is_none();
                if !(empty && from.ends_with("data")) {
                    copy_dir(&entry.path(), &target);
                }
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    /// A local repository's storage with its index cache in a private
    /// temporary folder, never in the user's cache folder.
    fn private(backend: Box<dyn Backend>) -> Box<dyn Backend> {
        Box::new(crate::backend::PrivateCache::new(backend).unwrap())
    }

    fn open(path: &Path) -> Repository {
        Repository::open(private(Box::new(LocalBackend::new(path))), &NoProgress).unwrap()
    }

    /// Every remaining snapshot's files read back (verified) as stored.
    fn assert_restorable(
        repo: &Repository,
        expected: &HashMap<SnapshotId, Vec<(String, Vec<u8>)>>,
    ) {
        let snapshots = repo.snapshots().unwrap();
        assert_eq!(snapshots.len(), 2);
        for (id, snapshot) in snapshots {
            let root = repo.read_tree(&snapshot.tree).unwrap();
            let src = repo.read_tree(&root.nodes[0].subtree.unwrap()).unwrap();
            let mut files = Vec::new();
            for node in &src.nodes {
                let mut content = Vec::new();
                for chunk in repo.file_chunks(node).unwrap() {
                    content.extend(repo.read_blob(&chunk).unwrap());
                }
                files.push((node.display_name(), content));
            }
            assert_eq!(&files, &expected[&id], "snapshot {id}");
        }
    }

    /// A prune that crashes after any number of repository writes leaves
    /// every remaining snapshot readable, and the next prune completes and
    /// leaves nothing behind.
    #[test]
    fn a_prune_crashing_at_any_step_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let mut expected = HashMap::new();
        {
            let repo = Repository::init(
                private(Box::new(LocalBackend::new(&base))),
                &crate::repo::InitOptions::default(),
                &NoProgress,
            )
            .unwrap();
            let mut seed = 1u64;
            let mut bytes = |n: usize| {
                (0..n)
                    .map(|_| {
                        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        (seed >> 33) as u8
                    })
                    .collect::<Vec<u8>>()
            };
            std::fs::write(src.join("shared"), bytes(300_000)).unwrap();
            let mut ids = Vec::new();
            for n in 0..5 {
                std::fs::write(src.join(format!("f{n}")), bytes(200_000)).unwrap();
                if n >= 2 {
                    std::fs::remove_file(src.join(format!("f{}", n - 2))).unwrap();
                }
                let mut names: Vec<String> = std::fs::read_dir(&src)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                let files = names
                    .into_iter()
                    .map(|n| {
                        let content = std::fs::read(src.join(&n)).unwrap();
                        (n, content)
                    })
                    .collect::<Vec<_>>();
                let report =
                    backup(&repo, &BackupOptions::new(vec![src.clone()]), &NoProgress).unwrap();
                expected.insert(report.id, files);
                ids.push(report.id);
            }
            for id in &ids[..3] {
                repo.backend()
                    .remove(FileKind::Snapshot, &id.to_hex())
                    .unwrap();
            }
        }
        let options = PruneOptions {
            instant_delete: true,
            max_unused: 0.0,
            ..PruneOptions::default()
        };
        let mut crashes = 0;
        for steps in 0.. {
            let path = dir.path().join(format!("run{steps}"));
            copy_dir(&base, &path);
            let crashing = Crashing {
                inner: LocalBackend::new(&path),
                left: AtomicI64::new(steps),
            };
            let outcome = {
                let repo = Repository::open(private(Box::new(crashing)), &NoProgress).unwrap();
                prune_plan(&repo, &options, &NoProgress)
                    .and_then(|plan| prune(&repo, plan, &NoProgress))
            };
            let repo = open(&path);
            assert_restorable(&repo, &expected);
            if let Ok(report) = outcome {
                assert!(report.packs_deleted > 0 && report.blobs_copied > 0);
                break;
            }
            crashes += 1;
            let report = prune(
                &repo,
                prune_plan(&repo, &options, &NoProgress).unwrap(),
                &NoProgress,
            )
            .unwrap_or_else(|e| panic!("after a crash at step {steps}: {e}"));
            assert!(report.deferred.is_none());
            drop(repo);
            let repo = open(&path);
            assert_restorable(&repo, &expected);
            let again = prune_plan(&repo, &options, &NoProgress).unwrap();
            let t = again.totals();
            assert_eq!(
                (t.delete_packs, t.copy_packs, t.mark_packs),
                (0, 0, 0),
                "garbage left after a crash at step {steps} and a full prune"
            );
            std::fs::remove_dir_all(&path).unwrap();
        }
        eprintln!("crashed after each of {crashes} writes");
        assert!(crashes >= 8, "the prune made only {crashes} writes");
    }
}
