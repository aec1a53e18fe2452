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

    /// The id of a blob with this plaintext compressed with `dictionary`:
    /// the hash of the dictionary's id followed by the plaintext. A blob's id
    /// thus names its dictionary, so a chunk compressed with one dictionary is
    /// never taken for the same chunk compressed with another (or none), and
    /// whatever keeps a file's dictionary alive keeps every chunk decodable.
    pub fn blob_id_with(&self, dictionary: &BlobId, plaintext: &[u8]) -> BlobId {
        let mut hasher = match self {
            Hasher::Plain => blake3::Hasher::new(),
            Hasher::Keyed(key) => blake3::Hasher::new_keyed(key),
        };
        hasher.update(&dictionary.0);
        hasher.update(plaintext);
        BlobId(*hasher.finalize().as_bytes())
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

    #[test]
    fn ids_with_a_dictionary_name_it() {
        let a = Hasher::Plain.blob_id_with(&BlobId([1; 32]), b"x");
        let b = Hasher::Plain.blob_id_with(&BlobId([2; 32]), b"x");
        assert_ne!(a, b);
        assert_ne!(a, Hasher::Plain.blob_id(b"x"));
    }
}
