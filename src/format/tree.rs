//! Trees (directory listings) and chunk lists, both stored as blobs.
//!
//! A tree blob is MessagePack `{"nodes": [Node...]}` with nodes sorted by name
//! and names unique. Names are raw bytes (Unix names need not be UTF-8) and
//! are validated before any use as a path component: see [`validate_name`].
//!
//! A file's content is a list of data-chunk ids. Long lists are stored as a
//! tree of list blobs ([`ChunkList`]): `content_depth` 0 means `content` names
//! data chunks, depth d > 0 means it names list blobs of depth d - 1. List
//! boundaries are content-defined (by the ids themselves), so a small edit to
//! a large file rewrites only the list blobs around the edit.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::{BlobId, TreeId};

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (stored, never followed).
    Symlink,
    /// Named pipe.
    Fifo,
    /// Character device.
    Chardev,
    /// Block device.
    Blockdev,
    /// Unix socket (listed, not restored).
    Socket,
}

impl NodeKind {
    /// The name used in listings and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::File => "file",
            NodeKind::Dir => "dir",
            NodeKind::Symlink => "symlink",
            NodeKind::Fifo => "fifo",
            NodeKind::Chardev => "chardev",
            NodeKind::Blockdev => "blockdev",
            NodeKind::Socket => "socket",
        }
    }
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Attribute name.
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// Attribute value.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name (one path component, raw bytes).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the Unix epoch (change detection only).
    pub ctime_ns: i64,
    /// Inode number (change detection and hard links).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inode: u64,
    /// Device id of the filesystem (hard links).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dev: u64,
    /// Hard link count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub links: u64,
    /// Device number of a character or block device.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// File size in bytes (content length for files).
    pub size: u64,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
    /// Symlink target, raw bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub target: Option<Vec<u8>>,
    /// Content ids (see `content_depth`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// 0: `content` lists data chunks; d > 0: list blobs of depth d - 1.
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub content_depth: u8,
    /// The zstd dictionary (a data blob) the file's chunks were compressed
    /// with; their ids name it (see docs/FORMAT.md). SQLite images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<BlobId>,
    /// The tree of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<TreeId>,
}

impl Node {
    /// An entry with only a name, a kind and a mode: owned by root, dated
    /// the epoch, empty, with no links, attributes, content or subtree.
    /// Every node snap builds starts here and sets what it knows, so a new
    /// field needs a default in one place only.
    pub fn new(name: Vec<u8>, kind: NodeKind, mode: u32) -> Self {
        Node {
            name,
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            dev: 0,
            links: 0,
            rdev: 0,
            size: 0,
            xattrs: Vec::new(),
            target: None,
            content: Vec::new(),
            content_depth: 0,
            dictionary: None,
            subtree: None,
        }
    }

    /// The name as `snap ls` prints it: UTF-8 as it is, other bytes as
    /// `\xNN` (see [`escape_name`]).
    pub fn display_name(&self) -> String {
        escape_name(&self.name)
    }
}

/// A directory listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries sorted by name, names unique.
    pub nodes: Vec<Node>,
}

/// Deepest folder nesting any command follows. Paths are limited to 4096
/// bytes (PATH_MAX), so no real tree is deeper than 2048 levels.
pub const MAX_TREE_DEPTH: usize = 2048;

/// Deepest chunk-list tree we accept (a hostile depth cannot recurse forever).
pub const MAX_CONTENT_DEPTH: u8 = 8;

/// Largest tree blob (plaintext) any command reads without question. A
/// larger tree must not decompress to more than [`MAX_TREE_RATIO`] times its
/// stored frame; both are checked from the index before a byte of the tree
/// is read, so a small frame that inflates to gigabytes is refused without
/// allocating them.
pub const MAX_TREE_LEN: u32 = 64 << 20;

