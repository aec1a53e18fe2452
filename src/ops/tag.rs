//! `snap tag`: change the tags of existing snapshots.
//!
//! A snapshot file is immutable and named by the hash of its bytes, so a
//! snapshot with other tags is a new file: it is written first, then the old
//! one is removed (as restic does). A crash in between leaves both, with the
//! same tree: two snapshots, never none. The new snapshot keeps everything
//! else of the old one; its `original` names the snapshot it was first
//! written as (the old id, unless it already named one), so `snap copy`
//! still recognises a copy made before the tags changed.
//!
//! How tags are read from the command line and the profile is one rule in
//! [`crate::select`] (re-exported here).

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::repo::Repository;
pub use crate::select::{split_tags, tag_lists, tags_of, validate_tags};

/// How to change tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChange {
    /// Replace every tag with these (then `add` and `remove` must be empty).
    pub set: Option<Vec<String>>,
    /// Add these.
    pub add: Vec<String>,
    /// Remove these.
    pub remove: Vec<String>,
}

impl TagChange {
    /// The tags `tags` become: set, then add the new ones at the end, then remove.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self.set.clone().unwrap_or_else(|| tags.to_vec());
        for tag in &self.add {
            if !out.contains(tag) {
                out.push(tag.clone());
            }
        }
        out.retain(|t| !self.remove.contains(t));
        out
    }

    fn check(&self) -> Result<()> {
        validate_tags(&self.add)?;
        validate_tags(&self.remove)?;
        validate_tags(self.set.as_deref().unwrap_or_default())?;
        if self.set.is_some() && !(self.add.is_empty() && self.remove.is_empty()) {
            return Err(Error::usage(
                "give either --set or --add/--remove, not both",
            ));
        }
        if self.set.is_none() && self.add.is_empty() && self.remove.is_empty() {
            return Err(Error::usage(
                "nothing to change: give --add, --remove or --set",
            ));
        }
        Ok(())
    }
}

/// A snapshot `tag` rewrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retagged {
    /// The id it had (that file is gone).
    pub old: SnapshotId,
    /// Its id now.
    pub new: SnapshotId,
    /// Its tags now.
    pub tags: Vec<String>,
}

/// What `tag` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagReport {
    /// Snapshots rewritten.
    pub changed: Vec<Retagged>,
    /// Snapshots whose tags were already as asked.
    pub unchanged: Vec<SnapshotId>,
}

/// Changes the tags of `snapshots`: each changed one is written under its
/// new id, then its old file is removed.
pub fn tag(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    change: &TagChange,
) -> Result<TagReport> {
    change.check()?;
    // Retagging removes snapshot files: a write-only key may add snapshots,
    // never take one away.
    repo.require_full_access("change tags (it rewrites and removes snapshots)")?;
    let mut report = TagReport::default();
    for (id, snapshot) in snapshots {
        let tags = change.apply(&snapshot.tags);
        if tags == snapshot.tags {
            report.unchanged.push(*id);
            continue;
        }
        let retagged = Snapshot {
            tags: tags.clone(),
            original: Some(snapshot.original.unwrap_or(*id)),
            ..snapshot.clone()
        };
        let new_id = repo.write_snapshot(&retagged)?;
        if new_id != *id {
            repo.backend().remove(FileKind::Snapshot, &id.to_hex())?;
        }
        report.changed.push(Retagged {
            old: *id,
            new: new_id,
            tags,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn changes_apply_in_order() {
        let old = strings(&["a", "b"]);
        let add = TagChange {
            add: strings(&["c", "a"]),
            remove: strings(&["b"]),
            ..TagChange::default()
        };
        assert_eq!(add.apply(&old), ["a", "c"]);
        let set = TagChange {
            set: Some(strings(&["x"])),
            ..TagChange::default()
        };
        assert_eq!(set.apply(&old), ["x"]);
        assert!(set.check().is_ok());
        assert!(TagChange::default().check().is_err());
        let both = TagChange {
            set: Some(strings(&["x"])),
            add: strings(&["y"]),
            ..TagChange::default()
        };
        assert!(both.check().is_err());
    }
}
