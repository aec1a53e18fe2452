//! The repository facade: init and open, the index cache, reading and
//! writing objects. New blobs go into packs through
//! [`crate::pack::BlobSaver`] (`Repository::saver`).
//!
//! Write ordering (never broken): packs, then the index delta naming them,
//! then the snapshot referencing them. A crash at any point leaves at most
//! unreferenced packs behind, never a snapshot pointing at missing data.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, FileKind};
use crate::codec::{BlobCodec, ChunkerParams, Dictionary, FileClass, compress};
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{Config, Encryption, Feature};
use crate::format::drill::{self, DrillRecord};
use crate::format::index::{self, IndexDelta};
use crate::format::pack::BlobKind;
use crate::format::parity::ParityLevel;
use crate::format::snapshot::{self, Snapshot};
use crate::format::tree::{ChunkList, MAX_CONTENT_DEPTH, Node, Tree, check_tree_size};
use crate::format::{envelope, from_msgpack, open_envelope, to_msgpack_exact};
use crate::id::{BlobId, IndexId, PackId, RepoId, SnapshotId};
use crate::index::{IndexCache, Location};
use crate::keys::{Access, Credentials, NewLock, RepoKeys};
use crate::pack::BlobSaver;
use crate::parity::{Group, GroupsByMember};
use crate::progress::Progress;
use crate::sync::lock;

/// Settings chosen at `snap init`.
pub struct InitOptions {
    /// zstd level (1-22).
    pub compression: i32,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Fixed chunk size for SQLite images.
    pub sqlite_chunk: u32,
    /// Encrypt, with the first key file sealed to this passphrase or these recipients.
    pub encryption: Option<NewLock>,
    /// With `encryption`: use these keys instead of new ones, so that the new
    /// repository chunks and names blobs exactly as the one they come from
    /// (`snap init --copy-chunker-params-from`). They must be full keys.
    pub shared_keys: Option<RepoKeys>,
    /// Reed-Solomon parity for every pack (`snap init --parity 10%`).
    pub parity: Option<ParityLevel>,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            compression: 3,
            chunker: ChunkerParams::FILES,
            pack_size: 16 << 20,
            sqlite_chunk: crate::format::config::SQLITE_CHUNK,
            encryption: None,
            shared_keys: None,
            parity: None,
        }
    }
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    codec: BlobCodec,
    cache: IndexCache,
    /// The private folder of a reader's cache (see [`Repository::open_reader`]),
    /// removed after `cache` is dropped.
    _reader_cache: Option<tempfile::TempDir>,
    keys: Option<RepoKeys>,
    key_id: Option<String>,
    /// Dictionaries loaded for decoding, by blob id (a few per repository).
    dictionaries: Mutex<HashMap<BlobId, Dictionary>>,
    /// The known features on in the config, including those this process
    /// turned on after opening (`config` keeps the config as opened).
    features: Mutex<Vec<Feature>>,
    /// Parity for new packs (the config's, or turned on since opening).
    parity_level: Mutex<Option<ParityLevel>>,
    /// Parity groups by member, read when a pack first needs rebuilding.
    parity_groups: Mutex<Option<GroupsByMember>>,
    /// Packs rebuilt from parity by this process, the last few kept.
    rebuilt: Mutex<Vec<(PackId, Arc<Vec<u8>>)>>,
    /// Every pack rebuilt from parity by this process.
    rebuilt_ids: Mutex<Vec<PackId>>,
    /// Packs whose group could not rebuild them, with why: tried once per
    /// process, not once per blob.
    unrebuildable: Mutex<HashMap<PackId, String>>,
    /// Held while a pack is rebuilt.
    rebuilding: Mutex<()>,
    /// Reads of a tree or chunk list served by its second copy.
    copy_reads: SecondCopies,
}

/// Rebuilt packs kept in memory, so reading many blobs of one lost pack
/// rebuilds it once.
const REBUILT_KEPT: usize = 4;

/// What reads served by a second copy of a blob found (see
/// [`Repository::second_copy_reads`]).
#[derive(Default)]
struct SecondCopies {
    /// Blobs read from another pack than the one the index names first.
    count: AtomicU64,
    /// The packs that failed, each warned about once.
    failed: Mutex<HashSet<PackId>>,
    /// Where warnings go (the command line prints them).
    warn: Mutex<Option<WarningSink>>,
}

/// Receives a warning of the library as one line of text.
pub type WarningSink = Box<dyn Fn(&str) + Send + Sync>;

/// Dictionaries kept loaded at most; more are dropped and reloaded.
const LOADED_DICTIONARIES: usize = 64;

/// Prefix of a reader's private cache folder, followed by its process id
/// (so that leftovers of a killed reader can be told from live ones).
const READER_CACHE_PREFIX: &str = "reader-";

/// How an opened repository uses the shared index cache, which one process
/// holds at a time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CacheUse {
    /// Wait for the shared cache (commands that write, and check).
    Shared,
    /// Take the shared cache if it is free, else build a private one at
    /// once (commands that only read).
    SharedOrPrivate,
    /// Always a private cache: a reader that stays open for hours (a
    /// mount) must never make a backup wait for the shared one.
    Private,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source works");
    buf
}

