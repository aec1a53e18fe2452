//! `snap repair index` and `snap repair snapshots`: each a plan (what would
//! change; `--dry-run` prints it) and an execution.
//!
//! **Index.** The index deltas are rebuilt from the pack trailers alone, so
//! a repository whose `index/` (and cache) was lost or damaged becomes whole
//! again. A pack whose trailer is unreadable keeps the entries a readable
//! old delta has for it (same size), if any; otherwise it is left out and
//! reported. New deltas are written before the old ones are removed, so a
//! crash in between leaves both (harmless duplicates), never neither.
//! Marks that `prune` left in old deltas (packs to delete after a grace
//! period) are dropped and their packs indexed like any other: that only
//! postpones reclaiming their space (the next prune marks them again), where
//! keeping a mark without its time would let a prune delete them at once.
//!
//! **Snapshots.** For each snapshot that loses data (found by
//! [`check`](super::check::check)), a new snapshot is written whose tree
//! drops the damaged files and replaces folders whose listing is unreadable
//! by empty folders; everything else is the same blobs, so it stays
//! restorable bit for bit. The new snapshot keeps the original's time, host,
//! paths and tags, plus the tag `repaired`; the original is kept for the
//! user to forget.

use std::collections::{BTreeSet, HashMap, HashSet};

use rayon::prelude::*;

use crate::backend::FileKind;
use crate::error::{ErrorKind, Result};
use crate::format::index::{IndexDelta, PackIndex};
use crate::format::pack::BlobKind;
use crate::format::tree::{NodeKind, Tree};
use crate::id::{IndexId, PackId, SnapshotId, TreeId};
use crate::ops::check::{CheckReport, DamagedEntry, EntryKind, display_path};
use crate::pack::BlobSaver;
use crate::pack::read_trailer;
use crate::progress::Progress;
use crate::repo::Repository;

/// Tag of snapshots written by `snap repair snapshots`.
pub const REPAIRED_TAG: &str = "repaired";

/// Blobs per rebuilt index delta at most (a new delta starts at the next pack).
const BLOBS_PER_DELTA: usize = 1 << 16;

/// A pack the rebuilt index leaves out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeftOut {
    /// The pack.
    #[serde(serialize_with = "hex")]
    pub pack: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Why its blobs cannot be indexed.
    pub reason: String,
}

fn hex<S: serde::Serializer, T: std::fmt::Display>(
    id: &T,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&id.to_string())
}

/// What `snap repair index` will do.
#[derive(Debug, Clone)]
pub struct IndexPlan {
    /// Every pack the new index lists, by id.
    pub packs: Vec<PackIndex>,
    /// Packs with an unreadable trailer whose entries come from a readable old delta.
    pub salvaged: Vec<PackId>,
    /// Packs left out: trailer unreadable and no old entries.
    pub left_out: Vec<LeftOut>,
    /// Index deltas to remove once the new ones are written (damaged ones included).
    pub old_deltas: Vec<IndexId>,
    /// Old deltas that could not be read.
    pub damaged_deltas: Vec<IndexId>,
}

impl IndexPlan {
    /// Number of blob entries the new index holds.
    pub fn blobs(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }

    /// The new deltas, in the order they are written.
    fn deltas(&self) -> Vec<IndexDelta> {
        let mut deltas = Vec::new();
        let mut current = IndexDelta::default();
        let mut blobs = 0;
        for pack in &self.packs {
            if !current.packs.is_empty() && blobs + pack.blobs.len() > BLOBS_PER_DELTA {
                deltas.push(std::mem::take(&mut current));
                blobs = 0;
            }
            blobs += pack.blobs.len();
            current.packs.push(pack.clone());
        }
        if !current.packs.is_empty() {
            deltas.push(current);
        }
        deltas
    }

    /// How many index deltas the repair writes.
    pub fn new_delta_count(&self) -> usize {
        self.deltas().len()
    }
}

