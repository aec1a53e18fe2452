//! The index cache: a redb database mapping blob ids to pack locations.
//!
//! It is a cache, never truth: every entry comes from an index delta in the
//! repository, and the set of deltas it has loaded is recorded in the same
//! transaction as their entries. On a schema mismatch or damage the file is
//! deleted and rebuilt, never migrated. Lookups read B-tree pages from disk,
//! so memory does not grow with the number of blobs.
//!
//! redb lets one process hold the database at a time; a second snap process
//! waits for it (and says so) instead of failing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableTable, TableDefinition};

use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexDelta;
use crate::format::pack::{BlobEntry, BlobKind};
use crate::id::{BlobId, IndexId, PackId};

/// Bump when the tables change: an old cache is then rebuilt.
const SCHEMA: u64 = 2;

/// blob id -> pack number (4), offset (4), length (4), raw length (4), kind (1)
const BLOBS: TableDefinition<[u8; 32], [u8; 17]> = TableDefinition::new("blobs");
/// pack number -> pack id, pack size
const PACKS: TableDefinition<u32, ([u8; 32], u64)> = TableDefinition::new("packs");
/// pack id -> pack number
const PACK_NUMBERS: TableDefinition<[u8; 32], u32> = TableDefinition::new("pack_numbers");
/// index delta id -> number of packs it added
const DELTAS: TableDefinition<[u8; 32], u64> = TableDefinition::new("deltas");
/// keyed hash of a source path -> MessagePack [`FileMemo`] (write-only keys only)
const FILES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("files");
/// "schema" -> SCHEMA
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The pack holding it.
    pub pack: PackId,
    /// What it holds.
    pub kind: BlobKind,
    /// Offset of its frame in the pack.
    pub offset: u32,
    /// Length of its frame.
    pub length: u32,
    /// Length of its plaintext.
    pub raw_length: u32,
}

/// What a write-only host remembers of a file it stored, so that the next
/// backup can skip it unchanged without reading the (unreadable) old trees.
/// Holds only keyed ids and metadata, never names or content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileMemo {
    /// Size in bytes.
    pub size: u64,
    /// Modification time (ns).
    pub mtime_ns: i64,
    /// Status change time (ns).
    pub ctime_ns: i64,
    /// Inode number.
    pub inode: u64,
    /// Content ids (see `Node::content`).
    pub content: Vec<BlobId>,
    /// Content depth (see `Node::content_depth`).
    pub content_depth: u8,
}

/// The redb index cache of one repository.
pub struct IndexCache {
    db: Database,
    path: PathBuf,
}

fn cache_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "index cache {}: {e}; it is only a cache: delete it and snap rebuilds it",
            path.display()
        ),
    )
}

/// redb's page cache: enough for the hot upper B-tree levels, small enough
/// that memory stays flat however many blobs the repository holds.
const CACHE_BYTES: usize = 32 << 20;

/// How long a second process waits for the cache before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(3600);

