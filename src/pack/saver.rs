//! The [`BlobSaver`]: packs new blobs (a backup, a copy, a repair) or
//! rewrites live ones out of packs that go (a prune), always in the order
//! the repository relies on: packs, then the index delta naming them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::backend::FileKind;
use crate::codec::Dictionary;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Feature;
use crate::format::index::{IndexDelta, MarkedDelta, PackIndex};
use crate::format::pack::BlobKind;
use crate::format::parity::Member;
use crate::format::tree::{ChunkList, DIRECT_CONTENT_MAX, ListCut, MAX_CONTENT_DEPTH};
use crate::id::{BlobId, IndexId, PackId};
use crate::pack::{FinishedPack, PackWriter};
use crate::repo::Repository;
use crate::sync::lock;

/// Packs flushed into one index delta at most (by a saver of new blobs).
const PACKS_PER_DELTA: usize = 8;

/// Blobs after which stored packs get their index delta at once, however
/// few packs hold them: the entries waiting for a delta, the claims and the
/// delta's encoding then stay bounded whatever the number of files (a pack
/// of small files holds tens of thousands of blobs). 8,192 rather than
/// 16,384: peak RSS of a backup of 300,000 small files 43-45 -> 40-43 MiB,
/// in the same time (docs/PERFORMANCE.md).
pub const BLOBS_PER_DELTA: usize = 8_192;

/// Blobs in sealed packs that no index delta names yet, from which workers
/// wait for the background indexer before they add to a pack (see
/// [`BlobSaver::wait_for_indexer`]): a delta's worth of blobs per storer,
/// plus one, may wait for their delta while the next pack fills (for a
/// local repository a pack full of small blobs, and the one sealed past
/// that bound; more for object storage, which stores several packs at
/// once). Always more than [`BLOBS_PER_DELTA`], so that once the
/// packs waiting are stored, they are enough for a delta.
fn unindexed_blobs_max(storers: usize) -> usize {
    (storers + 1) * BLOBS_PER_DELTA + 1
}

/// What a saver is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Storing blobs the repository may lack: a blob the index knows is
    /// skipped, and a delta is written every [`PACKS_PER_DELTA`] packs.
    New,
    /// Rewriting blobs out of packs that go (prune): every blob given is
    /// stored although the index knows it, and deltas are written only when
    /// the caller says ([`BlobSaver::index_with_marks`]), so that the marks
    /// of the packs given up ride in the delta that names their copies.
    Repack,
}

/// What a saver wrote into the repository.
#[derive(Debug, Clone, Default)]
pub struct SaverLog {
    /// Its index deltas, in the order written.
    pub deltas: Vec<IndexId>,
    /// Its packs with their sizes.
    pub packs: Vec<(PackId, u64)>,
    /// Packs its deltas marked obsolete.
    pub marked: u64,
    /// Its parity objects.
    pub parity: Vec<String>,
}

/// Shards of the claims: a claim locks one shard, so that workers claiming
/// blobs seldom wait for each other (ids are uniform, the first byte picks).
const CLAIM_SHARDS: usize = 16;

/// Blobs written (or being written) in this session and not yet in the
/// cache, in shards by their id's first byte.
struct Claims {
    shards: [Mutex<HashSet<BlobId>>; CLAIM_SHARDS],
}

impl Claims {
    fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashSet::new())),
        }
    }

    fn shard(id: &BlobId) -> usize {
        usize::from(id.0[0]) % CLAIM_SHARDS
    }

    /// Claims `id`; `false` when it was claimed already.
    fn insert(&self, id: BlobId) -> bool {
        lock(&self.shards[Self::shard(&id)]).insert(id)
    }

    /// Drops the claims of `ids` (the cache knows them now), locking each
    /// shard once.
    fn remove_all<'a>(&self, ids: impl Iterator<Item = &'a BlobId> + Clone) {
        for (number, shard) in self.shards.iter().enumerate() {
            let mut shard = lock(shard);
            for id in ids.clone().filter(|id| Self::shard(id) == number) {
                shard.remove(id);
            }
        }
    }

    fn clear(&self) {
        for shard in &self.shards {
            lock(shard).clear();
        }
    }
}