impl Repository {
    /// Creates a new repository on `backend` and opens it.
    pub fn init(
        backend: Box<dyn Backend>,
        options: &InitOptions,
        progress: &dyn Progress,
    ) -> Result<Self> {
        if backend.exists()? {
            return Err(Error::usage(format!(
                "{} is already a snap repository",
                backend.location()
            )));
        }
        backend.ensure_empty()?;
        if !options.chunker.is_valid() {
            return Err(Error::usage("chunker parameters out of range"));
        }
        if !(1..=22).contains(&options.compression) {
            return Err(Error::usage("compression level must be between 1 and 22"));
        }
        if !(1 << 20..=1 << 30).contains(&options.pack_size) {
            return Err(Error::usage("pack size must be between 1 MiB and 1 GiB"));
        }
        if !(4096..=1 << 24).contains(&options.sqlite_chunk) {
            return Err(Error::usage(
                "SQLite chunk size must be between 4 KiB and 16 MiB",
            ));
        }
        if options
            .shared_keys
            .as_ref()
            .is_some_and(|k| k.access() != Access::Full)
        {
            return Err(Error::new(
                ErrorKind::Key,
                "a write-only key cannot be shared with a new repository",
            ));
        }
        let keys = options.encryption.as_ref().map(|_| {
            options
                .shared_keys
                .clone()
                .unwrap_or_else(RepoKeys::generate)
        });
        let config = Config {
            id: RepoId(random_bytes()),
            // The real seed of an encrypted repository comes from its key.
            chunker: ChunkerParams {
                seed: 0,
                ..options.chunker
            },
            compression: options.compression,
            pack_size: options.pack_size,
            sqlite_chunk: options.sqlite_chunk,
            encryption: if keys.is_some() {
                Encryption::Age
            } else {
                Encryption::None
            },
            // Every tree and chunk list is stored twice from the first one.
            features: std::iter::once(Feature::MetadataTwice.entry())
                .chain(options.parity.map(|_| Feature::Parity.entry()))
                .collect(),
            parity: options.parity,
        };
        backend.create()?;
        let mut key_id = None;
        if let (Some(keys), Some(lock)) = (&keys, &options.encryption) {
            key_id = Some(crate::keys::store(
                backend.as_ref(),
                &crate::keys::seal(keys, lock)?,
            )?);
        }
        // The config comes last: a location is a repository once it is complete.
        backend.write(FileKind::Config, "config", &config.to_bytes())?;
        Self::assemble(backend, config, keys, key_id, CacheUse::Shared, progress)
    }

    /// Opens an unencrypted repository (or fails with a key error).
    pub fn open(backend: Box<dyn Backend>, progress: &dyn Progress) -> Result<Self> {
        Self::open_with(backend, &Credentials::default(), progress)
    }

    /// Opens the repository on `backend`, unlocking it with `credentials` when
    /// it is encrypted, and brings its index cache up to date.
    pub fn open_with(
        backend: Box<dyn Backend>,
        credentials: &Credentials,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::open_as(backend, credentials, CacheUse::Shared, progress)
    }

    /// Opens the repository for a command that only reads (`snapshots`,
    /// `ls`, `restore`...): it never waits for another process. When another
    /// snap process holds the shared index cache (a backup, a check), the
    /// reader builds a private cache from the index deltas instead, in a
    /// temporary folder beside the shared one that goes when the repository
    /// is dropped.
    pub fn open_reader(
        backend: Box<dyn Backend>,
        credentials: &Credentials,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::open_as(backend, credentials, CacheUse::SharedOrPrivate, progress)
    }

    /// Opens the repository for a reader that stays open (`snap mount`):
    /// like [`Repository::open_reader`], but always with a private cache,
    /// so that the backups it is meant to show never wait behind it.
    pub fn open_long_reader(
        backend: Box<dyn Backend>,
        credentials: &Credentials,
        progress: &dyn Progress,
    ) -> Result<Self> {
        Self::open_as(backend, credentials, CacheUse::Private, progress)
    }

