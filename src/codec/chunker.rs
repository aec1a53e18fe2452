//! Content-defined chunking with FastCDC (2020). Parameters come from the
//! repository config, never from literals here: two repositories share chunks
//! only when they share parameters (and, when encrypted, the gear seed).

use std::io::{self, Read};

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

/// Chunk size bounds and gear seed, stored in the repository config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk, except a file's last.
    pub min_size: u32,
    /// Target average chunk size (a power of two).
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
    /// XORed into the gear table; derived from the key in encrypted repositories.
    pub seed: u64,
}

impl ChunkerParams {
    /// Defaults for general files: 256 KiB / 1 MiB / 4 MiB.
    pub const FILES: ChunkerParams = ChunkerParams {
        min_size: 256 * 1024,
        avg_size: 1024 * 1024,
        max_size: 4 * 1024 * 1024,
        seed: 0,
    };

    /// Whether the bounds are within what FastCDC accepts and ordered.
    pub fn is_valid(&self) -> bool {
        (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min_size)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg_size)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.avg_size.is_power_of_two()
    }
}

/// A FastCDC chunker with precomputed gear tables.
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl Chunker {
    /// A chunker for `params`, which must be valid (checked when the config is read).
    pub fn new(params: ChunkerParams) -> Self {
        assert!(params.is_valid(), "invalid chunker parameters {params:?}");
        let bits = v2020::logarithm2(params.avg_size);
        let normalization = Normalization::Level1.bits();
        let (gear, gear_ls) = v2020::get_gear_with_seed(params.seed);
        Self {
            params,
            mask_s: v2020::MASKS[(bits + normalization) as usize],
            mask_l: v2020::MASKS[(bits - normalization) as usize],
            gear,
            gear_ls,
        }
    }

    /// The parameters.
    pub fn params(&self) -> &ChunkerParams {
        &self.params
    }

    /// Length of the first chunk of `data` (all of it when it is the last).
    fn cut(&self, data: &[u8]) -> usize {
        let (_, len) = v2020::cut_gear(
            data,
            self.params.min_size as usize,
            self.params.avg_size as usize,
            self.params.max_size as usize,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_ls,
        );
        len.max(1).min(data.len())
    }

    /// Splits `data`, a whole input held in memory, into chunks, appending
    /// them to `out`: the same cuts `chunk_batches` makes reading it.
    pub fn chunk_slice<'d>(&self, data: &'d [u8], out: &mut Vec<&'d [u8]>) {
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(self.cut(rest));
            out.push(chunk);
            rest = tail;
        }
    }

    /// Splits everything `reader` yields into chunks and hands them to `batch`
    /// a buffer at a time, so the caller can process a batch in parallel.
    /// Memory stays at one buffer of `max_size` + 1 MiB (less for small
    /// inputs: `size_hint` is the expected length). Returns the bytes read.
    pub fn chunk_batches<R: Read, E: From<io::Error>>(
        &self,
        mut reader: R,
        size_hint: u64,
        mut batch: impl FnMut(&[&[u8]]) -> Result<(), E>,
    ) -> Result<u64, E> {
        const READ_STEP: usize = 1 << 20;
        // One chunk of maximal size plus a read step: enough to always find a
        // real cut point, little enough to keep one buffer per worker small.
        let capacity = self.params.max_size as usize + READ_STEP;
        let mut buf: Vec<u8> = Vec::new();
        let mut total = 0u64;
        let mut eof = false;
        loop {
            while !eof && buf.len() < capacity {
                // Read in steps, never asking for much more than the file is expected to hold.
                let expected_rest =
                    usize::try_from(size_hint.saturating_sub(total)).unwrap_or(usize::MAX);
                let want = (capacity - buf.len())
                    .min(READ_STEP)
                    .min(expected_rest.saturating_add(1).max(64 * 1024));
                let start = buf.len();
                buf.resize(start + want, 0);
                match reader.read(&mut buf[start..]) {
                    Ok(0) => {
                        buf.truncate(start);
                        eof = true;
                    }
                    Ok(n) => {
                        buf.truncate(start + n);
                        total += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
                    Err(e) => return Err(e.into()),
                }
            }
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut pos = 0;
            while pos < buf.len() {
                let rest = &buf[pos..];
                if !eof && rest.len() < self.params.max_size as usize {
                    break;
                }
                let len = self.cut(rest);
                chunks.push(&rest[..len]);
                pos += len;
            }
            if !chunks.is_empty() {
                batch(&chunks)?;
            }
            buf.drain(..pos);
            if eof {
                return Ok(total);
            }
        }
    }
}

