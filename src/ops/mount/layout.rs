//! The folders a mount shows above the snapshots: `latest`, `snapshots/`,
//! `ids/`, `tags/` and `hosts/`, made from the list of snapshots.

use std::collections::BTreeSet;

use crate::format::snapshot::Snapshot;
use crate::format::tree::escape_name;
use crate::id::SnapshotId;

/// A folder of the mount that no snapshot holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Folder {
    /// The mount point itself.
    Root,
    /// `snapshots/`: one folder per snapshot.
    Snapshots,
    /// `ids/`: one link per snapshot id.
    Ids,
    /// `tags/`: one folder per tag.
    Tags,
    /// `hosts/`: one folder per host.
    Hosts,
    /// `tags/<tag>/`: links to the snapshots with that tag, and `latest`.
    Tag(String),
    /// `hosts/<host>/`: links to that host's snapshots, and `latest`.
    Host(String),
}

/// What a name in a [`Folder`] stands for.
#[derive(Clone, Debug)]
pub enum Shown {
    /// Another virtual folder.
    Folder(Folder),
    /// A symbolic link with this target.
    Link(Vec<u8>),
    /// A snapshot's root folder (an index into [`Listing::snapshots`]).
    Snapshot(usize),
}

/// One snapshot as the mount shows it.
pub struct Listed {
    /// Its id.
    pub id: SnapshotId,
    /// What it records.
    pub snapshot: Snapshot,
    /// Its folder name in `snapshots/`: local time and short id.
    pub name: String,
    /// Its time in nanoseconds since the epoch (0 when unreadable).
    pub time_ns: i64,
}

/// The snapshots, oldest first, as the mount shows them.
#[derive(Default)]
pub struct Listing {
    /// The snapshots, oldest first.
    pub snapshots: Vec<Listed>,
}

impl Listing {
    /// Names every snapshot (oldest first, as `Repository::snapshots` gives them).
    pub fn new(snapshots: Vec<(SnapshotId, Snapshot)>) -> Self {
        let zone = jiff::tz::TimeZone::system();
        let snapshots = snapshots
            .into_iter()
            .map(|(id, snapshot)| {
                let time = snapshot.time.parse::<jiff::Timestamp>().ok();
                let local = time.map_or_else(
                    || "unknown-time".to_string(),
                    |t| {
                        t.to_zoned(zone.clone())
                            .strftime("%Y-%m-%dT%H:%M:%S")
                            .to_string()
                    },
                );
                let time_ns =
                    time.map_or(0, |t| i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX));
                Listed {
                    name: format!("{local}_{}", id.short()),
                    id,
                    snapshot,
                    time_ns,
                }
            })
            .collect();
        Self { snapshots }
    }

    /// The newest snapshot's time, the time shown on the virtual folders.
    pub fn newest_time_ns(&self) -> i64 {
        self.snapshots.last().map_or(0, |s| s.time_ns)
    }

    /// The entries of a virtual folder, in the order `ls` shows them.
    pub fn entries(&self, folder: &Folder) -> Vec<(Vec<u8>, Shown)> {
        let link_up = |depth: usize, listed: &Listed| {
            let mut target = "../".repeat(depth);
            target.push_str("snapshots/");
            target.push_str(&listed.name);
            Shown::Link(target.into_bytes())
        };
        let with_latest = |depth: usize, chosen: Vec<&Listed>| {
            let mut entries: Vec<(Vec<u8>, Shown)> = chosen
                .iter()
                .map(|l| (l.name.clone().into_bytes(), link_up(depth, l)))
                .collect();
            if let Some(newest) = chosen.last() {
                entries.push((b"latest".to_vec(), link_up(depth, newest)));
            }
            entries
        };
        match folder {
            Folder::Root => {
                let mut entries = Vec::new();
                if let Some(newest) = self.snapshots.last() {
                    entries.push((b"latest".to_vec(), link_up(0, newest)));
                }
                for (name, folder) in [
                    ("snapshots", Folder::Snapshots),
                    ("ids", Folder::Ids),
                    ("tags", Folder::Tags),
                    ("hosts", Folder::Hosts),
                ] {
                    entries.push((name.as_bytes().to_vec(), Shown::Folder(folder)));
                }
                entries
            }
            Folder::Snapshots => self
                .snapshots
                .iter()
                .enumerate()
                .map(|(i, l)| (l.name.clone().into_bytes(), Shown::Snapshot(i)))
                .collect(),
            Folder::Ids => self
                .snapshots
                .iter()
                .map(|l| (l.id.to_hex().into_bytes(), link_up(1, l)))
                .collect(),
            Folder::Tags => {
                let tags: BTreeSet<&String> = self
                    .snapshots
                    .iter()
                    .flat_map(|l| &l.snapshot.tags)
                    .collect();
                tags.into_iter()
                    .map(|t| (folder_name(t), Shown::Folder(Folder::Tag(t.clone()))))
                    .collect()
            }
            Folder::Hosts => {
                let hosts: BTreeSet<&String> =
                    self.snapshots.iter().map(|l| &l.snapshot.host).collect();
                hosts
                    .into_iter()
                    .map(|h| (folder_name(h), Shown::Folder(Folder::Host(h.clone()))))
                    .collect()
            }
            Folder::Tag(tag) => with_latest(
                2,
                self.snapshots
                    .iter()
                    .filter(|l| l.snapshot.tags.contains(tag))
                    .collect(),
            ),
            Folder::Host(host) => with_latest(
                2,
                self.snapshots
                    .iter()
                    .filter(|l| &l.snapshot.host == host)
                    .collect(),
            ),
        }
    }
}

/// A tag or host as a folder name: printed as snap prints names, with `/`
/// written `\x2f` (a folder name cannot hold it) and empty, `.` and `..`
/// written with `\x2e`, so that every tag and host gets a folder of its own.
fn folder_name(text: &str) -> Vec<u8> {
    let escaped = escape_name(text.as_bytes()).replace('/', "\\x2f");
    match escaped.as_str() {
        "" => b"\\x00".to_vec(),
        "." => b"\\x2e".to_vec(),
        ".." => b"\\x2e\\x2e".to_vec(),
        _ => escaped.into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::folder_name;

    #[test]
    fn every_tag_and_host_is_one_folder_name() {
        assert_eq!(folder_name("daily"), b"daily");
        assert_eq!(folder_name("a/b"), b"a\\x2fb");
        assert_eq!(folder_name(".."), b"\\x2e\\x2e");
        assert_eq!(folder_name("."), b"\\x2e");
        assert!(!folder_name("").is_empty());
    }
}
