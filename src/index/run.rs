//! The bulk of the index cache's blob rows: one immutable file of rows sorted
//! by blob id, beside the redb database that holds the rows added since.
//!
//! A redb B-tree of one 49-byte row per blob costs about 143 bytes a blob on
//! disk (leaves half to two-thirds full after random inserts, the file grown
//! by doubling); this file costs 49 bytes a row and a fan-out table of four
//! bytes per 16 rows. [`IndexCache::compact`](super::IndexCache::compact)
//! merges redb's rows into a new run file of the next generation, which
//! redb's `meta` table then names in the transaction that empties `blobs`:
//! a crash leaves either the old generation named (the new file is an
//! orphan, removed at the next open) or the new one, written and fsynced
//! before it was named.
//!
//! Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `snapblob` |
//! | 4 | version (1) |
//! | 4 | fan-out bits `b` (0..=16) |
//! | 8 | row count `n` |
//! | 4 x (2^b + 1) | fan-out: index of the first row whose id's top `b` bits are `i`; the last is `n` |
//! | 16 | BLAKE3 of everything above, truncated |
//! | 49 x n | rows: blob id (32), location as in redb's `blobs` (17), ascending by id |
//!
//! A lookup reads the one bucket its id's top bits name (16 rows on
//! average, one `pread`, no map: mapped pages would count in the resident
//! set) and searches it in memory. The fan-out table stays in memory: at
//! most 256 KiB, 4 bytes per 16 blobs below that.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Bytes of one row: blob id and location.
pub const ROW: usize = 32 + LOCATION;
/// Bytes of a location (see `encode_location`).
pub const LOCATION: usize = 17;

const MAGIC: &[u8; 8] = b"snapblob";
const VERSION: u32 = 1;
/// Bytes before the fan-out table.
const FIXED_HEADER: usize = 24;
const CHECK: usize = 16;
/// Rows per bucket the fan-out aims at.
const ROWS_PER_BUCKET: u64 = 16;
/// At most 2^16 buckets: a 256 KiB table, whatever the number of blobs.
const MAX_BITS: u32 = 16;

/// One row: blob id and encoded location.
pub type Row = ([u8; 32], [u8; LOCATION]);

/// An open run file.
pub struct BlobRun {
    file: File,
    path: PathBuf,
    count: u64,
    bits: u32,
    /// `2^bits + 1` row indexes.
    fanout: Vec<u32>,
    rows_at: u64,
}

fn header_len(bits: u32) -> usize {
    FIXED_HEADER + 4 * ((1usize << bits) + 1) + CHECK
}

fn bucket(id: &[u8; 32], bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (u32::from_be_bytes([id[0], id[1], id[2], id[3]]) >> (32 - bits)) as usize
    }
}

/// Fan-out bits for about `rows` rows.
fn bits_for(rows: u64) -> u32 {
    let buckets = rows / ROWS_PER_BUCKET;
    if buckets <= 1 {
        0
    } else {
        buckets.ilog2().min(MAX_BITS)
    }
}