/// Splits everything `reader` yields into fixed-size chunks (the last may be
/// shorter) and hands them to `batch` a few at a time. Used for SQLite
/// images, whose pages change in place. Returns the bytes read.
pub fn fixed_batches<R: Read, E: From<io::Error>>(
    mut reader: R,
    chunk_size: usize,
    mut batch: impl FnMut(&[&[u8]]) -> Result<(), E>,
) -> Result<u64, E> {
    // About 1 MiB a batch (at least 32 chunks): enough work to spread over
    // the threads even when chunks are single 4 KiB pages.
    let per_batch = (1usize << 20).div_ceil(chunk_size.max(1)).max(32);
    let mut buf = vec![0u8; chunk_size * per_batch];
    let mut total = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        total += filled as u64;
        let chunks: Vec<&[u8]> = buf[..filled].chunks(chunk_size).collect();
        if !chunks.is_empty() {
            batch(&chunks)?;
        }
        if filled < buf.len() {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 256,
            avg_size: 1024,
            max_size: 4096,
            seed: 0,
        }
    }

    fn chunks_of(chunker: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        chunker
            .chunk_batches::<_, io::Error>(data, data.len() as u64, |batch| {
                out.extend(batch.iter().map(|c| c.to_vec()));
                Ok(())
            })
            .unwrap();
        out
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    proptest! {
        #[test]
        fn chunks_concatenate_to_input(len in 0usize..40_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed);
            let chunker = Chunker::new(small());
            let chunks = chunks_of(&chunker, &data);
            prop_assert_eq!(chunks.concat(), data);
            for c in &chunks {
                prop_assert!(c.len() <= 4096);
            }
        }
    }

    fn slice_chunks_of(chunker: &Chunker, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        chunker.chunk_slice(data, &mut out);
        out.iter().map(|c| c.to_vec()).collect()
    }

    proptest! {
        #[test]
        fn slice_cuts_as_the_reader_does(len in 0usize..40_000, seed in any::<u64>()) {
            let data = pseudo_random(len, seed);
            let chunker = Chunker::new(small());
            prop_assert_eq!(slice_chunks_of(&chunker, &data), chunks_of(&chunker, &data));
        }
    }

    #[test]
    fn slice_cuts_as_the_reader_does_across_refills() {
        // Longer than the reader's buffer, so it refills between cuts.
        let data = pseudo_random(3 << 20, 11);
        let chunker = Chunker::new(small());
        assert_eq!(slice_chunks_of(&chunker, &data), chunks_of(&chunker, &data));
    }

    #[test]
    fn insertion_changes_few_chunks() {
        let data = pseudo_random(200_000, 42);
        let mut edited = data.clone();
        edited.splice(100_000..100_000, b"a small edit".iter().copied());
        let chunker = Chunker::new(small());
        let a = chunks_of(&chunker, &data);
        let b = chunks_of(&chunker, &edited);
        let same = b.iter().filter(|c| a.contains(c)).count();
        assert!(same + 3 >= b.len(), "{same} of {} chunks reused", b.len());
    }

    #[test]
    fn seed_changes_cut_points() {
        let data = pseudo_random(100_000, 7);
        let a = chunks_of(&Chunker::new(small()), &data);
        let b = chunks_of(
            &Chunker::new(ChunkerParams {
                seed: 0x1234_5678_9abc_def0,
                ..small()
            }),
            &data,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn fixed_chunks_cover_the_input() {
        let data = pseudo_random(100_000, 3);
        let mut out = Vec::new();
        fixed_batches::<_, io::Error>(data.as_slice(), 4096, |batch| {
            out.extend(batch.iter().map(|c| c.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(out.concat(), data);
        assert!(out[..out.len() - 1].iter().all(|c| c.len() == 4096));
    }

    #[test]
    fn empty_input_yields_no_chunks() {
        assert!(chunks_of(&Chunker::new(small()), b"").is_empty());
    }
}
