//! Index deltas: immutable files `index/<id>` that say which blobs each new
//! pack holds. The union of all deltas is the repository's index; the redb
//! cache is rebuilt from them.
//!
//! Layout: envelope magic `SNAPINDX`, version byte, sealed zstd MessagePack body.

use serde::{Deserialize, Serialize};

use super::pack::BlobEntry;
use crate::id::PackId;

/// Magic of index delta files.
pub const MAGIC: &[u8; 8] = b"SNAPINDX";

/// Largest decompressed index delta we accept.
pub const MAX_LEN: usize = 1 << 30;

/// One pack and its blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackIndex {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Its blobs, as in its trailer.
    pub blobs: Vec<BlobEntry>,
}

/// The body of an index delta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDelta {
    /// Packs this delta adds.
    pub packs: Vec<PackIndex>,
    /// Packs this delta declares superseded (written by prune after repacking).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obsolete: Vec<PackId>,
}
