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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use rayon::prelude::*;
use redb::{Database, Durability, ReadableTable, TableDefinition};

use crate::backend::FileKind;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::{IndexDelta, MarkedDelta, PackIndex};
use crate::format::pack::BlobKind;
use crate::format::tree::ChunkList;
use crate::id::{BlobId, IndexId, PackId, SnapshotId, TreeId};
use crate::index::CachedPack;
use crate::lock::RepoLock;
use crate::pack::{PackWriter, read_trailer};
use crate::progress::Progress;
use crate::repo::Repository;

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

/// How much of a pack is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PackUsage {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Live blobs stored in it (blobs stored in several packs count in one).
    pub live_blobs: u64,
    /// Their frame bytes.
    pub live_bytes: u64,
    /// Blobs no snapshot uses.
    pub dead_blobs: u64,
    /// Their frame bytes.
    pub dead_bytes: u64,
    /// When a prune marked it obsolete (seconds since the Unix epoch).
    pub marked_at: Option<i64>,
}

impl PackUsage {
    /// Dead bytes as a share of the blob bytes.
    pub fn dead_share(&self) -> f64 {
        let total = self.live_bytes + self.dead_bytes;
        if total == 0 {
            1.0
        } else {
            self.dead_bytes as f64 / total as f64
        }
    }
}

/// What happens to a pack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Fate {
    /// Its live blobs are copied into new packs.
    pub copy: bool,
    /// It is marked obsolete in this run.
    pub mark: bool,
    /// It is deleted in this run.
    pub delete: bool,
}

/// Decides what happens to a pack, `now` being seconds since the epoch.
pub fn fate(usage: &PackUsage, now: i64, options: &PruneOptions) -> Fate {
    match usage.marked_at {
        Some(marked_at) => {
            let grace = i64::try_from(options.grace.as_secs()).unwrap_or(i64::MAX);
            Fate {
                copy: usage.live_blobs > 0,
                mark: false,
                delete: options.instant_delete || now.saturating_sub(marked_at) >= grace,
            }
        }
        None if usage.live_blobs == 0 => Fate {
            copy: false,
            mark: true,
            delete: options.instant_delete,
        },
        None if usage.dead_share() > options.max_unused => Fate {
            copy: true,
            mark: true,
            delete: options.instant_delete,
        },
        None => Fate::default(),
    }
}

/// A pack of the index and its fate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedPack {
    /// How much of it is live.
    pub usage: PackUsage,
    /// What happens to it.
    pub fate: Fate,
}

/// What `prune` will do. Made by [`prune_plan`], executed by [`prune`].
pub struct PrunePlan {
    /// Snapshots whose blobs are live.
    pub snapshots: usize,
    /// Distinct live blobs.
    pub live_blobs: u64,
    /// Every pack the index names that is in the repository.
    pub packs: Vec<PlannedPack>,
    /// Packs no index delta names (left by killed processes): deleted.
    pub orphans: Vec<(PackId, u64)>,
    /// Packs the index names that are gone, holding nothing live: dropped
    /// from the index.
    pub vanished: Vec<PackId>,
    /// When the plan was made, seconds since the epoch.
    pub now: i64,
    /// The options it was made with.
    pub options: PruneOptions,
    live: LiveSet,
    snapshot_ids: HashSet<SnapshotId>,
    cached: HashMap<PackId, CachedPack>,
    stale_marks: Vec<(PackId, IndexId)>,
    lock: Option<RepoLock>,
}

/// Totals of a plan, for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanTotals {
    /// Packs left as they are.
    pub keep_packs: u64,
    /// Their bytes.
    pub keep_bytes: u64,
    /// Packs whose live blobs are copied.
    pub copy_packs: u64,
    /// Frame bytes copied.
    pub copy_bytes: u64,
    /// Packs marked obsolete in this run.
    pub mark_packs: u64,
    /// Their bytes.
    pub mark_bytes: u64,
    /// Packs deleted in this run (orphans included).
    pub delete_packs: u64,
    /// Their bytes.
    pub delete_bytes: u64,
    /// Marked packs left for a later prune.
    pub waiting_packs: u64,
    /// Their bytes.
    pub waiting_bytes: u64,
    /// Bytes given back in this run: deleted minus copied.
    pub bytes_freed: u64,
}

