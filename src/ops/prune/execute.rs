//! Executing a prune plan: live blobs copied out of the packs that go,
//! marks, then (when no backup runs) index deltas rewritten and packs
//! deleted.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;

use super::PruneReport;
use super::live::LiveSet;
use super::plan::{PackUsage, PrunePlan, unloaded_deltas};
use crate::backend::FileKind;
use crate::error::{ErrorKind, Result};
use crate::format::index::{MarkedDelta, PackIndex};
use crate::id::{BlobId, IndexId, PackId, SnapshotId, TreeId};
use crate::pack::{BlobSaver, read_trailer};
use crate::progress::{Phase, Progress};
use crate::repo::Repository;

/// New packs per index delta while copying; the marks of the packs copied
/// out go into the delta that completes their copies.
const PACKS_PER_DELTA: usize = 256;

/// Copies live blobs out of the packs that need it through a repacking
/// [`BlobSaver`] (new packs, then the delta naming them), and marks packs
/// obsolete in the deltas that name their copies; returns what it wrote.
pub(super) fn copy_and_mark(
    repo: &Repository,
    plan: &PrunePlan,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<Written> {
    let saver = BlobSaver::repacking(repo);
    // After an error the saver is dropped unflushed: what it stored is named
    // by no delta, an orphan that the next prune deletes.
    report.blobs_copied += copy_all(repo, &saver, plan, progress)?;
    saver.flush()?;
    let log = saver.log();
    report.packs_written += log.packs.len() as u64;
    report.bytes_written += log.packs.iter().map(|(_, size)| size).sum::<u64>();
    report.deltas_written += log.deltas.len() as u64;
    report.packs_marked += log.marked;
    Ok(Written {
        deltas: log.deltas,
        packs: log.packs.into_iter().map(|(id, _)| id).collect(),
    })
}

/// Copies the live blobs of every pack whose fate says so, writing a delta
/// with their marks every [`PACKS_PER_DELTA`] new packs and at the end (with
/// the marks of the packs that are only marked); returns the blobs copied.
fn copy_all(
    repo: &Repository,
    saver: &BlobSaver<'_>,
    plan: &PrunePlan,
    progress: &dyn Progress,
) -> Result<u64> {
    let marked_at = crate::lock::now_s();
    let mut copied = 0;
    let mut marks = Vec::new();
    let copying = || plan.packs.iter().filter(|p| p.fate.copy);
    progress.found(
        copying().count() as u64,
        copying().map(|p| p.usage.live_bytes).sum(),
    );
    progress.phase(Phase::Working);
    for pack in copying() {
        progress.current(&pack.usage.id.to_hex());
        copied += copy_live(repo, saver, &plan.live, &pack.usage, progress)?;
        progress.add_files(1);
        // Marked again when rescued: the mark must come with the copies (its
        // time stays the earliest of its marks).
        marks.push(pack.usage.id);
        if saver.unindexed_packs() >= PACKS_PER_DELTA {
            saver.index_with_marks(std::mem::take(&mut marks), marked_at)?;
        }
    }
    marks.extend(
        plan.packs
            .iter()
            .filter(|p| p.fate.mark && !p.fate.copy)
            .map(|p| p.usage.id),
    );
    saver.index_with_marks(marks, marked_at)?;
    Ok(copied)
}

/// Copies the live blobs stored in `pack` (where the index places them),
/// frames as they are, after checking each against its id; returns how
/// many it copied.
fn copy_live(
    repo: &Repository,
    saver: &BlobSaver<'_>,
    live: &LiveSet,
    pack: &PackUsage,
    progress: &dyn Progress,
) -> Result<u64> {
    let trailer = read_trailer(repo.backend(), repo.codec(), &pack.id, pack.size)?;
    let ids: Vec<BlobId> = trailer.blobs.iter().map(|entry| entry.id).collect();
    let mut copied = 0;
    for (id, is_live) in ids.iter().zip(live.contains_each(&ids)?) {
        if !is_live {
            continue;
        }
        // A data chunk stored in several packs is copied from the one the
        // index names; elsewhere it is a duplicate. Every copy of a tree,
        // list or dictionary is one of its two.
        let Some(location) = repo.cache().lookup(id)? else {
            continue;
        };
        let location = if location.pack == pack.id {
            location
        } else if let Some(copy) = repo
            .cache()
            .copies(id)?
            .into_iter()
            .find(|l| l.pack == pack.id)
        {
            copy
        } else {
            continue;
        };
        // A tree or list damaged here is copied from its other copy.
        let (location, frame) = repo.read_verified_frame(id, &location)?;
        if saver.save_frame(location.kind, *id, &frame, location.raw_length)? {
            copied += 1;
        }
        // Counted when already saved too: the total is every live blob.
        progress.add_bytes(u64::from(location.length));
    }
    Ok(copied)
}

/// What [`copy_and_mark`] wrote.
pub(super) struct Written {
    /// Index deltas.
    deltas: Vec<IndexId>,
    /// Packs.
    packs: BTreeSet<PackId>,
}

/// Deletes the packs the plan gives up, unless a backup is running: first
/// the index deltas (the plan's and `written`, this run's) are rewritten
/// without them, then the packs go.
pub(super) fn delete_garbage(
    repo: &Repository,
    plan: PrunePlan,
    written: &Written,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<()> {
    let mut doomed: BTreeSet<PackId> = plan
        .packs
        .iter()
        .filter(|p| p.fate.delete)
        .map(|p| p.usage.id)
        .collect();
    // Copying every blob of an unencrypted pack alone makes that very pack
    // again (packs are named by their content): it is live, not garbage.
    // It stays, and its marks go (dropping a mark never endangers data).
    let reborn: BTreeSet<PackId> = plan
        .packs
        .iter()
        .filter(|p| p.usage.marked_at.is_some() || p.fate.mark)
        .map(|p| p.usage.id)
        .filter(|id| written.packs.contains(id))
        .collect();
    if !reborn.is_empty() {
        doomed.retain(|id| !reborn.contains(id));
        let mut marking = BTreeSet::new();
        for cached in repo.cache().packs()? {
            if reborn.contains(&cached.id) {
                marking.extend(cached.marked_by.iter().copied());
            }
        }
        for id in &marking {
            rewrite_delta(repo, id, &reborn, Rewrite::Marks, report)?;
        }
    }
    // A pack that was gone and that this run wrote again (the second copy
    // of metadata, rewritten byte for byte) is back: not vanished.
    let vanished: Vec<PackId> = plan
        .vanished
        .iter()
        .filter(|id| !written.packs.contains(id))
        .copied()
        .collect();
    let mut orphans: BTreeMap<PackId, u64> = plan.orphans.iter().copied().collect();
    if doomed.is_empty() && orphans.is_empty() && vanished.is_empty() && plan.stale_marks.is_empty()
    {
        return Ok(());
    }
    if let Some(reason) = backups_running(repo)? {
        report.deferred = Some(reason);
        return Ok(());
    }
    // Snapshots written since the plan was made: a backup that ran while
    // the plan was made may have reused blobs of packs about to go.
    let new: Vec<SnapshotId> = repo
        .snapshot_ids()?
        .into_iter()
        .filter(|id| !plan.snapshot_ids.contains(id))
        .collect();
    if !new.is_empty() {
        repo.sync_cache(progress)?;
        let mut roots: Vec<TreeId> = Vec::new();
        for id in &new {
            match repo.read_snapshot(id) {
                Ok(snapshot) => roots.push(snapshot.tree),
                // Forgotten again since the listing.
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let before = doomed.len();
        plan.live.add(repo, roots, |blob| {
            if let Some(location) = repo.cache().lookup(blob)? {
                doomed.remove(&location.pack);
            }
            for copy in repo.cache().copies(blob)? {
                doomed.remove(&copy.pack);
            }
            Ok(())
        })?;
        report.packs_kept_for_new_snapshots = (before - doomed.len()) as u64;
        for pack in repo.cache().packs()? {
            orphans.remove(&pack.id);
        }
    }
    let gone: BTreeSet<PackId> = doomed
        .iter()
        .chain(&vanished)
        .chain(plan.stale_marks.iter().map(|(p, _)| p))
        .copied()
        .collect();
    // Every delta that names a pack that goes: as the cache knows them now
    // (with this run's deltas and those loaded since the plan).
    let mut affected: BTreeSet<IndexId> = plan.stale_marks.iter().map(|(_, d)| *d).collect();
    affected.extend(&written.deltas);
    for cached in repo.cache().packs()? {
        if doomed.contains(&cached.id) || vanished.contains(&cached.id) {
            affected.extend(cached.listed_in.iter().chain(&cached.marked_by));
        }
    }
    // First no delta may name a pack that goes, and only then may the marks
    // of those packs go: a backup's cache that loaded a delta naming such a
    // pack must also find its mark, or it would reuse a blob from it.
    let mut marking = BTreeSet::new();
    for id in &affected {
        marking.extend(rewrite_delta(repo, id, &gone, Rewrite::Packs, report)?);
    }
    for id in &marking {
        rewrite_delta(repo, id, &gone, Rewrite::Marks, report)?;
    }
    // Backups that started while the deltas were rewritten may still read
    // from the old packs through their caches.
    if let Some(reason) = backups_running(repo)? {
        report.deferred = Some(reason);
        return Ok(());
    }
    forget_indexed_orphans(repo, &mut orphans)?;
    let victims: Vec<(PackId, u64)> = doomed
        .iter()
        .map(|id| (*id, plan.cached.get(id).map_or(0, |p| p.size)))
        .chain(orphans)
        .collect();
    // Groups are re-formed before their members go, so no parity object
    // ever names a deleted pack, whenever a crash comes.
    let going: std::collections::HashSet<PackId> = victims.iter().map(|(id, _)| *id).collect();
    crate::ops::parity::regroup_without(repo, &going)?;
    victims
        .par_iter()
        .try_for_each(|(id, _)| repo.backend().remove(FileKind::Pack, &id.to_hex()))?;
    report.packs_deleted = victims.len() as u64;
    report.bytes_deleted = victims.iter().map(|(_, size)| size).sum();
    Ok(())
}

/// Why deletion must wait, when backups are running.
fn backups_running(repo: &Repository) -> Result<Option<String>> {
    let running = repo.running_backups()?;
    let Some((name, lock)) = running.first() else {
        return Ok(None);
    };
    let who = match lock {
        Ok(lock) => format!("a backup on {} (pid {}) is running", lock.host, lock.pid),
        Err(e) => format!(
            "lock {name} cannot be read ({}); remove locks/{name} if no snap process is running",
            e.message()
        ),
    };
    Ok(Some(format!(
        "{who}, so no pack was deleted; run prune again when no backup is running"
    )))
}

/// Which part of a delta [`rewrite_delta`] drops the packs that go from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rewrite {
    /// `packs`: the delta no longer names them (their marks stay).
    Packs,
    /// `obsolete`: their marks go.
    Marks,
}

/// Writes delta `id` again without the packs in `gone` (in `packs` or in
/// `obsolete`, as `part` says), then removes the old one; removes it when
/// nothing is left. Returns the delta (the old or its successor) that
/// still marks packs in `gone`, if any.
fn rewrite_delta(
    repo: &Repository,
    id: &IndexId,
    gone: &BTreeSet<PackId>,
    part: Rewrite,
    report: &mut PruneReport,
) -> Result<Option<IndexId>> {
    let delta = match repo.read_marked_delta(id) {
        Ok(delta) => delta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let packs: Vec<PackIndex> = delta
        .packs
        .iter()
        .filter(|p| part == Rewrite::Marks || !gone.contains(&p.id))
        .cloned()
        .collect();
    let obsolete: Vec<PackId> = delta
        .obsolete
        .iter()
        .filter(|p| part == Rewrite::Packs || !gone.contains(p))
        .copied()
        .collect();
    let marks_gone = obsolete.iter().any(|p| gone.contains(p));
    if packs.len() == delta.packs.len() && obsolete.len() == delta.obsolete.len() {
        return Ok(marks_gone.then_some(*id));
    }
    let mut successor = None;
    if !packs.is_empty() || !obsolete.is_empty() {
        let marked_at = delta.marked_at.filter(|_| !obsolete.is_empty());
        successor = Some(repo.write_marked_delta(&MarkedDelta {
            packs,
            obsolete,
            marked_at,
        })?);
        report.deltas_written += 1;
    }
    repo.backend().remove(FileKind::Index, &id.to_hex())?;
    report.deltas_deleted += 1;
    Ok(successor.filter(|_| marks_gone))
}

/// Drops from `orphans` the packs that index deltas written since the cache
/// was synced name (a backup that finished meanwhile).
fn forget_indexed_orphans(repo: &Repository, orphans: &mut BTreeMap<PackId, u64>) -> Result<()> {
    if orphans.is_empty() {
        return Ok(());
    }
    for id in unloaded_deltas(repo)? {
        match repo.read_index(&id) {
            Ok(delta) => {
                for pack in delta.packs {
                    orphans.remove(&pack.id);
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            // An unreadable delta might name any pack: delete no orphan.
            Err(_) => orphans.clear(),
        }
    }
    Ok(())
}
