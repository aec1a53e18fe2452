//! Snapshot objects: `snapshots/<id>`, one small immutable file each.
//!
//! Layout: envelope magic `SNAPSNAP`, version byte, sealed zstd MessagePack body.

use serde::{Deserialize, Serialize};

use crate::id::{SnapshotId, TreeId};

/// Magic of snapshot files.
pub const MAGIC: &[u8; 8] = b"SNAPSNAP";

/// The tag of the safety snapshot an in-place restore takes first. It holds
/// what the restore replaced, not a profile's sources: selections and the
/// critical-source check pass over such snapshots.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// Largest decompressed snapshot we accept.
pub const MAX_LEN: usize = 16 << 20;

/// What a backup did, kept in the snapshot for `snap snapshots`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot.
    pub dirs: u64,
    /// Total size of the files.
    pub bytes: u64,
    /// Files not in the parent snapshot.
    pub files_new: u64,
    /// Files changed since the parent.
    pub files_changed: u64,
    /// Files reused from the parent without reading.
    pub files_unchanged: u64,
    /// Bytes read from disk.
    pub bytes_read: u64,
    /// Plaintext bytes of new blobs.
    pub bytes_added: u64,
    /// Stored (compressed, sealed) bytes of new blobs.
    pub bytes_added_packed: u64,
    /// Wall time of the backup in seconds.
    pub duration_s: f64,
}

impl Snapshot {
    /// When it was taken (the Unix epoch when the stored time is unreadable).
    pub fn timestamp(&self) -> jiff::Timestamp {
        self.time.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}

/// A snapshot: a root tree and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When it was taken, RFC 3339 in UTC (fraction digits only as needed).
    pub time: String,
    /// Host name.
    pub host: String,
    /// User name, when known.
    #[serde(default)]
    pub user: String,
    /// Absolute source paths (each appears at the root under its last
    /// component, or a profile source's name), and the names of streams
    /// (relative, e.g. `postgres/mydb.dump`).
    pub paths: Vec<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The snapshot whose nodes were reused for change detection.
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    /// The root tree.
    pub tree: TreeId,
    /// What the backup did.
    #[serde(default)]
    pub summary: Summary,
    /// snap version that wrote it.
    #[serde(default)]
    pub program: String,
    /// For a snapshot written by `snap copy`: the id of the snapshot in the
    /// repository where it was first written (copies of copies keep it), so
    /// that copying it again is recognised and skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<SnapshotId>,
}
