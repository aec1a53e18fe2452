//! The repository config: plain (never a secret), written once at `init`.
//!
//! Layout: envelope magic `SNAPCONF`, version byte, MessagePack body.

use serde::{Deserialize, Serialize};

use crate::codec::ChunkerParams;
use crate::error::{Error, Result};
use crate::id::RepoId;

/// Magic of the config file.
pub const MAGIC: &[u8; 8] = b"SNAPCONF";

/// How the repository's objects are sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Objects are stored compressed but not encrypted.
    None,
    /// Objects are age files; keys live in `keys/`.
    Age,
}

/// The repository config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Repository id, random at init.
    pub id: RepoId,
    /// Chunker parameters for regular files.
    pub chunker: ChunkerParams,
    /// zstd level for blobs.
    pub compression: i32,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Encryption mode.
    pub encryption: Encryption,
    /// Fixed chunk size for SQLite database images (rounded up to whole pages).
    #[serde(default = "default_sqlite_chunk")]
    pub sqlite_chunk: u32,
}

/// Default SQLite chunk size; see docs/SQLITE.md for the measurements.
pub const SQLITE_CHUNK: u32 = 4 * 1024;

/// What a config without the field means: the size snap used before the
/// field existed, so old repositories keep deduplicating against themselves.
fn default_sqlite_chunk() -> u32 {
    8 * 1024
}

impl Config {
    /// Serializes into the config file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        super::envelope(MAGIC, &super::to_msgpack(self))
    }

    /// Parses and validates a config file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let body = super::open_envelope(MAGIC, "repository config", bytes)?;
        let config: Config = super::from_msgpack("repository config", body)?;
        if !config.chunker.is_valid() {
            return Err(Error::corrupt(
                "repository config",
                "chunker parameters out of range",
            ));
        }
        if !(1..=22).contains(&config.compression) {
            return Err(Error::corrupt(
                "repository config",
                "compression level out of range 1..=22",
            ));
        }
        if !(4096..=1 << 24).contains(&config.sqlite_chunk) {
            return Err(Error::corrupt(
                "repository config",
                "SQLite chunk size out of range 4 KiB..=16 MiB",
            ));
        }
        if !(1 << 20..=1 << 30).contains(&config.pack_size) {
            return Err(Error::corrupt(
                "repository config",
                "pack size out of range 1 MiB..=1 GiB",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let config = Config {
            id: RepoId([3; 32]),
            chunker: ChunkerParams::FILES,
            compression: 3,
            pack_size: 16 << 20,
            encryption: Encryption::None,
            sqlite_chunk: SQLITE_CHUNK,
        };
        let bytes = config.to_bytes();
        assert_eq!(Config::from_bytes(&bytes).unwrap(), config);
        let mut newer = bytes.clone();
        newer[8] = 2;
        let err = Config::from_bytes(&newer).unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::UnsupportedVersion);
        assert!(Config::from_bytes(b"garbage").is_err());
    }
}
