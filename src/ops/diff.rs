//! `snap diff`: what changed between two snapshots, and how a file changed.
//!
//! The walk merges the two sorted node lists of each pair of folders and
//! skips a pair whose tree ids are equal: an unchanged subtree has the same
//! id in both snapshots, so the cost follows the size of the change, not the
//! size of the snapshots. Only the trees of changed folders are read.
//!
//! Each path is reported once, parents before their entries, in name order:
//! - *added* / *removed*: the path exists on one side only (everything below
//!   an added or removed folder is listed too);
//! - *type*: the kind changed (file to folder, file to symlink, ...); the
//!   entries below a folder on either side are listed as removed or added;
//! - *modified*: same kind, different content: a file's chunk ids (with the
//!   list depth), a symlink's target, a device's number;
//! - *metadata*: same content, different mode, owner, mtime or extended
//!   attributes (ctime, inode and link count are for change detection only).
//!
//! [`content_diff`] says how a modified file changed: a unified diff for
//! text, rows added, removed and changed per table for SQLite databases.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{MAX_TREE_DEPTH, MAX_WALK_PATHS, Node, NodeKind};
use crate::id::TreeId;
use crate::ops::browse::{PathCount, cat, components, find_node, walk};
use crate::ops::sqlite::HEADER as SQLITE_HEADER;
use crate::ops::sqlite::rows;
use crate::repo::Repository;

/// How a path changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the newer snapshot.
    Added,
    /// Only in the older snapshot.
    Removed,
    /// Same kind, different content.
    Modified,
    /// A different kind of entry (file, folder, symlink, ...).
    Type,
    /// Same content, different mode, owner, mtime or extended attributes.
    Metadata,
}

impl ChangeKind {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::Type => "type",
            ChangeKind::Metadata => "metadata",
        }
    }

    /// The one-character marker of the human output.
    pub fn marker(self) -> char {
        match self {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Type => 'T',
            ChangeKind::Metadata => 'm',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone)]
pub struct Change {
    /// The path as `snap ls` prints it.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// The entry in the older snapshot.
    pub before: Option<Node>,
    /// The entry in the newer snapshot.
    pub after: Option<Node>,
}

impl Change {
    /// Size in the older snapshot (absent: `None`; 0 for anything but files).
    pub fn size_before(&self) -> Option<u64> {
        self.before.as_ref().map(|n| n.size)
    }

    /// Size in the newer snapshot.
    pub fn size_after(&self) -> Option<u64> {
        self.after.as_ref().map(|n| n.size)
    }

    /// Whether both sides are regular files (so [`content_diff`] applies).
    pub fn is_file_pair(&self) -> bool {
        self.before
            .as_ref()
            .is_some_and(|n| n.kind == NodeKind::File)
            && self
                .after
                .as_ref()
                .is_some_and(|n| n.kind == NodeKind::File)
    }
}

/// Counts and bytes of the changes in one folder (or all of them).
///
/// "Files" are all entries that are not folders (files, symlinks, ...).
/// A type change is counted only in `type_changed`; the per-path changes
/// carry both sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatGroup {
    /// Files only in the newer snapshot.
    pub files_added: u64,
    /// Files only in the older snapshot.
    pub files_removed: u64,
    /// Files whose content changed.
    pub files_modified: u64,
    /// Folders only in the newer snapshot.
    pub dirs_added: u64,
    /// Folders only in the older snapshot.
    pub dirs_removed: u64,
    /// Entries whose kind changed.
    pub type_changed: u64,
    /// Entries whose metadata alone changed.
    pub metadata_changed: u64,
    /// Size of the added files.
    pub bytes_added: u64,
    /// Size of the removed files.
    pub bytes_removed: u64,
    /// Size of the modified files before.
    pub bytes_before: u64,
    /// Size of the modified files after.
    pub bytes_after: u64,
}