/// The open metadata pack and its second copy, which always hold the same
/// blobs and are sealed together.
#[derive(Default)]
struct MetaPacks {
    first: Option<PackWriter>,
    copy: Option<PackWriter>,
}

#[derive(Default)]
struct SaverState {
    /// Stored packs not yet named by an index delta.
    stored: Vec<PackIndex>,
    /// Sealed packs whose storing result has not been collected yet.
    in_flight: usize,
    /// What was written so far.
    log: SaverLog,
    /// Stored packs not yet in a parity group (with parity on).
    ungrouped: Vec<Member>,
    /// Blobs of the sealed packs not yet named by an index delta.
    unindexed_blobs: usize,
}

/// Writes new blobs into packs, deduplicating against the index and against
/// itself; safe to call from many threads. Memory stays bounded: packs go to
/// temporary files, at most two sealed packs wait for their move into the
/// repository, and at most [`PACKS_PER_DELTA`] packs or [`BLOBS_PER_DELTA`]
/// blobs wait for their delta (for a repacking saver, as many as its caller
/// lets wait).
pub struct BlobSaver<'r> {
    repo: &'r Repository,
    purpose: Purpose,
    /// The open data pack, locked apart from the metadata packs, the claims
    /// and the state, so that appending a frame (and the write of a full
    /// buffer) holds up only the workers appending to the same pack.
    data: Mutex<Option<PackWriter>>,
    meta: Mutex<MetaPacks>,
    claims: Claims,
    state: Mutex<SaverState>,
    to_store: Mutex<Option<crossbeam_channel::Sender<FinishedPack>>>,
    stored: crossbeam_channel::Receiver<Result<PackIndex>>,
    storer: Mutex<Option<std::thread::JoinHandle<()>>>,
    bytes_added: AtomicU64,
    bytes_added_packed: AtomicU64,
    /// Whether a thread runs [`BlobSaver::index_in_background`]: workers
    /// then leave index deltas (and their fsyncs) to it.
    background: AtomicBool,
    /// Signalled when an index delta was written, and when the background
    /// indexer stops.
    indexed: Condvar,
    /// See [`unindexed_blobs_max`].
    unindexed_max: usize,
    /// Count what would be added, write nothing.
    dry_run: bool,
}

impl<'r> BlobSaver<'r> {
    /// Starts saving blobs; call [`BlobSaver::flush`] before writing a snapshot.
    pub fn new(repo: &'r Repository) -> Self {
        Self::with_purpose(repo, Purpose::New)
    }

    /// Starts rewriting live blobs out of packs that go (prune); write the
    /// deltas with [`BlobSaver::index_with_marks`], then call
    /// [`BlobSaver::flush`].
    pub fn repacking(repo: &'r Repository) -> Self {
        Self::with_purpose(repo, Purpose::Repack)
    }

    /// A saver of new blobs that computes ids and compressed frames, and
    /// counts what [`BlobSaver::added`] reports, but writes nothing: no
    /// pack, no index delta. Blobs the index knows, or that this saver saw
    /// before, count as deduplicated, as in a real run.
    pub fn dry_run(repo: &'r Repository) -> Self {
        let mut saver = Self::with_purpose(repo, Purpose::New);
        saver.dry_run = true;
        saver
    }

