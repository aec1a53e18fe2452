//! The paths commands are given: a path inside the snapshots (`app/notes`,
//! as `snap ls` prints it) or a path of this machine (`/home/me/app/notes`,
//! `./notes`, `../app`), translated to where the snapshot holds it; and,
//! when a path is not there, the nearest one that is.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Tree, escape_name, escape_path, unescape_name};
use crate::id::{SnapshotId, TreeId};
use crate::ops::browse::{child, components, root_node};
use crate::repo::Repository;

/// A path given to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathArg {
    /// A path inside the snapshots, written as snap prints it.
    Inside(String),
    /// An absolute path of this machine.
    Host(PathBuf),
}

impl PathArg {
    /// Reads a path argument: one that starts with `/`, `./` or `../` is a
    /// path of this machine, made absolute against the current folder
    /// (symlinks in the folders that exist resolved, as a backup resolves
    /// its sources, the last component kept); anything else is a path
    /// inside the snapshots. Escapes (`\\`, `\xNN`, `\u{N}`) mean what they
    /// mean in a snapshot path, so what snap prints can be given back.
    pub fn parse(text: &str) -> Result<Self> {
        if !(text.starts_with('/') || text.starts_with("./") || text.starts_with("../")) {
            return Ok(Self::Inside(text.to_string()));
        }
        let mut raw = Vec::with_capacity(text.len());
        for (i, part) in text.split('/').enumerate() {
            if i > 0 {
                raw.push(b'/');
            }
            raw.extend(unescape_name(part));
        }
        let given = PathBuf::from(OsString::from_vec(raw));
        let absolute = std::path::absolute(&given).map_err(|e| {
            Error::usage(format!(
                "cannot make `{}` an absolute path: {e}",
                escape_path(&given)
            ))
        })?;
        Ok(Self::Host(resolve_host(&absolute)))
    }

    /// The path inside `snapshot` this argument names. A path of this
    /// machine lies below one of the snapshot's source paths (the longest
    /// that holds it) and is that source's name at the snapshot root (its
    /// last component; `root` for `/`) followed by the rest; `None` when no
    /// source holds it.
    pub fn in_snapshot(&self, snapshot: &Snapshot) -> Option<String> {
        let host = match self {
            Self::Inside(path) => return Some(path.clone()),
            Self::Host(host) => host,
        };
        let (source, rest) = snapshot
            .paths
            .iter()
            .map(Path::new)
            .filter(|source| source.is_absolute())
            .filter_map(|source| host.strip_prefix(source).ok().map(|rest| (source, rest)))
            .max_by_key(|(source, _)| source.components().count())?;
        let name = source
            .file_name()
            .map_or_else(|| "root".to_string(), |n| escape_name(n.as_bytes()));
        Some(
            std::iter::once(name)
                .chain(rest.iter().map(|c| escape_name(c.as_bytes())))
                .collect::<Vec<_>>()
                .join("/"),
        )
    }

    /// Where the path `inside` of `snapshot` (as `snap ls` prints it) was on
    /// the machine that took it: the source whose name is its first
    /// component, followed by the rest; the reverse of
    /// [`PathArg::in_snapshot`]. `None` for the root, or when no source has
    /// that name (a stream stored with `--stdin`).
    pub fn original(snapshot: &Snapshot, inside: &str) -> Option<PathBuf> {
        let parts = components(inside);
        if parts.contains(&"..") {
            return None;
        }
        let (first, rest) = parts.split_first()?;
        let source = snapshot
            .paths
            .iter()
            .map(Path::new)
            .filter(|source| source.is_absolute())
            .find(|source| {
                source
                    .file_name()
                    .map_or_else(|| "root".to_string(), |n| escape_name(n.as_bytes()))
                    == escape_name(&unescape_name(first))
            })?;
        let mut path = source.to_path_buf();
        for part in rest {
            path.push(OsString::from_vec(unescape_name(part)));
        }
        Some(path)
    }