impl PrunePlan {
    /// Totals for a summary.
    pub fn totals(&self) -> PlanTotals {
        let mut t = PlanTotals::default();
        for pack in &self.packs {
            let (fate, size) = (pack.fate, pack.usage.size);
            if fate == Fate::default() && pack.usage.marked_at.is_none() {
                t.keep_packs += 1;
                t.keep_bytes += size;
            }
            if fate.copy {
                t.copy_packs += 1;
                t.copy_bytes += pack.usage.live_bytes;
            }
            if fate.mark {
                t.mark_packs += 1;
                t.mark_bytes += size;
            }
            if fate.delete {
                t.delete_packs += 1;
                t.delete_bytes += size;
            } else if fate.mark || pack.usage.marked_at.is_some() {
                t.waiting_packs += 1;
                t.waiting_bytes += size;
            }
        }
        for (_, size) in &self.orphans {
            t.delete_packs += 1;
            t.delete_bytes += size;
        }
        t.bytes_freed = t.delete_bytes.saturating_sub(t.copy_bytes);
        t
    }

    /// When a marked pack that waits may be deleted (seconds since the epoch).
    pub fn deletable_after(&self, pack: &PlannedPack) -> Option<i64> {
        let grace = i64::try_from(self.options.grace.as_secs()).unwrap_or(i64::MAX);
        if pack.fate.delete {
            return None;
        }
        match (pack.usage.marked_at, pack.fate.mark) {
            (Some(at), _) => Some(at.saturating_add(grace)),
            (None, true) => Some(self.now.saturating_add(grace)),
            (None, false) => None,
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

/// New packs per index delta while copying; the marks of the packs copied
/// out go into the delta that completes their copies.
const PACKS_PER_DELTA: usize = 256;

/// Trees or chunk lists read in parallel at a time during the walk.
const WALK_BATCH: usize = 256;

/// Prefix of prune's temporary folders, followed by its process id.
const TEMP_PREFIX: &str = "prune-";

/// Plans a prune: which blobs are live, what happens to each pack. Unless
/// `options.dry_run`, takes the prune lock, held until the plan is executed
/// or dropped.
///
/// Run it on a repository opened through
/// [`crate::backend::PrivateCache`], so that backups do not wait for the
/// index cache meanwhile.
pub fn prune_plan(
    repo: &Repository,
    options: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PrunePlan> {
    repo.require_full_access("prune")?;
    let lock = if options.dry_run {
        None
    } else {
        let lock = repo.lock_prune()?;
        repo.clean_temp();
        crate::lock::clean_dead_temp(
            repo.backend().temp_dir(),
            &[TEMP_PREFIX, crate::backend::private_cache::TEMP_PREFIX],
        );
        Some(lock)
    };
    let now = crate::lock::now_s();
    let snapshots = read_snapshots(repo)?;
    // Deltas are written before the snapshots that need them: syncing after
    // listing makes every blob of a listed snapshot known.
    repo.sync_cache(progress)?;
    refuse_damaged_deltas(repo)?;
    let live = LiveSet::create(repo.backend().temp_dir())?;
    live.add(repo, snapshots.iter().map(|(_, tree)| *tree), |_| Ok(()))?;

    let cached = repo.cache().packs()?;
    let size = cached
        .iter()
        .map(|p| p.number as usize + 1)
        .max()
        .unwrap_or(0);
    let mut usage: Vec<PackUsage> = vec![
        PackUsage {
            id: PackId([0; 32]),
            size: 0,
            live_blobs: 0,
            live_bytes: 0,
            dead_blobs: 0,
            dead_bytes: 0,
            marked_at: None,
        };
        size
    ];
    for pack in &cached {
        let u = &mut usage[pack.number as usize];
        u.id = pack.id;
        u.size = pack.size;
    }
    let (live_blobs, missing) = live.count_usage(repo, &mut usage)?;
    if let Some(missing) = missing {
        return Err(Error::corrupt(
            format!("blob {missing}"),
            "a snapshot uses it but no index delta names it, so prune stops before it makes anything worse; run `snap check`",
        ));
    }

    let marks = repo.cache().marks()?;
    let marked_at = mark_times(repo, &marks)?;
    let on_disk: HashMap<PackId, u64> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| PackId::from_hex(&name).ok().map(|id| (id, size)))
        .collect();
    let mut packs = Vec::with_capacity(cached.len());
    let mut vanished = Vec::new();
    for pack in &cached {
        let mut u = usage[pack.number as usize];
        u.marked_at = pack
            .marked_by
            .iter()
            .filter_map(|d| marked_at.get(d))
            .min()
            .copied();
        if !on_disk.contains_key(&pack.id) {
            if u.live_blobs > 0 {
                return Err(Error::corrupt(
                    format!("pack {}", pack.id),
                    format!(
                        "the index names it and {} live blobs are stored only there, but it is not in data/; prune stops, run `snap check`",
                        u.live_blobs
                    ),
                ));
            }
            vanished.push(pack.id);
            continue;
        }
        packs.push(PlannedPack {
            fate: fate(&u, now, options),
            usage: u,
        });
    }
    let cached: HashMap<PackId, CachedPack> = cached.into_iter().map(|p| (p.id, p)).collect();
    let mut orphans: Vec<(PackId, u64)> = on_disk
        .iter()
        .filter(|(id, _)| !cached.contains_key(id))
        .map(|(id, size)| (*id, *size))
        .collect();
    orphans.sort();
    let stale_marks = marks
        .into_iter()
        .filter(|(pack, _)| !cached.contains_key(pack))
        .collect();
    Ok(PrunePlan {
        snapshots: snapshots.len(),
        live_blobs,
        packs,
        orphans,
        vanished,
        now,
        options: options.clone(),
        live,
        snapshot_ids: snapshots.into_iter().map(|(id, _)| id).collect(),
        cached,
        stale_marks,
        lock,
    })
}

/// Fails when an index delta cannot be read (the cache sync skips those
/// with a warning): prune could neither see the packs it names nor rewrite it.
fn refuse_damaged_deltas(repo: &Repository) -> Result<()> {
    let loaded = repo.cache().loaded_deltas()?;
    for (name, _) in repo.backend().list(FileKind::Index)? {
        let Ok(id) = IndexId::from_hex(&name) else {
            continue;
        };
        if loaded.contains(&id) {
            continue;
        }
        match repo.read_index(&id) {
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "{}; prune stops before it deletes anything that delta names: run `snap repair index` first",
                        e.message()
                    ),
                ));
            }
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            // Written or removed since the sync: not damage.
            _ => {}
        }
    }
    Ok(())
}

