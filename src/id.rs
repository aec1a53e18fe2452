//! Typed 32-byte ids. Every object in a repository is named by a blake3 hash;
//! the newtypes keep a pack id from being passed where a blob id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Length of every id in bytes.
pub const ID_LEN: usize = 32;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The id as lowercase hex (64 characters).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, as shown to people.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// Parses 64 hex digits.
            pub fn from_hex(text: &str) -> Result<Self> {
                let mut bytes = [0u8; ID_LEN];
                hex::decode_to_slice(text, &mut bytes).map_err(|_| {
                    Error::usage(format!("`{text}` is not a valid {} (64 hex digits)", stringify!($name)))
                })?;
                Ok(Self(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::from_hex(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
                serializer.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
                let bytes: serde_bytes::ByteBuf = Deserialize::deserialize(deserializer)?;
                let array: [u8; ID_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    serde::de::Error::invalid_length(bytes.len(), &"32 bytes")
                })?;
                Ok(Self(array))
            }
        }
    };
}

id_type!(
    /// A blob: a data chunk, a tree or a chunk list; blake3 (keyed when encrypted) of its plaintext.
    BlobId
);
id_type!(
    /// A pack file: blake3 of the whole file's bytes.
    PackId
);
id_type!(
    /// A snapshot object: blake3 of the file's bytes.
    SnapshotId
);
id_type!(
    /// An index delta file: blake3 of the file's bytes.
    IndexId
);
id_type!(
    /// A repository: random, chosen at `init`.
    RepoId
);

/// A tree is a blob; the alias documents where a tree is expected.
pub type TreeId = BlobId;

impl PackId {
    /// blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl SnapshotId {
    /// blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl IndexId {
    /// blake3 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = PackId::of(b"hello");
        assert_eq!(PackId::from_hex(&id.to_hex()).unwrap(), id);
        assert_eq!(id.short().len(), 8);
        assert!(PackId::from_hex("zz").is_err());
    }

    #[test]
    fn msgpack_round_trip() {
        let id = BlobId([7; 32]);
        let bytes = rmp_serde::to_vec(&id).unwrap();
        assert_eq!(bytes.len(), 34, "bin8 header + 32 bytes");
        let back: BlobId = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, id);
    }
}