impl StatGroup {
    fn count(&mut self, change: &Change) {
        let is_dir = |n: &Option<Node>| n.as_ref().is_some_and(|n| n.kind == NodeKind::Dir);
        let size = |n: &Option<Node>| n.as_ref().map_or(0, |n| n.size);
        match change.kind {
            ChangeKind::Added if is_dir(&change.after) => self.dirs_added += 1,
            ChangeKind::Added => {
                self.files_added += 1;
                self.bytes_added += size(&change.after);
            }
            ChangeKind::Removed if is_dir(&change.before) => self.dirs_removed += 1,
            ChangeKind::Removed => {
                self.files_removed += 1;
                self.bytes_removed += size(&change.before);
            }
            ChangeKind::Modified => {
                self.files_modified += 1;
                self.bytes_before += size(&change.before);
                self.bytes_after += size(&change.after);
            }
            ChangeKind::Type => self.type_changed += 1,
            ChangeKind::Metadata => self.metadata_changed += 1,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The summary of a diff: all changes, and the changes per top-level entry.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DiffStat {
    /// Every change.
    pub total: StatGroup,
    /// Per first path component below the diff's root. Files directly in the
    /// root (and the root path itself) are counted under `.`.
    pub folders: BTreeMap<String, StatGroup>,
}

/// What changed between two trees.
#[derive(Debug, Clone, Default)]
pub struct Diff {
    /// Changed paths, parents before their entries, in name order.
    pub changes: Vec<Change>,
    /// Counts per top-level folder and in total.
    pub stat: DiffStat,
}

/// Compares the trees `before` and `after` (snapshot roots) at `path` (the
/// empty path: everything). `path` must exist in at least one of them.
pub fn diff(repo: &Repository, before: TreeId, after: TreeId, path: &str) -> Result<Diff> {
    let prefix = components(path).join("/");
    let mut walker = Walker {
        repo,
        changes: Vec::new(),
    };
    let mut count = ChangeCount {
        repo,
        pairs: HashMap::new(),
        paths: PathCount::default(),
    };
    if prefix.is_empty() {
        count.refuse_too_many(Some(before), Some(after))?;
        walker.folders(before, after, "")?;
    } else {
        let a = present(find_node(repo, before, &prefix))?;
        let b = present(find_node(repo, after, &prefix))?;
        if a.is_none() && b.is_none() {
            let near_a = crate::ops::paths::nearest(repo, before, &prefix)?;
            let near_b = crate::ops::paths::nearest(repo, after, &prefix)?;
            let near = if near_a.depth > near_b.depth {
                near_a
            } else {
                near_b
            };
            return Err(Error::not_found(format!(
                "`{prefix}` is in neither snapshot; {}",
                near.hint()
            )));
        }
        count.refuse_too_many(
            a.as_ref().and_then(|n| n.subtree),
            b.as_ref().and_then(|n| n.subtree),
        )?;
        walker.entry(prefix.clone(), a.as_ref(), b.as_ref())?;
    }
    let stat = stat(&walker.changes, &prefix);
    Ok(Diff {
        changes: walker.changes,
        stat,
    })
}

/// A lookup's node, `None` when the path does not exist.
fn present(found: Result<Node>) -> Result<Option<Node>> {
    match found {
        Ok(node) => Ok(Some(node)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Bounds the changes a diff reports before it starts, reading only the
/// trees the diff itself reads (pairs that differ, folders on one side), each
/// once: a hostile pair of trees that repeat subtrees cannot make the diff
/// walk 2^40 paths.
struct ChangeCount<'r> {
    repo: &'r Repository,
    pairs: HashMap<(TreeId, TreeId), u64>,
    paths: PathCount,
}

impl ChangeCount<'_> {
    fn refuse_too_many(&mut self, before: Option<TreeId>, after: Option<TreeId>) -> Result<()> {
        let (changes, tree) = match (before, after) {
            (Some(a), Some(b)) => (self.changes_at_most(a, b, 0), b),
            (Some(t), None) | (None, Some(t)) => (self.paths.paths_below(self.repo, &t, 0), t),
            (None, None) => return Ok(()),
        };
        if changes > MAX_WALK_PATHS {
            return Err(Error::corrupt(
                format!("tree {tree}"),
                format!(
                    "its folders repeat subtrees so often that the diff would follow more than the {MAX_WALK_PATHS} paths a walk follows (a hostile repository)"
                ),
            ));
        }
        Ok(())
    }

    /// At least as many changes as the diff of two folders reports.
    fn changes_at_most(&mut self, before: TreeId, after: TreeId, depth: usize) -> u64 {
        if before == after || depth >= MAX_TREE_DEPTH {
            return 0;
        }
        if let Some(&known) = self.pairs.get(&(before, after)) {
            return known;
        }
        // Unreadable trees: the diff reports the error where it meets it.
        let (Ok(a), Ok(b)) = (self.repo.read_tree(&before), self.repo.read_tree(&after)) else {
            return 0;
        };
        let mut total = 0u64;
        let one_side = |node: &Node, paths: &mut PathCount| {
            1 + node
                .subtree
                .map_or(0, |t| paths.paths_below(self.repo, &t, depth + 1))
        };
        let (mut i, mut j) = (0, 0);
        let (a, b) = (a.nodes, b.nodes);
        while i < a.len() || j < b.len() {
            let order = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let here = match order {
                Ordering::Less => {
                    i += 1;
                    one_side(&a[i - 1], &mut self.paths)
                }
                Ordering::Greater => {
                    j += 1;
                    one_side(&b[j - 1], &mut self.paths)
                }
                Ordering::Equal => {
                    let (x, y) = (&a[i], &b[j]);
                    i += 1;
                    j += 1;
                    // A changed kind reports both sides in full.
                    let below = match (x.subtree, y.subtree) {
                        (Some(p), Some(q)) => self.changes_at_most(p, q, depth + 1),
                        _ => one_side(x, &mut self.paths)
                            .saturating_add(one_side(y, &mut self.paths)),
                    };
                    below.saturating_add(1)
                }
            };
            total = total.saturating_add(here);
        }
        self.pairs.insert((before, after), total);
        total
    }
}

struct Walker<'r> {
    repo: &'r Repository,
    changes: Vec<Change>,
}

impl Walker<'_> {
    fn push(
        &mut self,
        path: String,
        kind: ChangeKind,
        before: Option<&Node>,
        after: Option<&Node>,
    ) {
        self.changes.push(Change {
            path,
            kind,
            before: before.cloned(),
            after: after.cloned(),
        });
    }

    /// Compares one path's entries (either may be absent).
    fn entry(&mut self, path: String, before: Option<&Node>, after: Option<&Node>) -> Result<()> {
        match (before, after) {
            (None, None) => Ok(()),
            (Some(a), None) => {
                self.push(path.clone(), ChangeKind::Removed, Some(a), None);
                self.below(ChangeKind::Removed, a, &path)
            }
            (None, Some(b)) => {
                self.push(path.clone(), ChangeKind::Added, None, Some(b));
                self.below(ChangeKind::Added, b, &path)
            }
            (Some(a), Some(b)) if a.kind != b.kind => {
                self.push(path.clone(), ChangeKind::Type, Some(a), Some(b));
                self.below(ChangeKind::Removed, a, &path)?;
                self.below(ChangeKind::Added, b, &path)
            }
            (Some(a), Some(b)) => {
                if content_differs(a, b) {
                    self.push(path.clone(), ChangeKind::Modified, Some(a), Some(b));
                } else if metadata_differs(a, b) {
                    self.push(path.clone(), ChangeKind::Metadata, Some(a), Some(b));
                }
                match (a.subtree, b.subtree) {
                    (Some(ta), Some(tb)) => self.folders(ta, tb, &path),
                    _ => Ok(()),
                }
            }
        }
    }

    /// Everything below a folder that exists on one side only.
    fn below(&mut self, kind: ChangeKind, dir: &Node, prefix: &str) -> Result<()> {
        if dir.kind != NodeKind::Dir {
            return Ok(());
        }
        let mut found = Vec::new();
        walk(self.repo, dir, prefix, true, &mut |path, node| {
            found.push((path.to_string(), node.clone()));
            Ok(())
        })?;
        for (path, node) in found {
            let (before, after) = match kind {
                ChangeKind::Removed => (Some(node), None),
                _ => (None, Some(node)),
            };
            self.changes.push(Change {
                path,
                kind,
                before,
                after,
            });
        }
        Ok(())
    }

    /// Merges the sorted entries of two folders; equal trees are skipped unread.
    fn folders(&mut self, before: TreeId, after: TreeId, prefix: &str) -> Result<()> {
        if before == after {
            return Ok(());
        }
        if prefix.matches('/').count() >= MAX_TREE_DEPTH {
            return Err(Error::corrupt(
                format!("folder {}", prefix.chars().take(100).collect::<String>()),
                format!("nested deeper than {MAX_TREE_DEPTH} levels"),
            ));
        }
        let (a, b) = rayon::join(
            || self.repo.read_tree(&before),
            || self.repo.read_tree(&after),
        );
        let (a, b) = (a?.nodes, b?.nodes);
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let order = match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            let (x, y) = match order {
                Ordering::Less => (Some(&a[i]), None),
                Ordering::Greater => (None, Some(&b[j])),
                Ordering::Equal => (Some(&a[i]), Some(&b[j])),
            };
            i += usize::from(x.is_some());
            j += usize::from(y.is_some());
            let name = x.or(y).map(Node::display_name).unwrap_or_default();
            self.entry(join(prefix, &name), x, y)?;
        }
        Ok(())
    }
}

/// Same kind, different content (see the module doc).
fn content_differs(a: &Node, b: &Node) -> bool {
    match a.kind {
        NodeKind::File => {
            a.size != b.size || a.content_depth != b.content_depth || a.content != b.content
        }
        NodeKind::Symlink => a.target != b.target,
        NodeKind::Chardev | NodeKind::Blockdev => a.rdev != b.rdev,
        NodeKind::Dir | NodeKind::Fifo | NodeKind::Socket => false,
    }
}

fn metadata_differs(a: &Node, b: &Node) -> bool {
    a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.mtime_ns != b.mtime_ns
        || a.xattrs != b.xattrs
}

/// Counts the changes, in total and per first component below `root`.
fn stat(changes: &[Change], root: &str) -> DiffStat {
    let mut stat = DiffStat::default();
    for change in changes {
        stat.total.count(change);
        let rel = if root.is_empty() {
            change.path.as_str()
        } else {
            change
                .path
                .strip_prefix(root)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or("")
        };
        let is_dir = [&change.before, &change.after]
            .into_iter()
            .flatten()
            .any(|n| n.kind == NodeKind::Dir);
        let folder = match rel.split_once('/') {
            Some((first, _)) => first,
            None if is_dir && !rel.is_empty() => rel,
            None => ".",
        };
        stat.folders
            .entry(folder.to_string())
            .or_default()
            .count(change);
    }
    stat
}

/// Files larger than this are not compared as text.
pub const MAX_TEXT_DIFF: u64 = 16 << 20;

/// How long the line diff may search for the smallest diff before it settles
/// for a larger one (pathological inputs make it quadratic).
const TEXT_DIFF_TIMEOUT: Duration = Duration::from_secs(5);

/// How the content of a modified file changed.
#[derive(Debug, Clone)]
pub enum ContentDiff {
    /// Both versions are text (UTF-8 without NUL, at most [`MAX_TEXT_DIFF`]
    /// bytes): a unified diff with headers `a/PATH` and `b/PATH`.
    Text(String),
    /// Both versions are SQLite databases.
    Sqlite(SqliteDiff),
    /// Both versions start like SQLite databases, but SQLite could not read
    /// one of them: why.
    SqliteUnreadable(String),
    /// Anything else.
    Binary,
}

pub use crate::ops::sqlite::rows::{SchemaChange, SqliteDiff, TableDiff};

/// Says how the content of file `path` changed from `before` to `after`
/// (both regular files of the same repository).
pub fn content_diff(
    repo: &Repository,
    path: &str,
    before: &Node,
    after: &Node,
) -> Result<ContentDiff> {
    for node in [before, after] {
        if node.kind != NodeKind::File {
            return Err(Error::usage(format!(
                "`{path}` is a {} in one snapshot; only files have content to compare",
                node.kind.as_str()
            )));
        }
    }
    let (head_a, head_b) = (head(repo, before)?, head(repo, after)?);
    if head_a.starts_with(SQLITE_HEADER) && head_b.starts_with(SQLITE_HEADER) {
        return sqlite_diff(repo, before, after);
    }
    if before.size > MAX_TEXT_DIFF
        || after.size > MAX_TEXT_DIFF
        || head_a.contains(&0)
        || head_b.contains(&0)
    {
        return Ok(ContentDiff::Binary);
    }
    let (Some(a), Some(b)) = (text(repo, before)?, text(repo, after)?) else {
        return Ok(ContentDiff::Binary);
    };
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Patience)
        .timeout(TEXT_DIFF_TIMEOUT)
        .diff_lines(a.as_str(), b.as_str());
    let unified = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string();
    Ok(ContentDiff::Text(unified))
}

