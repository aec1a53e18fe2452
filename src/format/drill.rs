//! Drill records: `drills/<id>`, one small immutable file per restore drill.
//!
//! Layout: envelope magic `SNAPDRIL`, version byte, sealed zstd MessagePack
//! body, as snapshot files (FORMAT.md, "Drill records"). A record names the
//! snapshot it drilled by its root tree and time, not by its id: `snap tag`
//! writes the same tree and time under a new id, and the record still
//! belongs to it.

use serde::{Deserialize, Serialize};

use crate::id::{SnapshotId, TreeId};

/// Magic of drill record files.
pub const MAGIC: &[u8; 8] = b"SNAPDRIL";

/// Largest decompressed drill record we accept.
pub const MAX_LEN: usize = 1 << 20;

/// Paths a record lists per kind of failure; the report printed by the
/// drill itself has them all.
pub const MAX_PATHS: usize = 100;

/// The outcome of one restore drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// When the drill started, RFC 3339 in UTC.
    pub time: String,
    /// The drilled snapshot's root tree.
    pub tree: TreeId,
    /// The drilled snapshot's time, as stored in it.
    pub snapshot_time: String,
    /// The id the snapshot had when it was drilled (informational: `snap
    /// tag` gives it a new one).
    pub snapshot: SnapshotId,
    /// Whether everything restored matched and every check passed.
    pub ok: bool,
    /// The percentage of files drilled, when only a sample was.
    #[serde(default)]
    pub sample_percent: Option<f64>,
    /// The seed that chose the sample.
    #[serde(default)]
    pub seed: u64,
    /// Files restored and verified.
    #[serde(default)]
    pub files: u64,
    /// Content bytes restored and verified.
    #[serde(default)]
    pub bytes: u64,
    /// SQLite databases whose integrity_check ran, and those that failed.
    #[serde(default)]
    pub databases: u64,
    /// Databases whose integrity_check failed.
    #[serde(default)]
    pub databases_failed: u64,
    /// Whether the profile's drill hook ran, and if so whether it passed.
    #[serde(default)]
    pub hook_ok: Option<bool>,
    /// Wall time of the drill in seconds.
    #[serde(default)]
    pub duration_s: f64,
    /// Paths that could not be restored or differ (at most [`MAX_PATHS`]).
    #[serde(default)]
    pub failed_paths: Vec<String>,
    /// snap version that wrote it.
    #[serde(default)]
    pub program: String,
}

impl DrillRecord {
    /// When the drill started (the Unix epoch when the stored time is unreadable).
    pub fn timestamp(&self) -> jiff::Timestamp {
        self.time.parse().unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    }
}
