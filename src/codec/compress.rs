//! zstd compression of blob plaintext. Every blob is one standard zstd frame,
//! so `zstd -d` recovers it; zstd itself stores incompressible blocks raw, so
//! already-compressed data grows by a few bytes per 128 KiB at most.
//!
//! Blobs compressed with a dictionary (the small pages of SQLite images, see
//! docs/SQLITE.md) start with a zstd skippable frame naming the dictionary
//! blob, which `zstd -d` skips: `zstd -d -D <dictionary>` recovers them.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::Arc;

use crate::id::BlobId;

thread_local! {
    // zstd contexts are expensive to create (megabytes of tables): one per
    // thread and level, reused for every blob.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    // Contexts with a dictionary loaded (zstd digests it once per context).
    static DICT_COMPRESSOR: RefCell<Option<(i32, BlobId, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DICT_DECOMPRESSOR: RefCell<Option<(BlobId, zstd::bulk::Decompressor<'static>)>> = const { RefCell::new(None) };
}

/// Magic of the skippable frame that names a blob's dictionary (zstd
/// reserves 0x184D2A50-0x184D2A5F for skippable frames).
const DICTIONARY_MAGIC: u32 = 0x184D_2A5E;

/// Bytes of that frame: magic, length (32), dictionary id.
pub const DICTIONARY_HEADER_LEN: usize = 40;

/// Largest dictionary snap trains or accepts.
pub const MAX_DICTIONARY_LEN: usize = 112 << 10;

/// A zstd dictionary stored as a data blob under `id`.
#[derive(Clone)]
pub struct Dictionary {
    /// The id of the blob holding it.
    pub id: BlobId,
    bytes: Arc<Vec<u8>>,
}

impl Dictionary {
    /// The dictionary in `bytes`, stored as blob `id`.
    pub fn new(id: BlobId, bytes: Vec<u8>) -> Self {
        Self {
            id,
            bytes: Arc::new(bytes),
        }
    }

    /// Its bytes (a zstd dictionary, as `zstd --train` writes them).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Trains a dictionary of at most `size` bytes on `samples`.
pub fn train(samples: &[&[u8]], size: usize) -> io::Result<Vec<u8>> {
    zstd::dict::from_samples(samples, size.min(MAX_DICTIONARY_LEN))
}

/// Compresses `data` with `dictionary` into the dictionary header and one
/// zstd frame.
pub fn compress_with(
    data: &[u8],
    level: i32,
    dictionary: &Dictionary,
) -> crate::error::Result<Vec<u8>> {
    DICT_COMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot
                .as_ref()
                .is_none_or(|(l, id, _)| *l != level || *id != dictionary.id)
            {
                let compressor =
                    zstd::bulk::Compressor::with_dictionary(level, dictionary.bytes())?;
                *slot = Some((level, dictionary.id, compressor));
            }
            let (_, _, compressor) = slot.as_mut().expect("just set");
            let mut out = Vec::with_capacity(DICTIONARY_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(&DICTIONARY_MAGIC.to_le_bytes());
            out.extend_from_slice(&32u32.to_le_bytes());
            out.extend_from_slice(&dictionary.id.0);
            out.extend_from_slice(&compressor.compress(data)?);
            Ok(out)
        })
        .map_err(|e: io::Error| {
            crate::error::Error::new(
                crate::error::ErrorKind::Io,
                format!("zstd compression failed: {e}"),
            )
        })
}

/// The dictionary a compressed blob names, and the frame after the header;
/// `None` for a blob compressed without one.
pub fn split_dictionary(compressed: &[u8]) -> Option<(BlobId, &[u8])> {
    let header = compressed.get(..DICTIONARY_HEADER_LEN)?;
    if header[..4] != DICTIONARY_MAGIC.to_le_bytes() || header[4..8] != 32u32.to_le_bytes() {
        return None;
    }
    let id = BlobId(header[8..].try_into().expect("32 bytes"));
    Some((id, &compressed[DICTIONARY_HEADER_LEN..]))
}

/// Decompresses one zstd frame compressed with `dictionary`, whose content is
/// at most `max_len` bytes.
pub fn decompress_with(
    frame: &[u8],
    max_len: usize,
    dictionary: &Dictionary,
) -> io::Result<Vec<u8>> {
    if max_len > BULK_LIMIT {
        let mut out = Vec::new();
        let decoder = zstd::stream::read::Decoder::with_dictionary(
            io::BufReader::new(frame),
            dictionary.bytes(),
        )?;
        decoder.take(max_len as u64 + 1).read_to_end(&mut out)?;
        return bounded(out, max_len);
    }
    DICT_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(id, _)| *id != dictionary.id) {
            let decompressor = zstd::bulk::Decompressor::with_dictionary(dictionary.bytes())?;
            *slot = Some((dictionary.id, decompressor));
        }
        let (_, decompressor) = slot.as_mut().expect("just set");
        decompressor.decompress(frame, max_len)
    })
}

