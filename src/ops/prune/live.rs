//! The live set: every blob reachable from a snapshot.

use std::collections::HashSet;
use std::path::Path;

use rayon::prelude::*;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use super::TEMP_PREFIX;
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::BlobKind;
use crate::format::tree::ChunkList;
use crate::id::{BlobId, PackId, SnapshotId, TreeId};
use crate::index::BlobRow;
use crate::repo::Repository;

use super::plan::PackUsage;

/// Trees or chunk lists read in parallel at a time during the walk.
const WALK_BATCH: usize = 256;

/// Every snapshot's root tree. Unlike [`Repository::snapshots`], a
/// snapshot that cannot be read is an error: prune cannot know what it uses.
pub(super) fn read_snapshots(repo: &Repository) -> Result<Vec<(SnapshotId, TreeId)>> {
    let read: Vec<Option<(SnapshotId, TreeId)>> = repo
        .snapshot_ids()?
        .par_iter()
        .map(|id| match repo.read_snapshot(id) {
            Ok(snapshot) => Ok(Some((*id, snapshot.tree))),
            // Forgotten since the listing.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::new(
                e.kind(),
                format!(
                    "{}; prune stops, because it cannot know which data that snapshot uses: repair or forget it first",
                    e.message()
                ),
            )),
        })
        .collect::<Result<_>>()?;
    Ok(read.into_iter().flatten().collect())
}

/// blob id -> () for every live blob.
const LIVE: TableDefinition<[u8; 32], ()> = TableDefinition::new("live");

/// The live set: a redb table in a temporary folder, so that memory does
/// not grow with the number of blobs.
pub(super) struct LiveSet {
    db: Database,
    dir: tempfile::TempDir,
}