    fn with_purpose(repo: &'r Repository, purpose: Purpose) -> Self {
        // One storer per upload that may run at once (several for object
        // storage). A pack reaches `stored` only once it is durable, and only
        // packs from there go into an index delta, so the write ordering
        // holds whatever order the uploads finish in.
        let storers = repo.backend().parallel_writes().max(1);
        let (to_store, store_rx) = crossbeam_channel::bounded::<FinishedPack>(2 * storers);
        let (stored_tx, stored) = crossbeam_channel::unbounded();
        // Moving a finished pack into place waits for its fsync; threads of
        // their own keep the workers compressing meanwhile.
        let storer_threads: Vec<_> = (0..storers)
            .map(|_| {
                let backend = Arc::clone(repo.shared_backend());
                let store_rx = store_rx.clone();
                let stored_tx = stored_tx.clone();
                std::thread::spawn(move || {
                    for pack in store_rx {
                        let result = backend
                            .write_file(FileKind::Pack, &pack.id.to_hex(), &pack.path)
                            .map(|()| PackIndex {
                                id: pack.id,
                                size: pack.size,
                                blobs: pack.blobs,
                            });
                        if stored_tx.send(result).is_err() {
                            break;
                        }
                    }
                })
            })
            .collect();
        let storer = std::thread::spawn(move || {
            for handle in storer_threads {
                let _ = handle.join();
            }
        });
        BlobSaver {
            repo,
            purpose,
            data: Mutex::new(None),
            meta: Mutex::new(MetaPacks::default()),
            claims: Claims::new(),
            state: Mutex::new(SaverState::default()),
            to_store: Mutex::new(Some(to_store)),
            stored,
            storer: Mutex::new(Some(storer)),
            bytes_added: AtomicU64::new(0),
            bytes_added_packed: AtomicU64::new(0),
            background: AtomicBool::new(false),
            indexed: Condvar::new(),
            unindexed_max: unindexed_blobs_max(storers),
            dry_run: false,
        }
    }

    /// Stores a blob unless the repository already has it; returns its id.
    pub fn save(&self, kind: BlobKind, plaintext: &[u8]) -> Result<BlobId> {
        self.save_with(kind, plaintext, None)
    }

    /// Stores a blob compressed with `dictionary` (its id then names the
    /// dictionary, see `Hasher::blob_id_with`), unless the repository has it.
    pub fn save_with(
        &self,
        kind: BlobKind,
        plaintext: &[u8],
        dictionary: Option<&Dictionary>,
    ) -> Result<BlobId> {
        let codec = self.repo.codec();
        let id = codec.id_with(dictionary, plaintext);
        if !self.claim(id)? {
            return Ok(id);
        }
        let frame = codec.encode_with(plaintext, dictionary)?;
        let raw_length =
            u32::try_from(plaintext.len()).map_err(|_| Error::usage("blob over 4 GiB"))?;
        self.pack_frame(kind, id, &frame, raw_length)?;
        Ok(id)
    }

    /// Stores a blob already encoded by a repository with the same keys
    /// (`snap copy` between repositories that share ids, or a prune
    /// rewriting a pack: no recompression), unless the repository has it
    /// (a repacking saver: unless this saver has it). The caller has
    /// verified the frame. Returns whether it was stored.
    pub fn save_frame(
        &self,
        kind: BlobKind,
        id: BlobId,
        frame: &[u8],
        raw_length: u32,
    ) -> Result<bool> {
        if !self.claim(id)? {
            return Ok(false);
        }
        self.pack_frame(kind, id, frame, raw_length)?;
        Ok(true)
    }

    /// Whether blob `id` is to be stored by this call: not saved by this
    /// saver already and, when saving new blobs, not known to the index.
    fn claim(&self, id: BlobId) -> Result<bool> {
        if self.purpose == Purpose::New && self.repo.cache().contains(&id)? {
            return Ok(false);
        }
        Ok(self.claims.insert(id))
    }