/// How many times its stored frame a tree larger than [`MAX_TREE_LEN`] may
/// decompress to. Backup's trees compress 2.5 times (a folder of photos) to
/// 60 times (a folder of empty files with numbered names and equal times);
/// a zstd bomb compresses 32,000 times. A folder of 10 million entries
/// (1.2 to 2 GB of tree) is well within it.
pub const MAX_TREE_RATIO: u32 = 256;

/// Paths one walk (`ls -R`, `find`, `restore`, `diff`, `check`) follows
/// at most: an entry reached through several folders counts each time. It
/// is counted from the distinct trees before the walk starts, so a hostile
/// tree whose children all point at one subtree, level after level (2^40
/// paths in a few kilobytes), is refused at once instead of walked.
pub const MAX_WALK_PATHS: u64 = 1_000_000_000;

/// Refuses a tree blob whose `length` stored bytes claim `raw_length`
/// bytes of listing beyond what trees compress to ([`MAX_TREE_LEN`],
/// [`MAX_TREE_RATIO`]); to be asked before it is read or decompressed.
pub fn check_tree_size(id: &TreeId, length: u32, raw_length: u32) -> Result<()> {
    if raw_length > MAX_TREE_LEN
        && u64::from(raw_length) > u64::from(length) * u64::from(MAX_TREE_RATIO)
    {
        return Err(Error::corrupt(
            format!("tree {id}"),
            format!(
                "its {length} stored bytes claim {raw_length} bytes of listing: trees over {MAX_TREE_LEN} bytes compress at most {MAX_TREE_RATIO} times"
            ),
        ));
    }
    Ok(())
}

impl Node {
    /// Whether a file's content adds up: its chunks (`chunks` of them,
    /// holding `bytes` bytes in total) hold exactly its size, and none is
    /// empty. The one rule every reader applies (check, restore, cat, copy),
    /// so that what `snap check` passes, `snap restore` restores.
    pub fn check_content(&self, chunks: u64, bytes: u64, empty_chunk: bool) -> Result<()> {
        let what = || format!("file {}", self.display_name());
        if empty_chunk {
            return Err(Error::corrupt(what(), "one of its chunks is empty"));
        }
        if bytes != self.size {
            return Err(Error::corrupt(
                what(),
                format!(
                    "its {} {}, its size is {}",
                    crate::plural::count(chunks, "chunk holds", "chunks hold"),
                    crate::plural::count(bytes, "byte", "bytes"),
                    self.size
                ),
            ));
        }
        Ok(())
    }
}

impl Tree {
    /// Encodes a tree blob. Nodes must already be sorted.
    pub fn to_bytes(&self) -> Vec<u8> {
        debug_assert!(self.nodes.windows(2).all(|w| w[0].name < w[1].name));
        super::to_msgpack(self)
    }

    /// Decodes and validates a tree blob: every name is a safe component,
    /// names are sorted and unique, depths are bounded.
    pub fn from_bytes(id: &TreeId, bytes: &[u8]) -> Result<Self> {
        let what = format!("tree {id}");
        let tree: Tree = super::from_msgpack(&what, bytes)?;
        for pair in tree.nodes.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(Error::corrupt(&what, "names are not sorted and unique"));
            }
        }
        for node in &tree.nodes {
            validate_name(&node.name).map_err(|e| Error::corrupt(&what, e))?;
            if node.content_depth > MAX_CONTENT_DEPTH {
                return Err(Error::corrupt(&what, "chunk list too deep"));
            }
            if (node.kind == NodeKind::Symlink) != node.target.is_some() {
                return Err(Error::corrupt(
                    &what,
                    "symlink without target, or target on a non-symlink",
                ));
            }
            if (node.kind == NodeKind::Dir) != node.subtree.is_some() {
                return Err(Error::corrupt(
                    &what,
                    "directory without tree, or tree on a non-directory",
                ));
            }
        }
        Ok(tree)
    }

    /// The node named `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