    fn open_as(
        backend: Box<dyn Backend>,
        credentials: &Credentials,
        cache_use: CacheUse,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let bytes = match backend.read(FileKind::Config, "config") {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(
                    ErrorKind::NotARepository,
                    format!(
                        "{} is not a snap repository (no config file); create one with `snap init`",
                        backend.location()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        let config = Config::from_bytes(&bytes)?;
        let (key_id, keys) = match config.encryption {
            Encryption::None => (None, None),
            Encryption::Age => {
                let (id, keys) = crate::keys::unlock(backend.as_ref(), &config.id, credentials)?;
                (id, Some(keys))
            }
        };
        Self::assemble(backend, config, keys, key_id, cache_use, progress)
    }

    fn assemble(
        backend: Box<dyn Backend>,
        config: Config,
        keys: Option<RepoKeys>,
        key_id: Option<String>,
        cache_use: CacheUse,
        progress: &dyn Progress,
    ) -> Result<Self> {
        let codec = match &keys {
            None => BlobCodec::plain(config.compression),
            Some(keys) => BlobCodec::new(
                keys.hasher(),
                config.compression,
                keys.data_crypto(),
                keys.index_crypto(),
            ),
        };
        if let Some(old) = backend.legacy_cache_dir() {
            remove_legacy_cache(&old);
        }
        let cache_dir = backend.cache_dir().unwrap_or_else(|| {
            dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("snap")
                .join(config.id.to_hex())
        });
        crate::backend::local::create_private_dir(backend.temp_dir())?;
        let mut cache_path = cache_dir.join("index.redb");
        let mut reader_cache = None;
        let cache = match cache_use {
            CacheUse::Shared => IndexCache::open(&cache_path, &|| {
                progress.message(&format!(
                    "waiting for another snap process that is using {}",
                    cache_path.display()
                ));
            })?,
            CacheUse::SharedOrPrivate | CacheUse::Private => {
                let shared = match cache_use {
                    CacheUse::Private => None,
                    _ => IndexCache::open_if_free(&cache_path)?,
                };
                if let Some(cache) = shared {
                    cache
                } else {
                    crate::backend::local::create_private_dir(&cache_dir)?;
                    crate::lock::clean_dead_temp(&cache_dir, &[READER_CACHE_PREFIX]);
                    let dir = tempfile::Builder::new()
                        .prefix(&format!("{READER_CACHE_PREFIX}{}-", std::process::id()))
                        .tempdir_in(&cache_dir)
                        .map_err(|e| {
                            Error::io("cannot create a private cache folder in", &cache_dir, e)
                        })?;
                    cache_path = dir.path().join("index.redb");
                    let cache = IndexCache::open_if_free(&cache_path)?.ok_or_else(|| {
                        Error::new(
                            ErrorKind::Io,
                            format!("the new cache {} is in use", cache_path.display()),
                        )
                    })?;
                    reader_cache = Some(dir);
                    cache
                }
            }
        };
        let features = Mutex::new(config.known_features());
        let parity_level = Mutex::new(config.parity);
        let mut repo = Self {
            backend: Arc::from(backend),
            config,
            codec,
            cache,
            _reader_cache: reader_cache,
            keys,
            key_id,
            dictionaries: Mutex::new(HashMap::new()),
            features,
            parity_level,
            parity_groups: Mutex::new(None),
            rebuilt: Mutex::new(Vec::new()),
            rebuilt_ids: Mutex::new(Vec::new()),
            unrebuildable: Mutex::new(HashMap::new()),
            rebuilding: Mutex::new(()),
            copy_reads: SecondCopies::default(),
        };
        repo.sync_cache(progress)?;
        repo.compact_cache_if_sparse()?;
        Ok(repo)
    }

    /// Rewrites the index cache compactly when it is mostly free space:
    /// redb's copy-on-write leaves free pages behind bulk loads and behind
    /// a backup's many small index transactions (a cache of tens of bytes
    /// per blob should not take hundreds). Returns whether it did.
    pub fn compact_cache_if_sparse(&mut self) -> Result<bool> {
        self.cache.compact_if_sparse()
    }

    /// The unlocked keys of an encrypted repository.
    pub fn keys(&self) -> Option<&RepoKeys> {
        self.keys.as_ref()
    }

    /// The key file that unlocked the repository (`None` when unencrypted or
    /// opened with an exported key file).
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// Refuses a write-only key: it may add snapshots, never delete or
    /// rewrite anything. Every operation that deletes or rewrites calls this
    /// before it touches the repository; `action` says what was refused.
    pub fn require_full_access(&self, action: &str) -> Result<()> {
        self.keys
            .as_ref()
            .map_or(Ok(()), |keys| crate::keys::require_full(keys, action))
    }

    /// Whether this key may read what is stored (false for a write-only key).
    pub fn can_read(&self) -> bool {
        self.keys
            .as_ref()
            .is_none_or(|k| k.access() == Access::Full)
    }

    /// Size at which the next pack is sealed. Encrypted repositories vary it
    /// (0.75x to 1.25x the configured size) so pack sizes do not fingerprint
    /// the files inside them.
    pub(crate) fn pack_target(&self) -> u64 {
        let size = u64::from(self.config.pack_size);
        if self.keys.is_none() {
            return size;
        }
        let jitter = u64::from(u16::from_le_bytes(random_bytes::<2>()));
        size * 3 / 4 + size / 2 * jitter / u64::from(u16::MAX)
    }

    /// Chunker parameters, with the key's gear seed in an encrypted repository.
    pub fn chunker_params(&self) -> ChunkerParams {
        match &self.keys {
            Some(keys) => ChunkerParams {
                seed: keys.chunker_seed(),
                ..self.config.chunker
            },
            None => self.config.chunker,
        }
    }

    /// The repository config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Turns `feature` on before the first object that needs it is stored,
    /// so builds that cannot read such objects refuse the repository rather
    /// than find it damaged. Cheap when the feature is already on (no I/O).
    ///
    /// The config is read again and rewritten in one atomic write (a rename
    /// on a local disk, one PUT on S3): a crash leaves the old config or the
    /// new one. Features are only ever added and nothing else in the config
    /// changes after `init`, so two processes turning features on at once
    /// can at worst both write the same feature.
    pub fn require_feature(&self, feature: Feature) -> Result<()> {
        let mut on = lock(&self.features);
        if on.contains(&feature) {
            return Ok(());
        }
        let stored = Config::from_bytes(&self.backend.read(FileKind::Config, "config")?)?;
        if stored.id != self.config.id {
            return Err(Error::corrupt(
                "repository config",
                "its id changed while the repository was open",
            ));
        }
        if !stored.has_feature(feature) {
            let updated = stored.with_feature(feature);
            self.backend
                .write(FileKind::Config, "config", &updated.to_bytes())?;
        }
        on.push(feature);
        Ok(())
    }

    /// Whether `feature` is on (in the config, or turned on since opening).
    pub fn has_feature(&self, feature: Feature) -> bool {
        lock(&self.features).contains(&feature)
    }

    /// The storage backend.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The blob codec.
    pub fn codec(&self) -> &BlobCodec {
        &self.codec
    }

    /// The index cache.
    pub fn cache(&self) -> &IndexCache {
        &self.cache
    }

    /// Loads index deltas the cache has not seen; rebuilds it when deltas it
    /// had loaded are gone (a prune elsewhere replaced them).
    pub fn sync_cache(&self, progress: &dyn Progress) -> Result<()> {
        // A prune replaces a delta by writing its successor first, then
        // removing it: a delta gone between listing and reading means the
        // listing is out of date, so list again.
        let mut attempts = 0;
        loop {
            match self.sync_cache_once(progress) {
                Err(e) if e.kind() == ErrorKind::NotFound && attempts < 10 => attempts += 1,
                result => return result,
            }
        }
    }

    fn sync_cache_once(&self, progress: &dyn Progress) -> Result<()> {
        let listed: HashSet<IndexId> = self
            .backend
            .list(FileKind::Index)?
            .into_iter()
            .filter_map(|(name, _)| IndexId::from_hex(&name).ok())
            .collect();
        let mut loaded = self.cache.loaded_deltas()?;
        if loaded.iter().any(|id| !listed.contains(id)) {
            self.cache.clear()?;
            loaded.clear();
        }
        let mut missing: Vec<IndexId> = listed.difference(&loaded).copied().collect();
        missing.sort();
        for batch in missing.chunks(64) {
            let read: Vec<(IndexId, Result<IndexDelta>)> = batch
                .par_iter()
                .map(|id| (*id, self.read_index(id)))
                .collect();
            let mut deltas = Vec::with_capacity(read.len());
            for (id, delta) in read {
                match delta {
                    Ok(delta) => deltas.push((id, delta)),
                    // One damaged delta must not lock the user out of everything
                    // else; `snap check` reports it and `snap repair index` mends it.
                    Err(e) if e.kind() == ErrorKind::Corrupt => progress.warn(&format!("{e}")),
                    Err(e) => return Err(e),
                }
            }
            self.cache.add_deltas(&deltas)?;
        }
        Ok(())
    }

    fn write_object<T: Serialize>(
        &self,
        kind: FileKind,
        magic: &[u8; 8],
        value: &T,
    ) -> Result<[u8; 32]> {
        let body = self
            .codec
            .encode_file(class_of(kind), &to_msgpack_exact(value))?;
        let bytes = envelope(magic, &body);
        let id = *blake3::hash(&bytes).as_bytes();
        self.backend.write(kind, &hex::encode(id), &bytes)?;
        Ok(id)
    }

    fn read_object<T: DeserializeOwned>(
        &self,
        kind: FileKind,
        magic: &[u8; 8],
        id: &[u8; 32],
        max_len: usize,
    ) -> Result<T> {
        let name = hex::encode(id);
        let what = format!("{} {name}", kind.noun());
        // Snapshot files are immutable and read by every listing: keep their
        // bytes (sealed as stored) in the cache.
        let cached = if kind == FileKind::Snapshot {
            self.cache.snapshot_file(id)?
        } else {
            None
        };
        let from_cache = cached.is_some();
        let bytes = match cached {
            Some(bytes) => bytes,
            None => self.backend.read(kind, &name)?,
        };
        if blake3::hash(&bytes).as_bytes() != id {
            return Err(Error::corrupt(&what, "its content does not match its name"));
        }
        if kind == FileKind::Snapshot && !from_cache {
            self.cache.put_snapshot_file(id, &bytes)?;
        }
        let body = open_envelope(magic, &what, &bytes)?;
        let plain = self
            .codec
            .decode_file(class_of(kind), &what, body, max_len)?;
        from_msgpack(&what, &plain)
    }

    /// Reads an index delta.
    pub fn read_index(&self, id: &IndexId) -> Result<IndexDelta> {
        self.read_object(FileKind::Index, index::MAGIC, &id.0, index::MAX_LEN)
    }

    /// Writes an index delta.
    pub fn write_index(&self, delta: &IndexDelta) -> Result<IndexId> {
        self.write_object(FileKind::Index, index::MAGIC, delta)
            .map(IndexId)
    }

    /// Writes a snapshot object (after everything it references).
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        self.write_object(FileKind::Snapshot, snapshot::MAGIC, snapshot)
            .map(SnapshotId)
    }

    /// Reads a snapshot object.
    pub fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.read_object(
            FileKind::Snapshot,
            snapshot::MAGIC,
            &id.0,
            snapshot::MAX_LEN,
        )
    }

    /// Ids of every snapshot.
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list(FileKind::Snapshot)?
            .into_iter()
            .filter_map(|(name, _)| SnapshotId::from_hex(&name).ok())
            .collect())
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let (good, damaged) = self.read_every_snapshot(|id| self.read_snapshot(id), true)?;
        match damaged.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(good),
        }
    }

    /// Reads and verifies a blob's plaintext.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        self.read_blob_at(id, &self.locate(id)?)
    }

    /// Where a blob is stored; a blob the index does not know is damage.
    pub fn locate(&self, id: &BlobId) -> Result<Location> {
        self.cache.lookup(id)?.ok_or_else(|| {
            Error::corrupt(format!("blob {id}"), "it is in no index delta (missing)")
        })
    }

    /// Reads and verifies a blob whose location is already known. A pack
    /// that is missing or damaged is rebuilt from its parity group when the
    /// repository has one; a tree or chunk list that still cannot be read
    /// there (its pack is missing, unreadable, or the frame fails its id
    /// check) is read from its second copy, with a warning; see
    /// [`Repository::second_copy_reads`].
    pub fn read_blob_at(&self, id: &BlobId, location: &Location) -> Result<Vec<u8>> {
        self.read_any_copy(id, location, |at| {
            self.with_frame(at, &|frame| self.decode_blob(id, frame, at.raw_length))
        })
    }

    /// The stored frame of blob `id` at `location`, verified against its
    /// id, and where it was read: rebuilt from parity, or a tree or chunk
    /// list read from its other copy, as by [`Repository::read_blob_at`].
    /// For copying frames as they are (`copy`, prune).
    pub fn read_verified_frame(
        &self,
        id: &BlobId,
        location: &Location,
    ) -> Result<(Location, Vec<u8>)> {
        self.read_any_copy(id, location, |at| {
            let frame = self.with_frame(at, &|frame| {
                self.decode_blob(id, frame, at.raw_length)
                    .map(|_| frame.to_vec())
            })?;
            Ok((*at, frame))
        })
    }

    /// Reads the frame at `location` and hands it to `decode`; when either
    /// fails with damage (a missing pack, bytes that do not verify), the
    /// pack is rebuilt from its parity group and `decode` runs on the frame
    /// from there.
    fn with_frame<T>(&self, location: &Location, decode: &dyn Fn(&[u8]) -> Result<T>) -> Result<T> {
        let first = self.read_frame(location).and_then(|frame| decode(&frame));
        match first {
            Err(e) if e.is_damage() && self.may_have_parity() => {
                let Some(pack) = self.rebuilt_pack(&location.pack)? else {
                    return Err(e);
                };
                let start = location.offset as usize;
                let frame = pack
                    .get(start..start + location.length as usize)
                    .ok_or_else(|| {
                        Error::corrupt(
                            format!("pack {}", location.pack),
                            "the index places a blob past its end",
                        )
                    })?;
                decode(frame)
            }
            result => result,
        }
    }

    /// `read` at `location`, then, for a blob that is not file data and
    /// when that fails, at each other location the index names, until one
    /// succeeds; the first error when none does.
    fn read_any_copy<T>(
        &self,
        id: &BlobId,
        location: &Location,
        read: impl Fn(&Location) -> Result<T>,
    ) -> Result<T> {
        let first = match read(location) {
            Ok(found) => return Ok(found),
            Err(e) if location.kind == BlobKind::Data || e.kind() == ErrorKind::Key => {
                return Err(e);
            }
            Err(e) => e,
        };
        for other in self.cache.copies(id)? {
            if other.pack == location.pack {
                continue;
            }
            if let Ok(found) = read(&other) {
                self.copy_reads.count.fetch_add(1, Ordering::Relaxed);
                if lock(&self.copy_reads.failed).insert(location.pack) {
                    let text = format!(
                        "pack {} failed ({}); its trees and chunk lists are read from their second copies",
                        location.pack,
                        first.message()
                    );
                    if let Some(warn) = &*lock(&self.copy_reads.warn) {
                        warn(&text);
                    }
                }
                return Ok(found);
            }
        }
        Err(first)
    }

    /// How many reads of a tree or chunk list its second copy
    /// served since the repository was opened, and the packs that failed.
    pub fn second_copy_reads(&self) -> (u64, Vec<PackId>) {
        let mut failed: Vec<PackId> = lock(&self.copy_reads.failed).iter().copied().collect();
        failed.sort();
        (self.copy_reads.count.load(Ordering::Relaxed), failed)
    }

    /// Where to send warnings about reads served by a second copy (once per
    /// failed pack); without one they are only counted.
    pub fn set_warnings(&self, sink: WarningSink) {
        *lock(&self.copy_reads.warn) = Some(sink);
    }

    /// The stored frame of a blob, as it is in its pack (not yet verified).
    pub fn read_frame(&self, location: &Location) -> Result<Vec<u8>> {
        self.backend.read_range(
            FileKind::Pack,
            &location.pack.to_hex(),
            u64::from(location.offset),
            location.length,
        )
    }

    /// The verified plaintext of a stored frame, loading the dictionary it
    /// names, if any.
    pub fn decode_blob(&self, id: &BlobId, frame: &[u8], raw_length: u32) -> Result<Vec<u8>> {
        self.codec
            .decode_with(id, frame, raw_length, &mut |d| self.dictionary(d))
    }

    /// The dictionary stored as blob `id`.
    pub fn dictionary(&self, id: &BlobId) -> Result<Dictionary> {
        if let Some(found) = lock(&self.dictionaries).get(id) {
            return Ok(found.clone());
        }
        let location = self.locate(id)?;
        if location.raw_length as usize > compress::MAX_DICTIONARY_LEN {
            return Err(Error::corrupt(
                format!("dictionary {id}"),
                format!("{} bytes, more than a dictionary has", location.raw_length),
            ));
        }
        // A dictionary is itself compressed without one.
        let plain = self.read_any_copy(id, &location, |at| {
            self.with_frame(at, &|frame| self.codec.decode(id, frame, at.raw_length))
        })?;
        let dictionary = Dictionary::new(*id, plain);
        let mut loaded = lock(&self.dictionaries);
        if loaded.len() >= LOADED_DICTIONARIES {
            loaded.clear();
        }
        loaded.insert(*id, dictionary.clone());
        Ok(dictionary)
    }

    /// Reads and validates a tree. A tree the index says inflates more than
    /// trees do ([`check_tree_size`]) is refused before any
    /// of it is read.
    pub fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        let location = self.locate(id)?;
        check_tree_size(id, location.length, location.raw_length)?;
        Tree::from_bytes(id, &self.read_blob_at(id, &location)?)
    }

    /// The data chunks of a file node with their locations, once the node
    /// is known to be sound ([`Node::check_content`]): every chunk indexed,
    /// their lengths adding up to the node's size. Nothing is read but the
    /// chunk lists, so a reader can refuse a file before writing any of it.
    pub fn file_layout(&self, node: &Node) -> Result<Vec<(BlobId, Location)>> {
        let chunks = self.file_chunks(node)?;
        let mut layout = Vec::with_capacity(chunks.len());
        let (mut bytes, mut empty) = (0u64, false);
        for id in chunks {
            let location = self.locate(&id)?;
            bytes = bytes.saturating_add(u64::from(location.raw_length));
            empty |= location.raw_length == 0;
            layout.push((id, location));
        }
        node.check_content(layout.len() as u64, bytes, empty)?;
        Ok(layout)
    }

    /// The data chunk ids of a file node, expanding list blobs.
    pub fn file_chunks(&self, node: &Node) -> Result<Vec<BlobId>> {
        // Every id at every level stands for at least one byte of content, so
        // more ids than bytes means a hostile list: stop before expanding it.
        let too_many = |count: usize| {
            (count as u64 > node.size.max(1)).then(|| {
                Error::corrupt(
                    format!("file {}", node.display_name()),
                    format!("its chunk list is longer than its {} bytes", node.size),
                )
            })
        };
        let mut ids = node.content.clone();
        if let Some(e) = too_many(ids.len()) {
            return Err(e);
        }
        for _ in 0..node.content_depth.min(MAX_CONTENT_DEPTH) {
            let mut next = Vec::new();
            for id in &ids {
                next.extend(ChunkList::from_bytes(id, &self.read_blob(id)?)?.ids);
                if let Some(e) = too_many(next.len()) {
                    return Err(e);
                }
            }
            ids = next;
        }
        Ok(ids)
    }

    /// Removes temporary packs that a killed process left behind (older than
    /// an hour, so a concurrent writer's pack in progress is never touched).
    pub fn clean_temp(&self) {
        let Ok(entries) = std::fs::read_dir(self.backend.temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age.as_secs() > 3600));
            if stale && entry.file_name().to_string_lossy().starts_with("pack-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Starts saving blobs; call [`BlobSaver::flush`] before writing a snapshot.
    pub fn saver(&self) -> BlobSaver<'_> {
        BlobSaver::new(self)
    }

    /// The storage, shared with threads that outlive a borrow (pack
    /// storers, lock refreshers).
    pub(crate) fn shared_backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