    /// Adds a claimed blob's frame to the open pack of its kind.
    fn pack_frame(&self, kind: BlobKind, id: BlobId, frame: &[u8], raw_length: u32) -> Result<()> {
        self.bytes_added
            .fetch_add(u64::from(raw_length), Ordering::Relaxed);
        self.bytes_added_packed
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        self.wait_for_indexer();
        if kind != BlobKind::Data {
            // Before the first pack that holds a second copy.
            self.repo.require_feature(Feature::MetadataTwice)?;
        }
        let temp_dir = self.repo.backend().temp_dir();
        let full = if kind == BlobKind::Data {
            let mut slot = lock(&self.data);
            if slot.is_none() {
                *slot = Some(PackWriter::create(temp_dir, self.repo.pack_target())?);
            }
            let writer = slot.as_mut().expect("just created");
            writer.add(id, kind, frame, raw_length)?;
            [writer.is_full().then(|| slot.take()).flatten(), None]
        } else {
            // Trees and chunk lists go into two packs at
            // once, sealed together: the two always hold the same blobs.
            let mut packs = lock(&self.meta);
            if packs.first.is_none() {
                let target = self.repo.pack_target();
                packs.first = Some(PackWriter::create(temp_dir, target)?);
                packs.copy = Some(PackWriter::create_second_copy(temp_dir, target)?);
            }
            let writer = packs.first.as_mut().expect("just created");
            writer.add(id, kind, frame, raw_length)?;
            let full = writer.is_full();
            let copy = packs.copy.as_mut().expect("created with first");
            copy.add(id, kind, frame, raw_length)?;
            if full {
                [packs.first.take(), packs.copy.take()]
            } else {
                [None, None]
            }
        };
        let mut sealed = false;
        for writer in full.into_iter().flatten() {
            self.seal(writer)?;
            sealed = true;
        }
        if sealed && !self.background.load(Ordering::Relaxed) {
            self.index_stored(false)?;
        }
        Ok(())
    }

    /// Stores a file's chunk id list, as list blobs when it is long.
    /// Returns the node's `content` and `content_depth`.
    pub fn save_content(&self, ids: Vec<BlobId>) -> Result<(Vec<BlobId>, u8)> {
        self.save_content_cut(ids, ListCut::ContentDefined)
    }

    /// [`BlobSaver::save_content`], cutting lists as `cut` says.
    pub fn save_content_cut(
        &self,
        mut ids: Vec<BlobId>,
        cut: ListCut,
    ) -> Result<(Vec<BlobId>, u8)> {
        let mut depth = 0u8;
        while ids.len() > DIRECT_CONTENT_MAX && depth < MAX_CONTENT_DEPTH {
            let mut next = Vec::new();
            let mut group = Vec::new();
            for id in ids {
                group.push(id);
                if cut.cuts_after(&id, group.len()) {
                    let list = ChunkList {
                        ids: std::mem::take(&mut group),
                    };
                    next.push(self.save(BlobKind::List, &list.to_bytes())?);
                }
            }
            if !group.is_empty() {
                next.push(self.save(BlobKind::List, &ChunkList { ids: group }.to_bytes())?);
            }
            ids = next;
            depth += 1;
        }
        Ok((ids, depth))
    }

    /// While the indexer runs in the background, waits until fewer than
    /// `unindexed_max` blobs of sealed packs wait for their delta.
    ///
    /// Every blob of those packs keeps its claim and its entry in memory
    /// until its delta is written, and when the workers outnumber the cores
    /// (most walk workers wait for the disk, `ops::backup`) the storers and
    /// the indexer get too little of them to keep up: 100,000 claims were
    /// waiting in a backup of 300,000 small files with 16 workers, against
    /// 20,000 with 4. The wait always ends: the packs waiting are stored by
    /// the storers, and are then enough for a delta.
    fn wait_for_indexer(&self) {
        let state = lock(&self.state);
        let _state = self
            .indexed
            .wait_while(state, |state| {
                self.background.load(Ordering::Relaxed)
                    && state.unindexed_blobs >= self.unindexed_max
            })
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }

    /// Writes the trailer and hands the pack to the storer thread.
    fn seal(&self, writer: PackWriter) -> Result<()> {
        let pack = writer.finish(self.repo.codec())?;
        let sender = lock(&self.to_store).clone();
        {
            let mut state = lock(&self.state);
            state.in_flight += 1;
            state.unindexed_blobs += pack.blobs.len();
        }
        let sent = sender.is_some_and(|s| s.send(pack).is_ok());
        if !sent {
            return Err(self.storer_failure());
        }
        Ok(())
    }

    /// Seals the open packs that hold anything.
    fn seal_open(&self) -> Result<()> {
        let data = lock(&self.data).take();
        let [first, copy] = {
            let mut packs = lock(&self.meta);
            [packs.first.take(), packs.copy.take()]
        };
        let writers = [data, first, copy];
        for writer in writers.into_iter().flatten() {
            if !writer.is_empty() {
                self.seal(writer)?;
            }
        }
        Ok(())
    }