/// Reads every pack trailer (and every old delta) and plans the new index.
pub fn plan_index(repo: &Repository, progress: &dyn Progress) -> Result<IndexPlan> {
    repo.require_full_access("repair the index")?;
    let backend = repo.backend();
    let mut old_deltas: Vec<IndexId> = backend
        .list(FileKind::Index)?
        .into_iter()
        .filter_map(|(name, _)| IndexId::from_hex(&name).ok())
        .collect();
    old_deltas.sort();
    let read: Vec<_> = old_deltas
        .par_iter()
        .map(|id| (*id, repo.read_index(id)))
        .collect();
    let mut old_entries: HashMap<PackId, PackIndex> = HashMap::new();
    let mut damaged_deltas = Vec::new();
    for (id, delta) in read {
        match delta {
            Ok(delta) => {
                for pack in delta.packs {
                    old_entries.entry(pack.id).or_insert(pack);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                progress.warn(&format!("{e}"));
                damaged_deltas.push(id);
            }
            Err(e) => return Err(e),
        }
    }
    let mut packs_on_disk: Vec<(PackId, u64)> = backend
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| PackId::from_hex(&name).ok().map(|id| (id, size)))
        .collect();
    packs_on_disk.sort();
    let trailers: Vec<_> = packs_on_disk
        .par_iter()
        .map(|(id, size)| {
            let trailer = read_trailer(backend, repo.codec(), id, *size);
            progress.add_files(1);
            (*id, *size, trailer)
        })
        .collect();
    let mut plan = IndexPlan {
        packs: Vec::new(),
        salvaged: Vec::new(),
        left_out: Vec::new(),
        old_deltas,
        damaged_deltas,
    };
    for (id, size, trailer) in trailers {
        match trailer {
            Ok(trailer) => plan.packs.push(PackIndex {
                id,
                size,
                blobs: trailer.blobs,
            }),
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {
                match old_entries.remove(&id) {
                    Some(old) if old.size == size => {
                        plan.salvaged.push(id);
                        plan.packs.push(old);
                    }
                    _ => plan.left_out.push(LeftOut {
                        pack: id,
                        size,
                        reason: e.message().to_string(),
                    }),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(plan)
}

/// What `snap repair index` did.
#[derive(Debug, Clone)]
pub struct IndexRepairReport {
    /// The index deltas written.
    pub written: Vec<IndexId>,
    /// Old deltas removed.
    pub removed: u64,
}

/// Writes the planned deltas, removes the old ones, and rebuilds the cache.
pub fn repair_index(
    repo: &Repository,
    plan: &IndexPlan,
    progress: &dyn Progress,
) -> Result<IndexRepairReport> {
    repo.require_full_access("repair the index")?;
    // The index folder itself may be what was lost.
    repo.backend().create()?;
    let mut written = Vec::new();
    for delta in plan.deltas() {
        written.push(repo.write_index(&delta)?);
    }
    let keep: HashSet<IndexId> = written.iter().copied().collect();
    let mut removed = 0;
    for old in &plan.old_deltas {
        // A rebuilt delta can have exactly the bytes (and so the name) of an old one.
        if !keep.contains(old) {
            repo.backend().remove(FileKind::Index, &old.to_hex())?;
            removed += 1;
        }
    }
    repo.cache().clear()?;
    repo.sync_cache(progress)?;
    Ok(IndexRepairReport { written, removed })
}

/// How one snapshot will be repaired.
#[derive(Debug, Clone)]
pub struct SnapshotRepair {
    /// The damaged snapshot (kept).
    pub snapshot: SnapshotId,
    /// Files the repaired snapshot leaves out, as `snap ls` prints them.
    pub dropped: Vec<String>,
    /// Folders whose listing is lost, kept as empty folders (`/`: the root).
    pub emptied: Vec<String>,
    entries: BTreeSet<DamagedEntry>,
}

/// What `snap repair snapshots` will do.
#[derive(Debug, Clone, Default)]
pub struct SnapshotPlan {
    /// Snapshots to repair, oldest first.
    pub repairs: Vec<SnapshotRepair>,
    /// Snapshots whose own file is damaged: nothing to rebuild them from.
    pub unreadable: Vec<SnapshotId>,
}

/// Plans the repair of every snapshot that `report` found losing data.
pub fn plan_snapshots(report: &CheckReport) -> SnapshotPlan {
    let mut repairs = Vec::new();
    for (snapshot, entries) in &report.damaged {
        let mut dropped = Vec::new();
        let mut emptied = Vec::new();
        for entry in entries {
            match entry.kind {
                EntryKind::File => dropped.push(display_path(&entry.path)),
                EntryKind::Dir => emptied.push(display_path(&entry.path)),
            }
        }
        repairs.push(SnapshotRepair {
            snapshot: *snapshot,
            dropped,
            emptied,
            entries: entries.clone(),
        });
    }
    SnapshotPlan {
        repairs,
        unreadable: report.damaged_snapshots.clone(),
    }
}

/// One snapshot written by `snap repair snapshots`.
#[derive(Debug, Clone)]
pub struct RepairedSnapshot {
    /// The damaged original.
    pub original: SnapshotId,
    /// The new snapshot.
    pub repaired: SnapshotId,
}

/// Writes the repaired snapshots: new trees, then their packs and index,
/// then the snapshots.
pub fn repair_snapshots(
    repo: &Repository,
    plan: &SnapshotPlan,
    progress: &dyn Progress,
) -> Result<Vec<RepairedSnapshot>> {
    repo.require_full_access("repair snapshots")?;
    let saver = repo.saver();
    let mut rebuilder = Rebuilder {
        repo,
        saver: &saver,
        memo: HashMap::new(),
        empty: None,
    };
    let mut snapshots = Vec::new();
    let built: Result<()> = plan.repairs.iter().try_for_each(|repair| {
        let mut snapshot = repo.read_snapshot(&repair.snapshot)?;
        let damaged: Vec<(&[Vec<u8>], EntryKind)> = repair
            .entries
            .iter()
            .map(|e| (e.path.as_slice(), e.kind))
            .collect();
        let rebuilt = rebuilder.rebuild(&snapshot.tree, &damaged)?;
        snapshot.tree = match rebuilt.tree {
            Some(tree) => tree,
            None => rebuilder.save_empty()?,
        };
        let summary = &mut snapshot.summary;
        summary.files = summary.files.saturating_sub(rebuilt.files);
        summary.bytes = summary.bytes.saturating_sub(rebuilt.bytes);
        if !snapshot.tags.iter().any(|t| t == REPAIRED_TAG) {
            snapshot.tags.push(REPAIRED_TAG.to_string());
        }
        snapshot.program = format!("snap {}", env!("CARGO_PKG_VERSION"));
        snapshots.push((repair.snapshot, snapshot));
        Ok(())
    });
    // Whatever happened, what was stored gets indexed; snapshots come after.
    let flushed = saver.flush();
    built?;
    flushed?;
    let mut out = Vec::new();
    for (original, snapshot) in snapshots {
        let repaired = repo.write_snapshot(&snapshot)?;
        progress.message(&format!(
            "snapshot {} repaired as {}",
            original.short(),
            repaired.short()
        ));
        out.push(RepairedSnapshot { original, repaired });
    }
    Ok(out)
}

/// A rebuilt tree and what it left out.
struct Rebuilt {
    /// The new tree; `None` when even an empty folder cannot be stored
    /// because the empty tree's blob is itself damaged.
    tree: Option<TreeId>,
    /// Files dropped.
    files: u64,
    /// Their bytes.
    bytes: u64,
}

struct Rebuilder<'a, 'r> {
    repo: &'r Repository,
    saver: &'a BlobSaver<'r>,
    /// Rebuilt trees by original id: damage below a tree depends on its id only.
    memo: HashMap<TreeId, (Option<TreeId>, u64, u64)>,
    /// The empty tree, once known usable (`Some(None)`: its blob is damaged).
    empty: Option<Option<TreeId>>,
}

impl Rebuilder<'_, '_> {
    /// The empty tree's id, stored if the repository lacks it; `None` when
    /// the repository has it but damaged (the saver would not store it again).
    fn empty_tree(&mut self) -> Result<Option<TreeId>> {
        if let Some(known) = self.empty {
            return Ok(known);
        }
        let bytes = Tree::default().to_bytes();
        let id = self.repo.codec().id(&bytes);
        let usable = if self.repo.cache().lookup(&id)?.is_none() {
            Some(self.saver.save(BlobKind::Tree, &bytes)?)
        } else {
            self.repo.read_tree(&id).ok().map(|_| id)
        };
        self.empty = Some(usable);
        Ok(usable)
    }

    /// An empty root for a snapshot whose whole tree is lost.
    fn save_empty(&mut self) -> Result<TreeId> {
        match self.empty_tree()? {
            Some(id) => Ok(id),
            None => Err(crate::error::Error::corrupt(
                "the empty tree",
                "its blob is damaged, so no empty snapshot can be written; run `snap repair index` first",
            )),
        }
    }

    /// `tree` without the damaged entries (paths relative to it).
    fn rebuild(&mut self, tree: &TreeId, damaged: &[(&[Vec<u8>], EntryKind)]) -> Result<Rebuilt> {
        if let Some(&(tree, files, bytes)) = self.memo.get(tree) {
            return Ok(Rebuilt { tree, files, bytes });
        }
        if damaged.iter().any(|(path, _)| path.is_empty()) {
            return Ok(Rebuilt {
                tree: self.empty_tree()?,
                files: 0,
                bytes: 0,
            });
        }
        let original = self.repo.read_tree(tree)?;
        let mut nodes = Vec::with_capacity(original.nodes.len());
        let (mut files, mut bytes) = (0, 0);
        for mut node in original.nodes {
            let below: Vec<(&[Vec<u8>], EntryKind)> = damaged
                .iter()
                .filter(|(path, _)| path[0] == node.name)
                .map(|(path, kind)| (&path[1..], *kind))
                .collect();
            if below.is_empty() {
                nodes.push(node);
                continue;
            }
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(subtree)) => {
                    let rebuilt = self.rebuild(&subtree, &below)?;
                    files += rebuilt.files;
                    bytes += rebuilt.bytes;
                    if let Some(new) = rebuilt.tree {
                        node.subtree = Some(new);
                        nodes.push(node);
                    }
                }
                _ => {
                    files += u64::from(node.kind == NodeKind::File);
                    bytes += node.size;
                }
            }
        }
        let id = self
            .saver
            .save(BlobKind::Tree, &Tree { nodes }.to_bytes())?;
        self.memo.insert(*tree, (Some(id), files, bytes));
        Ok(Rebuilt {
            tree: Some(id),
            files,
            bytes,
        })
    }
}
