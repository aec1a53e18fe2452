//! Parity groups as a whole: how much of the repository they protect
//! (`snap parity status`, `snap check`), re-forming the groups of packs a
//! prune deletes, and `snap repair packs`, which writes rebuilt packs back.
//!
//! The rule that keeps groups consistent after any crash: a parity object
//! is replaced (the new one written first) before any of its members is
//! deleted, so a parity object never names a pack that is gone on purpose.
//! A member that is gone although the index lists it is a lost pack, which
//! the group rebuilds.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::FileKind;
use crate::error::Result;
use crate::format::parity::{Member, ParityLevel};
use crate::id::PackId;
use crate::parity::Group;
use crate::progress::{Phase, Progress};
use crate::repo::Repository;

/// How much of the repository the parity groups protect.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ParityStatus {
    /// Parity for new packs, as a percentage (`None` when off).
    pub percent: Option<u32>,
    /// Parity objects.
    pub groups: u64,
    /// Their bytes.
    pub parity_bytes: u64,
    /// Packs in `data/`.
    pub packs: u64,
    /// Their bytes.
    pub pack_bytes: u64,
    /// Packs in `data/` that a group holds.
    pub protected_packs: u64,
    /// Their bytes.
    pub protected_bytes: u64,
    /// Parity objects naming a pack that is neither in `data/` nor in the
    /// index, with those packs.
    pub orphans: Vec<(String, Vec<PackId>)>,
    /// Parity objects whose header cannot be read, with why.
    pub damaged: Vec<(String, String)>,
}

/// What protects the repository's packs.
pub fn status(repo: &Repository) -> Result<ParityStatus> {
    let on_disk = packs_on_disk(repo)?;
    let indexed = indexed_packs(repo)?;
    let (groups, damaged) = crate::parity::groups(repo.backend())?;
    let mut status = ParityStatus {
        percent: repo.parity_level().map(ParityLevel::percent),
        groups: groups.len() as u64,
        parity_bytes: groups.iter().map(Group::size).sum(),
        packs: on_disk.len() as u64,
        pack_bytes: on_disk.values().sum(),
        damaged: damaged
            .into_iter()
            .map(|(name, e)| (name, e.message().to_string()))
            .collect(),
        ..ParityStatus::default()
    };
    let mut protected = HashSet::new();
    for group in &groups {
        let gone = gone_members(group, &on_disk, &indexed);
        if gone.is_empty() {
            protected.extend(group.member_ids().filter(|id| on_disk.contains_key(id)));
        } else {
            status.orphans.push((group.name.clone(), gone));
        }
    }
    status.protected_packs = protected.len() as u64;
    status.protected_bytes = protected.iter().map(|id| on_disk[id]).sum();
    Ok(status)
}

/// Members of `group` that are neither in `data/` nor in the index: packs
/// deleted on purpose, which the group must not name.
fn gone_members(
    group: &Group,
    on_disk: &HashMap<PackId, u64>,
    indexed: &HashSet<PackId>,
) -> Vec<PackId> {
    group
        .member_ids()
        .filter(|id| !on_disk.contains_key(id) && !indexed.contains(id))
        .collect()
}

fn packs_on_disk(repo: &Repository) -> Result<HashMap<PackId, u64>> {
    Ok(repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| PackId::from_hex(&name).ok().map(|id| (id, size)))
        .collect())
}

fn indexed_packs(repo: &Repository) -> Result<HashSet<PackId>> {
    Ok(repo.cache().packs()?.into_iter().map(|p| p.id).collect())
}

/// Re-forms the groups that hold any of `going` (packs about to be
/// deleted): each gets a new parity object over its other members, written
/// before the old one is removed. Call before deleting the packs.
pub fn regroup_without(repo: &Repository, going: &HashSet<PackId>) -> Result<u64> {
    if going.is_empty() || !repo.has_feature(crate::format::config::Feature::Parity) {
        return Ok(0);
    }
    let (groups, _) = crate::parity::groups(repo.backend())?;
    let on_disk = packs_on_disk(repo)?;
    let mut regrouped = 0;
    for group in groups {
        if !group.member_ids().any(|id| going.contains(&id)) {
            continue;
        }
        let kept: Vec<Member> = group
            .header
            .members
            .iter()
            .filter(|m| !going.contains(&m.id) && on_disk.contains_key(&m.id))
            .copied()
            .collect();
        reform(repo, &group, &kept)?;
        regrouped += 1;
    }
    repo.forget_parity_groups();
    Ok(regrouped)
}

/// Replaces `group` by a group of `kept` (none when empty): the new parity
/// object first, then the old one goes. A kept member that fails its hash
/// is rebuilt and written back first, while the old group can still do it.
fn reform(repo: &Repository, group: &Group, kept: &[Member]) -> Result<()> {
    if !kept.is_empty() {
        match crate::parity::write_group(repo.backend(), kept, group.header.parity) {
            Ok(_) => {}
            Err(e) if e.is_damage() => {
                for member in kept.iter().filter(|m| !pack_is_sound(repo, &m.id)) {
                    let bytes = crate::parity::rebuild(repo.backend(), group, &member.id)?;
                    repo.backend()
                        .write(FileKind::Pack, &member.id.to_hex(), &bytes)?;
                }
                crate::parity::write_group(repo.backend(), kept, group.header.parity)?;
            }
            Err(e) => return Err(e),
        }
    }
    repo.backend().remove(FileKind::Parity, &group.name)
}

