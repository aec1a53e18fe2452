//! `snap copy`: copies snapshots from one repository into another (local or
//! object storage, encrypted or not), storing only the blobs the target
//! lacks.
//!
//! Blob ids depend on the repository: plain blake3 in an unencrypted one,
//! blake3 keyed with the repository's id key in an encrypted one. So:
//!
//! - When both repositories compute the same ids (both unencrypted, or an
//!   encrypted copy made with `snap init --copy-chunker-params-from`, which
//!   shares the source's keys), every blob keeps its id: the copy reads from
//!   the source only the blobs the target's index lacks, and trees and
//!   snapshots come out byte-for-byte as in the source (apart from the
//!   snapshot's `original` field).
//! - Otherwise every blob gets the target's id: the copy reads each data
//!   chunk of the snapshot from the source, stores it under its new id when
//!   the target lacks it, and rewrites the chunk lists and trees that name
//!   the ids. Chunks already mapped in this run are not read again.
//!
//! The write ordering is a backup's: packs, then the index delta naming
//! them, then the snapshot. A copy that dies half-way leaves at most
//! unreferenced packs in the target (the next copy reuses them, `snap prune`
//! removes them). The target is announced to prunes like a backup.
//!
//! A copied snapshot records in `original` the id of the snapshot it was
//! first written as; a snapshot whose original the target already holds
//! (as itself or as a copy) is skipped, so copying twice is a no-op.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::backend::{Backend, FileKind, Limits};
use crate::codec::Dictionary;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{Config, Feature};
use crate::format::pack::BlobKind;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ListCut, Node, NodeKind, Tree, escape_name};
use crate::id::{BlobId, RepoId, SnapshotId, TreeId};
use crate::keys::Credentials;
use crate::pack::BlobSaver;
use crate::progress::{Phase, Progress};
use crate::repo::Repository;
use crate::sync::lock;

/// What a copy did.
#[derive(Debug, Default, Clone)]
pub struct CopyReport {
    /// Source snapshot id and the id of its copy in the target.
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Source snapshots the target already held.
    pub skipped: Vec<SnapshotId>,
    /// Whether blobs kept their ids (a pure transfer, no re-encoding of ids).
    pub same_ids: bool,
    /// Blobs read from the source.
    pub blobs_read: u64,
    /// Plaintext bytes of the blobs the target did not have.
    pub bytes_added: u64,
    /// Bytes those blobs take in the target's packs.
    pub bytes_added_packed: u64,
}

/// The id a snapshot was first written under.
pub fn origin(id: &SnapshotId, snapshot: &Snapshot) -> SnapshotId {
    snapshot.original.unwrap_or(*id)
}

/// Whether `a` and `b` compute the same blob id for the same bytes.
pub fn same_ids(a: &Repository, b: &Repository) -> bool {
    let probe = b"snap copy: do these repositories share blob ids?";
    a.codec().id(probe) == b.codec().id(probe)
}

/// Opens the repository at `location` (moving bytes within `limits`) as
/// the other side of a copy from `first`. Refuses `first` itself, under whatever name it is given: its
/// index cache is held by `first` (opening it again would wait for
/// ourselves), and copying a repository into itself means nothing.
pub fn open_other(
    location: &Path,
    limits: Limits,
    first: &Repository,
    credentials: &Credentials,
    progress: &dyn Progress,
) -> Result<Repository> {
    let backend = crate::backend::open(location, limits)?;
    if stored_id(backend.as_ref()) == Some(first.config().id) {
        return Err(Error::usage(format!(
            "{} is the same repository as {}",
            location.display(),
            first.backend().location()
        )));
    }
    Repository::open_with(backend, credentials, progress)
}

/// The id in the config `backend` holds, if it holds a readable one
/// (anything else is left for opening the repository to report).
fn stored_id(backend: &dyn Backend) -> Option<RepoId> {
    let bytes = backend.read(FileKind::Config, "config").ok()?;
    Config::from_bytes(&bytes).ok().map(|config| config.id)
}

