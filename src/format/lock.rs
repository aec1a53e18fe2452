//! Lock files: `locks/<id>`, one per running backup or prune.
//!
//! Layout: envelope magic `SNAPLOCK`, version byte, sealed zstd MessagePack
//! body (sealed with the index key, so every key can read and write them).
//! The name is 64 random hex digits chosen by the holder, which rewrites the
//! file in place to refresh it. See `docs/PRUNE.md` for how they are used.

use serde::{Deserialize, Serialize};

/// Magic of lock files.
pub const MAGIC: &[u8; 8] = b"SNAPLOCK";

/// Largest decompressed lock we accept.
pub const MAX_LEN: usize = 64 << 10;

/// Who holds a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// A backup in progress: never excludes anything, but a prune deletes no
    /// pack while one is running.
    Backup,
    /// A prune: excludes other prunes.
    Prune,
}

/// The body of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// What the holder does.
    pub kind: LockKind,
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder on that host.
    pub pid: u32,
    /// When the lock was taken, seconds since the Unix epoch.
    pub started: i64,
    /// When the holder last rewrote it, seconds since the Unix epoch.
    pub refreshed: i64,
}