impl LiveSet {
    pub(super) fn create(parent: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
            .tempdir_in(parent)
            .map_err(|e| Error::io("cannot create a temporary folder in", parent, e))?;
        let path = dir.path().join("live.redb");
        let db = redb::Builder::new()
            .set_cache_size(64 << 20)
            .create(&path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("live set {}: {e}", path.display())))?;
        let set = Self { db, dir };
        let txn = set.db.begin_write().map_err(|e| set.err(e))?;
        txn.open_table(LIVE).map_err(|e| set.err(e))?;
        txn.commit().map_err(|e| set.err(e))?;
        Ok(set)
    }

    /// Whether each of `ids` is live, in one read transaction.
    pub(super) fn contains_each(&self, ids: &[BlobId]) -> Result<Vec<bool>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(LIVE).map_err(|e| self.err(e))?;
        ids.iter()
            .map(|id| {
                let row = table.get(id.0).map_err(|e| self.err(e))?;
                Ok(row.is_some())
            })
            .collect()
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Io,
            format!("live set in {}: {e}", self.dir.path().display()),
        )
    }

    /// Adds everything reachable from `roots`, reading each tree and chunk
    /// list once; calls `on_new` for every blob not in the set before.
    pub(super) fn add(
        &self,
        repo: &Repository,
        roots: impl IntoIterator<Item = TreeId>,
        mut on_new: impl FnMut(&BlobId) -> Result<()>,
    ) -> Result<()> {
        let mut trees: Vec<TreeId> = Vec::new();
        // (list blob, its depth): depth 0 lists data chunks.
        let mut lists: Vec<(BlobId, u8)> = Vec::new();
        let roots: Vec<TreeId> = roots.into_iter().collect();
        self.insert_batch(
            |insert| {
                for root in &roots {
                    if insert(root)? {
                        trees.push(*root);
                    }
                }
                Ok(())
            },
            &mut on_new,
        )?;
        while !trees.is_empty() || !lists.is_empty() {
            if !lists.is_empty() {
                let batch = lists.split_off(lists.len().saturating_sub(WALK_BATCH));
                let read: Vec<Result<ChunkList>> = batch
                    .par_iter()
                    .map(|(id, _)| ChunkList::from_bytes(id, &repo.read_blob(id)?))
                    .collect();
                self.insert_batch(
                    |insert| {
                        for ((_, depth), list) in batch.iter().zip(read) {
                            for child in list?.ids {
                                if insert(&child)? && *depth > 0 {
                                    lists.push((child, depth - 1));
                                }
                            }
                        }
                        Ok(())
                    },
                    &mut on_new,
                )?;
                continue;
            }
            let batch = trees.split_off(trees.len().saturating_sub(WALK_BATCH));
            let read: Vec<Result<crate::format::tree::Tree>> =
                batch.par_iter().map(|id| repo.read_tree(id)).collect();
            self.insert_batch(
                |insert| {
                    for tree in read {
                        for node in tree?.nodes {
                            if let Some(subtree) = node.subtree
                                && insert(&subtree)?
                            {
                                trees.push(subtree);
                            }
                            if let Some(dictionary) = &node.dictionary {
                                insert(dictionary)?;
                            }
                            for id in &node.content {
                                if insert(id)? && node.content_depth > 0 {
                                    lists.push((*id, node.content_depth - 1));
                                }
                            }
                        }
                    }
                    Ok(())
                },
                &mut on_new,
            )?;
        }
        Ok(())
    }

    /// Runs `fill` in one write transaction (not made durable: the set only
    /// lives as long as the prune), giving it an `insert` that says whether
    /// a blob is new.
    fn insert_batch(
        &self,
        fill: impl FnOnce(&mut dyn FnMut(&BlobId) -> Result<bool>) -> Result<()>,
        on_new: &mut dyn FnMut(&BlobId) -> Result<()>,
    ) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::None);
        {
            let mut table = txn.open_table(LIVE).map_err(|e| self.err(e))?;
            let mut insert = |id: &BlobId| -> Result<bool> {
                if table.insert(id.0, ()).map_err(|e| self.err(e))?.is_some() {
                    return Ok(false);
                }
                on_new(id)?;
                Ok(true)
            };
            fill(&mut insert)?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Walks the live set and the cache's blob table side by side (both are
    /// sorted by id) and adds each blob's bytes to the live or dead count of
    /// every pack holding a copy of it (trees and chunk lists
    /// have two) that holds it: one in `on_disk` and not `marked` obsolete,
    /// else any on disk (it is rescued from there), else it counts as lost
    /// in its packs. With `twice`, a tree or chunk list with one
    /// holding copy counts as stored once in its pack. Returns
    /// the number of live blobs and one live blob that no index names, if
    /// any.
    pub(super) fn count_usage(
        &self,
        repo: &Repository,
        usage: &mut [PackUsage],
        on_disk: &HashSet<PackId>,
        marked: &HashSet<PackId>,
        twice: bool,
    ) -> Result<(u64, Option<BlobId>)> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(LIVE).map_err(|e| self.err(e))?;
        let mut live = table.iter().map_err(|e| self.err(e))?;
        let next = |live: &mut redb::Range<'_, [u8; 32], ()>| -> Result<Option<[u8; 32]>> {
            live.next()
                .transpose()
                .map_err(|e| self.err(e))
                .map(|row| row.map(|(k, _)| k.value()))
        };
        let mut current = next(&mut live)?;
        let mut count = 0u64;
        let mut missing = None;
        repo.cache().visit_blobs(|row| {
            while let Some(id) = current
                && id < row.id.0
            {
                missing.get_or_insert(BlobId(id));
                current = next(&mut live)?;
            }
            let is_live = current == Some(row.id.0);
            if is_live {
                count += 1;
                current = next(&mut live)?;
            }
            let mut copies = vec![row];
            if row.kind != BlobKind::Data {
                for copy in repo.cache().copy_rows(&row.id)? {
                    if copies.iter().all(|c| c.pack != copy.pack) {
                        copies.push(copy);
                    }
                }
            }
            // The copies that hold a live blob: those in packs on disk that
            // no prune marked, or, when there are none, the marked ones (to
            // be rescued); the others count as dead where they are.
            let pack_of = |c: &BlobRow| usage.get(c.pack as usize).map(|u| u.id);
            let stored = |c: &BlobRow| pack_of(c).is_some_and(|id| on_disk.contains(&id));
            let good =
                |c: &BlobRow| stored(c) && pack_of(c).is_some_and(|id| !marked.contains(&id));
            let good_count = copies.iter().filter(|c| good(c)).count();
            let kept = copies.iter().filter(|c| stored(c)).count();
            let holds: Vec<bool> = copies
                .iter()
                .map(|c| {
                    if good_count > 0 {
                        good(c)
                    } else {
                        kept == 0 || stored(c)
                    }
                })
                .collect();
            for (copy, holds) in copies.iter().zip(holds) {
                let Some(u) = usage.get_mut(copy.pack as usize) else {
                    continue;
                };
                if is_live && holds {
                    u.live_blobs += 1;
                    u.live_bytes += u64::from(copy.length);
                    if kept == 0 {
                        u.lost_blobs += 1;
                    } else if good_count == 1 && twice && row.kind != BlobKind::Data {
                        u.stored_once += 1;
                    }
                } else {
                    u.dead_blobs += 1;
                    u.dead_bytes += u64::from(copy.length);
                }
            }
            Ok(())
        })?;
        if let Some(id) = current {
            missing.get_or_insert(BlobId(id));
        }
        Ok((count, missing))
    }
}