/// Copies `snapshots` (from `source`, oldest first) into `target`.
pub fn copy(
    source: &Repository,
    target: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if !source.can_read() {
        return Err(Error::new(
            ErrorKind::Key,
            "the source repository was opened with a write-only key, which cannot read snapshots",
        ));
    }
    if source.config().id == target.config().id {
        return Err(Error::usage(
            "source and target are the same repository; nothing to copy",
        ));
    }
    let _announced = target.start_backup(progress)?;
    target.clean_temp();
    let mut report = CopyReport {
        same_ids: same_ids(source, target),
        ..CopyReport::default()
    };
    let mut present: HashSet<SnapshotId> = target
        .snapshots()?
        .iter()
        .map(|(id, s)| origin(id, s))
        .collect();
    // Source id -> target id of every blob this run has stored or found
    // (only needed when ids differ).
    let mapped = Mutex::new(HashMap::new());
    let blobs_read = AtomicU64::new(0);
    // The snapshots' summaries hold their totals: no scan is needed.
    for (id, snapshot) in snapshots {
        if !present.contains(&origin(id, snapshot)) {
            progress.found(snapshot.summary.files, snapshot.summary.bytes);
        }
    }
    progress.phase(Phase::Working);
    for (id, snapshot) in snapshots {
        let original = origin(id, snapshot);
        if present.contains(&original) {
            report.skipped.push(*id);
            continue;
        }
        progress.message(&format!("copying snapshot {}", id.short()));
        let saver = target.saver();
        let copier = Copier {
            source,
            target,
            saver: &saver,
            same_ids: report.same_ids,
            mapped: &mapped,
            blobs_read: &blobs_read,
            progress,
        };
        let tree = copier.tree(&snapshot.tree);
        // Flush even after an error: what was stored stays usable.
        let flushed = saver.flush();
        let tree = tree?;
        flushed?;
        let (added, added_packed) = saver.added();
        report.bytes_added += added;
        report.bytes_added_packed += added_packed;
        let copy = Snapshot {
            // The parent names a snapshot of the source repository.
            parent: None,
            tree,
            original: Some(original),
            ..snapshot.clone()
        };
        let new_id = target.write_snapshot(&copy)?;
        present.insert(original);
        report.copied.push((*id, new_id));
    }
    report.blobs_read = blobs_read.load(Ordering::Relaxed);
    Ok(report)
}

struct Copier<'a> {
    source: &'a Repository,
    target: &'a Repository,
    saver: &'a BlobSaver<'a>,
    same_ids: bool,
    mapped: &'a Mutex<HashMap<BlobId, BlobId>>,
    blobs_read: &'a AtomicU64,
    progress: &'a dyn Progress,
}

