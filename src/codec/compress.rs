//! zstd compression of blob plaintext. Every blob is one standard zstd frame,
//! so `zstd -d` recovers it; zstd itself stores incompressible blocks raw, so
//! already-compressed data grows by a few bytes per 128 KiB at most.

use std::cell::RefCell;
use std::io::{self, Read};

thread_local! {
    // zstd contexts are expensive to create (megabytes of tables): one per
    // thread and level, reused for every blob.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
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
    if out.len() > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("content exceeds {max_len} bytes"),
        ));
    }
    Ok(out)
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
    fn bounded_decompression() {
        let frame = compress(&[0u8; 10_000], 3).unwrap();
        assert!(decompress(&frame, 9_999).is_err());
    }
}
