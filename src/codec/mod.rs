//! Codecs: chunking, hashing, compression and encryption of blobs.
//!
//! A blob's stored form ("frame") is a zstd frame, wrapped in an age file when
//! the repository is encrypted. Its id is blake3 of the plaintext, keyed when
//! the repository is encrypted. [`BlobCodec`] is the one place that turns
//! plaintext into frames and back, verifying the id on the way back.

pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod hash;

use crate::error::{Error, Result};
use crate::id::BlobId;

pub use chunker::{Chunker, ChunkerParams};
pub use crypto::Crypto;
pub use hash::Hasher;

/// Turns blob plaintext into stored frames and back.
#[derive(Clone)]
pub struct BlobCodec {
    hasher: Hasher,
    level: i32,
    crypto: Crypto,
}

impl BlobCodec {
    /// A codec hashing with `hasher`, compressing at zstd `level` and sealing with `crypto`.
    pub fn new(hasher: Hasher, level: i32, crypto: Crypto) -> Self {
        Self {
            hasher,
            level,
            crypto,
        }
    }

    /// The id a blob with this plaintext has in this repository.
    pub fn id(&self, plaintext: &[u8]) -> BlobId {
        self.hasher.blob_id(plaintext)
    }

    /// The stored frame of `plaintext`: compressed, then sealed.
    pub fn encode(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let compressed = compress::compress(plaintext, self.level)?;
        self.crypto.seal(compressed)
    }

    /// The plaintext of a frame, checked against `id`. `raw_len` bounds the
    /// allocation, so a frame that lies about its size cannot exhaust memory.
    pub fn decode(&self, id: &BlobId, frame: &[u8], raw_len: u32) -> Result<Vec<u8>> {
        let compressed = self
            .crypto
            .open(frame)
            .map_err(|e| Error::corrupt(format!("blob {id}"), e))?;
        let plaintext = compress::decompress(&compressed, raw_len as usize)
            .map_err(|e| Error::corrupt(format!("blob {id}"), e))?;
        if plaintext.len() != raw_len as usize {
            return Err(Error::corrupt(
                format!("blob {id}"),
                format!("{} bytes instead of {raw_len}", plaintext.len()),
            ));
        }
        if self.hasher.blob_id(&plaintext) != *id {
            return Err(Error::corrupt(format!("blob {id}"), "hash mismatch"));
        }
        Ok(plaintext)
    }

    /// Seals and compresses a whole repository file body (snapshot, index delta, trailer).
    pub fn encode_file(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.encode(plaintext)
    }

    /// Opens a repository file body; `max_len` bounds the decompressed size.
    pub fn decode_file(&self, what: &str, body: &[u8], max_len: usize) -> Result<Vec<u8>> {
        let compressed = self
            .crypto
            .open(body)
            .map_err(|e| Error::corrupt(what, e))?;
        compress::decompress(&compressed, max_len).map_err(|e| Error::corrupt(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn blob_round_trip(data in proptest::collection::vec(any::<u8>(), 0..70_000), level in 1i32..6) {
            let codec = BlobCodec::new(Hasher::Plain, level, Crypto::None);
            let id = codec.id(&data);
            let frame = codec.encode(&data).unwrap();
            prop_assert_eq!(codec.decode(&id, &frame, data.len() as u32).unwrap(), data);
        }
    }

    #[test]
    fn decode_detects_wrong_id_and_lying_sizes() {
        let codec = BlobCodec::new(Hasher::Plain, 3, Crypto::None);
        let data = b"hello hello hello hello".to_vec();
        let frame = codec.encode(&data).unwrap();
        let other = codec.id(b"other");
        assert!(codec.decode(&other, &frame, data.len() as u32).is_err());
        let id = codec.id(&data);
        assert!(codec.decode(&id, &frame, 3).is_err());
        assert!(codec.decode(&id, &frame, 1000).is_err());
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(codec.decode(&id, &bad, data.len() as u32).is_err());
    }
}