impl BlobRun {
    /// Opens the run file at `path`; the error says why it is unusable
    /// (missing, short, another version, damaged header).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let damaged = |why: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("blob run file {}: {why}", path.display()),
            )
        };
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut fixed = [0u8; FIXED_HEADER];
        file.read_exact_at(&mut fixed, 0)
            .map_err(|_| damaged("shorter than its header"))?;
        if &fixed[0..8] != MAGIC {
            return Err(damaged("not a blob run file"));
        }
        let word = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().expect("4 bytes"));
        if word(8) != VERSION {
            return Err(damaged(&format!("version {} is not {VERSION}", word(8))));
        }
        let bits = word(12);
        if bits > MAX_BITS {
            return Err(damaged("fan-out too wide"));
        }
        let count = u64::from_le_bytes(fixed[16..24].try_into().expect("8 bytes"));
        let rows_at = header_len(bits) as u64;
        if Some(len) != count.checked_mul(ROW as u64).map(|b| b + rows_at) {
            return Err(damaged(&format!("{len} bytes do not hold {count} rows")));
        }
        let mut header = vec![0u8; header_len(bits)];
        file.read_exact_at(&mut header, 0)?;
        let (body, check) = header.split_at(header.len() - CHECK);
        if blake3::hash(body).as_bytes()[..CHECK] != *check {
            return Err(damaged("header checksum mismatch"));
        }
        let fanout: Vec<u32> = body[FIXED_HEADER..]
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes")))
            .collect();
        if fanout[0] != 0
            || fanout.windows(2).any(|w| w[0] > w[1])
            || u64::from(fanout[fanout.len() - 1]) != count
        {
            return Err(damaged("fan-out table out of order"));
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            count,
            bits,
            fanout,
            rows_at,
        })
    }

    /// Number of rows.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The location of blob `id`, if the run holds it.
    pub fn get(&self, id: &[u8; 32]) -> std::io::Result<Option<[u8; LOCATION]>> {
        let b = bucket(id, self.bits);
        let (lo, hi) = (self.fanout[b] as usize, self.fanout[b + 1] as usize);
        if lo == hi {
            return Ok(None);
        }
        let len = (hi - lo) * ROW;
        let mut small = [0u8; 4096];
        let mut large = Vec::new();
        let buf = if len <= small.len() {
            &mut small[..len]
        } else {
            large.resize(len, 0);
            &mut large[..]
        };
        self.file
            .read_exact_at(buf, self.rows_at + (lo * ROW) as u64)?;
        let (mut left, mut right) = (0, hi - lo);
        while left < right {
            let mid = (left + right) / 2;
            let row = &buf[mid * ROW..(mid + 1) * ROW];
            match row[..32].cmp(&id[..]) {
                std::cmp::Ordering::Less => left = mid + 1,
                std::cmp::Ordering::Greater => right = mid,
                std::cmp::Ordering::Equal => {
                    return Ok(Some(row[32..].try_into().expect("17 bytes")));
                }
            }
        }
        Ok(None)
    }

    /// Reads the rows in id order, a buffer at a time.
    pub fn rows(&self) -> RunRows<'_> {
        RunRows {
            run: self,
            next: 0,
            buf: Vec::new(),
            at: 0,
        }
    }
}

/// The rows of a run in order ([`BlobRun::rows`]).
pub struct RunRows<'a> {
    run: &'a BlobRun,
    /// Index of the first row not yet read into `buf`.
    next: u64,
    buf: Vec<u8>,
    at: usize,
}

/// Rows read per `pread` when streaming a run.
const STREAM_ROWS: u64 = 1024;

impl Iterator for RunRows<'_> {
    type Item = std::io::Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at == self.buf.len() {
            let rows = STREAM_ROWS.min(self.run.count - self.next);
            if rows == 0 {
                return None;
            }
            self.buf.resize(rows as usize * ROW, 0);
            let offset = self.run.rows_at + self.next * ROW as u64;
            if let Err(e) = self.run.file.read_exact_at(&mut self.buf, offset) {
                self.buf.clear();
                self.next = self.run.count;
                return Some(Err(e));
            }
            self.next += rows;
            self.at = 0;
        }
        let row = &self.buf[self.at..self.at + ROW];
        self.at += ROW;
        Some(Ok((
            row[..32].try_into().expect("32 bytes"),
            row[32..].try_into().expect("17 bytes"),
        )))
    }
}

/// Writes a new run file, rows in ascending id order.
pub struct RunWriter {
    out: BufWriter<File>,
    path: PathBuf,
    bits: u32,
    /// Rows per bucket, shifted by one (prefix sums make the fan-out).
    fanout: Vec<u32>,
    count: u64,
    last: Option<[u8; 32]>,
}

impl RunWriter {
    /// Creates (or truncates) `path` (mode 0600) for about `rows` rows.
    pub fn create(path: &Path, rows: u64) -> std::io::Result<Self> {
        let bits = bits_for(rows);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // Whatever the umask or an older file's mode: the cache holds chunk ids.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        // The header is written last, when the fan-out is known.
        out.write_all(&vec![0u8; header_len(bits)])?;
        Ok(Self {
            out,
            path: path.to_path_buf(),
            bits,
            fanout: vec![0; (1 << bits) + 1],
            count: 0,
            last: None,
        })
    }

