//! `snap log`: every distinct version of one path across all snapshots.
//!
//! Only the trees along the path are read, and not even those when a tree
//! on the way is the one the previous snapshot had at the same depth: from
//! there on, the walk would find what it found last time. A snapshot whose
//! root tree did not change therefore costs nothing.

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind};
use crate::id::{SnapshotId, TreeId};
use crate::ops::browse::{child, components};
use crate::ops::paths::PathArg;
use crate::repo::Repository;

/// What identifies a version's content (see [`content_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentId(pub [u8; 32]);

impl ContentId {
    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The identity of an entry's content, the same in every snapshot that has
/// the same content:
/// - file: blake3 of `content_depth` (one byte) followed by the 32-byte ids
///   of `content` (so it depends on the chunk ids, not on metadata);
/// - folder: its tree id (any change below makes a new version);
/// - symlink: blake3 of the target's bytes;
/// - anything else: blake3 of the kind's name and the device number (8 bytes
///   little-endian).
pub fn content_id(node: &Node) -> ContentId {
    let mut hasher = blake3::Hasher::new();
    match node.kind {
        NodeKind::File => {
            hasher.update(&[node.content_depth]);
            for id in &node.content {
                hasher.update(id.as_bytes());
            }
        }
        NodeKind::Dir => return ContentId(node.subtree.map(|t| t.0).unwrap_or_default()),
        NodeKind::Symlink => {
            hasher.update(node.target.as_deref().unwrap_or_default());
        }
        NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev | NodeKind::Socket => {
            hasher.update(node.kind.as_str().as_bytes());
            hasher.update(&node.rdev.to_le_bytes());
        }
    }
    ContentId(*hasher.finalize().as_bytes())
}

/// One version of a path.
#[derive(Debug, Clone)]
pub struct Version {
    /// The first snapshot (oldest) that has this version, after a snapshot
    /// that had another version or none.
    pub snapshot: SnapshotId,
    /// That snapshot's time (RFC 3339, UTC).
    pub time: String,
    /// The entry in that snapshot.
    pub node: Node,
    /// Its content identity.
    pub content_id: ContentId,
}

/// Every distinct version of `path` in `snapshots` (oldest first), newest
/// first. Versions differ by kind or content; metadata alone does not make a
/// version. A path that disappears and comes back gives a new version even
/// with the old content. A path of this machine is looked for in each
/// snapshot where one of its sources holds it ([`PathArg::in_snapshot`]);
/// when none does, that is a not-found error naming the sources.
pub fn log(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    path: &PathArg,
) -> Result<Vec<Version>> {
    if let PathArg::Inside(inside) = path
        && components(inside).is_empty()
    {
        return Err(Error::usage(
            "`snap log` needs a path inside the snapshots, e.g. lyra/identity.md",
        ));
    }
    let mut finder: Option<PathFinder<'_>> = None;
    let mut held = false;
    let mut versions = Vec::new();
    let mut current: Option<(NodeKind, ContentId)> = None;
    for (id, snapshot) in snapshots {
        let Some(inside) = path.in_snapshot(snapshot) else {
            current = None;
            continue;
        };
        held = true;
        let parts: Vec<String> = components(&inside).into_iter().map(String::from).collect();
        let finder = match &mut finder {
            Some(f) if f.parts == parts => f,
            slot => slot.insert(PathFinder {
                repo,
                parts,
                trail: Vec::new(),
                found: None,
            }),
        };
        let Some(node) = finder.lookup(snapshot.tree)? else {
            current = None;
            continue;
        };
        let identity = (node.kind, content_id(&node));
        if current != Some(identity) {
            versions.push(Version {
                snapshot: *id,
                time: snapshot.time.clone(),
                node,
                content_id: identity.1,
            });
        }
        current = Some(identity);
    }
    if !held && !snapshots.is_empty() {
        return Err(path.outside_sources(snapshots.iter().map(|(_, s)| s)));
    }
    versions.reverse();
    Ok(versions)
}

/// Finds one path in snapshot after snapshot, remembering the trees of the
/// last walk so that an unchanged part of it is not read again.
struct PathFinder<'r> {
    repo: &'r Repository,
    parts: Vec<String>,
    /// Tree ids read by the last walk: the root, then one per folder on the path.
    trail: Vec<TreeId>,
    /// What the last walk found.
    found: Option<Node>,
}

impl PathFinder<'_> {
    fn lookup(&mut self, root: TreeId) -> Result<Option<Node>> {
        let mut trail = Vec::with_capacity(self.parts.len());
        let mut tree_id = root;
        let mut found = None;
        for (depth, part) in self.parts.iter().enumerate() {
            if self.trail.get(depth) == Some(&tree_id) {
                // The same tree at the same depth: the rest of the walk is too.
                trail.extend_from_slice(&self.trail[depth..]);
                self.trail = trail;
                return Ok(self.found.clone());
            }
            trail.push(tree_id);
            let tree = self.repo.read_tree(&tree_id)?;
            let Some(node) = child(&tree, part) else {
                break;
            };
            if depth + 1 == self.parts.len() {
                found = Some(node.clone());
            } else if let Some(subtree) = node.subtree {
                tree_id = subtree;
            } else {
                break;
            }
        }
        self.trail = trail;
        self.found.clone_from(&found);
        Ok(found)
    }
}