/// Every snapshot's root tree. Unlike [`Repository::snapshots`], a
/// snapshot that cannot be read is an error: prune cannot know what it uses.
fn read_snapshots(repo: &Repository) -> Result<Vec<(SnapshotId, TreeId)>> {
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

/// The time of each marking delta; a mark without a time counts as old.
fn mark_times(repo: &Repository, marks: &[(PackId, IndexId)]) -> Result<HashMap<IndexId, i64>> {
    let deltas: BTreeSet<IndexId> = marks.iter().map(|(_, d)| *d).collect();
    deltas
        .into_par_iter()
        .map(|id| {
            let delta = repo.read_marked_delta(&id)?;
            Ok((id, delta.marked_at.unwrap_or(0)))
        })
        .collect()
}

/// Executes a plan made by [`prune_plan`] (not a dry-run plan).
pub fn prune(repo: &Repository, plan: PrunePlan, progress: &dyn Progress) -> Result<PruneReport> {
    if plan.lock.is_none() {
        return Err(Error::usage(
            "this prune plan was made for a dry run and holds no lock; plan again to prune",
        ));
    }
    let mut report = PruneReport::default();
    let written = copy_and_mark(repo, &plan, &mut report, progress)?;
    delete_garbage(repo, plan, &written, &mut report, progress)?;
    Ok(report)
}

/// Copies live blobs out of the packs that need it, then writes the index
/// deltas naming the new packs and marking packs obsolete; returns them.
fn copy_and_mark(
    repo: &Repository,
    plan: &PrunePlan,
    report: &mut PruneReport,
    progress: &dyn Progress,
) -> Result<Written> {
    let marked_at = crate::lock::now_s();
    let mut copier = Copier {
        repo,
        data: None,
        meta: None,
        stored: Vec::new(),
        marks: Vec::new(),
        marked_at,
        written: Vec::new(),
        new_packs: BTreeSet::new(),
        report,
    };
    for pack in plan.packs.iter().filter(|p| p.fate.copy) {
        copier.copy_live(&plan.live, &pack.usage, progress)?;
        // Marked again when rescued: the mark must come with the copies (its
        // time stays the earliest of its marks).
        copier.marks.push(pack.usage.id);
        if copier.stored.len() >= PACKS_PER_DELTA {
            copier.write_delta()?;
        }
    }
    copier.seal_open()?;
    copier.marks.extend(
        plan.packs
            .iter()
            .filter(|p| p.fate.mark && !p.fate.copy)
            .map(|p| p.usage.id),
    );
    copier.write_delta()?;
    Ok(Written {
        deltas: copier.written,
        packs: copier.new_packs,
    })
}

/// What [`copy_and_mark`] wrote.
struct Written {
    /// Index deltas.
    deltas: Vec<IndexId>,
    /// Packs.
    packs: BTreeSet<PackId>,
}

struct Copier<'a> {
    repo: &'a Repository,
    data: Option<PackWriter>,
    meta: Option<PackWriter>,
    stored: Vec<PackIndex>,
    marks: Vec<PackId>,
    marked_at: i64,
    written: Vec<IndexId>,
    new_packs: BTreeSet<PackId>,
    report: &'a mut PruneReport,
}

