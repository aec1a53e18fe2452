//! The index cache: a redb database mapping blob ids to pack locations.
//!
//! It is a cache, never truth: every entry comes from an index delta in the
//! repository, and the set of deltas it has loaded is recorded in the same
//! transaction as their entries. On a schema mismatch or damage the file is
//! deleted and rebuilt, never migrated. Lookups read B-tree pages from disk,
//! so memory does not grow with the number of blobs.
//!
//! Blob rows live in two layers: the bulk in an immutable sorted run file
//! beside the database (`run.rs`: 49 bytes a blob, where a redb B-tree
//! takes about three times that), and the rows added since in redb's
//! `blobs` table, which wins where both hold a blob. [`IndexCache::compact`]
//! merges the second into a new run file; the database names the run file
//! in force, so the two change together.
//!
//! redb lets one process hold the database at a time; a second snap process
//! that writes waits for it (and says so) instead of failing, and one that
//! only reads builds a private cache instead of waiting (see
//! `Repository::open_reader`). Only the process holding the database
//! touches its run files.

mod recent;
mod run;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{
    Database, DatabaseError, MultimapTableDefinition, ReadableMultimapTable, ReadableTable,
    TableDefinition,
};

use crate::error::{Error, ErrorKind, Result};
use crate::format::index::{IndexDelta, PackIndex};
use crate::format::pack::{BlobEntry, BlobKind};
use crate::id::{BlobId, IndexId, PackId};
use crate::sync::lock;
use recent::RecentFilter;
use run::{BlobRun, LOCATION, Row, RunWriter};

/// Bump when the tables change: an old cache is then rebuilt.
const SCHEMA: u64 = 5;

/// blob id -> pack number (4), offset (4), length (4), raw length (4), kind (1),
/// for blobs added since the run file was written (see the module docs)
const BLOBS: TableDefinition<[u8; 32], [u8; 17]> = TableDefinition::new("blobs");
/// pack number -> pack id, pack size
const PACKS: TableDefinition<u32, ([u8; 32], u64)> = TableDefinition::new("packs");
/// pack id -> pack number
const PACK_NUMBERS: TableDefinition<[u8; 32], u32> = TableDefinition::new("pack_numbers");
/// index delta id -> number of packs it added
const DELTAS: TableDefinition<[u8; 32], u64> = TableDefinition::new("deltas");
/// keyed hash of a source path -> MessagePack [`FileMemo`] (write-only keys only)
const FILES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("files");
/// pack id -> the index deltas that list it in `packs`
const PACK_DELTAS: MultimapTableDefinition<[u8; 32], [u8; 32]> =
    MultimapTableDefinition::new("pack_deltas");
/// pack id -> the index deltas that mark it obsolete (see [`IndexCache::contains`])
const MARKS: MultimapTableDefinition<[u8; 32], [u8; 32]> = MultimapTableDefinition::new("marks");
/// snapshot id -> the snapshot file's bytes as stored (sealed when encrypted),
/// so listing snapshots reads no repository files but new ones
const SNAPSHOT_FILES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("snapshot_files");
/// blob id -> every location of a blob that is not file data (trees, chunk
/// lists), in the layout of `blobs`: these are stored twice,
/// and a reader falls back to another copy ([`IndexCache::copies`])
const BLOB_COPIES: MultimapTableDefinition<[u8; 32], [u8; 17]> =
    MultimapTableDefinition::new("blob_copies");
/// "schema" -> SCHEMA; "run" -> generation of the run file in force (none
/// before the first [`IndexCache::compact`] that had rows to merge)
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
    /// The chunks' dictionary (see `Node::dictionary`).
    #[serde(default)]
    pub dictionary: Option<BlobId>,
}

