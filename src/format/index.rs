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

/// An index delta as `prune` writes and reads it: [`IndexDelta`] plus the
/// time its `obsolete` marks were made. Same MessagePack map with one more
/// optional key, which readers of `IndexDelta` ignore (unknown keys are
/// ignored), so every delta reads as either type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedDelta {
    /// Packs this delta adds.
    pub packs: Vec<PackIndex>,
    /// Packs this delta marks obsolete: no new snapshot may use their blobs,
    /// and `prune` deletes them once the grace period has passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub obsolete: Vec<PackId>,
    /// When the `obsolete` marks were made, seconds since the Unix epoch;
    /// absent when there are none. A mark without a time counts as old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobEntry, BlobKind};
    use crate::id::BlobId;

    #[test]
    fn marked_delta_reads_as_index_delta_and_back() {
        let marked = MarkedDelta {
            packs: vec![PackIndex {
                id: PackId([1; 32]),
                size: 100,
                blobs: vec![BlobEntry {
                    id: BlobId([2; 32]),
                    kind: BlobKind::Data,
                    offset: 9,
                    length: 20,
                    raw_length: 11,
                }],
            }],
            obsolete: vec![PackId([3; 32])],
            marked_at: Some(1_700_000_000),
        };
        let bytes = crate::format::to_msgpack(&marked);
        let plain: IndexDelta = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(plain.packs, marked.packs);
        assert_eq!(plain.obsolete, marked.obsolete);
        let back: MarkedDelta = rmp_serde::from_slice(&crate::format::to_msgpack(&plain)).unwrap();
        assert_eq!(back.marked_at, None);
        assert_eq!(back.packs, marked.packs);
    }
}