    /// The error for a path of this machine that none of the sources of
    /// `snapshots` holds, naming them (each once, the first few).
    pub fn outside_sources<'s>(&self, snapshots: impl IntoIterator<Item = &'s Snapshot>) -> Error {
        const SHOWN: usize = 5;
        let mut sources: Vec<&str> = snapshots
            .into_iter()
            .flat_map(|s| s.paths.iter().map(String::as_str))
            .collect();
        sources.sort_unstable();
        sources.dedup();
        let mut list: Vec<String> = sources
            .iter()
            .take(SHOWN)
            .map(|s| format!("`{}`", escape_name(s.as_bytes())))
            .collect();
        if sources.len() > SHOWN {
            list.push(format!("{} more", sources.len() - SHOWN));
        }
        Error::not_found(format!(
            "`{}` is a path of this machine and lies in none of the backed-up sources ({}); give a path inside the snapshot as `snap ls` prints it, or one below a source",
            self.printable(),
            list.join(", ")
        ))
    }

    /// The argument as messages show it.
    pub fn printable(&self) -> String {
        match self {
            Self::Inside(path) => crate::ops::browse::printable(path),
            Self::Host(host) => escape_path(host),
        }
    }
}

/// `absolute` with `.` and `..` applied, and the symlinks of the folders
/// above its last component that exist resolved (the last component stays,
/// so a source that is a symlink is named as the backup named it).
fn resolve_host(absolute: &Path) -> PathBuf {
    let mut lexical = PathBuf::new();
    for component in absolute.components() {
        match component {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other),
        }
    }
    let Some(name) = lexical.file_name().map(ToOwned::to_owned) else {
        return lexical;
    };
    // The longest existing folder above the name, canonicalized.
    let mut tail = vec![name];
    let mut folder = lexical.parent().map(Path::to_path_buf);
    while let Some(dir) = folder {
        if let Ok(canonical) = std::fs::canonicalize(&dir) {
            let mut out = canonical;
            out.extend(tail.iter().rev());
            return out;
        }
        match dir.file_name() {
            Some(part) => tail.push(part.to_owned()),
            None => break,
        }
        folder = dir.parent().map(Path::to_path_buf);
    }
    lexical
}

/// Where a path stops existing in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nearest {
    /// The longest part of the path that exists, as snap prints it; empty
    /// for the snapshot root.
    pub existing: String,
    /// Components of the path that exist (0: only the root).
    pub depth: usize,
    /// A name close to the first missing component in that folder, as a
    /// full path (`app/notes` for `app/note`), when there is one.
    pub sibling: Option<String>,
}

impl Nearest {
    /// `the nearest path that exists is `app/notes`; did you mean ...?`
    pub fn hint(&self) -> String {
        let existing = if self.existing.is_empty() {
            "the nearest path that exists is the snapshot root".to_string()
        } else {
            format!("the nearest path that exists is `{}`", self.existing)
        };
        match &self.sibling {
            Some(sibling) => format!("{existing}; did you mean `{sibling}`?"),
            None => existing,
        }
    }
}

/// How far `path` exists below the root tree `root`.
pub fn nearest(repo: &Repository, root: TreeId, path: &str) -> Result<Nearest> {
    let mut node = root_node(root);
    let mut walked: Vec<String> = Vec::new();
    let mut sibling = None;
    for part in components(path) {
        let Some(subtree) = node.subtree else {
            break;
        };
        let tree = repo.read_tree(&subtree)?;
        match child(&tree, part) {
            Some(found) => {
                walked.push(escape_name(&found.name));
                node = found.clone();
            }
            None => {
                sibling = close_name(&tree, part).map(|name| {
                    walked
                        .iter()
                        .cloned()
                        .chain(std::iter::once(name))
                        .collect::<Vec<_>>()
                        .join("/")
                });
                break;
            }
        }
    }
    Ok(Nearest {
        existing: walked.join("/"),
        depth: walked.len(),
        sibling,
    })
}