impl Copier<'_> {
    /// Copies the live blobs stored in `pack` (where the index places them),
    /// frames as they are, after checking each against its id.
    fn copy_live(
        &mut self,
        live: &LiveSet,
        pack: &PackUsage,
        progress: &dyn Progress,
    ) -> Result<()> {
        let repo = self.repo;
        let trailer = read_trailer(repo.backend(), repo.codec(), &pack.id, pack.size)?;
        let name = pack.id.to_hex();
        let txn = live.db.begin_read().map_err(|e| live.err(e))?;
        let table = txn.open_table(LIVE).map_err(|e| live.err(e))?;
        for entry in &trailer.blobs {
            if table.get(entry.id.0).map_err(|e| live.err(e))?.is_none() {
                continue;
            }
            // A blob stored in several packs is copied from the one the
            // index names; elsewhere it is a duplicate.
            if repo
                .cache()
                .lookup(&entry.id)?
                .is_none_or(|l| l.pack != pack.id)
            {
                continue;
            }
            let frame = repo.backend().read_range(
                FileKind::Pack,
                &name,
                u64::from(entry.offset),
                entry.length,
            )?;
            repo.decode_blob(&entry.id, &frame, entry.raw_length)?;
            let slot = if entry.kind == BlobKind::Data {
                &mut self.data
            } else {
                &mut self.meta
            };
            if slot.is_none() {
                *slot = Some(repo.new_pack()?);
            }
            let writer = slot.as_mut().expect("just created");
            writer.add(entry.id, entry.kind, &frame, entry.raw_length)?;
            self.report.blobs_copied += 1;
            progress.add_bytes(u64::from(entry.length));
            if writer.is_full() {
                let full = slot.take().expect("present");
                self.store(full)?;
            }
        }
        Ok(())
    }

    fn store(&mut self, writer: PackWriter) -> Result<()> {
        let pack = self.repo.store_pack(writer)?;
        self.report.packs_written += 1;
        self.report.bytes_written += pack.size;
        self.new_packs.insert(pack.id);
        self.stored.push(pack);
        Ok(())
    }

    fn seal_open(&mut self) -> Result<()> {
        for writer in [self.data.take(), self.meta.take()].into_iter().flatten() {
            if !writer.is_empty() {
                self.store(writer)?;
            }
        }
        Ok(())
    }

    /// Writes one delta with the stored packs and pending marks (if any)
    /// and adds it to the cache. New packs and the marks of the packs they
    /// replace share a delta, so a cache never sees the marks without the
    /// copies.
    fn write_delta(&mut self) -> Result<()> {
        if self.stored.is_empty() && self.marks.is_empty() {
            return Ok(());
        }
        let packs = std::mem::take(&mut self.stored);
        let mut obsolete = std::mem::take(&mut self.marks);
        // A copy that came out byte for byte as its source is that pack.
        obsolete.retain(|p| !self.new_packs.contains(p));
        let delta = MarkedDelta {
            packs,
            obsolete,
            marked_at: None,
        };
        let delta = MarkedDelta {
            marked_at: (!delta.obsolete.is_empty()).then_some(self.marked_at),
            ..delta
        };
        let id = self.repo.write_marked_delta(&delta)?;
        self.written.push(id);
        self.report.deltas_written += 1;
        self.report.packs_marked += delta.obsolete.len() as u64;
        self.repo.cache().add_deltas(&[(
            id,
            IndexDelta {
                packs: delta.packs,
                obsolete: delta.obsolete,
            },
        )])
    }
}

