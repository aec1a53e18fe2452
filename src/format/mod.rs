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

/// [`to_msgpack`] into a buffer of exactly its size, counted by encoding
/// twice: for pack trailers and index deltas (a MiB or more each), which a
/// growing buffer held at up to twice their size, and at three times while
/// it moved to a larger one. A backup of a million small files wrote a pack
/// trailer and an index delta at once more often than one of 60,000 did
/// (docs/PERFORMANCE.md).
pub fn to_msgpack_exact<T: Serialize>(value: &T) -> Vec<u8> {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let cannot_fail = "serializing plain structs cannot fail";
    let mut count = Count(0);
    rmp_serde::encode::write_named(&mut count, value).expect(cannot_fail);
    let mut out = Vec::with_capacity(count.0);
    rmp_serde::encode::write_named(&mut out, value).expect(cannot_fail);
    out
}

/// Decodes MessagePack of a file or blob named `what`.
pub fn from_msgpack<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::corrupt(what, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobEntry, BlobKind, PackTrailer};
    use crate::id::BlobId;

    #[test]
    fn exact_msgpack_is_the_same_bytes_in_a_buffer_of_their_size() {
        let trailer = PackTrailer {
            blobs: (0..1000u32)
                .map(|n| BlobEntry {
                    id: BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes()),
                    kind: BlobKind::Data,
                    offset: n * 300,
                    length: n,
                    raw_length: n * 2,
                })
                .collect(),
        };
        let exact = to_msgpack_exact(&trailer);
        assert_eq!(exact, to_msgpack(&trailer));
        assert_eq!(exact.capacity(), exact.len());
    }
}