/// The nearest path over several snapshots: the one where most of `path`
/// exists, the newest on a tie; `None` without snapshots. Each distinct
/// root tree is walked once.
pub fn nearest_in(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    path: &PathArg,
) -> Result<Option<Nearest>> {
    let mut seen = std::collections::HashSet::new();
    let mut best: Option<Nearest> = None;
    for (_, snapshot) in snapshots.iter().rev() {
        let Some(inside) = path.in_snapshot(snapshot) else {
            continue;
        };
        if !seen.insert((snapshot.tree, inside.clone())) {
            continue;
        }
        let found = nearest(repo, snapshot.tree, &inside)?;
        if best.as_ref().is_none_or(|b| found.depth > b.depth) {
            best = Some(found);
        }
    }
    Ok(best)
}

/// The entry of `tree` whose name is closest to `wanted` (a component as
/// typed): the same but for case, or similar enough (Jaro-Winkler, the
/// measure clap uses for its suggestions, at least 0.8).
fn close_name(tree: &Tree, wanted: &str) -> Option<String> {
    let wanted = String::from_utf8_lossy(&unescape_name(wanted)).to_lowercase();
    tree.nodes
        .iter()
        .map(|node| {
            let name = String::from_utf8_lossy(&node.name).to_lowercase();
            (strsim::jaro_winkler(&wanted, &name), node)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, node)| escape_name(&node.name))
}

/// The path inside the snapshots that a command's PATH argument names
/// (`None`: the root, the empty path): a path inside the snapshots as it
/// is, a path of this machine ([`PathArg::parse`]) translated by the first
/// of `snapshots` whose sources hold it. The one rule `ls`, `cat`,
/// `restore SNAP:PATH` and `diff` read paths by.
pub fn inside(snapshots: &[&Snapshot], path: Option<&str>) -> Result<String> {
    let Some(text) = path else {
        return Ok(String::new());
    };
    let arg = PathArg::parse(text)?;
    if let Some(found) = snapshots.iter().find_map(|s| arg.in_snapshot(s)) {
        return Ok(found);
    }
    Err(arg.outside_sources(snapshots.iter().copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken_from(paths: &[&str]) -> Snapshot {
        Snapshot {
            time: "2026-01-01T00:00:00Z".to_string(),
            host: "h".to_string(),
            user: "u".to_string(),
            paths: paths.iter().map(|p| (*p).to_string()).collect(),
            tags: Vec::new(),
            parent: None,
            tree: crate::id::BlobId([0; 32]),
            summary: crate::format::snapshot::Summary::default(),
            program: String::new(),
            original: None,
        }
    }

    #[test]
    fn a_snapshot_path_goes_back_to_where_it_was_taken() {
        let snapshot = taken_from(&["/home/me/app", "/srv/db", "/"]);
        assert_eq!(
            PathArg::original(&snapshot, "app/notes/a b.md"),
            Some(PathBuf::from("/home/me/app/notes/a b.md"))
        );
        assert_eq!(
            PathArg::original(&snapshot, "db"),
            Some(PathBuf::from("/srv/db"))
        );
        assert_eq!(
            PathArg::original(&snapshot, "root/etc/hosts"),
            Some(PathBuf::from("/etc/hosts"))
        );
        assert_eq!(
            PathArg::original(&snapshot, "app/\\xff"),
            Some(PathBuf::from(OsString::from_vec(
                b"/home/me/app/\xff".to_vec()
            )))
        );
        // The reverse of in_snapshot.
        let host = PathArg::Host(PathBuf::from("/home/me/app/notes/a b.md"));
        assert_eq!(
            host.in_snapshot(&snapshot).as_deref(),
            Some("app/notes/a b.md")
        );
        assert_eq!(PathArg::original(&snapshot, ""), None);
        assert_eq!(PathArg::original(&snapshot, "stdin.txt"), None);
        assert_eq!(PathArg::original(&snapshot, "app/../../etc"), None);
    }
}