impl IndexCache {
    /// Opens (or creates) the cache at `path`. While another process holds it,
    /// calls `waiting` once and retries until [`WAIT_LIMIT`].
    pub fn open(path: &Path, waiting: &dyn Fn()) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io("cannot create cache folder", dir, e))?;
        }
        let started = Instant::now();
        let mut said = false;
        let db = loop {
            match redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(path)
            {
                Ok(db) => break db,
                Err(DatabaseError::DatabaseAlreadyOpen) => {
                    if !said {
                        waiting();
                        said = true;
                    }
                    if started.elapsed() > WAIT_LIMIT {
                        return Err(Error::new(
                            ErrorKind::Io,
                            format!(
                                "another snap process has held the index cache {} for an hour; try again when it is done",
                                path.display()
                            ),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) if path.exists() => {
                    // A damaged or incompatible cache: it holds nothing that the
                    // repository does not, so start over.
                    std::fs::remove_file(path).map_err(|io| {
                        Error::io(&format!("cannot remove damaged cache ({e})"), path, io)
                    })?;
                }
                Err(e) => return Err(cache_error(path, e)),
            }
        };
        let cache = Self {
            db,
            path: path.to_path_buf(),
        };
        if cache.schema()? != Some(SCHEMA) {
            cache.clear()?;
        }
        Ok(cache)
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        cache_error(&self.path, e)
    }

    fn schema(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(table
            .get("schema")
            .map_err(|e| self.err(e))?
            .map(|v| v.value()))
    }

    /// Empties every table (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.delete_table(BLOBS).map_err(|e| self.err(e))?;
        txn.delete_table(PACKS).map_err(|e| self.err(e))?;
        txn.delete_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
        txn.delete_table(DELTAS).map_err(|e| self.err(e))?;
        txn.delete_table(META).map_err(|e| self.err(e))?;
        txn.delete_table(FILES).map_err(|e| self.err(e))?;
        {
            txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            txn.open_table(PACKS).map_err(|e| self.err(e))?;
            txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            txn.open_table(DELTAS).map_err(|e| self.err(e))?;
            txn.open_table(FILES).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("schema", SCHEMA).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The index deltas whose entries the cache holds.
    pub fn loaded_deltas(&self) -> Result<HashSet<IndexId>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(DELTAS).map_err(|e| self.err(e))?;
        let mut out = HashSet::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (key, _) = row.map_err(|e| self.err(e))?;
            out.insert(IndexId(key.value()));
        }
        Ok(out)
    }

    /// Adds the entries of several index deltas in one transaction.
    pub fn add_deltas(&self, deltas: &[(IndexId, IndexDelta)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            let mut packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
            let mut numbers = txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            let mut loaded = txn.open_table(DELTAS).map_err(|e| self.err(e))?;
            let mut next = packs
                .last()
                .map_err(|e| self.err(e))?
                .map_or(0, |(k, _)| k.value() + 1);
            for (delta_id, delta) in deltas {
                for pack in &delta.packs {
                    let existing = numbers
                        .get(pack.id.0)
                        .map_err(|e| self.err(e))?
                        .map(|v| v.value());
                    let number = match existing {
                        Some(n) => n,
                        None => {
                            let n = next;
                            next += 1;
                            packs
                                .insert(n, (pack.id.0, pack.size))
                                .map_err(|e| self.err(e))?;
                            numbers.insert(pack.id.0, n).map_err(|e| self.err(e))?;
                            n
                        }
                    };
                    for blob in &pack.blobs {
                        blobs
                            .insert(blob.id.0, encode_location(number, blob))
                            .map_err(|e| self.err(e))?;
                    }
                }
                loaded
                    .insert(delta_id.0, delta.packs.len() as u64)
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Where blob `id` is stored, if the cache knows it.
    pub fn lookup(&self, id: &BlobId) -> Result<Option<Location>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let Some(value) = blobs.get(id.0).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let raw = value.value();
        let number = u32::from_le_bytes(raw[0..4].try_into().expect("4 bytes"));
        let packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let (pack, _) = packs
            .get(number)
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("pack number {number} missing")))?
            .value();
        Ok(Some(Location {
            pack: PackId(pack),
            offset: u32::from_le_bytes(raw[4..8].try_into().expect("4 bytes")),
            length: u32::from_le_bytes(raw[8..12].try_into().expect("4 bytes")),
            raw_length: u32::from_le_bytes(raw[12..16].try_into().expect("4 bytes")),
            kind: BlobKind::from_u8(raw[16]).ok_or_else(|| self.err("unknown blob kind"))?,
        }))
    }

    /// Whether the cache knows blob `id`.
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        Ok(blobs.get(id.0).map_err(|e| self.err(e))?.is_some())
    }

    /// What this host stored for the file whose keyed path hash is `key`.
    pub fn file_memo(&self, key: &[u8; 32]) -> Result<Option<FileMemo>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let files = txn.open_table(FILES).map_err(|e| self.err(e))?;
        Ok(files
            .get(key)
            .map_err(|e| self.err(e))?
            .and_then(|v| rmp_serde::from_slice(v.value()).ok()))
    }

    /// Records what this host stored for files (keyed path hash -> memo).
    pub fn put_file_memos(&self, memos: &[([u8; 32], FileMemo)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut files = txn.open_table(FILES).map_err(|e| self.err(e))?;
            for (key, memo) in memos {
                files
                    .insert(key, crate::format::to_msgpack(memo).as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Number of blobs and packs the cache knows.
    pub fn counts(&self) -> Result<(u64, u64)> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn
            .open_table(BLOBS)
            .map_err(|e| self.err(e))?
            .len()
            .map_err(|e| self.err(e))?;
        let packs = txn
            .open_table(PACKS)
            .map_err(|e| self.err(e))?
            .len()
            .map_err(|e| self.err(e))?;
        Ok((blobs, packs))
    }
}

fn encode_location(pack_number: u32, blob: &BlobEntry) -> [u8; 17] {
    let mut out = [0u8; 17];
    out[0..4].copy_from_slice(&pack_number.to_le_bytes());
    out[4..8].copy_from_slice(&blob.offset.to_le_bytes());
    out[8..12].copy_from_slice(&blob.length.to_le_bytes());
    out[12..16].copy_from_slice(&blob.raw_length.to_le_bytes());
    out[16] = blob.kind.to_u8();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::PackIndex;

    #[test]
    fn add_lookup_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let entry = BlobEntry {
            id: BlobId([9; 32]),
            kind: BlobKind::Tree,
            offset: 9,
            length: 100,
            raw_length: 300,
        };
        let delta = IndexDelta {
            packs: vec![PackIndex {
                id: PackId([5; 32]),
                size: 200,
                blobs: vec![entry],
            }],
            obsolete: vec![],
        };
        {
            let cache = IndexCache::open(&path, &|| {}).unwrap();
            cache.add_deltas(&[(IndexId([1; 32]), delta)]).unwrap();
        }
        let cache = IndexCache::open(&path, &|| {}).unwrap();
        let loc = cache.lookup(&BlobId([9; 32])).unwrap().unwrap();
        assert_eq!(loc.pack, PackId([5; 32]));
        assert_eq!(
            (loc.offset, loc.length, loc.raw_length, loc.kind),
            (9, 100, 300, BlobKind::Tree)
        );
        assert!(cache.lookup(&BlobId([8; 32])).unwrap().is_none());
        assert_eq!(cache.loaded_deltas().unwrap().len(), 1);
        cache.clear().unwrap();
        assert!(cache.lookup(&BlobId([9; 32])).unwrap().is_none());
    }

    #[test]
    fn garbage_cache_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        std::fs::write(&path, b"not a database at all").unwrap();
        let cache = IndexCache::open(&path, &|| {}).unwrap();
        assert_eq!(cache.counts().unwrap(), (0, 0));
    }
}
