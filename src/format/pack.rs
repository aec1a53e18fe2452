//! Pack files and the entries that locate blobs in them.
//!
//! ```text
//! offset 0   magic "SNAPPACK" (8 bytes), version (1 byte)
//! offset 9   blob frames back to back (each a zstd frame, an age file when encrypted)
//! ...        trailer frame: PackTrailer as MessagePack, compressed and sealed like a file body
//! last 4     trailer frame length, u32 little-endian
//! ```
//! A pack is named by the blake3 of all its bytes.

use serde::{Deserialize, Serialize};

use crate::id::BlobId;

/// Magic at the start of every pack.
pub const MAGIC: &[u8; 8] = b"SNAPPACK";

/// Bytes before the first blob.
pub const HEADER_LEN: u32 = super::ENVELOPE_LEN as u32;

/// Largest trailer we accept when reading (a hostile length cannot make us allocate more).
pub const MAX_TRAILER_LEN: u32 = 64 << 20;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// A directory listing.
    Tree,
    /// A list of chunk ids (an inner node of a large file's chunk tree).
    List,
}

impl BlobKind {
    /// One byte for compact caches.
    pub fn to_u8(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
            BlobKind::List => 2,
        }
    }

    /// Inverse of [`BlobKind::to_u8`].
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            2 => Some(BlobKind::List),
            _ => None,
        }
    }
}

/// Where a blob sits in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    /// The blob's id.
    pub id: BlobId,
    /// What it holds.
    pub kind: BlobKind,
    /// Offset of its frame from the start of the pack.
    pub offset: u32,
    /// Length of its frame.
    pub length: u32,
    /// Length of its plaintext.
    pub raw_length: u32,
}

/// The list of a pack's blobs, stored at its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackTrailer {
    /// Blobs in file order.
    pub blobs: Vec<BlobEntry>,
}

impl PackTrailer {
    /// Checks that every entry lies between the header and `trailer_start`
    /// and that entries do not overlap.
    pub fn validate(&self, trailer_start: u64) -> Result<(), String> {
        let mut end = u64::from(HEADER_LEN);
        for entry in &self.blobs {
            let start = u64::from(entry.offset);
            if start < end {
                return Err(format!("blob {} overlaps the one before it", entry.id));
            }
            end = start + u64::from(entry.length);
            if end > trailer_start {
                return Err(format!("blob {} runs past the trailer", entry.id));
            }
        }
        Ok(())
    }
}
