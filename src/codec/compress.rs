//! zstd compression of blob plaintext. Every blob is one standard zstd frame,
//! so `zstd -d` recovers it; zstd itself stores incompressible blocks raw, so
//! already-compressed data grows by a few bytes per 128 KiB at most.

use std::io;

/// Compresses `data` into one zstd frame at `level`.
pub fn compress(data: &[u8], level: i32) -> crate::error::Result<Vec<u8>> {
    zstd::bulk::compress(data, level).map_err(|e| {
        crate::error::Error::new(
            crate::error::ErrorKind::Io,
            format!("zstd compression failed: {e}"),
        )
    })
}

/// Decompresses one zstd frame whose content is at most `max_len` bytes.
/// A frame claiming more is an error, never a large allocation.
pub fn decompress(frame: &[u8], max_len: usize) -> io::Result<Vec<u8>> {
    let mut decompressor = zstd::bulk::Decompressor::new()?;
    decompressor.decompress(frame, max_len)
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
