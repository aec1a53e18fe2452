//! Every type that touches bytes on disk, with its magic and version.
//!
//! Repository files share one envelope: an 8-byte magic naming the file
//! kind, one version byte, then the body. Bodies of snapshots, index deltas
//! and pack trailers are MessagePack (named fields, via `rmp-serde`),
//! zstd-compressed and, in encrypted repositories, sealed with age. The byte
//! layouts are specified in `docs/FORMAT.md`; change both together and add a
//! line to its "Version changes" log.

pub mod config;
pub mod drill;
pub mod index;
pub mod lock;
pub mod pack;
pub mod parity;
pub mod snapshot;
pub mod tree;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// The repository format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Length of the envelope header: magic + version.
pub const ENVELOPE_LEN: usize = 9;

/// Prefixes `body` with `magic` and the format version.
pub fn envelope(magic: &[u8; 8], body: &[u8]) -> Vec<u8> {
    envelope_version(magic, FORMAT_VERSION, body)
}

/// Prefixes `body` with `magic` and `version` (the config has versions of
/// its own, see `config::VERSION_FEATURES`).
pub fn envelope_version(magic: &[u8; 8], version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_LEN + body.len());
    out.extend_from_slice(magic);
    out.push(version);
    out.extend_from_slice(body);
    out
}

/// Checks the envelope of a file named `what` and returns its body.
pub fn open_envelope<'a>(magic: &[u8; 8], what: &str, bytes: &'a [u8]) -> Result<&'a [u8]> {
    open_envelope_upto(magic, what, FORMAT_VERSION, bytes)
}

/// Checks the envelope of a file named `what` whose versions go up to
/// `newest`; returns its body.
pub fn open_envelope_upto<'a>(
    magic: &[u8; 8],
    what: &str,
    newest: u8,
    bytes: &'a [u8],
) -> Result<&'a [u8]> {
    if bytes.len() < ENVELOPE_LEN || &bytes[..8] != magic {
        return Err(Error::corrupt(
            what,
            format!(
                "does not start with the magic {:?}",
                String::from_utf8_lossy(magic)
            ),
        ));
    }
    check_version_upto(what, newest, bytes[8])?;
    Ok(&bytes[ENVELOPE_LEN..])
}

/// An unknown version is an explicit error, never a guess.
pub fn check_version(what: &str, version: u8) -> Result<()> {
    check_version_upto(what, FORMAT_VERSION, version)
}

/// As [`check_version`], for a file whose versions go up to `newest`.
fn check_version_upto(what: &str, newest: u8, version: u8) -> Result<()> {
    if version > newest {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            format!(
                "{what} has format version {version}, this snap reads up to version {newest}; upgrade snap"
            ),
        ));
    }
    if version == 0 {
        return Err(Error::corrupt(what, "format version 0 does not exist"));
    }
    Ok(())
}

/// MessagePack with named fields: self-describing, so fields can be added.
pub fn to_msgpack<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("serializing plain structs to a Vec cannot fail")
}

/// Decodes MessagePack of a file or blob named `what`.
pub fn from_msgpack<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::corrupt(what, e))
}
