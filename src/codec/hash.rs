//! Blob ids: blake3 of the plaintext, keyed when the repository is encrypted so
//! that ids reveal nothing about content to someone without the key.

use crate::id::BlobId;

/// How blob ids are computed in a repository.
#[derive(Clone)]
pub enum Hasher {
    /// Plain blake3 (unencrypted repositories).
    Plain,
    /// Keyed blake3 with a key derived from the repository secret.
    Keyed([u8; 32]),
}

impl Hasher {
    /// The id of a blob with this plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        let hash = match self {
            Hasher::Plain => blake3::hash(plaintext),
            Hasher::Keyed(key) => blake3::keyed_hash(key, plaintext),
        };
        BlobId(*hash.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_ids_differ_from_plain() {
        let plain = Hasher::Plain.blob_id(b"x");
        let keyed = Hasher::Keyed([1; 32]).blob_id(b"x");
        assert_ne!(plain, keyed);
        assert_eq!(plain.0, *blake3::hash(b"x").as_bytes());
    }
}