/// The redb index cache of one repository.
pub struct IndexCache {
    db: Database,
    path: PathBuf,
    /// The run file `meta` names; `None` when it names none.
    run: RwLock<Option<BlobRun>>,
    /// Which blobs the `blobs` table may hold (`recent.rs`).
    recent: RecentFilter,
    /// Held by the one thread adding rows (and merging them into the run):
    /// the filter and the table must take a batch's ids together.
    writing: Mutex<()>,
    /// Ids in the filter that [`IndexCache::add_deltas`] does not add past
    /// without merging first (see [`MERGE_IDS`]; smaller in tests).
    merge_ids: usize,
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

/// redb's page cache: enough for the branch pages of a `blobs` table of a
/// million rows (about 600 KiB; the bulk of the rows is in the run file, see
/// `run.rs`), small enough that a backup's memory does not grow with the
/// number of blobs. Leaf pages come from the operating system's page cache,
/// which does not count in the process's memory; a first backup misses on
/// nearly every lookup anyway, and inserts a batch in id order (each leaf
/// read once). 1 MiB rather than 4: peak RSS of a first backup of 60k /
/// 300k / 1M small files 34.9 / 39.9 / 47.1 -> 31.8 / 35.8 / 44.3 MB in the
/// same time; a hit in a table of 300,000 rows not merged into the run
/// (`cargo bench --bench index`) takes 2.9 us instead of 2.4.
const CACHE_BYTES: usize = 1 << 20;

/// Fewest rows of `blobs` worth merging into the run file (a small cache
/// stays in redb alone).
const MERGE_ROWS: u64 = 4096;

/// Ids in the filter of the `blobs` table that a batch of rows may not
/// take it past: [`IndexCache::add_deltas`] first merges the table into
/// the run file, rather than after the backup, once the table holds a
/// quarter of the run's rows (so a large run is not rewritten for every
/// few rows). The filter then needs no more than its first two layers
/// (400 KiB) and redb's table stays small: a first backup of a million small files held the filter at 1.7
/// MiB and a table of a million rows (docs/PERFORMANCE.md). Each merge
/// rewrites the run file, 49 bytes a row: 0.1 GB in all for that backup.
const MERGE_IDS: usize = recent::TWO_LAYERS;

/// How long a second process waits for the cache before giving up.
const WAIT_LIMIT: Duration = Duration::from_secs(3600);

impl IndexCache {
    /// Opens (or creates) the cache at `path`. While another process holds it,
    /// calls `waiting` once and retries until [`WAIT_LIMIT`].
    pub fn open(path: &Path, waiting: &dyn Fn()) -> Result<Self> {
        let started = Instant::now();
        let mut said = false;
        loop {
            if let Some(cache) = Self::open_if_free(path)? {
                return Ok(cache);
            }
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
    }

    /// Opens (or creates) the cache at `path`, or returns `None` at once
    /// when another process holds it. The folder is made 0700 and the file
    /// 0600: the cache holds paths, hosts and chunk ids.
    pub fn open_if_free(path: &Path) -> Result<Option<Self>> {
        if let Some(dir) = path.parent() {
            crate::backend::local::create_private_dir(dir)?;
        }
        let db = loop {
            match redb::Builder::new()
                .set_cache_size(CACHE_BYTES)
                .create(path)
            {
                Ok(db) => break db,
                Err(DatabaseError::DatabaseAlreadyOpen) => return Ok(None),
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
        crate::backend::local::make_private_file(path)?;
        let cache = Self {
            db,
            path: path.to_path_buf(),
            run: RwLock::new(None),
            recent: RecentFilter::new(),
            writing: Mutex::new(()),
            merge_ids: MERGE_IDS,
        };
        if cache.schema()? != Some(SCHEMA) {
            cache.clear()?;
        }
        cache.fill_recent()?;
        if let Some(generation) = cache.run_generation()? {
            match BlobRun::open(&cache.run_path(generation)) {
                Ok(run) => *cache.run.write().expect("run lock") = Some(run),
                // Missing or damaged: the cache holds nothing the repository
                // does not, so start over (the caller reloads the deltas).
                Err(_) => cache.clear()?,
            }
        }
        cache.remove_stale_runs();
        Ok(Some(cache))
    }

    /// The run file of generation `generation`, beside the database:
    /// `index.redb` has `index.<generation>.blobs`.
    fn run_path(&self, generation: u64) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map_or_else(|| "index".into(), |s| s.to_string_lossy());
        self.path
            .with_file_name(format!("{stem}.{generation}.blobs"))
    }

    /// Puts the ids of the `blobs` table into the filter (on opening: the
    /// table holds at most an eighth as many rows as the run file, see
    /// [`IndexCache::compact_if_sparse`]).
    fn fill_recent(&self) -> Result<()> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = match txn.open_table(BLOBS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        let mut batch = Vec::with_capacity(4096);
        for row in blobs.iter().map_err(|e| self.err(e))? {
            let (id, _) = row.map_err(|e| self.err(e))?;
            batch.push(id.value());
            if batch.len() == batch.capacity() {
                self.recent.insert(&batch);
                batch.clear();
            }
        }
        self.recent.insert(&batch);
        Ok(())
    }

    fn run_generation(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(table
            .get("run")
            .map_err(|e| self.err(e))?
            .map(|v| v.value()))
    }

    /// Removes run files the database does not name: left by a crash
    /// between writing a run and naming it, or before removing the old one.
    /// Best effort: a file left over costs space, not correctness.
    fn remove_stale_runs(&self) {
        let current = self
            .run
            .read()
            .expect("run lock")
            .as_ref()
            .map(|r| r.path().to_path_buf());
        let Some(dir) = self.path.parent() else {
            return;
        };
        let Some(stem) = self.path.file_stem().map(|s| s.to_string_lossy()) else {
            return;
        };
        let prefix = format!("{stem}.");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let generation = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".blobs"));
            if generation.is_some_and(|g| g.parse::<u64>().is_ok())
                && current.as_deref() != Some(entry.path().as_path())
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The location row of blob `id`: `blobs` (newer) first, then the run.
    fn find(
        &self,
        blobs: &impl ReadableTable<[u8; 32], [u8; 17]>,
        id: &[u8; 32],
    ) -> Result<Option<[u8; LOCATION]>> {
        if self.recent.may_hold(id)
            && let Some(value) = blobs.get(id).map_err(|e| self.err(e))?
        {
            return Ok(Some(value.value()));
        }
        self.run_row(id)
    }

    /// Rows of the run file (none without one).
    fn run_rows(&self) -> u64 {
        self.run
            .read()
            .expect("run lock")
            .as_ref()
            .map_or(0, BlobRun::count)
    }

    /// The location row of blob `id` in the run file.
    fn run_row(&self, id: &[u8; 32]) -> Result<Option<[u8; LOCATION]>> {
        match self.run.read().expect("run lock").as_ref() {
            Some(run) => run.get(id).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// Calls `visit` for every blob row in id order: the run's rows merged
    /// with `blobs`, whose row wins for a blob both hold.
    fn merged_rows(
        &self,
        blobs: &impl ReadableTable<[u8; 32], [u8; 17]>,
        run: Option<&BlobRun>,
        mut visit: impl FnMut(&Row) -> Result<()>,
    ) -> Result<()> {
        let mut recent = blobs
            .iter()
            .map_err(|e| self.err(e))?
            .map(|row| {
                row.map(|(k, v)| (k.value(), v.value()))
                    .map_err(|e| self.err(e))
            })
            .peekable();
        let mut bulk = run
            .into_iter()
            .flat_map(BlobRun::rows)
            .map(|row| row.map_err(|e| self.err(e)))
            .peekable();
        loop {
            let (take_recent, shadowed) = match (recent.peek(), bulk.peek()) {
                (None, None) => return Ok(()),
                (Some(Err(_)), _) | (Some(_), None) => (true, false),
                (_, Some(Err(_))) | (None, Some(_)) => (false, false),
                (Some(Ok(a)), Some(Ok(b))) => (a.0 <= b.0, a.0 == b.0),
            };
            if shadowed {
                bulk.next();
            }
            let row = if take_recent {
                recent.next()
            } else {
                bulk.next()
            };
            visit(&row.expect("peeked")?)?;
        }
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
        let _writing = lock(&self.writing);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.delete_table(BLOBS).map_err(|e| self.err(e))?;
        txn.delete_table(PACKS).map_err(|e| self.err(e))?;
        txn.delete_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
        txn.delete_table(DELTAS).map_err(|e| self.err(e))?;
        txn.delete_table(META).map_err(|e| self.err(e))?;
        txn.delete_table(FILES).map_err(|e| self.err(e))?;
        txn.delete_table(SNAPSHOT_FILES).map_err(|e| self.err(e))?;
        txn.delete_multimap_table(PACK_DELTAS)
            .map_err(|e| self.err(e))?;
        txn.delete_multimap_table(MARKS).map_err(|e| self.err(e))?;
        txn.delete_multimap_table(BLOB_COPIES)
            .map_err(|e| self.err(e))?;
        {
            txn.open_multimap_table(BLOB_COPIES)
                .map_err(|e| self.err(e))?;
            txn.open_multimap_table(PACK_DELTAS)
                .map_err(|e| self.err(e))?;
            txn.open_multimap_table(MARKS).map_err(|e| self.err(e))?;
            txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            txn.open_table(PACKS).map_err(|e| self.err(e))?;
            txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            txn.open_table(DELTAS).map_err(|e| self.err(e))?;
            txn.open_table(FILES).map_err(|e| self.err(e))?;
            txn.open_table(SNAPSHOT_FILES).map_err(|e| self.err(e))?;
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("schema", SCHEMA).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.recent.clear();
        // Named no more: a crash before this removal leaves an orphan that
        // the next open removes.
        if let Some(old) = self.run.write().expect("run lock").take() {
            let _ = std::fs::remove_file(old.path());
        }
        Ok(())
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
    ///
    /// A delta's `obsolete` marks are recorded before its packs are added.
    /// Blobs of a marked pack are added only when the cache has no other
    /// location for them: they stay readable until prune deletes the pack,
    /// but a location in an unmarked pack is preferred.
    ///
    /// When the batch would take the filter past [`MERGE_IDS`] ids, first
    /// merges the table into the run file (readers go on meanwhile and find
    /// every row), so that the filter never grows a layer it needs only
    /// for a moment.
    pub fn add_deltas(&self, deltas: &[(IndexId, IndexDelta)]) -> Result<()> {
        let _writing = lock(&self.writing);
        let incoming: usize = deltas
            .iter()
            .flat_map(|(_, delta)| &delta.packs)
            .map(|pack| pack.blobs.len())
            .sum();
        let ids = self.recent.ids();
        let after = ids.saturating_add(incoming);
        let bulk = self.run_rows();
        if ids > 0 && after > self.merge_ids && after.saturating_mul(4) as u64 >= bulk {
            self.merge_run()?;
        }
        self.insert_deltas(deltas)
    }

    /// [`IndexCache::add_deltas`] without the merge; the caller holds
    /// `writing`.
    fn insert_deltas(&self, deltas: &[(IndexId, IndexDelta)]) -> Result<()> {
        // Before any row: a lookup must never find a row the filter denies
        // (a row not added after all only costs a lookup in redb). That
        // includes the lookups below, in this transaction: a row of a
        // marked pack is skipped when the batch gave its blob a location
        // already, which `find` sees only if the filter holds the id.
        self.recent.insert(
            deltas
                .iter()
                .flat_map(|(_, delta)| &delta.packs)
                .flat_map(|pack| &pack.blobs)
                .map(|blob| &blob.id.0),
        );
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            let mut packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
            let mut numbers = txn.open_table(PACK_NUMBERS).map_err(|e| self.err(e))?;
            let mut loaded = txn.open_table(DELTAS).map_err(|e| self.err(e))?;
            let mut listed = txn
                .open_multimap_table(PACK_DELTAS)
                .map_err(|e| self.err(e))?;
            let mut marks = txn.open_multimap_table(MARKS).map_err(|e| self.err(e))?;
            let mut copies = txn
                .open_multimap_table(BLOB_COPIES)
                .map_err(|e| self.err(e))?;
            let mut next = packs
                .last()
                .map_err(|e| self.err(e))?
                .map_or(0, |(k, _)| k.value() + 1);
            // The packs' numbers and marks, and their blobs as (pack, blob)
            // positions in `batch`, inserted below in the order of their
            // ids: positions rather than copies of the rows, which at the
            // moment of a large backup's peak memory took 1 MiB (docs/PERFORMANCE.md).
            let mut batch: Vec<(&PackIndex, u32, bool)> = Vec::new();
            for (delta_id, delta) in deltas {
                for pack in &delta.obsolete {
                    marks.insert(pack.0, delta_id.0).map_err(|e| self.err(e))?;
                }
                for pack in &delta.packs {
                    listed
                        .insert(pack.id.0, delta_id.0)
                        .map_err(|e| self.err(e))?;
                    let marked = !marks.get(pack.id.0).map_err(|e| self.err(e))?.is_empty();
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
                    batch.push((pack, number, marked));
                }
                loaded
                    .insert(delta_id.0, delta.packs.len() as u64)
                    .map_err(|e| self.err(e))?;
            }
            let mut order: Vec<(u32, u32)> = batch
                .iter()
                .enumerate()
                .flat_map(|(p, (pack, _, _))| {
                    (0..pack.blobs.len()).map(move |b| (p as u32, b as u32))
                })
                .collect();
            let blob = |&(p, b): &(u32, u32)| &batch[p as usize].0.blobs[b as usize];
            // Ids are random: in arrival order, each insert lands in another
            // leaf of the B-tree, and a batch dirties more leaves than redb's
            // cache holds, so leaves were written out and read back for the
            // next row (1.45 page writes and reads a blob at 300,000 files).
            // In id order each leaf is written once per batch. The sort is
            // stable: of two rows of one id, the later delta's still wins.
            order.sort_by_key(|position| blob(position).id);
            for position in &order {
                let (_, number, marked) = batch[position.0 as usize];
                let entry = blob(position);
                let location = encode_location(number, entry);
                if entry.kind != BlobKind::Data {
                    copies
                        .insert(entry.id.0, location)
                        .map_err(|e| self.err(e))?;
                }
                if marked && self.find(&blobs, &entry.id.0)?.is_some() {
                    continue;
                }
                blobs
                    .insert(entry.id.0, location)
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Where blob `id` is stored, if the cache knows it.
    pub fn lookup(&self, id: &BlobId) -> Result<Option<Location>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let Some(raw) = self.find(&blobs, &id.0)? else {
            return Ok(None);
        };
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

    /// Every location of blob `id` that the index deltas name, when it is
    /// not file data (trees and chunk lists are stored twice);
    /// empty for data chunks. [`IndexCache::lookup`] gives the one to read
    /// first.
    pub fn copies(&self, id: &BlobId) -> Result<Vec<Location>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in self.copy_rows(id)? {
            let Some(pack) = packs.get(row.pack).map_err(|e| self.err(e))? else {
                continue;
            };
            out.push(Location {
                pack: PackId(pack.value().0),
                kind: row.kind,
                offset: row.offset,
                length: row.length,
                raw_length: row.raw_length,
            });
        }
        Ok(out)
    }

    /// [`IndexCache::copies`] as rows of the blob table (pack numbers).
    pub fn copy_rows(&self, id: &BlobId) -> Result<Vec<BlobRow>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let copies = txn
            .open_multimap_table(BLOB_COPIES)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for value in copies.get(id.0).map_err(|e| self.err(e))? {
            let raw = value.map_err(|e| self.err(e))?.value();
            out.push(decode_row(*id, &raw).ok_or_else(|| self.err("unknown blob kind"))?);
        }
        Ok(out)
    }

    /// Whether a new snapshot may reuse blob `id` as stored: the cache knows
    /// it in a pack that no prune has marked obsolete. A blob known only in
    /// a marked pack is still readable ([`IndexCache::lookup`]) but must be
    /// stored again, because prune is about to delete that pack
    /// (`docs/PRUNE.md`).
    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        // Most asked about are new blobs: when the filter rules the table
        // out, only the run can hold the blob, and a miss needs no
        // transaction.
        let in_run = if self.recent.may_hold(&id.0) {
            None
        } else {
            match self.run_row(&id.0)? {
                Some(raw) => Some(raw),
                None => return Ok(false),
            }
        };
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let raw = match in_run {
            Some(raw) => raw,
            None => {
                let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
                match self.find(&blobs, &id.0)? {
                    Some(raw) => raw,
                    None => return Ok(false),
                }
            }
        };
        let marks = txn.open_multimap_table(MARKS).map_err(|e| self.err(e))?;
        if marks.iter().map_err(|e| self.err(e))?.next().is_none() {
            return Ok(true);
        }
        let number = u32::from_le_bytes(raw[0..4].try_into().expect("4 bytes"));
        let packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let Some(pack) = packs.get(number).map_err(|e| self.err(e))? else {
            return Ok(false);
        };
        let (pack, _) = pack.value();
        Ok(marks.get(pack).map_err(|e| self.err(e))?.is_empty())
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
            // In key order, so each leaf is written once (see `add_deltas`).
            let mut sorted: Vec<_> = memos.iter().collect();
            sorted.sort_by_key(|(key, _)| *key);
            for (key, memo) in sorted {
                files
                    .insert(key, crate::format::to_msgpack(memo).as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The cached bytes of snapshot file `id`.
    pub fn snapshot_file(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(SNAPSHOT_FILES) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(table
            .get(id)
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Caches the bytes of snapshot file `id` (immutable, named by its hash).
    pub fn put_snapshot_file(&self, id: &[u8; 32], bytes: &[u8]) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        // A cache entry need not survive a crash: skip the fsync, the next
        // durable commit (or the next listing) takes care of it.
        txn.set_durability(redb::Durability::None);
        {
            let mut table = txn.open_table(SNAPSHOT_FILES).map_err(|e| self.err(e))?;
            table.insert(id, bytes).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Rewrites the cache compactly: merges the rows of `blobs` into a new
    /// run file (see the module docs), then has redb rewrite its own file
    /// (after many transactions, copy-on-write leaves much of it free).
    pub fn compact(&mut self) -> Result<()> {
        self.merge_run()?;
        self.db
            .compact()
            .map(|_| ())
            .map_err(|e| cache_error(&self.path, e))
    }

    /// [`IndexCache::compact`] when it pays, and whether it did: when
    /// `blobs` holds at least [`MERGE_ROWS`] rows and an eighth as many as
    /// the run file (so a run is rewritten after its size grew by an eighth,
    /// not after every backup), or when redb's file is over 4 MiB more than
    /// 200 bytes a row of its two tables that grow with the files backed up
    /// (`blobs`, `files`): copy-on-write left it mostly free. Row counts,
    /// not redb's `stats()`, which reads every page.
    pub fn compact_if_sparse(&mut self) -> Result<bool> {
        use redb::ReadableTableMetadata;
        let (recent, memos) = {
            let txn = self.db.begin_read().map_err(|e| self.err(e))?;
            let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            let files = txn.open_table(FILES).map_err(|e| self.err(e))?;
            (
                blobs.len().map_err(|e| self.err(e))?,
                files.len().map_err(|e| self.err(e))?,
            )
        };
        let bulk = self.run_rows();
        let merge = recent >= MERGE_ROWS && recent.saturating_mul(8) >= bulk;
        let db_len = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let sparse = db_len > (4 << 20) + (recent + memos).saturating_mul(200);
        if merge || sparse {
            self.compact()?;
        }
        Ok(merge || sparse)
    }

    /// Writes the rows of `blobs` and of the run into a run file of the next
    /// generation, then names it and empties `blobs` in one transaction.
    ///
    /// Safe beside readers: the rows are read in the write transaction that
    /// empties the table (no row added meanwhile is lost), and the run lock
    /// is held from its commit until the new run and an empty filter are in
    /// place, so a reader that finds the table empty finds the new run.
    fn merge_run(&self) -> Result<()> {
        use redb::ReadableTableMetadata;
        let generation = self.run_generation()?.map_or(0, |g| g + 1);
        let path = self.run_path(generation);
        let run_err = |e: std::io::Error| cache_error(&path, e);
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let written = {
            let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            let recent = blobs.len().map_err(|e| self.err(e))?;
            if recent == 0 {
                return Ok(());
            }
            let run = self.run.read().expect("run lock");
            let bulk = run.as_ref().map_or(0, BlobRun::count);
            let mut writer = RunWriter::create(&path, recent + bulk).map_err(run_err)?;
            self.merged_rows(&blobs, run.as_ref(), |(id, location)| {
                writer.push(id, location).map_err(run_err)
            })
            .and_then(|()| writer.finish().map_err(run_err))
            .and_then(|new_run| {
                if let Some(dir) = path.parent() {
                    crate::backend::local::sync_dir(dir)?;
                }
                Ok(new_run)
            })
        };
        let named = written.and_then(|new_run| {
            txn.delete_table(BLOBS).map_err(|e| self.err(e))?;
            txn.open_table(BLOBS).map_err(|e| self.err(e))?;
            txn.open_table(META)
                .map_err(|e| self.err(e))?
                .insert("run", generation)
                .map_err(|e| self.err(e))?;
            let mut run = self.run.write().expect("run lock");
            txn.commit().map_err(|e| self.err(e))?;
            self.recent.clear();
            Ok(run.replace(new_run))
        });
        match named {
            Ok(old) => {
                if let Some(old) = old {
                    let _ = std::fs::remove_file(old.path());
                }
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Bytes of the cache on disk: the database and the run file.
    pub fn file_size(&self) -> u64 {
        let run = self
            .run
            .read()
            .expect("run lock")
            .as_ref()
            .and_then(|r| std::fs::metadata(r.path()).ok())
            .map_or(0, |m| m.len());
        std::fs::metadata(&self.path).map_or(0, |m| m.len()) + run
    }

    /// Number of blobs and packs the cache knows.
    pub fn counts(&self) -> Result<(u64, u64)> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let blobs = match self.run.read().expect("run lock").as_ref() {
            None => table.len().map_err(|e| self.err(e))?,
            Some(run) => {
                // Rows of `blobs` the run does not hold; few between merges.
                let mut n = run.count();
                for row in table.iter().map_err(|e| self.err(e))? {
                    let (id, _) = row.map_err(|e| self.err(e))?;
                    if run.get(&id.value()).map_err(|e| self.err(e))?.is_none() {
                        n += 1;
                    }
                }
                n
            }
        };
        let packs = txn
            .open_table(PACKS)
            .map_err(|e| self.err(e))?
            .len()
            .map_err(|e| self.err(e))?;
        Ok((blobs, packs))
    }
}

/// One row of the cache's blob table, as [`IndexCache::visit_blobs`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRow {
    /// The blob.
    pub id: BlobId,
    /// Number of its pack (see [`CachedPack::number`]).
    pub pack: u32,
    /// What it holds.
    pub kind: BlobKind,
    /// Offset of its frame in the pack.
    pub offset: u32,
    /// Length of its frame.
    pub length: u32,
    /// Length of its plaintext.
    pub raw_length: u32,
}

/// A pack the cache knows, with the deltas that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPack {
    /// Its number in this cache (local to the cache, dense from 0).
    pub number: u32,
    /// The pack.
    pub id: PackId,
    /// Its size in bytes, as its delta says.
    pub size: u64,
    /// The index deltas that list it in `packs`.
    pub listed_in: Vec<IndexId>,
    /// The index deltas that mark it obsolete.
    pub marked_by: Vec<IndexId>,
}

/// Reading the whole index, for `prune`: streamed from the B-trees, so
/// memory grows with the number of packs, never with the number of blobs.
impl IndexCache {
    /// Calls `visit` for every blob the cache knows, in id order.
    pub fn visit_blobs(&self, mut visit: impl FnMut(BlobRow) -> Result<()>) -> Result<()> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let blobs = txn.open_table(BLOBS).map_err(|e| self.err(e))?;
        let run = self.run.read().expect("run lock");
        self.merged_rows(&blobs, run.as_ref(), |(id, raw)| {
            visit(decode_row(BlobId(*id), raw).ok_or_else(|| self.err("unknown blob kind"))?)
        })
    }

    /// Every pack the cache knows, by number.
    pub fn packs(&self) -> Result<Vec<CachedPack>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let packs = txn.open_table(PACKS).map_err(|e| self.err(e))?;
        let listed = txn
            .open_multimap_table(PACK_DELTAS)
            .map_err(|e| self.err(e))?;
        let marks = txn.open_multimap_table(MARKS).map_err(|e| self.err(e))?;
        let deltas = |table: &redb::ReadOnlyMultimapTable<[u8; 32], [u8; 32]>, pack: [u8; 32]| {
            table
                .get(pack)
                .map_err(|e| self.err(e))?
                .map(|v| v.map(|v| IndexId(v.value())).map_err(|e| self.err(e)))
                .collect::<Result<Vec<_>>>()
        };
        let mut out = Vec::new();
        for row in packs.iter().map_err(|e| self.err(e))? {
            let (number, value) = row.map_err(|e| self.err(e))?;
            let (id, size) = value.value();
            out.push(CachedPack {
                number: number.value(),
                id: PackId(id),
                size,
                listed_in: deltas(&listed, id)?,
                marked_by: deltas(&marks, id)?,
            });
        }
        Ok(out)
    }

    /// Every obsolete mark: the pack and the delta that marks it (also for
    /// packs the cache holds no entries of).
    pub fn marks(&self) -> Result<Vec<(PackId, IndexId)>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let marks = txn.open_multimap_table(MARKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in marks.iter().map_err(|e| self.err(e))? {
            let (pack, deltas) = row.map_err(|e| self.err(e))?;
            for delta in deltas {
                let delta = delta.map_err(|e| self.err(e))?;
                out.push((PackId(pack.value()), IndexId(delta.value())));
            }
        }
        Ok(out)
    }
}

/// A row of `blobs` or `blob_copies`; `None` for an unknown kind.
fn decode_row(id: BlobId, raw: &[u8; 17]) -> Option<BlobRow> {
    let word = |i: usize| u32::from_le_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
    Some(BlobRow {
        id,
        pack: word(0),
        kind: BlobKind::from_u8(raw[16])?,
        offset: word(4),
        length: word(8),
        raw_length: word(12),
    })
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
    fn a_batch_in_id_order_keeps_the_later_deltas_row() {
        let blob = |n: u32, offset: u32| BlobEntry {
            id: BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes()),
            kind: BlobKind::Data,
            offset,
            length: 10,
            raw_length: 10,
        };
        let delta = |pack: u8, blobs: Vec<BlobEntry>| IndexDelta {
            packs: vec![PackIndex {
                id: PackId([pack; 32]),
                size: 1 << 20,
                blobs,
            }],
            obsolete: vec![],
        };
        // Two deltas in one call, both holding blobs 0..100 (ids in no
        // order), the second at other offsets, and 1000 more blobs.
        let first = delta(1, (0..1100).map(|n| blob(n, 9 + n)).collect());
        let second = delta(2, (0..100).map(|n| blob(n, 5000 + n)).collect());
        // A third that marks its own pack obsolete: its rows must not
        // replace the locations the batch gave before (prune's repack).
        let mut third = delta(3, (0..100).map(|n| blob(n, 9000 + n)).collect());
        third.obsolete.push(PackId([3; 32]));
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::open(&dir.path().join("index.redb"), &|| {}).unwrap();
        cache
            .add_deltas(&[
                (IndexId([1; 32]), first),
                (IndexId([2; 32]), second),
                (IndexId([3; 32]), third),
            ])
            .unwrap();
        for n in 0..1100 {
            let found = cache.lookup(&blob(n, 0).id).unwrap().unwrap();
            let expected = if n < 100 {
                (PackId([2; 32]), 5000 + n)
            } else {
                (PackId([1; 32]), 9 + n)
            };
            assert_eq!((found.pack, found.offset), expected, "blob {n}");
        }
    }

    #[test]
    fn marked_packs_stay_readable_but_are_not_reused() {
        let blob = |n: u8| BlobEntry {
            id: BlobId([n; 32]),
            kind: BlobKind::Data,
            offset: 9,
            length: 10,
            raw_length: 10,
        };
        let pack = |n: u8, blobs: Vec<BlobEntry>| PackIndex {
            id: PackId([n; 32]),
            size: 100,
            blobs,
        };
        // Pack A holds blobs 1 and 2; pack B holds 1 and 3; delta 3 marks B.
        let d1 = (
            IndexId([1; 32]),
            IndexDelta {
                packs: vec![pack(0xa, vec![blob(1), blob(2)])],
                obsolete: vec![],
            },
        );
        let d2 = (
            IndexId([2; 32]),
            IndexDelta {
                packs: vec![pack(0xb, vec![blob(1), blob(3)])],
                obsolete: vec![],
            },
        );
        let d3 = (
            IndexId([3; 32]),
            IndexDelta {
                packs: vec![],
                obsolete: vec![PackId([0xb; 32])],
            },
        );
        let dir = tempfile::tempdir().unwrap();
        // Whatever order the deltas load in, a blob stored in an unmarked
        // pack is reused from there, and one stored only in the marked pack
        // stays readable but is not reused; the same when the rows already
        // loaded were merged into the run file between deltas.
        let orders = [
            [&d1, &d2, &d3],
            [&d3, &d2, &d1],
            [&d3, &d1, &d2],
            [&d1, &d3, &d2],
        ];
        for (i, order, merge) in orders
            .iter()
            .enumerate()
            .flat_map(|(i, order)| [(i, order, false), (i, order, true)])
        {
            let path = dir.path().join(format!("{i}-{merge}.redb"));
            let mut cache = IndexCache::open(&path, &|| {}).unwrap();
            for delta in order {
                cache.add_deltas(std::slice::from_ref(*delta)).unwrap();
                if merge {
                    cache.compact().unwrap();
                }
            }
            assert_eq!(cache.counts().unwrap(), (3, 2), "order {i}");
            assert!(cache.contains(&BlobId([2; 32])).unwrap());
            assert!(!cache.contains(&BlobId([3; 32])).unwrap(), "order {i}");
            let three = cache.lookup(&BlobId([3; 32])).unwrap().unwrap();
            assert_eq!(three.pack, PackId([0xb; 32]));
            if i > 0 {
                // With the mark known first, blob 1 points at pack A.
                assert!(cache.contains(&BlobId([1; 32])).unwrap(), "order {i}");
            }
            let packs = cache.packs().unwrap();
            let b = packs.iter().find(|p| p.id == PackId([0xb; 32])).unwrap();
            assert_eq!(b.listed_in, [IndexId([2; 32])]);
            assert_eq!(b.marked_by, [IndexId([3; 32])]);
            assert_eq!(
                cache.marks().unwrap(),
                [(PackId([0xb; 32]), IndexId([3; 32]))]
            );
            let mut seen = Vec::new();
            cache
                .visit_blobs(|row| {
                    seen.push(row.id);
                    Ok(())
                })
                .unwrap();
            assert_eq!(seen, [BlobId([1; 32]), BlobId([2; 32]), BlobId([3; 32])]);
        }
    }

    #[test]
    fn every_copy_of_a_tree_is_kept_but_not_of_data() {
        let entry = |n: u8, kind| BlobEntry {
            id: BlobId([n; 32]),
            kind,
            offset: 9 + u32::from(n),
            length: 10,
            raw_length: 10,
        };
        let pack = |n: u8, blobs| PackIndex {
            id: PackId([n; 32]),
            size: 100,
            blobs,
        };
        let delta = IndexDelta {
            packs: vec![
                pack(
                    0xa,
                    vec![entry(1, BlobKind::Tree), entry(2, BlobKind::Data)],
                ),
                pack(
                    0xb,
                    vec![entry(1, BlobKind::Tree), entry(2, BlobKind::Data)],
                ),
            ],
            obsolete: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let cache = IndexCache::open(&dir.path().join("index.redb"), &|| {}).unwrap();
        cache.add_deltas(&[(IndexId([1; 32]), delta)]).unwrap();
        let mut packs: Vec<PackId> = cache
            .copies(&BlobId([1; 32]))
            .unwrap()
            .into_iter()
            .map(|l| l.pack)
            .collect();
        packs.sort();
        assert_eq!(packs, [PackId([0xa; 32]), PackId([0xb; 32])]);
        assert!(cache.copies(&BlobId([2; 32])).unwrap().is_empty());
        assert_eq!(cache.copy_rows(&BlobId([1; 32])).unwrap().len(), 2);
        cache.clear().unwrap();
        assert!(cache.copies(&BlobId([1; 32])).unwrap().is_empty());
    }

    /// Rows merged into the run file and rows added since are one table:
    /// a newer row wins, the run survives a reopen, a run file the database
    /// does not name is removed, and a damaged one makes a fresh cache.
    #[test]
    fn the_run_file_and_redb_read_as_one_table() {
        let blob = |n: u8, offset| BlobEntry {
            id: BlobId([n; 32]),
            kind: BlobKind::Data,
            offset,
            length: 10,
            raw_length: 10,
        };
        let delta = |blobs| IndexDelta {
            packs: vec![PackIndex {
                id: PackId([7; 32]),
                size: 100,
                blobs,
            }],
            obsolete: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        {
            let mut cache = IndexCache::open(&path, &|| {}).unwrap();
            cache
                .add_deltas(&[(IndexId([1; 32]), delta(vec![blob(1, 1), blob(3, 1)]))])
                .unwrap();
            cache.compact().unwrap();
            assert!(dir.path().join("index.0.blobs").is_file());
            cache
                .add_deltas(&[(IndexId([2; 32]), delta(vec![blob(2, 2), blob(3, 2)]))])
                .unwrap();
            assert_eq!(cache.counts().unwrap(), (3, 1));
        }
        std::fs::write(dir.path().join("index.7.blobs"), b"left by a crash").unwrap();
        let mut cache = IndexCache::open(&path, &|| {}).unwrap();
        assert!(!dir.path().join("index.7.blobs").exists());
        let offsets = |cache: &IndexCache| {
            let mut seen = Vec::new();
            cache
                .visit_blobs(|row| {
                    seen.push((row.id.0[0], row.offset));
                    Ok(())
                })
                .unwrap();
            seen
        };
        assert_eq!(offsets(&cache), [(1, 1), (2, 2), (3, 2)]);
        assert_eq!(cache.lookup(&BlobId([3; 32])).unwrap().unwrap().offset, 2);
        cache.compact().unwrap();
        assert!(!dir.path().join("index.0.blobs").exists());
        assert!(dir.path().join("index.1.blobs").is_file());
        assert_eq!(offsets(&cache), [(1, 1), (2, 2), (3, 2)]);
        assert_eq!(cache.counts().unwrap(), (3, 1));
        drop(cache);
        std::fs::write(dir.path().join("index.1.blobs"), b"damaged").unwrap();
        let cache = IndexCache::open(&path, &|| {}).unwrap();
        assert_eq!(cache.counts().unwrap(), (0, 0));
        assert!(cache.loaded_deltas().unwrap().is_empty());
        assert!(!dir.path().join("index.1.blobs").exists());
    }

    #[test]
    fn adding_merges_into_the_run_while_readers_find_every_row() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let id = |n: u32| BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes());
        let delta = |round: u32| IndexDelta {
            packs: vec![PackIndex {
                id: PackId(*blake3::hash(&round.to_be_bytes()).as_bytes()),
                size: 1 << 20,
                blobs: (round * 50..round * 50 + 50)
                    .map(|n| BlobEntry {
                        id: id(n),
                        kind: BlobKind::Data,
                        offset: n,
                        length: 10,
                        raw_length: 10,
                    })
                    .collect(),
            }],
            obsolete: vec![],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let mut cache = IndexCache::open(&path, &|| {}).unwrap();
        // A merge before 120 ids would wait (every other round), and a
        // quarter of the run.
        cache.merge_ids = 120;
        let rounds = 40u32;
        let added = AtomicU32::new(0);
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                let mut asked = 0u64;
                loop {
                    let done = added.load(Ordering::Acquire);
                    for n in 0..done * 50 {
                        let found = cache.lookup(&id(n)).unwrap();
                        assert_eq!(
                            found.map(|l| l.offset),
                            Some(n),
                            "blob {n} of {done} rounds"
                        );
                        assert!(cache.contains(&id(n)).unwrap(), "blob {n}");
                        asked += 1;
                    }
                    if done == rounds {
                        return asked;
                    }
                }
            });
            for round in 0..rounds {
                cache
                    .add_deltas(&[(IndexId([round as u8; 32]), delta(round))])
                    .unwrap();
                added.store(round + 1, Ordering::Release);
            }
            assert!(reader.join().unwrap() > 0);
        });
        // Merged again and again, the table never far past its bound.
        let generation = cache.run_generation().unwrap().unwrap();
        assert!(generation >= 6, "{generation} merges");
        let bulk = cache.run.read().unwrap().as_ref().unwrap().count();
        assert!(
            cache.recent.ids() < 120.max(bulk as usize / 4),
            "table of {}",
            cache.recent.ids()
        );
        assert_eq!(cache.counts().unwrap(), (2000, 40));
        assert!(!cache.contains(&id(2000)).unwrap());
        drop(cache);
        let cache = IndexCache::open(&path, &|| {}).unwrap();
        assert!((0..2000).all(|n| cache.lookup(&id(n)).unwrap().map(|l| l.offset) == Some(n)));
        let runs = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".blobs")
            })
            .count();
        assert_eq!(runs, 1, "old runs are removed");
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

#[cfg(test)]
mod size_tests {
    use super::*;
    use crate::format::index::PackIndex;

    /// Bulk loads leave free pages behind; compaction moves the rows into
    /// the run file and gives redb's pages back (at 200,000 blobs in redb
    /// alone: 339 bytes per blob before, 141 after).
    #[test]
    fn compaction_shrinks_a_bulk_loaded_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.redb");
        let mut cache = IndexCache::open(&path, &|| {}).unwrap();
        let mut n = 0u64;
        for d in 0..10u64 {
            let blobs = (0..4000u64)
                .map(|i| {
                    n += 1;
                    let id = *blake3::hash(&(d * 1_000_000 + i).to_le_bytes()).as_bytes();
                    BlobEntry {
                        id: BlobId(id),
                        kind: BlobKind::Data,
                        offset: 9,
                        length: 100,
                        raw_length: 300,
                    }
                })
                .collect();
            let delta = IndexDelta {
                packs: vec![PackIndex {
                    id: PackId([d as u8; 32]),
                    size: 1,
                    blobs,
                }],
                obsolete: vec![],
            };
            cache
                .add_deltas(&[(IndexId([d as u8; 32]), delta)])
                .unwrap();
        }
        let before = cache.file_size();
        cache.compact().unwrap();
        let after = cache.file_size();
        assert!(after < before, "{after} >= {before}");
        assert!(
            after / n < 100,
            "{} bytes per blob after compaction",
            after / n
        );
        assert!(
            cache
                .lookup(&BlobId(*blake3::hash(&7u64.to_le_bytes()).as_bytes()))
                .unwrap()
                .is_some()
        );
    }
}