/// What `snap repair packs` did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PackRepair {
    /// Packs rebuilt from their groups (and written back).
    pub rebuilt: Vec<PackId>,
    /// Packs missing or damaged that no group can rebuild, with why.
    pub lost: Vec<(PackId, String)>,
    /// Parity objects replaced: orphans re-formed over their remaining
    /// members, damaged ones removed or computed again.
    pub reformed: Vec<String>,
    /// New groups over indexed packs that no group held.
    pub new_groups: u64,
    /// Packs in those new groups.
    pub newly_protected: u64,
}

/// Finds every pack of a group that is missing or whose bytes fail their
/// hash, rebuilds it and (unless `dry_run`) writes it back; re-forms orphan
/// and damaged parity objects; and, with parity on, groups indexed packs no
/// group holds (packs of an interrupted backup, or older than `snap parity
/// enable`). Reads every pack of every group.
pub fn repair_packs(
    repo: &Repository,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PackRepair> {
    if !dry_run {
        repo.require_full_access("repair packs")?;
    }
    let on_disk = packs_on_disk(repo)?;
    let indexed = indexed_packs(repo)?;
    let (groups, damaged) = crate::parity::groups(repo.backend())?;
    let mut report = PackRepair::default();
    let members: Vec<(PackId, u64)> = {
        let mut seen = HashSet::new();
        groups
            .iter()
            .flat_map(|g| g.header.members.iter())
            .filter(|m| seen.insert(m.id))
            .map(|m| (m.id, m.size))
            .collect()
    };
    progress.found(
        members.len() as u64,
        members.iter().map(|(_, size)| size).sum(),
    );
    progress.phase(Phase::Working);
    let bad: Vec<PackId> = members
        .par_iter()
        .filter_map(|(id, size)| {
            progress.current(&id.to_hex());
            let sound = on_disk.get(id) == Some(size) && pack_is_sound(repo, id);
            progress.add_files(1);
            (!sound && (on_disk.contains_key(id) || indexed.contains(id))).then_some(*id)
        })
        .collect();
    for id in bad {
        match repo.rebuilt_pack(&id) {
            Ok(Some(bytes)) => {
                if !dry_run {
                    repo.backend().write(FileKind::Pack, &id.to_hex(), &bytes)?;
                }
                report.rebuilt.push(id);
            }
            Ok(None) => {}
            Err(e) if e.is_damage() => report.lost.push((id, e.message().to_string())),
            Err(e) => return Err(e),
        }
    }
    report.rebuilt.sort();
    for group in &groups {
        if gone_members(group, &on_disk, &indexed).is_empty() {
            continue;
        }
        if !dry_run {
            let kept: Vec<Member> = group
                .header
                .members
                .iter()
                .filter(|m| on_disk.contains_key(&m.id))
                .copied()
                .collect();
            reform(repo, group, &kept)?;
        }
        report.reformed.push(group.name.clone());
    }
    for (name, _) in &damaged {
        if !dry_run {
            repo.backend().remove(FileKind::Parity, name)?;
        }
        report.reformed.push(name.clone());
    }
    if let Some(level) = repo.parity_level() {
        let grouped: HashSet<PackId> = groups
            .iter()
            .filter(|g| !report.reformed.contains(&g.name))
            .flat_map(Group::member_ids)
            .collect();
        let mut ungrouped: Vec<Member> = repo
            .cache()
            .packs()?
            .into_iter()
            .filter(|p| !grouped.contains(&p.id) && on_disk.get(&p.id) == Some(&p.size))
            .map(|p| Member {
                id: p.id,
                size: p.size,
            })
            .collect();
        ungrouped.sort_by_key(|m| m.id);
        ungrouped.dedup_by_key(|m| m.id);
        report.newly_protected = ungrouped.len() as u64;
        for members in group_sizes(ungrouped.len(), usize::from(level.data.max(1)))
            .into_iter()
            .scan(0, |start, len| {
                let range = *start..*start + len;
                *start += len;
                Some(range)
            })
            .map(|range| &ungrouped[range])
        {
            if !dry_run {
                crate::parity::write_group(repo.backend(), members, level.parity)?;
            }
            report.new_groups += 1;
        }
    }
    repo.forget_parity_groups();
    Ok(report)
}

/// Sizes of the groups `count` packs form at `size` packs a group: full
/// groups, the last one taking the rest (up to twice the size less one).
pub fn group_sizes(count: usize, size: usize) -> Vec<usize> {
    if count == 0 {
        return Vec::new();
    }
    let full = (count / size).max(1);
    let mut sizes = vec![size; full - 1];
    sizes.push(count - size * (full - 1));
    sizes
}

/// Whether pack `id` is in `data/` with bytes that hash to its name.
fn pack_is_sound(repo: &Repository, id: &PackId) -> bool {
    repo.backend()
        .read(FileKind::Pack, &id.to_hex())
        .is_ok_and(|bytes| {
            let mut hasher = blake3::Hasher::new();
            hasher.update_rayon(&bytes);
            hasher.finalize().as_bytes() == id.as_bytes()
        })
}

#[cfg(test)]
mod tests {
    use super::group_sizes;

    #[test]
    fn the_last_group_takes_the_rest() {
        assert_eq!(group_sizes(0, 10), Vec::<usize>::new());
        assert_eq!(group_sizes(3, 10), [3]);
        assert_eq!(group_sizes(10, 10), [10]);
        assert_eq!(group_sizes(19, 10), [19]);
        assert_eq!(group_sizes(20, 10), [10, 10]);
        assert_eq!(group_sizes(32, 10), [10, 10, 12]);
    }
}
