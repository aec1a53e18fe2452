//! Parity objects: `parity/<id>`, Reed-Solomon parity over the stored bytes
//! of a group of packs (FORMAT.md, "Parity").
//!
//! ```text
//! offset 0      magic "SNAPPRTY" (8 bytes), version (1 byte)
//! offset 9      header length H, u32 little-endian
//! offset 13     header: ParityHeader as MessagePack (named fields, not compressed, not sealed)
//! offset 13+H   parity shards: `parity` shards of `shard_len` bytes each, back to back
//! ```
//! An object is named by the blake3 of all its bytes. Member `i`'s bytes,
//! padded with zeros to `shard_len`, are original shard `i`; each stripe of
//! `stripe` bytes (the last one shorter) is one Reed-Solomon code word set,
//! encoded on its own.

use serde::{Deserialize, Serialize};

use crate::id::PackId;

/// Magic at the start of every parity object.
pub const MAGIC: &[u8; 8] = b"SNAPPRTY";

/// Bytes before the header: envelope and header length.
pub const PREFIX_LEN: u32 = super::ENVELOPE_LEN as u32 + 4;

/// Largest header we accept when reading.
pub const MAX_HEADER_LEN: u32 = 1 << 20;

/// Stripe width written by this build: each stripe is encoded on its own,
/// so encoding and rebuilding hold one stripe of every member at a time.
pub const STRIPE: u32 = 1 << 20;

/// Most members a group may have (groups have 1 to `2 * data - 1`).
pub const MAX_MEMBERS: usize = 255;

/// Most parity shards per group.
pub const MAX_PARITY: u8 = 10;

/// One pack of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The pack's id (blake3 of its bytes).
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
}

/// What a parity object protects and how its shards are laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParityHeader {
    /// The packs of the group, original shards `0..members.len()` in order.
    pub members: Vec<Member>,
    /// Length of every shard: the largest member's size rounded up to a
    /// multiple of 64.
    pub shard_len: u64,
    /// Stripe width (a multiple of 64).
    pub stripe: u32,
    /// Number of parity shards: how many lost members the group rebuilds.
    pub parity: u8,
}

impl ParityHeader {
    /// Checks the header's numbers against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.members.is_empty() || self.members.len() > MAX_MEMBERS {
            return Err(format!("{} members", self.members.len()));
        }
        if self.parity == 0 || self.parity > MAX_PARITY {
            return Err(format!("{} parity shards", self.parity));
        }
        if self.stripe == 0 || !self.stripe.is_multiple_of(64) {
            return Err(format!("stripe width {}", self.stripe));
        }
        let largest = self.members.iter().map(|m| m.size).max().unwrap_or(0);
        if self.shard_len != shard_len_for(largest) {
            return Err(format!(
                "shard length {} does not fit the largest member ({largest} bytes)",
                self.shard_len
            ));
        }
        Ok(())
    }

    /// Where the parity shards start in the object.
    pub fn shards_offset(&self, header_len: u32) -> u64 {
        u64::from(PREFIX_LEN) + u64::from(header_len)
    }
}

/// The shard length of a group whose largest member has `largest` bytes.
pub fn shard_len_for(largest: u64) -> u64 {
    largest.div_ceil(64).max(1) * 64
}

/// How much parity new packs get: `parity` shards per group of `data` packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParityLevel {
    /// Packs per group (a session's last group may have up to twice as many
    /// less one, or fewer when the session wrote fewer).
    pub data: u8,
    /// Parity shards per group.
    pub parity: u8,
}

impl ParityLevel {
    /// Packs per group at every level.
    pub const GROUP: u8 = 10;

    /// The level of `percent`: a multiple of 10 from 10 to 100, one parity
    /// shard per 10% for groups of 10 packs.
    pub fn from_percent(percent: u32) -> Option<Self> {
        (percent.is_multiple_of(10) && (10..=100).contains(&percent)).then(|| Self {
            data: Self::GROUP,
            parity: u8::try_from(percent / 10).expect("at most 10"),
        })
    }

    /// The level as a percentage of the data.
    pub fn percent(self) -> u32 {
        u32::from(self.parity) * 100 / u32::from(self.data.max(1))
    }
}

impl std::str::FromStr for ParityLevel {
    type Err = crate::error::Error;

    /// Parses `10%` (or `10`): a multiple of 10 from 10 to 100.
    fn from_str(text: &str) -> crate::error::Result<Self> {
        let digits = text.trim().strip_suffix('%').unwrap_or(text.trim());
        digits
            .parse::<u32>()
            .ok()
            .and_then(Self::from_percent)
            .ok_or_else(|| {
                crate::error::Error::usage(format!(
                    "`{text}` is not a parity level: use a multiple of 10% from 10% to 100% (10% adds one parity shard per group of 10 packs)"
                ))
            })
    }
}