/// A name as snap prints it, in text and in JSON (docs/CLI.md, "Names"):
/// a backslash becomes `\\`, a byte that is not UTF-8 and a control
/// character below U+0080 (including DEL) become `\xNN`, and other control
/// and text-direction characters become `\u{NNNN}`; everything else stays
/// as it is. The printed form is unambiguous and names the same entry when
/// given back ([`unescape_name`]), and it never moves or recolours a
/// terminal.
pub fn escape_name(name: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\0'..='\x1f' | '\x7f' => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c if c.is_control() || is_direction_mark(c) => {
                    let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Characters that reorder the text around them on a terminal.
fn is_direction_mark(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A host path (a source or restore target) for messages, escaped like a name.
pub fn escape_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    escape_name(path.as_os_str().as_bytes())
}

/// The bytes a name given on the command line stands for: `\\` is a
/// backslash, `\xNN` the byte NN, `\u{N...}` that character; any other
/// backslash is itself. Text without escapes is the name as it is.
pub fn unescape_name(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let rest = &text[i + 1..];
            if rest.starts_with('\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if let Some(hex) = rest.strip_prefix('x').and_then(|r| r.get(..2))
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && let Ok(byte) = u8::from_str_radix(hex, 16)
            {
                out.push(byte);
                i += 4;
                continue;
            }
            if let Some(body) = rest.strip_prefix("u{")
                && let Some(end) = body.find('}')
                && let Some(c) = u32::from_str_radix(&body[..end], 16)
                    .ok()
                    .and_then(char::from_u32)
            {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1 + 2 + end + 1;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// A name is safe as one path component: not empty, not `.` or `..`, no `/`, no NUL.
pub fn validate_name(name: &[u8]) -> Result<(), String> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(format!(
            "unsafe file name {:?} (empty, `.`, `..`, or containing `/` or NUL)",
            String::from_utf8_lossy(name)
        ));
    }
    Ok(())
}

/// An inner node of a large file's chunk tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    /// Ids of the next level down.
    pub ids: Vec<BlobId>,
}

impl ChunkList {
    /// Encodes a list blob.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::to_msgpack(self)
    }

    /// Decodes a list blob.
    pub fn from_bytes(id: &BlobId, bytes: &[u8]) -> Result<Self> {
        super::from_msgpack(&format!("chunk list {id}"), bytes)
    }
}

/// Content lists longer than this are stored as list blobs.
pub const DIRECT_CONTENT_MAX: usize = 32;

/// A list blob is cut after this many ids even without a boundary.
pub const MAX_LIST_LEN: usize = 1024;

/// Whether a list boundary falls after this id: on average every 8 ids,
/// decided by the id itself, so boundaries survive insertions upstream.
///
/// Small lists keep scattered edits cheap: a changed chunk rewrites one list
/// per level, so a list's size is what each level costs per edit (8 ids, 256
/// bytes, instead of 1 KiB at 32; measured in docs/SQLITE.md).
pub fn is_list_boundary(id: &BlobId) -> bool {
    id.0[31] & 0x07 == 0
}

/// Ids in each list blob of a fixed-size chunk list.
pub const FIXED_LIST_LEN: usize = 8;

/// Where a file's chunk list is cut into list blobs (readers do not care).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListCut {
    /// After ids that [`is_list_boundary`] picks: content-defined chunks
    /// move when bytes are inserted before them, and the cuts move along.
    ContentDefined,
    /// Every [`FIXED_LIST_LEN`] ids: the fixed-size chunks of a SQLite image
    /// never move, and lists of equal length make every edit cost the same
    /// (a content-defined list holding a changed id is twice the average
    /// length on average: long lists are the likeliest to hold it).
    Fixed,
}

impl ListCut {
    /// How a file's chunk list is cut: in fixed lists for a SQLite image,
    /// content-defined for every other file.
    pub fn for_file(sqlite_image: bool) -> Self {
        if sqlite_image {
            ListCut::Fixed
        } else {
            ListCut::ContentDefined
        }
    }