/// Deletes the packs the plan gives up, unless a backup is running: first
/// the index deltas (the plan's and `written`, this run's) are rewritten
/// without them, then the packs go.
fn delete_garbage(
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
    let mut orphans: BTreeMap<PackId, u64> = plan.orphans.iter().copied().collect();
    if doomed.is_empty()
        && orphans.is_empty()
        && plan.vanished.is_empty()
        && plan.stale_marks.is_empty()
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
            Ok(())
        })?;
        report.packs_kept_for_new_snapshots = (before - doomed.len()) as u64;
        for pack in repo.cache().packs()? {
            orphans.remove(&pack.id);
        }
    }
    let gone: BTreeSet<PackId> = doomed
        .iter()
        .chain(&plan.vanished)
        .chain(plan.stale_marks.iter().map(|(p, _)| p))
        .copied()
        .collect();
    // Every delta that names a pack that goes: as the cache knows them now
    // (with this run's deltas and those loaded since the plan).
    let mut affected: BTreeSet<IndexId> = plan.stale_marks.iter().map(|(_, d)| *d).collect();
    affected.extend(&written.deltas);
    for cached in repo.cache().packs()? {
        if doomed.contains(&cached.id) || plan.vanished.contains(&cached.id) {
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
    let loaded = repo.cache().loaded_deltas()?;
    for (name, _) in repo.backend().list(FileKind::Index)? {
        let Ok(id) = IndexId::from_hex(&name) else {
            continue;
        };
        if loaded.contains(&id) {
            continue;
        }
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

/// blob id -> () for every live blob.
const LIVE: TableDefinition<[u8; 32], ()> = TableDefinition::new("live");

/// The live set: a redb table in a temporary folder, so that memory does
/// not grow with the number of blobs.
struct LiveSet {
    db: Database,
    dir: tempfile::TempDir,
}

impl LiveSet {
    fn create(parent: &Path) -> Result<Self> {
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

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::new(
            ErrorKind::Io,
            format!("live set in {}: {e}", self.dir.path().display()),
        )
    }

    /// Adds everything reachable from `roots`, reading each tree and chunk
    /// list once; calls `on_new` for every blob not in the set before.
    fn add(
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
    /// sorted by id) and adds each blob's bytes to its pack's live or dead
    /// count. Returns the number of live blobs and one live blob that no
    /// index names, if any.
    fn count_usage(
        &self,
        repo: &Repository,
        usage: &mut [PackUsage],
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
            let Some(u) = usage.get_mut(row.pack as usize) else {
                return Ok(());
            };
            if is_live {
                u.live_blobs += 1;
                u.live_bytes += u64::from(row.length);
            } else {
                u.dead_blobs += 1;
                u.dead_bytes += u64::from(row.length);
            }
            Ok(())
        })?;
        if let Some(id) = current {
            missing.get_or_insert(BlobId(id));
        }
        Ok((count, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, LocalBackend};
    use crate::ops::backup::{BackupOptions, backup};
    use crate::progress::NoProgress;
    use std::path::PathBuf;
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

    fn usage(live: u64, dead: u64, marked_at: Option<i64>) -> PackUsage {
        PackUsage {
            id: PackId([1; 32]),
            size: live + dead + 100,
            live_blobs: live.div_ceil(10),
            live_bytes: live,
            dead_blobs: dead.div_ceil(10),
            dead_bytes: dead,
            marked_at,
        }
    }

    #[test]
    fn fates() {
        let now = 10_000;
        let grace = PruneOptions::default();
        let instant = PruneOptions {
            instant_delete: true,
            ..PruneOptions::default()
        };
        let keep = Fate::default();
        let mark = Fate { mark: true, ..keep };
        let repack = Fate {
            copy: true,
            mark: true,
            delete: false,
        };
        // Current packs.
        assert_eq!(fate(&usage(1000, 0, None), now, &grace), keep);
        assert_eq!(fate(&usage(1000, 50, None), now, &grace), keep, "under 5%");
        assert_eq!(fate(&usage(1000, 60, None), now, &grace), repack);
        assert_eq!(fate(&usage(0, 60, None), now, &grace), mark);
        assert_eq!(
            fate(&usage(0, 0, None), now, &grace),
            mark,
            "nothing indexed here"
        );
        assert_eq!(
            fate(&usage(1000, 60, None), now, &instant),
            Fate {
                delete: true,
                ..repack
            }
        );
        assert_eq!(
            fate(&usage(0, 60, None), now, &instant),
            Fate {
                delete: true,
                ..mark
            }
        );
        let never = PruneOptions {
            max_unused: 1.0,
            ..PruneOptions::default()
        };
        assert_eq!(fate(&usage(1, 1_000_000, None), now, &never), keep);
        // Marked packs: deleted once the grace period is over, live blobs
        // rescued first.
        let young = Some(now - 3599);
        let old = Some(now - 3600);
        assert_eq!(fate(&usage(0, 60, young), now, &grace), keep);
        assert_eq!(
            fate(&usage(0, 60, old), now, &grace),
            Fate {
                delete: true,
                ..keep
            }
        );
        assert_eq!(
            fate(&usage(10, 60, young), now, &grace),
            Fate { copy: true, ..keep }
        );
        assert_eq!(
            fate(&usage(10, 60, young), now, &instant),
            Fate {
                copy: true,
                mark: false,
                delete: true
            }
        );
    }
}
