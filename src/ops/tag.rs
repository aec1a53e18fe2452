//! `snap tag`: change the tags of existing snapshots, and the one rule for
//! reading tags from the command line and the profile.
//!
//! A snapshot file is immutable and named by the hash of its bytes, so a
//! snapshot with other tags is a new file: it is written first, then the old
//! one is removed (as restic does). A crash in between leaves both, with the
//! same tree: two snapshots, never none. The new snapshot keeps everything
//! else of the old one; its `original` names the snapshot it was first
//! written as (the old id, unless it already named one), so `snap copy`
//! still recognises a copy made before the tags changed.
//!
//! Tags are split at commas wherever they are given (`--tag a,b` is two
//! tags); blanks around a tag are dropped, and an empty tag is an error.

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::repo::Repository;

/// The tags of one comma-separated list (`a,b`): blanks around each tag
/// trimmed; an empty or blank tag is an error naming the list.
pub fn split_tags(list: &str) -> Result<Vec<String>> {
    list.split(',')
        .map(str::trim)
        .map(|tag| {
            if tag.is_empty() {
                Err(Error::usage(format!(
                    "`{list}` holds an empty tag: give tags like daily or daily,session-end"
                )))
            } else {
                Ok(tag.to_string())
            }
        })
        .collect()
}

/// The tags of several lists (`--tag a,b --tag c`), each once, in order.
pub fn tags_of(lists: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        for tag in split_tags(list)? {
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
    }
    Ok(out)
}

/// A filter's tag lists (`--tag a,b --tag c`): a snapshot matches when it
/// has every tag of at least one list.
pub fn tag_lists(lists: &[String]) -> Result<Vec<Vec<String>>> {
    lists.iter().map(|list| split_tags(list)).collect()
}

/// Checks tags given to the library: none empty, blank, or holding a comma
/// (a comma separates tags wherever they are read).
pub fn validate_tags(tags: &[String]) -> Result<()> {
    match tags
        .iter()
        .find(|t| t.trim().is_empty() || t.contains(',') || t.trim() != t.as_str())
    {
        Some(bad) => Err(Error::usage(format!(
            "`{bad}` cannot be a tag: tags are not empty, hold no comma and no blanks at either end"
        ))),
        None => Ok(()),
    }
}

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
    fn tags_split_at_commas_and_blanks_are_refused() {
        assert_eq!(
            split_tags("session-end,daily").unwrap(),
            ["session-end", "daily"]
        );
        assert_eq!(split_tags(" a , b ").unwrap(), ["a", "b"]);
        for bad in ["", " ", "a,,b", "a,", ",a", "a, ,b"] {
            assert!(split_tags(bad).is_err(), "{bad:?}");
        }
        assert_eq!(tags_of(&strings(&["a,b", "b,c"])).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            tag_lists(&strings(&["a,b", "c"])).unwrap(),
            [strings(&["a", "b"]), strings(&["c"])]
        );
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