    /// Whether a list of `len` ids ending with `id` ends here.
    pub fn cuts_after(self, id: &BlobId, len: usize) -> bool {
        match self {
            ListCut::ContentDefined => is_list_boundary(id) || len >= MAX_LIST_LEN,
            ListCut::Fixed => len >= FIXED_LIST_LEN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &[u8]) -> Node {
        Node {
            name: name.to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1_700_000_000_123_456_789,
            ctime_ns: 1_700_000_000_000_000_000,
            inode: 42,
            dev: 1,
            links: 1,
            rdev: 0,
            size: 5,
            xattrs: vec![],
            target: None,
            content: vec![BlobId([1; 32])],
            content_depth: 0,
            dictionary: None,
            subtree: None,
        }
    }

    proptest! {
        #[test]
        fn tree_round_trip(names in proptest::collection::btree_set(proptest::collection::vec(1u8..=255, 1..40), 0..20), mtime in any::<i64>()) {
            let nodes: Vec<Node> = names
                .into_iter()
                .filter(|n| validate_name(n).is_ok())
                .map(|n| Node { mtime_ns: mtime, ..node(&n) })
                .collect();
            let tree = Tree { nodes };
            let id = BlobId([0; 32]);
            prop_assert_eq!(Tree::from_bytes(&id, &tree.to_bytes()).unwrap(), tree);
        }
    }

    #[test]
    fn hostile_names_are_rejected() {
        for bad in [&b".."[..], b".", b"", b"a/b", b"/etc", b"x\0y"] {
            let tree = Tree {
                nodes: vec![node(bad)],
            };
            assert!(Tree::from_bytes(&BlobId([0; 32]), &super::super::to_msgpack(&tree)).is_err());
        }
        let dup = Tree {
            nodes: vec![node(b"a"), node(b"a")],
        };
        assert!(Tree::from_bytes(&BlobId([0; 32]), &super::super::to_msgpack(&dup)).is_err());
    }

    #[test]
    fn escaped_names_round_trip() {
        for name in [
            &b"plain.md"[..],
            b"caf\xe9",
            "café".as_bytes(),
            b"back\\slash\xff",
            b"a\\xffb",
            b"a\xffb",
            b"\xff\xfe",
            b"bell\x07esc\x1b[31mnl\nx\x7f",
            "c1\u{85}rtl\u{202e}".as_bytes(),
            b"\\u{41}",
        ] {
            let shown = escape_name(name);
            assert_eq!(unescape_name(&shown), name, "{shown}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
        assert_eq!(escape_name(b"a\\xffb"), "a\\\\xffb");
        assert_eq!(escape_name(b"a\xffb"), "a\\xffb");
        assert_eq!(escape_name(b"x\ny\x1b"), "x\\x0ay\\x1b");
        assert_eq!(escape_name("\u{202e}".as_bytes()), "\\u{202e}");
        assert_eq!(escape_name("café".as_bytes()), "café");
        // A backslash that starts no escape is itself.
        assert_eq!(unescape_name("a\\b\\x4"), b"a\\b\\x4");
        assert_eq!(unescape_name("plain"), b"plain");
    }

    proptest! {
        #[test]
        fn any_name_round_trips(name in proptest::collection::vec(any::<u8>(), 0..40)) {
            let shown = escape_name(&name);
            prop_assert_eq!(unescape_name(&shown), name);
            prop_assert!(!shown.chars().any(char::is_control));
        }
    }

    #[test]
    fn non_utf8_names_survive() {
        let tree = Tree {
            nodes: vec![node(&[0xff, 0xfe, b'x'])],
        };
        let back = Tree::from_bytes(&BlobId([0; 32]), &tree.to_bytes()).unwrap();
        assert_eq!(back.nodes[0].name, vec![0xff, 0xfe, b'x']);
    }
}