impl Copier<'_> {
    fn known(&self, id: &BlobId) -> Option<BlobId> {
        lock(self.mapped).get(id).copied()
    }

    fn remember(&self, from: BlobId, to: BlobId) {
        if !self.same_ids {
            lock(self.mapped).insert(from, to);
        }
    }

    /// Copies one blob; returns its id in the target. Between repositories
    /// with other ids the blob is compressed again, with `dictionary` (the
    /// target's copy of the file's dictionary) if given.
    fn blob(&self, kind: BlobKind, id: &BlobId, dictionary: Option<&Dictionary>) -> Result<BlobId> {
        if self.same_ids {
            if self.target.cache().contains(id)? {
                return Ok(*id);
            }
        } else if let Some(new) = self.known(id) {
            return Ok(new);
        }
        self.blobs_read.fetch_add(1, Ordering::Relaxed);
        if self.same_ids {
            // Same ids means the same keys: the stored frame is valid in the
            // target as it is. Decoding it verifies it (nothing damaged is
            // copied); it is not compressed again.
            let location = self.source.locate(id)?;
            let (location, frame) = self.source.read_verified_frame(id, &location)?;
            self.saver
                .save_frame(kind, *id, &frame, location.raw_length)?;
            return Ok(*id);
        }
        let plain = self.source.read_blob(id)?;
        let new = self.saver.save_with(kind, &plain, dictionary)?;
        self.remember(*id, new);
        Ok(new)
    }

    /// Copies a tree and everything below it; returns its id in the target.
    ///
    /// Every blob below is checked even when the target already has the
    /// tree: an interrupted backup or copy can leave a tree indexed without
    /// all of its contents.
    fn tree(&self, id: &TreeId) -> Result<TreeId> {
        if let Some(new) = self.known(id) {
            return Ok(new);
        }
        let tree = self.source.read_tree(id)?;
        let nodes = tree
            .nodes
            .par_iter()
            .map(|node| self.node(node))
            .collect::<Result<Vec<_>>>()?;
        let new = self
            .saver
            .save(BlobKind::Tree, &Tree { nodes }.to_bytes())?;
        if self.same_ids && new != *id {
            return Err(Error::corrupt(
                format!("tree {id}"),
                "it does not re-encode to the same bytes",
            ));
        }
        self.remember(*id, new);
        Ok(new)
    }

    fn node(&self, node: &Node) -> Result<Node> {
        let mut node = node.clone();
        if node.kind == NodeKind::File {
            self.progress.current(&escape_name(&node.name));
        }
        if let Some(subtree) = node.subtree {
            node.subtree = Some(self.tree(&subtree)?);
        }
        // The dictionary goes first: no chunk lands without it, and no
        // dictionary without the feature that tells older builds to refuse.
        if node.dictionary.is_some() {
            self.target.require_feature(Feature::SqliteDictionary)?;
        }
        let dictionary = match node.dictionary {
            Some(id) if self.same_ids => {
                self.blob(BlobKind::Data, &id, None)?;
                None
            }
            Some(id) => {
                let source = self.source.dictionary(&id)?;
                let copied = self.blob(BlobKind::Data, &id, None)?;
                node.dictionary = Some(copied);
                Some(Dictionary::new(copied, source.bytes().to_vec()))
            }
            None => None,
        };
        if !node.content.is_empty() {
            let layout = self.source.file_layout(&node)?;
            let ids = layout
                .par_iter()
                .map(|(id, _)| self.blob(BlobKind::Data, id, dictionary.as_ref()))
                .collect::<Result<Vec<_>>>()?;
            // Chunk lists are rebuilt from the ids, the way a backup builds
            // them (fixed-size lists for SQLite images, known by their
            // dictionary; a small image gets content-defined lists here).
            let cut = ListCut::for_file(node.dictionary.is_some());
            let (content, depth) = self.saver.save_content_cut(ids, cut)?;
            node.content = content;
            node.content_depth = depth;
        }
        if node.kind == NodeKind::File {
            self.progress.add_files(1);
            self.progress.add_bytes(node.size);
        }
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LocalBackend, PrivateCache};
    use crate::progress::NoProgress;
    use crate::repo::InitOptions;

    #[test]
    fn the_other_side_is_never_the_first_repository() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        // A private cache keeps the test out of the user's cache folder.
        let backend = PrivateCache::new(Box::new(LocalBackend::new(&path))).unwrap();
        let first =
            Repository::init(Box::new(backend), &InitOptions::default(), &NoProgress).unwrap();
        // The same repository under another name is still refused.
        let same = path.join("..").join("repo");
        let Err(refused) = open_other(
            &same,
            Limits::default(),
            &first,
            &Credentials::default(),
            &NoProgress,
        ) else {
            panic!("opened the first repository a second time");
        };
        assert_eq!(refused.kind(), ErrorKind::Usage);
        assert!(
            refused.message().contains("is the same repository as"),
            "{}",
            refused.message()
        );
    }
}