/// Removes the index cache that older versions kept inside a local
/// repository (`cache/index.redb`): it is only a cache, rebuilt in the
/// user's cache folder, and a copy of the repository should not carry it.
/// Only that file goes, and the folder when nothing else is in it; failures
/// (a read-only repository) are ignored.
fn remove_legacy_cache(dir: &std::path::Path) {
    let file = dir.join("index.redb");
    if file.is_file() {
        let _ = std::fs::remove_file(&file);
    }
    if dir.is_dir() {
        let _ = std::fs::remove_dir(dir);
    }
}

/// Which key seals a file kind.
fn class_of(kind: FileKind) -> FileClass {
    if kind == FileKind::Index {
        FileClass::Index
    } else {
        FileClass::Data
    }
}

/// The default repository location: the user's data folder.
pub fn default_location() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("snap")
        .join("repo")
}

/// Index deltas as prune writes and reads them: with the time of their
/// obsolete marks. docs/PRUNE.md explains the protocol.
impl Repository {
    /// Reads an index delta with the time of its obsolete marks.
    pub fn read_marked_delta(&self, id: &IndexId) -> Result<index::MarkedDelta> {
        self.read_object(FileKind::Index, index::MAGIC, &id.0, index::MAX_LEN)
    }

    /// Writes an index delta with obsolete marks.
    pub fn write_marked_delta(&self, delta: &index::MarkedDelta) -> Result<IndexId> {
        self.write_object(FileKind::Index, index::MAGIC, delta)
            .map(IndexId)
    }
}