    /// Appends a row; ids must ascend strictly.
    pub fn push(&mut self, id: &[u8; 32], location: &[u8; LOCATION]) -> std::io::Result<()> {
        if self.last.is_some_and(|last| last >= *id) {
            return Err(std::io::Error::other(
                "blob run rows out of order (a bug in snap)",
            ));
        }
        if self.count >= u64::from(u32::MAX) {
            return Err(std::io::Error::other("more than 2^32 blobs in one cache"));
        }
        self.last = Some(*id);
        self.fanout[bucket(id, self.bits) + 1] += 1;
        self.count += 1;
        self.out.write_all(id)?;
        self.out.write_all(location)
    }

    /// Writes the header, fsyncs the file and opens it for reading.
    pub fn finish(mut self) -> std::io::Result<BlobRun> {
        for i in 1..self.fanout.len() {
            self.fanout[i] += self.fanout[i - 1];
        }
        let mut header = Vec::with_capacity(header_len(self.bits));
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&self.bits.to_le_bytes());
        header.extend_from_slice(&self.count.to_le_bytes());
        for start in &self.fanout {
            header.extend_from_slice(&start.to_le_bytes());
        }
        let check = blake3::hash(&header);
        header.extend_from_slice(&check.as_bytes()[..CHECK]);
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.write_all_at(&header, 0)?;
        file.sync_all()?;
        Ok(BlobRun {
            file,
            path: self.path,
            count: self.count,
            bits: self.bits,
            rows_at: header.len() as u64,
            fanout: self.fanout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 32] {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    #[test]
    fn written_rows_are_found_and_streamed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for rows in [0u64, 1, 15, 16, 17, 1000, 5000] {
            let path = dir.path().join(format!("{rows}.blobs"));
            let mut ids: Vec<[u8; 32]> = (0..rows).map(id).collect();
            ids.sort_unstable();
            let mut writer = RunWriter::create(&path, rows + 3).unwrap();
            for (i, id) in ids.iter().enumerate() {
                writer.push(id, &[i as u8; LOCATION]).unwrap();
            }
            let written = writer.finish().unwrap();
            let run = BlobRun::open(&path).unwrap();
            assert_eq!((written.count(), run.count()), (rows, rows));
            for (i, id) in ids.iter().enumerate() {
                assert_eq!(run.get(id).unwrap(), Some([i as u8; LOCATION]));
            }
            assert_eq!(run.get(&id(rows + 1)).unwrap(), None);
            let streamed: Vec<[u8; 32]> = run.rows().map(|r| r.unwrap().0).collect();
            assert_eq!(streamed, ids);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                header_len(bits_for(rows + 3)) as u64 + rows * ROW as u64
            );
        }
    }

    #[test]
    fn rows_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = RunWriter::create(&dir.path().join("x.blobs"), 2).unwrap();
        writer.push(&[2; 32], &[0; LOCATION]).unwrap();
        assert!(writer.push(&[1; 32], &[0; LOCATION]).is_err());
        assert!(writer.push(&[2; 32], &[0; LOCATION]).is_err());
    }

    #[test]
    fn damaged_or_short_files_do_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.blobs");
        let mut writer = RunWriter::create(&path, 100).unwrap();
        let mut ids: Vec<[u8; 32]> = (0..100).map(id).collect();
        ids.sort_unstable();
        for id in &ids {
            writer.push(id, &[1; LOCATION]).unwrap();
        }
        writer.finish().unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[FIXED_HEADER + 5] ^= 1;
        for bad in [&good[..good.len() - 1], &good[..10], &flipped[..]] {
            std::fs::write(&path, bad).unwrap();
            assert!(BlobRun::open(&path).is_err());
        }
        std::fs::write(&path, &good).unwrap();
        assert!(BlobRun::open(&path).is_ok());
    }
}