    /// Moves one storing result into the state: the pack waits for its
    /// delta, or the storer's error is returned.
    fn collect(&self, result: Result<PackIndex>) -> Result<()> {
        let mut state = lock(&self.state);
        state.in_flight = state.in_flight.saturating_sub(1);
        let pack = result?;
        state.log.packs.push((pack.id, pack.size));
        if self.repo.parity_level().is_some() {
            state.ungrouped.push(Member {
                id: pack.id,
                size: pack.size,
            });
        }
        state.stored.push(pack);
        Ok(())
    }

    /// Waits until every sealed pack is stored.
    fn wait_stored(&self) -> Result<()> {
        while lock(&self.state).in_flight > 0 {
            let result = self
                .stored
                .recv()
                .map_err(|_| Error::new(ErrorKind::Io, "the pack storer stopped"))?;
            self.collect(result)?;
        }
        Ok(())
    }

    /// The error of a storer thread that stopped.
    fn storer_failure(&self) -> Error {
        self.stored
            .try_iter()
            .find_map(Result::err)
            .unwrap_or_else(|| Error::new(ErrorKind::Io, "the pack storer stopped"))
    }

    /// Collects stored packs; writes an index delta once enough are waiting
    /// (or, with `all`, for every one). A repacking saver writes one only
    /// with `all`.
    fn index_stored(&self, all: bool) -> Result<()> {
        for result in self.stored.try_iter() {
            self.collect(result)?;
        }
        let ready = {
            let mut state = lock(&self.state);
            let blobs: usize = state.stored.iter().map(|p| p.blobs.len()).sum();
            let enough = self.purpose == Purpose::New
                && (state.stored.len() >= PACKS_PER_DELTA || blobs >= BLOBS_PER_DELTA);
            if all || enough {
                std::mem::take(&mut state.stored)
            } else {
                Vec::new()
            }
        };
        self.write_delta(ready, Vec::new(), None)?;
        self.group_parity(all)
    }

    /// Writes the parity of stored packs, in groups of the level's size.
    /// While the session runs a group is formed only once twice its size
    /// wait, so that at the end (`all`) the last group holds between one
    /// and two groups' worth: no session ends with a small group paying a
    /// whole pack of parity for a few packs, unless the session wrote
    /// fewer packs than a group holds.
    fn group_parity(&self, all: bool) -> Result<()> {
        let Some(level) = self.repo.parity_level() else {
            return Ok(());
        };
        let size = usize::from(level.data.max(1));
        loop {
            let members: Vec<Member> = {
                let mut state = lock(&self.state);
                if state.ungrouped.len() >= 2 * size {
                    state.ungrouped.drain(..size).collect()
                } else if all && !state.ungrouped.is_empty() {
                    std::mem::take(&mut state.ungrouped)
                } else {
                    return Ok(());
                }
            };
            let group = crate::parity::write_group(self.repo.backend(), &members, level.parity)?;
            lock(&self.state).log.parity.push(group.name);
        }
    }

    /// Seals the open packs, waits until every sealed pack is stored, and
    /// writes one index delta naming them all and marking the `obsolete`
    /// packs (marks made at `marked_at`), so that a cache never sees those
    /// marks without the copies that replace them. A pack this saver wrote
    /// is not marked: a copy that came out byte for byte as its source is
    /// that pack. For a repacking saver.
    pub fn index_with_marks(&self, mut obsolete: Vec<PackId>, marked_at: i64) -> Result<()> {
        self.seal_open()?;
        self.wait_stored()?;
        let ready = {
            let mut state = lock(&self.state);
            let written: HashSet<PackId> = state.log.packs.iter().map(|(id, _)| *id).collect();
            obsolete.retain(|p| !written.contains(p));
            std::mem::take(&mut state.stored)
        };
        let marked_at = (!obsolete.is_empty()).then_some(marked_at);
        self.write_delta(ready, obsolete, marked_at)
    }