/// The first bytes of a file: its first chunk.
fn head(repo: &Repository, node: &Node) -> Result<Vec<u8>> {
    match repo.file_chunks(node)?.first() {
        Some(id) => repo.read_blob(id),
        None => Ok(Vec::new()),
    }
}

/// The file's content when it is text: UTF-8 without NUL bytes.
fn text(repo: &Repository, node: &Node) -> Result<Option<String>> {
    let mut bytes = Vec::with_capacity(usize::try_from(node.size).unwrap_or(0));
    cat(repo, node, &mut bytes)?;
    Ok(String::from_utf8(bytes)
        .ok()
        .filter(|text| !text.contains('\0')))
}

/// Restores both versions into a temporary folder and compares them with SQLite.
fn sqlite_diff(repo: &Repository, before: &Node, after: &Node) -> Result<ContentDiff> {
    let dir = temp_dir()?;
    let paths = [
        write_temp(repo, dir.path(), "before.db", before)?,
        write_temp(repo, dir.path(), "after.db", after)?,
    ];
    Ok(match rows::compare_files(&paths[0], &paths[1]) {
        Ok(diff) => ContentDiff::Sqlite(diff),
        Err(e) => ContentDiff::SqliteUnreadable(e.to_string()),
    })
}

/// Two versions of a SQLite database side by side: the row diff and each
/// version's tables with their row counts, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SqliteCompare {
    /// What changed from the older version to the newer.
    pub diff: SqliteDiff,
    /// The older version's tables and their row counts.
    pub rows_before: Vec<(String, u64)>,
    /// The newer version's tables and their row counts.
    pub rows_after: Vec<(String, u64)>,
}

