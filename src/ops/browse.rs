//! Reading inside a snapshot: find a path, list a directory, stream a file.
//! Only the trees along the path (and a file's own chunks) are read.

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{
    MAX_TREE_DEPTH, MAX_WALK_PATHS, Node, NodeKind, Tree, escape_name, unescape_name,
};
use crate::id::{BlobId, TreeId};
use crate::index::Location;
use crate::progress::Progress;
use crate::repo::Repository;

/// A node standing for a snapshot's root directory.
pub fn root_node(tree: TreeId) -> Node {
    Node {
        subtree: Some(tree),
        ..Node::new(Vec::new(), NodeKind::Dir, 0o755)
    }
}

/// The components of a path inside a snapshot (`a/b/c`; empty parts and `.` ignored).
pub fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// The entry of `tree` that a path component names, written the way snap
/// prints names ([`unescape_name`]): `a\\b` is `a\b`, `a\xffb` has the
/// byte 0xff.
pub fn child<'t>(tree: &'t Tree, component: &str) -> Option<&'t Node> {
    tree.find(&unescape_name(component))
}

/// A path inside a snapshot as snap prints it: each component parsed and
/// escaped again, so what the user typed raw is shown escaped.
pub fn printable(path: &str) -> String {
    components(path)
        .iter()
        .map(|c| escape_name(&unescape_name(c)))
        .collect::<Vec<_>>()
        .join("/")
}

/// Finds `path` below the root tree; the empty path is the root itself.
pub fn find_node(repo: &Repository, root: TreeId, path: &str) -> Result<Node> {
    let mut node = root_node(root);
    let mut walked = String::new();
    for component in components(path) {
        let Some(subtree) = node.subtree else {
            return Err(Error::not_found(format!(
                "`{}` is not in this snapshot: `{walked}` is a {}, not a folder",
                printable(path),
                node.kind.as_str()
            )));
        };
        let tree = repo
            .read_tree(&subtree)
            .map_err(|e| unreadable_listing(e, &walked))?;
        let Some(found) = child(&tree, component) else {
            // Walked again (on this error path only) to name what is there.
            let near = crate::ops::paths::nearest(repo, root, path)?;
            return Err(Error::not_found(format!(
                "`{}` is not in this snapshot; {}",
                printable(path),
                near.hint()
            )));
        };
        node = found.clone();
        if !walked.is_empty() {
            walked.push('/');
        }
        walked.push_str(&escape_name(&node.name));
    }
    Ok(node)
}

/// Calls `visit(path, node)` for the children of `dir` (and everything below
/// them when `recursive`), depth first in name order. `prefix` is `dir`'s path.
/// A recursive walk of more than [`MAX_WALK_PATHS`] paths is refused before
/// the first visit.
pub fn walk(
    repo: &Repository,
    dir: &Node,
    prefix: &str,
    recursive: bool,
    visit: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    if recursive && let Some(subtree) = dir.subtree {
        PathCount::default().refuse_too_many(repo, &subtree)?;
    }
    walk_below(repo, dir, prefix, recursive, visit)
}

fn walk_below(
    repo: &Repository,
    dir: &Node,
    prefix: &str,
    recursive: bool,
    visit: &mut dyn FnMut(&str, &Node) -> Result<()>,
) -> Result<()> {
    let Some(subtree) = dir.subtree else {
        return visit(prefix, dir);
    };
    if prefix.matches('/').count() >= MAX_TREE_DEPTH {
        return Err(Error::corrupt(
            format!("folder {}", prefix.chars().take(100).collect::<String>()),
            format!("nested deeper than {MAX_TREE_DEPTH} levels"),
        ));
    }
    let tree = repo
        .read_tree(&subtree)
        .map_err(|e| unreadable_listing(e, prefix))?;
    for node in &tree.nodes {
        let path = if prefix.is_empty() {
            node.display_name()
        } else {
            format!("{prefix}/{}", node.display_name())
        };
        visit(&path, node)?;
        if recursive && node.kind == NodeKind::Dir {
            walk_below(repo, node, &path, true, visit)?;
        }
    }
    Ok(())
}

/// Names the folder whose listing (tree) could not be read, as the user
/// knows it, instead of the object it is stored in: damage (or a missing
/// tree) becomes damage of that folder, exit code 4.
pub fn unreadable_listing(e: Error, folder: &str) -> Error {
    if !e.is_damage() {
        return e;
    }
    let folder = if folder.is_empty() {
        "the snapshot's root folder".to_string()
    } else {
        format!("folder `{folder}`")
    };
    let message = format!("the listing of {folder} cannot be read: {}", e.message());
    Error::new(ErrorKind::Corrupt, message).with_source(e)
}

