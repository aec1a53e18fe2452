//! `snap find`: which snapshots hold paths matching a glob.
//!
//! Consecutive snapshots share most of their trees, so the matches below a
//! folder are remembered per (tree id, path of the folder) and a folder seen
//! before is not read again: searching thousands of snapshots costs about as
//! much as reading the trees that differ between them. The path is part of
//! the key because a glob may match on the full path, so the same tree at
//! another place can match differently. Matches are kept as a tree of names
//! shared between snapshots; full paths are only built for the answer.

use std::collections::HashMap;
use std::sync::Arc;

use globset::{Glob, GlobMatcher};

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{MAX_TREE_DEPTH, NodeKind};
use crate::id::{SnapshotId, TreeId};
use crate::ops::browse::PathCount;
use crate::ops::paths::PathArg;
use crate::repo::Repository;

/// A snapshot with matching paths.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// Its time (RFC 3339, UTC).
    pub time: String,
    /// The matching paths as `snap ls` prints them, depth first in name order.
    pub paths: Vec<String>,
}

/// The matches below one folder: entries that match or have matches below.
#[derive(Debug, Default)]
struct Matches {
    /// (name as printed, whether it matches itself, matches below it).
    entries: Vec<(String, bool, Option<Arc<Matches>>)>,
}

impl Matches {
    fn paths(&self, prefix: &str, out: &mut Vec<String>) {
        for (name, itself, below) in &self.entries {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            if let Some(below) = below {
                if *itself {
                    out.push(path.clone());
                }
                below.paths(&path, out);
            } else {
                out.push(path);
            }
        }
    }
}

/// The snapshots among `snapshots` (oldest first) that hold a path matching
/// `pattern`, oldest first. A path matches when the glob matches the whole
/// path as `snap ls` prints it or its last component (`*.md`, `notes/**`).
/// A pattern that starts with `/`, `./` or `../` is a path of this machine
/// ([`PathArg`]), translated in each snapshot by that snapshot's sources
/// (`/home/me/app/**/*.md` is `app/**/*.md` after `snap backup
/// /home/me/app`); snapshots none of whose sources hold it are passed over,
/// and when no snapshot's sources do, that is a not-found error.
pub fn find(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    pattern: &str,
) -> Result<Vec<Hit>> {
    let arg = PathArg::parse(pattern)?;
    // One search per translated pattern, each with its own memo.
    let mut searches: HashMap<String, Search<'_>> = HashMap::new();
    let mut held = false;
    let mut hits = Vec::new();
    let mut count = PathCount::default();
    for (id, snapshot) in snapshots {
        let Some(glob) = arg.in_snapshot(snapshot) else {
            continue;
        };
        held = true;
        let search = match searches.entry(glob) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                let matcher = Glob::new(new.key())
                    .map_err(|e| Error::usage(format!("bad pattern `{pattern}`: {e}")))?
                    .compile_matcher();
                new.insert(Search {
                    repo,
                    matcher,
                    memo: HashMap::new(),
                })
            }
        };
        count.refuse_too_many(repo, &snapshot.tree)?;
        if let Some(found) = search.folder(snapshot.tree, "")? {
            let mut paths = Vec::new();
            found.paths("", &mut paths);
            hits.push(Hit {
                snapshot: *id,
                time: snapshot.time.clone(),
                paths,
            });
        }
    }
    if !held && !snapshots.is_empty() {
        return Err(arg.outside_sources(snapshots.iter().map(|(_, s)| s)));
    }
    Ok(hits)
}

struct Search<'r> {
    repo: &'r Repository,
    matcher: GlobMatcher,
    memo: HashMap<(TreeId, String), Option<Arc<Matches>>>,
}

impl Search<'_> {
    /// The matches below the folder with tree `tree` at `prefix`.
    fn folder(&mut self, tree: TreeId, prefix: &str) -> Result<Option<Arc<Matches>>> {
        let key = (tree, prefix.to_string());
        if let Some(known) = self.memo.get(&key) {
            return Ok(known.clone());
        }
        if prefix.matches('/').count() >= MAX_TREE_DEPTH {
            return Err(Error::corrupt(
                format!("folder {}", prefix.chars().take(100).collect::<String>()),
                format!("nested deeper than {MAX_TREE_DEPTH} levels"),
            ));
        }
        let mut matches = Matches::default();
        for node in self.repo.read_tree(&tree)?.nodes {
            let name = node.display_name();
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let itself = self.matcher.is_match(&path) || self.matcher.is_match(&name);
            let below = match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(subtree)) => self.folder(subtree, &path)?,
                _ => None,
            };
            if itself || below.is_some() {
                matches.entries.push((name, itself, below));
            }
        }
        let found = (!matches.entries.is_empty()).then(|| Arc::new(matches));
        self.memo.insert(key, found.clone());
        Ok(found)
    }
}