fn bounded(out: Vec<u8>, max_len: usize) -> io::Result<Vec<u8>> {
    if out.len() > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("content exceeds {max_len} bytes"),
        ));
    }
    Ok(out)
}

/// Compresses `data` into one zstd frame at `level`.
pub fn compress(data: &[u8], level: i32) -> crate::error::Result<Vec<u8>> {
    COMPRESSOR
        .with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.as_ref().is_none_or(|(l, _)| *l != level) {
                *slot = Some((level, zstd::bulk::Compressor::new(level)?));
            }
            let (_, compressor) = slot.as_mut().expect("just set");
            compressor.compress(data)
        })
        .map_err(|e| {
            crate::error::Error::new(
                crate::error::ErrorKind::Io,
                format!("zstd compression failed: {e}"),
            )
        })
}

/// Up to this size, decompression allocates the bound up front (fastest).
const BULK_LIMIT: usize = 64 << 20;

/// Decompresses one zstd frame whose content is at most `max_len` bytes.
/// A frame claiming more is an error; memory grows with the real content,
/// never with a bound a hostile index or trailer claims.
pub fn decompress(frame: &[u8], max_len: usize) -> io::Result<Vec<u8>> {
    if max_len <= BULK_LIMIT {
        return DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            slot.as_mut().expect("just set").decompress(frame, max_len)
        });
    }
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::with_buffer(frame)?;
    decoder.take(max_len as u64 + 1).read_to_end(&mut out)?;
    bounded(out, max_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incompressible_data_grows_little() {
        let data: Vec<u8> = (0..1_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let frame = compress(&data, 3).unwrap();
        assert!(frame.len() < data.len() + 200);
        assert_eq!(decompress(&frame, data.len()).unwrap(), data);
    }

    #[test]
    fn dictionary_frames_name_their_dictionary_and_round_trip() {
        let pages: Vec<Vec<u8>> = (0..200u32)
            .map(|i| {
                format!("page {i}: the quiet morning light on the beach {}", i * 7)
                    .repeat(60)
                    .into_bytes()
            })
            .collect();
        let samples: Vec<&[u8]> = pages.iter().map(Vec::as_slice).collect();
        let bytes = train(&samples, 16 << 10).unwrap();
        let dictionary = Dictionary::new(BlobId([7; 32]), bytes);
        let data = b"page 999: the quiet morning light on the beach 6993".repeat(50);
        let with = compress_with(&data, 3, &dictionary).unwrap();
        let (id, frame) = split_dictionary(&with).unwrap();
        assert_eq!(id, dictionary.id);
        assert!(with.len() < compress(&data, 3).unwrap().len() + DICTIONARY_HEADER_LEN);
        assert_eq!(
            decompress_with(frame, data.len(), &dictionary).unwrap(),
            data
        );
        assert!(decompress_with(frame, data.len() - 1, &dictionary).is_err());
        // Without the dictionary the frame does not decode.
        assert!(decompress(frame, data.len()).is_err());
        assert!(split_dictionary(&compress(&data, 3).unwrap()).is_none());
    }

    #[test]
    fn bounded_decompression() {
        let frame = compress(&[0u8; 10_000], 3).unwrap();
        assert!(decompress(&frame, 9_999).is_err());
    }
}