/// The number of paths below trees, counted over the distinct trees (each
/// read once, whatever number of folders share it), so that a walk can be
/// refused before it starts. Keep one for several walks (e.g. the snapshots
/// `find` searches) to read each tree once for all of them.
#[derive(Default)]
pub struct PathCount {
    below: HashMap<TreeId, u64>,
}

impl PathCount {
    /// Refuses a walk below `tree` that would follow more than
    /// [`MAX_WALK_PATHS`] paths.
    pub fn refuse_too_many(&mut self, repo: &Repository, tree: &TreeId) -> Result<()> {
        let paths = self.paths_below(repo, tree, 0);
        if paths > MAX_WALK_PATHS {
            return Err(Error::corrupt(
                format!("tree {tree}"),
                format!(
                    "its folders repeat subtrees so often that it stands for {} paths, more than the {MAX_WALK_PATHS} paths a walk follows (a hostile repository)",
                    if paths == u64::MAX {
                        "over 2^64".to_string()
                    } else {
                        paths.to_string()
                    }
                ),
            ));
        }
        Ok(())
    }

    /// Paths below `tree` (saturating). A tree that cannot be read counts
    /// for its own path only: the walk reports it where it meets it.
    pub fn paths_below(&mut self, repo: &Repository, tree: &TreeId, depth: usize) -> u64 {
        if let Some(&known) = self.below.get(tree) {
            return known;
        }
        if depth >= MAX_TREE_DEPTH {
            return 0;
        }
        let Ok(listing) = repo.read_tree(tree) else {
            return 0;
        };
        let mut paths = 0u64;
        for node in &listing.nodes {
            let below = match node.subtree {
                Some(subtree) => self.paths_below(repo, &subtree, depth + 1),
                None => 0,
            };
            paths = paths.saturating_add(1).saturating_add(below);
        }
        self.below.insert(*tree, paths);
        paths
    }
}

/// Writes a file node's content to `out`, verifying every chunk. Returns bytes written.
pub fn cat(repo: &Repository, node: &Node, out: &mut dyn Write) -> Result<u64> {
    let mut content = FileReader::new(repo, node)?;
    std::io::copy(&mut content, out).map_err(|e| copy_error(e, "cannot write output"))
}

/// A file node's content as a reader, one verified chunk in memory at a
/// time, whatever the file's size. The whole layout is judged when it is
/// made ([`Repository::file_layout`]): a file whose chunks do not add up is
/// refused before the first byte goes out, never given as a short file.
pub struct FileReader<'r> {
    repo: &'r Repository,
    layout: std::vec::IntoIter<(BlobId, Location)>,
    chunk: Vec<u8>,
    at: usize,
    progress: Option<&'r dyn Progress>,
}

impl<'r> FileReader<'r> {
    /// The reader of a file node; anything but a file is a usage error.
    pub fn new(repo: &'r Repository, node: &Node) -> Result<Self> {
        if node.kind == NodeKind::Dir {
            return Err(Error::usage(format!(
                "`{}` is a folder, not a file; `snap dump` writes a folder as a tar or zip archive",
                node.display_name()
            )));
        }
        if node.kind != NodeKind::File {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "`{}` is a {}, not a file",
                    node.display_name(),
                    node.kind.as_str()
                ),
            ));
        }
        Ok(Self {
            repo,
            layout: repo.file_layout(node)?.into_iter(),
            chunk: Vec::new(),
            at: 0,
            progress: None,
        })
    }

    /// Reports every byte read to `progress` ([`Progress::add_bytes`]).
    pub fn counted(mut self, progress: &'r dyn Progress) -> Self {
        self.progress = Some(progress);
        self
    }
}

impl Read for FileReader<'_> {
    /// A chunk that cannot be read or verified fails the read with an
    /// `io::Error` wrapping the library's [`Error`] ([`copy_error`] gets it
    /// back).
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            let Some((id, location)) = self.layout.next() else {
                return Ok(0);
            };
            self.chunk = self
                .repo
                .read_blob_at(&id, &location)
                .map_err(std::io::Error::other)?;
            self.at = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        if let Some(progress) = self.progress {
            progress.add_bytes(n as u64);
        }
        Ok(n)
    }
}

/// The error of copying a [`FileReader`] somewhere: the library's error
/// when reading the repository failed, else a write error, `what` naming
/// the destination.
pub fn copy_error(e: std::io::Error, what: &str) -> Error {
    match e.downcast::<Error>() {
        Ok(error) => error,
        Err(e) => Error::new(ErrorKind::Io, format!("{what}: {e}")).with_source(e),
    }
}