    /// Writes one index delta (unless it would be empty) and adds it to the
    /// cache.
    fn write_delta(
        &self,
        packs: Vec<PackIndex>,
        obsolete: Vec<PackId>,
        marked_at: Option<i64>,
    ) -> Result<()> {
        if packs.is_empty() && obsolete.is_empty() {
            return Ok(());
        }
        // Without marks, the same bytes as an `IndexDelta`.
        let delta = MarkedDelta {
            packs,
            obsolete,
            marked_at,
        };
        let id = self.repo.write_marked_delta(&delta)?;
        let entry = (
            id,
            IndexDelta {
                packs: delta.packs,
                obsolete: delta.obsolete,
            },
        );
        self.repo.cache().add_deltas(std::slice::from_ref(&entry))?;
        let delta = entry.1;
        {
            let mut state = lock(&self.state);
            state.log.deltas.push(id);
            state.log.marked += delta.obsolete.len() as u64;
            let blobs: usize = delta.packs.iter().map(|p| p.blobs.len()).sum();
            state.unindexed_blobs = state.unindexed_blobs.saturating_sub(blobs);
        }
        // Now that the cache knows them, the blobs need no claim any more.
        self.claims
            .remove_all(delta.packs.iter().flat_map(|p| &p.blobs).map(|b| &b.id));
        self.indexed.notify_all();
        Ok(())
    }

    /// Writes the index deltas of stored packs as they come in, until the
    /// storers stop ([`BlobSaver::close`]): run on a thread of its own
    /// beside the workers, it takes the writing and fsync of the deltas and
    /// the cache's commits off them. The ordering is the same as without
    /// it: a delta names only packs their storer made durable, the cache
    /// learns a delta once it is written, and claims go only after that.
    /// Packs stored after an error are left to [`BlobSaver::flush`].
    pub fn index_in_background(&self) -> Result<()> {
        if self.purpose != Purpose::New || self.dry_run {
            return Ok(());
        }
        self.background.store(true, Ordering::Relaxed);
        let result = self.stored.iter().try_for_each(|result| {
            self.collect(result)?;
            self.index_stored(false)
        });
        // Workers index for themselves again (after an error: and fail too).
        {
            let _state = lock(&self.state);
            self.background.store(false, Ordering::Relaxed);
        }
        self.indexed.notify_all();
        result
    }

    /// Seals the open packs and waits until the storers have stored every
    /// sealed pack; no blob may be saved after it. Runs again harmlessly.
    pub fn close(&self) -> Result<()> {
        let result = self.seal_open();
        // Close the channel and wait for the storer to finish what it has.
        drop(lock(&self.to_store).take());
        if let Some(handle) = lock(&self.storer).take() {
            let _ = handle.join();
        }
        result
    }

    /// Seals open packs, waits until every pack is stored, and writes the
    /// index delta for them. After it returns, every saved blob is durable
    /// and indexed.
    pub fn flush(&self) -> Result<()> {
        let result = self.close();
        let indexed = self.index_stored(true);
        self.claims.clear();
        result.and(indexed)
    }

    /// Sealed packs that no index delta names yet.
    pub fn unindexed_packs(&self) -> usize {
        let state = lock(&self.state);
        state.stored.len() + state.in_flight
    }

    /// What this saver wrote so far.
    pub fn log(&self) -> SaverLog {
        lock(&self.state).log.clone()
    }

    /// Plaintext and stored bytes of the blobs this saver added.
    pub fn added(&self) -> (u64, u64) {
        (
            self.bytes_added.load(Ordering::Relaxed),
            self.bytes_added_packed.load(Ordering::Relaxed),
        )
    }
}

impl Drop for BlobSaver<'_> {
    /// Waits for the storers (a saver dropped after an error, without a
    /// flush): no pack is moved into the repository once the saver is gone.
    /// Packs stored but not indexed are orphans, which the next prune deletes.
    fn drop(&mut self) {
        drop(lock(&self.to_store).take());
        if let Some(handle) = lock(&self.storer).take() {
            let _ = handle.join();
        }
    }
}