/// Compares two versions of a file stored as SQLite databases from one
/// temporary copy of each: `None` when they are not both SQLite databases
/// (compare them with [`content_diff`]); the inner error says why SQLite
/// could not read one of them.
pub fn sqlite_compare(
    repo: &Repository,
    before: &Node,
    after: &Node,
) -> Result<Option<std::result::Result<SqliteCompare, String>>> {
    for node in [before, after] {
        if node.kind != NodeKind::File || !head(repo, node)?.starts_with(SQLITE_HEADER) {
            return Ok(None);
        }
    }
    let dir = temp_dir()?;
    let paths = [
        write_temp(repo, dir.path(), "before.db", before)?,
        write_temp(repo, dir.path(), "after.db", after)?,
    ];
    let read = || -> rusqlite::Result<SqliteCompare> {
        Ok(SqliteCompare {
            diff: rows::compare_files(&paths[0], &paths[1])?,
            rows_before: rows::table_rows(&paths[0])?,
            rows_after: rows::table_rows(&paths[1])?,
        })
    };
    Ok(Some(read().map_err(|e| e.to_string())))
}

fn temp_dir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| {
        Error::io(
            "cannot create a temporary folder in",
            &std::env::temp_dir(),
            e,
        )
    })
}

/// Writes the content of `node` to the file `name` in `dir`.
fn write_temp(
    repo: &Repository,
    dir: &std::path::Path,
    name: &str,
    node: &Node,
) -> Result<std::path::PathBuf> {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    cat(repo, node, &mut out)?;
    std::io::Write::flush(&mut out).map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(path)
}