// ---- check and repair ----

/// Readable snapshots (oldest first) and the damaged ones with their errors.
pub type SnapshotsAndDamage = (Vec<(SnapshotId, Snapshot)>, Vec<(SnapshotId, Error)>);

impl Repository {
    /// Every snapshot, oldest first, with the damaged ones apart instead of
    /// failing on the first, so that one damaged snapshot file does not lock
    /// the user out of the others. Other errors (I/O) still fail.
    pub fn snapshots_and_damage(&self) -> Result<SnapshotsAndDamage> {
        self.read_every_snapshot(|id| self.read_snapshot(id), false)
    }

    /// Reads every listed snapshot with `read`, in parallel: the readable
    /// ones oldest first, the damaged (corrupt) ones by id. A snapshot
    /// forgotten since the listing is left out when `skip_forgotten`; any
    /// other error fails.
    pub(crate) fn read_every_snapshot(
        &self,
        read: impl Fn(&SnapshotId) -> Result<Snapshot> + Sync,
        skip_forgotten: bool,
    ) -> Result<SnapshotsAndDamage> {
        let read: Vec<_> = self
            .snapshot_ids()?
            .par_iter()
            .map(|id| (*id, read(id)))
            .collect();
        let mut good = Vec::new();
        let mut damaged = Vec::new();
        for (id, snapshot) in read {
            match snapshot {
                Ok(snapshot) => good.push((id, snapshot)),
                Err(e) if e.kind() == ErrorKind::Corrupt => damaged.push((id, e)),
                Err(e) if skip_forgotten && e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        good.sort_by_key(|(id, s)| (s.timestamp(), *id));
        damaged.sort_by_key(|(id, _)| *id);
        Ok((good, damaged))
    }
}

// ---- drill records ----

/// A drill record file's name and what it says.
pub type NamedDrillRecord = (String, DrillRecord);

/// Readable drill records (oldest first) and the damaged ones by name.
pub type DrillRecordsAndDamage = (Vec<NamedDrillRecord>, Vec<(String, Error)>);

impl Repository {
    /// Writes a drill record, turning the optional `drill-records` feature
    /// on first (FORMAT.md, "Drill records"); returns its file name.
    pub fn write_drill_record(&self, record: &DrillRecord) -> Result<String> {
        self.require_feature(Feature::DrillRecords)?;
        self.write_object(FileKind::Drill, drill::MAGIC, record)
            .map(hex::encode)
    }

    /// Every readable drill record, oldest first, and the names of those
    /// that could not be read (damaged records never hide the others).
    pub fn drill_records(&self) -> Result<DrillRecordsAndDamage> {
        let names: Vec<String> = self
            .backend
            .list(FileKind::Drill)?
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        let read: Vec<_> = names
            .par_iter()
            .map(|name| {
                let record = hex::decode(name)
                    .ok()
                    .and_then(|id| <[u8; 32]>::try_from(id).ok())
                    .ok_or_else(|| {
                        Error::corrupt(format!("drill record {name}"), "its name is not an id")
                    })
                    .and_then(|id| {
                        self.read_object::<DrillRecord>(
                            FileKind::Drill,
                            drill::MAGIC,
                            &id,
                            drill::MAX_LEN,
                        )
                    });
                (name.clone(), record)
            })
            .collect();
        let mut good = Vec::new();
        let mut damaged = Vec::new();
        for (name, record) in read {
            match record {
                Ok(record) => good.push((name, record)),
                // Removed since the listing (a concurrent forget).
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.kind() == ErrorKind::Corrupt => damaged.push((name, e)),
                Err(e) => return Err(e),
            }
        }
        good.sort_by(|(a_name, a), (b_name, b)| {
            (a.timestamp(), a_name).cmp(&(b.timestamp(), b_name))
        });
        Ok((good, damaged))
    }

    /// Removes the drill record file `name` (absent is no error).
    pub fn remove_drill_record(&self, name: &str) -> Result<()> {
        self.backend.remove(FileKind::Drill, name)
    }
}

// ---- parity ----

impl Repository {
    /// Parity for new packs, if the repository has it on.
    pub fn parity_level(&self) -> Option<ParityLevel> {
        *lock(&self.parity_level)
    }

    /// Turns parity on (or changes its level) for packs written from now
    /// on: the config gets the required `parity` feature and the level, in
    /// one atomic write.
    pub fn enable_parity(&self, level: ParityLevel) -> Result<()> {
        self.require_full_access("turn parity on")?;
        let stored = Config::from_bytes(&self.backend.read(FileKind::Config, "config")?)?;
        if stored.id != self.config.id {
            return Err(Error::corrupt(
                "repository config",
                "its id changed while the repository was open",
            ));
        }
        let mut updated = stored.with_feature(Feature::Parity);
        updated.parity = Some(level);
        self.backend
            .write(FileKind::Config, "config", &updated.to_bytes())?;
        let mut on = lock(&self.features);
        if !on.contains(&Feature::Parity) {
            on.push(Feature::Parity);
        }
        *lock(&self.parity_level) = Some(level);
        Ok(())
    }

    /// Whether parity objects may exist: the feature is on (parity may be
    /// off for new packs while older groups remain).
    fn may_have_parity(&self) -> bool {
        self.has_feature(Feature::Parity)
    }

    /// The parity groups, by member pack (read once per process, again
    /// after [`Repository::forget_parity_groups`]).
    pub fn parity_groups(&self) -> Result<GroupsByMember> {
        if let Some(groups) = lock(&self.parity_groups).as_ref() {
            return Ok(Arc::clone(groups));
        }
        let (groups, _damaged) = crate::parity::groups(self.backend.as_ref())?;
        let mut by_member: HashMap<PackId, Vec<Group>> = HashMap::new();
        for group in groups {
            for id in group.member_ids() {
                by_member.entry(id).or_default().push(group.clone());
            }
        }
        let by_member = Arc::new(by_member);
        *lock(&self.parity_groups) = Some(Arc::clone(&by_member));
        Ok(by_member)
    }

    /// Drops the groups read by [`Repository::parity_groups`] (after they
    /// changed).
    pub fn forget_parity_groups(&self) {
        *lock(&self.parity_groups) = None;
    }

    /// Pack `id` rebuilt from a parity group (its bytes verified against
    /// its id), `None` when no group holds it. A group that cannot rebuild
    /// it (too many of its packs lost) is damage naming the lost packs.
    pub fn rebuilt_pack(&self, id: &PackId) -> Result<Option<Arc<Vec<u8>>>> {
        let groups = self.parity_groups()?;
        let Some(candidates) = groups.get(id) else {
            return Ok(None);
        };
        // One rebuild at a time: the many threads of a restore that meet
        // the same lost pack wait for the first to rebuild it (the rebuild
        // uses threads of its own, never the rayon pool the waiting
        // threads belong to).
        let _rebuilding = lock(&self.rebuilding);
        if let Some((_, bytes)) = lock(&self.rebuilt).iter().find(|(p, _)| p == id) {
            return Ok(Some(Arc::clone(bytes)));
        }
        if let Some(why) = lock(&self.unrebuildable).get(id) {
            return Err(Error::new(ErrorKind::Corrupt, why.clone()));
        }
        let mut failure = None;
        for group in candidates {
            match crate::parity::rebuild(self.backend.as_ref(), group, id) {
                Ok(bytes) => {
                    let bytes = Arc::new(bytes);
                    let mut kept = lock(&self.rebuilt);
                    if kept.len() >= REBUILT_KEPT {
                        kept.remove(0);
                    }
                    kept.push((*id, Arc::clone(&bytes)));
                    let mut ids = lock(&self.rebuilt_ids);
                    if !ids.contains(id) {
                        ids.push(*id);
                    }
                    return Ok(Some(bytes));
                }
                Err(e) if e.is_damage() => failure = Some(e),
                Err(e) => return Err(e),
            }
        }
        let failure = failure.expect("at least one group was tried");
        lock(&self.unrebuildable).insert(*id, failure.message().to_string());
        Err(failure)
    }

    /// Packs this process rebuilt from parity, in the order it did.
    pub fn rebuilt_packs(&self) -> Vec<PackId> {
        lock(&self.rebuilt_ids).clone()
    }
}

#[cfg(test)]
mod feature_tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::backend::{PrivateCache, local::LocalBackend};
    use crate::progress::NoProgress;

    fn backend(path: &std::path::Path) -> Box<dyn Backend> {
        Box::new(PrivateCache::new(Box::new(LocalBackend::new(path))).unwrap())
    }

    /// A new repository stores metadata twice (a required feature, so its
    /// config is version 2); the first call for another feature rewrites
    /// the config; later calls, in this process or after reopening, write
    /// nothing.
    #[test]
    fn require_feature_rewrites_the_config_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repo");
        let repo = Repository::init(backend(&path), &InitOptions::default(), &NoProgress).unwrap();
        let config = path.join("config");
        let new = std::fs::read(&config).unwrap();
        assert_eq!(new[8], 2);
        assert!(repo.has_feature(Feature::MetadataTwice));
        assert!(!repo.has_feature(Feature::SqliteDictionary));
        repo.require_feature(Feature::SqliteDictionary).unwrap();
        assert!(repo.has_feature(Feature::SqliteDictionary));
        let bytes = std::fs::read(&config).unwrap();
        assert_ne!(bytes, new);
        assert_eq!(bytes[8], 2);
        let inode = std::fs::metadata(&config).unwrap().ino();
        repo.require_feature(Feature::SqliteDictionary).unwrap();
        drop(repo);
        let repo = Repository::open(backend(&path), &NoProgress).unwrap();
        assert!(repo.has_feature(Feature::SqliteDictionary));
        assert!(repo.config().has_feature(Feature::SqliteDictionary));
        repo.require_feature(Feature::SqliteDictionary).unwrap();
        assert_eq!(std::fs::metadata(&config).unwrap().ino(), inode);
        assert_eq!(std::fs::read(&config).unwrap(), bytes);
    }
}
