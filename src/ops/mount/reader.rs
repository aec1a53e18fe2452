//! Reading a file of a mounted snapshot at any offset, chunk by chunk,
//! through the same calls as `snap cat` and restore: the layout judged by
//! `Repository::file_layout` (so an unsound file cannot be opened), each
//! chunk read and verified by `Repository::read_blob_at`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::format::tree::Node;
use crate::id::BlobId;
use crate::index::Location;
use crate::repo::Repository;
use crate::sync::lock;

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// An open file: where each of its chunks starts.
pub struct OpenFile {
    chunks: Vec<(BlobId, Location)>,
    /// `starts[i]` is the offset of chunk `i` in the file.
    starts: Vec<u64>,
    size: u64,
}

impl OpenFile {
    /// Judges the file node (`Repository::file_layout`) and keeps its chunks.
    pub fn open(repo: &Repository, node: &Node) -> Result<Self> {
        let chunks = repo.file_layout(node)?;
        let mut starts = Vec::with_capacity(chunks.len());
        let mut offset = 0u64;
        for (_, location) in &chunks {
            starts.push(offset);
            offset += u64::from(location.raw_length);
        }
        Ok(Self {
            chunks,
            starts,
            size: offset,
        })
    }

    /// Up to `len` bytes from `offset` (fewer only at the end of the file).
    pub fn read(
        &self,
        repo: &Repository,
        cache: &ChunkCache,
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(len as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut position = offset;
        // The chunk holding `offset`: the last one starting at or before it.
        let mut index = self.starts.partition_point(|&start| start <= offset);
        index = index.saturating_sub(1);
        while position < end && index < self.chunks.len() {
            let (id, location) = &self.chunks[index];
            let data = cache.get(repo, id, location)?;
            let start = self.starts[index];
            let from = (position - start) as usize;
            let to = ((end - start) as usize).min(data.len());
            out.extend_from_slice(&data[from..to]);
            if index == 0 {
                present_sqlite_header(&data, offset, &mut out);
            }
            position = start + to as u64;
            index += 1;
        }
        Ok(out)
    }
}

/// A database captured from WAL mode keeps header bytes 18 and 19 (the
/// file format write and read versions) at 2, and SQLite refuses to open
/// such a file read-only ("attempt to write a readonly database") because
/// WAL mode needs a writable `-shm`. The mount shows them as 1 (rollback
/// mode); the stored bytes, and what restore and cat give, stay as captured.
/// `first_chunk` is the file's first chunk, `out` the bytes read from `offset`.
fn present_sqlite_header(first_chunk: &[u8], offset: u64, out: &mut [u8]) {
    let is_wal_image = first_chunk.len() >= 20
        && first_chunk.starts_with(SQLITE_MAGIC)
        && first_chunk[18] == 2
        && first_chunk[19] == 2;
    if !is_wal_image {
        return;
    }
    for byte in 18u64..20 {
        if let Some(at) = byte.checked_sub(offset)
            && let Some(slot) = out.get_mut(at as usize)
        {
            *slot = 1;
        }
    }
}

/// Verified chunks recently read, bounded by their total size, so reading a
/// file sequentially in the kernel's small requests decodes each chunk once
/// and memory stays flat whatever the file's size. The kernel sends several
/// reads of one chunk at once (readahead): the first reads it, the others
/// wait for it on its slot instead of decoding it again.
pub struct ChunkCache {
    limit: usize,
    held: Mutex<Held>,
}

/// A chunk being read or read (`None` until then, or after a failed read).
type Slot = Arc<Mutex<Option<Arc<Vec<u8>>>>>;

#[derive(Default)]
struct Held {
    slots: HashMap<BlobId, Slot>,
    /// Filled chunks, oldest first, with their sizes.
    order: VecDeque<(BlobId, usize)>,
    bytes: usize,
}

impl ChunkCache {
    /// A cache holding at most `limit` bytes of chunks.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            held: Mutex::new(Held::default()),
        }
    }

    /// The plaintext of a chunk, from the cache or read and verified.
    pub fn get(&self, repo: &Repository, id: &BlobId, location: &Location) -> Result<Arc<Vec<u8>>> {
        let slot = lock(&self.held).slots.entry(*id).or_default().clone();
        let mut filled = lock(&slot);
        if let Some(data) = filled.as_ref() {
            return Ok(data.clone());
        }
        // Only this chunk's readers wait while it is read; other chunks go on.
        let data = Arc::new(repo.read_blob_at(id, location)?);
        *filled = Some(data.clone());
        drop(filled);
        let mut held = lock(&self.held);
        held.order.push_back((*id, data.len()));
        held.bytes += data.len();
        while held.bytes > self.limit && held.order.len() > 1 {
            let Some((oldest, len)) = held.order.pop_front() else {
                break;
            };
            held.slots.remove(&oldest);
            held.bytes -= len;
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::present_sqlite_header;

    fn wal_header() -> Vec<u8> {
        let mut header = b"SQLite format 3\0".to_vec();
        header.extend_from_slice(&[0x10, 0x00, 2, 2, 0, 64, 32, 32]);
        header
    }

    #[test]
    fn wal_images_read_as_rollback_at_any_offset() {
        let chunk = wal_header();
        let mut whole = chunk.clone();
        present_sqlite_header(&chunk, 0, &mut whole);
        assert_eq!(&whole[18..20], &[1, 1]);
        assert_eq!(&whole[..18], &chunk[..18]);
        assert_eq!(&whole[20..], &chunk[20..]);
        // A read that starts at byte 19 sees only that byte changed.
        let mut tail = chunk[19..].to_vec();
        present_sqlite_header(&chunk, 19, &mut tail);
        assert_eq!(tail[0], 1);
        assert_eq!(&tail[1..], &chunk[20..]);
        // A read that ends before byte 18 is untouched.
        let mut head = chunk[..10].to_vec();
        present_sqlite_header(&chunk, 0, &mut head);
        assert_eq!(&head[..], &chunk[..10]);
    }

    #[test]
    fn other_files_are_left_as_stored() {
        let mut rollback = wal_header();
        rollback[18] = 1;
        rollback[19] = 1;
        let mut out = rollback.clone();
        out[18] = 2;
        let before = out.clone();
        present_sqlite_header(&rollback, 0, &mut out);
        assert_eq!(out, before);
        let text = b"not a database, but twenty bytes long".to_vec();
        let mut out = text.clone();
        present_sqlite_header(&text, 0, &mut out);
        assert_eq!(out, text);
    }
}
