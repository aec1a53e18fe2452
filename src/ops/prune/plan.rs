//! Which packs prune keeps, rewrites, marks and deletes, from the live set
//! and the index.

use std::collections::{BTreeSet, HashMap, HashSet};

use rayon::prelude::*;

use super::live::{LiveSet, read_snapshots};
use super::{PruneOptions, TEMP_PREFIX};
use crate::backend::FileKind;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Feature;
use crate::id::{IndexId, PackId, SnapshotId};
use crate::index::CachedPack;
use crate::lock::RepoLock;
use crate::progress::Progress;
use crate::repo::Repository;

/// How much of a pack is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PackUsage {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Live blobs stored in it (a tree or chunk list counts in
    /// each pack holding a copy; a data chunk stored in several packs
    /// counts in one).
    pub live_blobs: u64,
    /// Their frame bytes.
    pub live_bytes: u64,
    /// Blobs no snapshot uses.
    pub dead_blobs: u64,
    /// Their frame bytes.
    pub dead_bytes: u64,
    /// When a prune marked it obsolete (seconds since the Unix epoch).
    pub marked_at: Option<i64>,
    /// Live trees and chunk lists whose only copy in the
    /// repository is this one (an older repository, or the other pack is
    /// lost): the pack is repacked, which stores them twice again.
    #[serde(skip)]
    pub stored_once: u64,
    /// Live blobs of it that no pack in the repository holds any more.
    #[serde(skip)]
    pub lost_blobs: u64,
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
        None if usage.stored_once > 0 => Fate {
            copy: true,
            mark: true,
            delete: options.instant_delete,
        },
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
    pub(super) live: LiveSet,
    pub(super) snapshot_ids: HashSet<SnapshotId>,
    pub(super) cached: HashMap<PackId, CachedPack>,
    pub(super) stale_marks: Vec<(PackId, IndexId)>,
    pub(super) lock: Option<RepoLock>,
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

/// Plans a prune: which blobs are live, what happens to each pack. Unless
/// `options.dry_run`, takes the prune lock, held until the plan is executed
/// or dropped.
///
/// Run it on a repository opened by [`super::open`] (with a private index
/// cache), so that backups do not wait for the index cache meanwhile.
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
            stored_once: 0,
            lost_blobs: 0,
        };
        size
    ];
    for pack in &cached {
        let u = &mut usage[pack.number as usize];
        u.id = pack.id;
        u.size = pack.size;
    }
    let on_disk: HashMap<PackId, u64> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| PackId::from_hex(&name).ok().map(|id| (id, size)))
        .collect();
    let stored: HashSet<PackId> = on_disk.keys().copied().collect();
    let twice = repo.has_feature(Feature::MetadataTwice);
    let marks = repo.cache().marks()?;
    let marked: HashSet<PackId> = marks.iter().map(|(pack, _)| *pack).collect();
    let (live_blobs, missing) = live.count_usage(repo, &mut usage, &stored, &marked, twice)?;
    if let Some(missing) = missing {
        return Err(Error::corrupt(
            format!("blob {missing}"),
            "a snapshot uses it but no index delta names it, so prune stops before it makes anything worse; run `snap check`",
        ));
    }

    let marked_at = mark_times(repo, &marks)?;
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
            // Copies of its trees and lists elsewhere stand in for it (and
            // the packs holding them are repacked to store them twice).
            if u.lost_blobs > 0 {
                return Err(Error::corrupt(
                    format!("pack {}", pack.id),
                    format!(
                        "the index names it and {} live blobs are stored only there, but it is not in data/; prune stops, run `snap check`",
                        u.lost_blobs
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

/// The index deltas in the repository that the cache has not loaded
/// (unreadable ones, or written since the sync).
pub(super) fn unloaded_deltas(repo: &Repository) -> Result<Vec<IndexId>> {
    let loaded = repo.cache().loaded_deltas()?;
    Ok(repo
        .backend()
        .list(FileKind::Index)?
        .into_iter()
        .filter_map(|(name, _)| IndexId::from_hex(&name).ok())
        .filter(|id| !loaded.contains(id))
        .collect())
}

/// Fails when an index delta cannot be read (the cache sync skips those
/// with a warning): prune could neither see the packs it names nor rewrite it.
fn refuse_damaged_deltas(repo: &Repository) -> Result<()> {
    for id in unloaded_deltas(repo)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(live: u64, dead: u64, marked_at: Option<i64>) -> PackUsage {
        PackUsage {
            id: PackId([1; 32]),
            size: live + dead + 100,
            live_blobs: live.div_ceil(10),
            live_bytes: live,
            dead_blobs: dead.div_ceil(10),
            dead_bytes: dead,
            marked_at,
            stored_once: 0,
            lost_blobs: 0,
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
