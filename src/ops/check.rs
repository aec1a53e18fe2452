//! `snap check`: is every snapshot restorable, and if not, what exactly is lost?
//!
//! Phases, each building on the one before:
//!
//! 1. **Index and packs.** Every index delta is read and verified; every pack
//!    it lists must exist in `data/` with the size the index records, and its
//!    trailer must list exactly the blobs the index says it holds. Packs that
//!    no delta lists (orphans) have their trailers read too, so blobs that
//!    only a damaged or deleted delta knew can be found again.
//! 2. **Data** (`--read-data`, optional). Each selected pack is read once, in
//!    full: its bytes must hash to its name, and every blob the index (or, for
//!    an orphan, the trailer) places in it is decompressed, decrypted and
//!    checked against its id. Results are per blob, so one flipped bit costs
//!    only the files that use that blob.
//! 3. **Snapshots and trees.** Every snapshot's tree is walked; a subtree
//!    shared by many snapshots is checked once (its damage is memoized by tree
//!    id and re-rooted under each path that uses it). Every blob a file or
//!    folder needs is looked up in the index cache and judged by what phases 1
//!    and 2 found about its pack.
//!
//! Every problem names what it costs: for each snapshot, the paths of the
//! files (and folders whose listing is unreadable) that cannot be restored.
//! Leftovers that cost nothing but space (orphan packs, blobs no snapshot
//! uses, temporary files of interrupted backups) are cleanup hints, not errors.
//!
//! Memory: the index is held in memory while checking (about 50 bytes per
//! blob), plus the set of blobs the snapshots use. `--read-data` holds at most
//! three packs at a time (one being read, one queued, one being verified).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use serde::{Serialize, Serializer};

use crate::backend::FileKind;
use crate::error::{Error, ErrorKind, Result};
use crate::format::pack::{BlobEntry, BlobKind};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{
    ChunkList, MAX_CONTENT_DEPTH, MAX_TREE_DEPTH, MAX_WALK_PATHS, Node, NodeKind, check_tree_size,
};
use crate::id::{BlobId, IndexId, PackId, SnapshotId, TreeId};
use crate::ops::parity::ParityStatus;
use crate::pack::read_trailer;
use crate::plural;
use crate::progress::{NoProgress, Phase, Progress};
use crate::repo::Repository;
use crate::sync::{into_inner, lock};

/// Which packs `snap check` reads in full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    /// None: check structure only.
    None,
    /// Every pack.
    All,
    /// Slice `n` of `m` (1-based): the packs for which [`slice_of`] is `n`.
    /// The slices are disjoint and cover every pack, so running `1/m` to
    /// `m/m` reads everything exactly once, and a pack stays in its slice
    /// for as long as it exists.
    Slice {
        /// Which slice, 1..=m.
        n: u64,
        /// Number of slices.
        m: u64,
    },
    /// A random selection of this percentage of the packs (at least one when
    /// there are any), different on every run.
    Percent(f64),
}

impl FromStr for ReadData {
    type Err = Error;

    /// Parses `N/M` or `P%`.
    fn from_str(text: &str) -> Result<Self> {
        let bad = || {
            Error::usage(format!(
                "`{text}` is not a read-data subset: use N/M (slice N of M, e.g. 1/5) or P% (e.g. 10%)"
            ))
        };
        if let Some(percent) = text.strip_suffix('%') {
            let p: f64 = percent.trim().parse().map_err(|_| bad())?;
            if !(p > 0.0 && p <= 100.0) {
                return Err(bad());
            }
            return Ok(ReadData::Percent(p));
        }
        let (n, m) = text.split_once('/').ok_or_else(bad)?;
        let n: u64 = n.trim().parse().map_err(|_| bad())?;
        let m: u64 = m.trim().parse().map_err(|_| bad())?;
        if m == 0 || n == 0 || n > m {
            return Err(bad());
        }
        Ok(ReadData::Slice { n, m })
    }
}

/// The slice (1..=m) pack `id` belongs to: its first 8 bytes as a big-endian
/// number, modulo `m`, plus one. Pack ids are hashes, so slices are even.
pub fn slice_of(id: &PackId, m: u64) -> u64 {
    let head = u64::from_be_bytes(id.0[..8].try_into().expect("8 bytes"));
    head % m.max(1) + 1
}

/// The packs (and their sizes) that `read_data` selects, sorted by id.
pub fn select_packs(repo: &Repository, read_data: &ReadData) -> Result<Vec<(PackId, u64)>> {
    if *read_data == ReadData::None {
        return Ok(Vec::new());
    }
    let mut packs: Vec<(PackId, u64)> = repo
        .backend()
        .list(FileKind::Pack)?
        .into_iter()
        .filter_map(|(name, size)| PackId::from_hex(&name).ok().map(|id| (id, size)))
        .collect();
    match *read_data {
        ReadData::None | ReadData::All => {}
        ReadData::Slice { m, n } => packs.retain(|(id, _)| slice_of(id, m) == n),
        ReadData::Percent(p) => {
            let count = ((packs.len() as f64) * p / 100.0).ceil() as usize;
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).expect("the operating system's random source works");
            packs.sort_by_cached_key(|(id, _)| *blake3::keyed_hash(&seed, &id.0).as_bytes());
            packs.truncate(count.min(packs.len()));
        }
    }
    packs.sort();
    Ok(packs)
}

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Packs to read in full and verify blob by blob (see [`select_packs`]).
    pub read_packs: Vec<PackId>,
}

/// What kind of damage a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A snapshot file cannot be read or fails its hash.
    SnapshotDamaged,
    /// An index delta cannot be read or fails its hash.
    IndexDamaged,
    /// An index delta lists a pack that is not in the repository.
    PackMissing,
    /// A pack's size differs from the size the index records.
    PackSize,
    /// A pack's trailer is unreadable, or its bytes do not hash to its name.
    PackDamaged,
    /// A pack's trailer and the index disagree about what the pack holds.
    TrailerMismatch,
    /// A pack that no index delta lists holds blobs that snapshots use.
    PackUnindexed,
    /// A blob that snapshots use is in no index delta and no pack.
    BlobMissing,
    /// A tree (folder listing) cannot be read or decoded.
    TreeDamaged,
    /// A blob (chunk list) fails to decode.
    BlobDamaged,
    /// A file's chunks do not add up to its size (restore refuses it).
    FileDamaged,
    /// A pack is missing or damaged, and its parity group rebuilds it
    /// (readers already do; nothing is lost).
    PackRepairable,
    /// A parity object names a pack that is gone, or cannot be read: the
    /// packs of its group are not protected.
    ParityDamaged,
}

impl ProblemKind {
    /// What the user can do about it.
    fn hint(self) -> &'static str {
        match self {
            ProblemKind::SnapshotDamaged => {
                "the snapshot cannot be read; remove its file from snapshots/ (or forget it)"
            }
            ProblemKind::IndexDamaged
            | ProblemKind::TrailerMismatch
            | ProblemKind::PackUnindexed => {
                "`snap repair index` rebuilds the index from the pack trailers"
            }
            ProblemKind::PackMissing
            | ProblemKind::PackSize
            | ProblemKind::PackDamaged
            | ProblemKind::BlobMissing
            | ProblemKind::TreeDamaged
            | ProblemKind::BlobDamaged
            | ProblemKind::FileDamaged => {
                "`snap repair snapshots` writes copies of the affected snapshots without the lost files"
            }
            ProblemKind::PackRepairable => {
                "restore and every reader rebuild it as they go; `snap repair packs` writes it back"
            }
            ProblemKind::ParityDamaged => "`snap repair packs` re-forms the group",
        }
    }
}

/// What to do about a pack whose every blob has a second copy elsewhere.
const COVERED_HINT: &str =
    "the snapshots are intact; `snap prune` stores its trees and chunk lists twice again";

fn hex_id<S: Serializer>(id: &SnapshotId, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(&id.to_hex())
}

/// The paths one snapshot loses to a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    /// The snapshot.
    #[serde(serialize_with = "hex_id")]
    pub snapshot: SnapshotId,
    /// Paths as `snap ls` prints them; `/` is the whole snapshot.
    pub paths: Vec<String>,
}

/// One problem: what is damaged and what it costs.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The kind of damage.
    pub kind: ProblemKind,
    /// The damaged object, e.g. `pack 1a2b...`.
    pub object: String,
    /// What is wrong and what to do.
    pub message: String,
    /// Which snapshots lose which paths.
    pub affected: Vec<Affected>,
}

/// What a cleanup hint is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CleanupKind {
    /// A pack no index delta lists and no snapshot needs.
    OrphanPack,
    /// Indexed blobs that no snapshot uses.
    UnreferencedBlobs,
    /// A temporary file in `tmp/`.
    TempFile,
}

/// Something that costs space but not data.
#[derive(Debug, Clone, Serialize)]
pub struct Cleanup {
    /// The kind of leftover.
    pub kind: CleanupKind,
    /// What it is.
    pub object: String,
    /// Why it is there and how to get rid of it.
    pub message: String,
    /// Bytes it takes (0 when unknown).
    pub bytes: u64,
}

/// Whether a damaged path is a file or a folder (whose listing is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// A file whose content cannot be restored.
    File,
    /// A folder whose tree cannot be read (the root when the path is empty).
    Dir,
}

/// A damaged entry of one snapshot, for `snap repair snapshots`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DamagedEntry {
    /// Path components from the snapshot root, raw bytes; empty for the root.
    pub path: Vec<Vec<u8>>,
    /// File or folder.
    pub kind: EntryKind,
}

/// The result of a check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// No errors (cleanup hints do not count).
    pub ok: bool,
    /// Damage, with what it affects.
    pub errors: Vec<Problem>,
    /// Leftovers that cost space, not data.
    pub cleanup: Vec<Cleanup>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Index delta files.
    pub index_files: u64,
    /// Packs in the repository.
    pub packs: u64,
    /// Distinct trees walked.
    pub trees: u64,
    /// Distinct blobs the snapshots use.
    pub blobs: u64,
    /// Packs read in full (`--read-data`).
    pub packs_read: u64,
    /// Bytes of the packs read in full.
    pub bytes_read: u64,
    /// Damaged entries by snapshot (readable snapshots only).
    #[serde(skip)]
    pub damaged: BTreeMap<SnapshotId, BTreeSet<DamagedEntry>>,
    /// Snapshots whose own file is damaged.
    #[serde(skip)]
    pub damaged_snapshots: Vec<SnapshotId>,
    /// What parity protects, when the repository has parity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parity: Option<ParityStatus>,
}

pub use crate::format::snapshot::PRE_RESTORE_TAG as SAFETY_TAG;

/// Warnings about critical sources (a profile's `critical = true` sources,
/// by name at the snapshot root): the latest snapshot (safety snapshots
/// aside) lacks one, or holds it as an empty folder or a 0-byte file.
/// Damage is left to [`check`], which reports it precisely.
pub fn critical_source_warnings(repo: &Repository, names: &[&str]) -> Result<Vec<String>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let snapshots = repo.snapshots()?;
    let Some((id, snapshot)) = snapshots
        .iter()
        .rev()
        .find(|(_, s)| !s.tags.iter().any(|t| t == SAFETY_TAG))
    else {
        return Ok(vec![format!(
            "no snapshot holds the critical sources {} yet",
            names.join(", ")
        )]);
    };
    let mut warnings = Vec::new();
    for name in names {
        match crate::ops::browse::find_node(repo, snapshot.tree, name) {
            Err(e) if e.kind() == ErrorKind::NotFound => warnings.push(format!(
                "the latest snapshot {} lacks the critical source `{name}`",
                id.short()
            )),
            Ok(node) => {
                let empty = match node.kind {
                    NodeKind::File => (node.size == 0).then_some("a 0-byte file"),
                    NodeKind::Dir => match node.subtree {
                        Some(tree) => repo
                            .read_tree(&tree)
                            .is_ok_and(|t| t.nodes.is_empty())
                            .then_some("an empty folder"),
                        None => Some("an empty folder"),
                    },
                    _ => None,
                };
                if let Some(what) = empty {
                    warnings.push(format!(
                        "the critical source `{name}` is empty in the latest snapshot {} ({what})",
                        id.short()
                    ));
                }
            }
            Err(_) => {}
        }
    }
    Ok(warnings)
}

/// Checks the repository: see the module documentation.
pub fn check(
    repo: &Repository,
    options: &CheckOptions,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    if !repo.can_read() {
        return Err(Error::new(
            ErrorKind::Key,
            "a write-only key cannot read snapshots and trees; check with a full key",
        ));
    }
    let mut checker = Checker::new(repo, progress);
    let on_disk = checker.list_packs()?;
    let mut index = checker.check_index(&on_disk)?;
    checker.check_orphans(&on_disk, &mut index)?;
    checker.read_data(&options.read_packs, &on_disk, &index)?;
    let parity = checker.check_parity(&options.read_packs)?;
    let (snapshots, damaged_snapshots) = checker.read_snapshots()?;
    let damaged = checker.walk(&snapshots)?;
    checker.note_second_copies();
    let mut report = checker.report(ReportInput {
        on_disk: &on_disk,
        index: &index,
        snapshots: &snapshots,
        damaged,
        damaged_snapshots,
    })?;
    report.parity = parity;
    Ok(report)
}

/// Snapshots with their ids, oldest first.
type Snapshots = Vec<(SnapshotId, Snapshot)>;

/// A raw path inside a snapshot.
type RawPath = Vec<Vec<u8>>;

/// Damage below a tree, shared by every folder that holds the tree, so a
/// subtree referenced from many places costs memory once; it is expanded
/// into paths ([`Damaged`]) per snapshot, within [`MAX_DAMAGED_PATHS`].
#[derive(Debug)]
enum Damage {
    /// The entry itself: a file that cannot be restored, or a folder whose
    /// listing cannot be read.
    Here(EntryKind, usize),
    /// The damaged entries of a readable folder, by name.
    Below(Vec<(Vec<u8>, Arc<Damage>)>),
}

impl Damage {
    /// Appends the damaged paths below `prefix` to `out`; false when there
    /// are more than [`MAX_DAMAGED_PATHS`].
    fn flatten(&self, prefix: &mut RawPath, out: &mut Vec<Damaged>) -> bool {
        match self {
            Damage::Here(kind, problem) => {
                out.push(Damaged {
                    path: prefix.clone(),
                    kind: *kind,
                    problem: *problem,
                });
                out.len() <= MAX_DAMAGED_PATHS
            }
            Damage::Below(entries) => entries.iter().all(|(name, below)| {
                prefix.push(name.clone());
                let within = below.flatten(prefix, out);
                prefix.pop();
                within
            }),
        }
    }
}

/// Damaged paths check lists for one snapshot at most; past them the
/// snapshot is reported as damaged as a whole.
const MAX_DAMAGED_PATHS: usize = 10_000_000;

/// What walking a tree found: its damage and the paths below it (every
/// path a walk of it follows, counting a repeated subtree each time).
#[derive(Debug, Clone)]
struct Walked {
    damage: Arc<Damage>,
    paths: u64,
}

/// One damaged path of a snapshot.
#[derive(Debug, Clone)]
struct Damaged {
    path: RawPath,
    kind: EntryKind,
    problem: usize,
}

struct Draft {
    kind: ProblemKind,
    object: String,
    details: Vec<String>,
}

#[derive(Default)]
struct Problems {
    drafts: Vec<Draft>,
    by_key: HashMap<(ProblemKind, String), usize>,
}

impl Problems {
    /// The problem of `kind` on `object`, created or given one more detail.
    fn add(&mut self, kind: ProblemKind, object: String, detail: String) -> usize {
        if let Some(&i) = self.by_key.get(&(kind, object.clone())) {
            if !self.drafts[i].details.contains(&detail) {
                self.drafts[i].details.push(detail);
            }
            return i;
        }
        let i = self.drafts.len();
        self.by_key.insert((kind, object.clone()), i);
        self.drafts.push(Draft {
            kind,
            object,
            details: vec![detail],
        });
        i
    }
}

/// A pack as the index deltas describe it.
struct IndexedPack {
    size: u64,
    blobs: Vec<BlobEntry>,
    deltas: Vec<IndexId>,
}

/// Everything a [`BlobEntry`] says, as a set member.
type EntryKey = (BlobId, u8, u32, u32, u32);

fn entry_key(entry: &BlobEntry) -> EntryKey {
    (
        entry.id,
        entry.kind.to_u8(),
        entry.offset,
        entry.length,
        entry.raw_length,
    )
}

/// What reading one blob of a pack in full found.
enum Verdict {
    Good,
    Bad(BlobId),
    /// Its dictionary (second) could not be loaded, for this reason.
    Undecodable(BlobId, BlobId, String),
}

/// What phase 1 learnt.
#[derive(Default)]
struct IndexView {
    deltas: u64,
    packs: HashMap<PackId, IndexedPack>,
    /// Trailer entries of packs no delta lists.
    orphans: HashMap<PackId, Vec<BlobEntry>>,
}

struct ReportInput<'a> {
    on_disk: &'a HashMap<PackId, u64>,
    index: &'a IndexView,
    snapshots: &'a [(SnapshotId, Snapshot)],
    damaged: Vec<(SnapshotId, Arc<[Damaged]>)>,
    damaged_snapshots: Vec<SnapshotId>,
}

struct Checker<'r> {
    repo: &'r Repository,
    progress: &'r dyn Progress,
    problems: Mutex<Problems>,
    /// Packs whose blobs cannot be trusted (unless read and verified).
    suspect_packs: HashMap<PackId, usize>,
    /// Index entries that disagree with their pack's trailer.
    suspect_blobs: HashMap<(PackId, BlobId), usize>,
    /// Blobs in orphan packs, by id.
    orphan_blobs: HashMap<BlobId, PackId>,
    /// Packs read in full: their blobs were judged one by one.
    verified_packs: HashSet<PackId>,
    /// Blobs that failed verification, in the pack they were read from.
    bad_blobs: HashMap<(PackId, BlobId), usize>,
    packs_read: u64,
    bytes_read: u64,
    /// Blobs read in full whose dictionary could not be loaded, so their
    /// bytes could not be verified: the dictionary and why.
    undecodable: HashMap<(PackId, BlobId), (BlobId, String)>,
    /// Judgement of every blob the snapshots use.
    blob_memo: Mutex<HashMap<BlobId, Judged>>,
    /// Judgement of chunk lists, with everything below them.
    list_memo: Mutex<HashMap<(BlobId, u8), Content>>,
    /// Damage below each tree walked.
    tree_memo: Mutex<HashMap<TreeId, Walked>>,
    /// Blobs the snapshots use that the index cache knows.
    indexed_used: AtomicU64,
    /// Packs a parity group holds but cannot rebuild, with why.
    parity_failures: Vec<(PackId, String)>,
    /// Problems of packs whose every blob has a sound copy elsewhere:
    /// nothing is lost.
    covered: HashSet<usize>,
}

/// What check knows of one blob: its problem (None: fine) and, when the
/// index knows it, the length of its plaintext.
#[derive(Debug, Clone, Copy)]
struct Judged {
    problem: Option<usize>,
    raw_length: Option<u32>,
}

/// What a file's content (or one chunk list of it) adds up to: the first
/// problem below it, and the data chunks, their bytes and whether one is
/// empty, for [`Node::check_content`].
#[derive(Debug, Clone, Copy, Default)]
struct Content {
    problem: Option<usize>,
    chunks: u64,
    bytes: u64,
    empty_chunk: bool,
}

impl Content {
    /// Adds what is below one id of a list.
    fn add(&mut self, below: Content) {
        self.problem = self.problem.or(below.problem);
        self.chunks = self.chunks.saturating_add(below.chunks);
        self.bytes = self.bytes.saturating_add(below.bytes);
        self.empty_chunk |= below.empty_chunk;
    }

    /// One data chunk.
    fn chunk(judged: Judged) -> Self {
        let bytes = judged.raw_length.unwrap_or(0);
        Self {
            problem: judged.problem,
            chunks: 1,
            bytes: u64::from(bytes),
            empty_chunk: judged.raw_length == Some(0),
        }
    }
}

impl<'r> Checker<'r> {
    fn new(repo: &'r Repository, progress: &'r dyn Progress) -> Self {
        Self {
            repo,
            progress,
            problems: Mutex::new(Problems::default()),
            suspect_packs: HashMap::new(),
            suspect_blobs: HashMap::new(),
            orphan_blobs: HashMap::new(),
            verified_packs: HashSet::new(),
            bad_blobs: HashMap::new(),
            undecodable: HashMap::new(),
            packs_read: 0,
            bytes_read: 0,
            blob_memo: Mutex::new(HashMap::new()),
            list_memo: Mutex::new(HashMap::new()),
            tree_memo: Mutex::new(HashMap::new()),
            indexed_used: AtomicU64::new(0),
            parity_failures: Vec::new(),
            covered: HashSet::new(),
        }
    }

    fn problem(&self, kind: ProblemKind, object: String, detail: impl Into<String>) -> usize {
        lock(&self.problems).add(kind, object, detail.into())
    }

    /// Records a problem of pack `id` and marks the pack suspect, so that
    /// the damage found in its blobs points at this problem.
    fn pack_problem(&mut self, kind: ProblemKind, id: PackId, detail: impl Into<String>) {
        let detail = self.with_parity_failure(id, detail.into());
        let p = self.problem(kind, format!("pack {id}"), detail);
        self.suspect_packs.insert(id, p);
    }

    /// With parity: whether pack `id` (missing or damaged as `what` says)
    /// is rebuilt by its parity group, reported as such rather than as a
    /// loss. When its group cannot rebuild it, why not joins the pack's
    /// problem.
    fn rebuilt_by_parity(&mut self, id: PackId, what: &str) -> Result<bool> {
        Ok(self.rebuilt_pack(id, what)?.is_some())
    }

    fn rebuilt_pack(&mut self, id: PackId, what: &str) -> Result<Option<Arc<Vec<u8>>>> {
        if !self
            .repo
            .has_feature(crate::format::config::Feature::Parity)
        {
            return Ok(None);
        }
        match self.repo.rebuilt_pack(&id) {
            Ok(Some(bytes)) => {
                self.problem(
                    ProblemKind::PackRepairable,
                    format!("pack {id}"),
                    format!("{what}; its parity group rebuilds it"),
                );
                Ok(Some(bytes))
            }
            Ok(None) => Ok(None),
            Err(e) if e.is_damage() => {
                self.parity_failures.push((id, e.message().to_string()));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// `detail`, and why parity cannot rebuild pack `id` when it tried.
    fn with_parity_failure(&self, id: PackId, detail: String) -> String {
        match self.parity_failures.iter().find(|(p, _)| *p == id) {
            Some((_, why)) => format!("{detail}; parity: {why}"),
            None => detail,
        }
    }

    /// With parity: the protection summary, and a problem for every parity
    /// object that names a pack that is gone or cannot be read; with data
    /// read, the parity objects of the packs read are verified too.
    fn check_parity(&mut self, read: &[PackId]) -> Result<Option<ParityStatus>> {
        if !self
            .repo
            .has_feature(crate::format::config::Feature::Parity)
        {
            return Ok(None);
        }
        let status = crate::ops::parity::status(self.repo)?;
        for (name, gone) in &status.orphans {
            let gone: Vec<String> = gone.iter().map(PackId::to_hex).collect();
            self.problem(
                ProblemKind::ParityDamaged,
                format!("parity object {name}"),
                format!("it names packs that are gone ({})", gone.join(", ")),
            );
        }
        for (name, why) in &status.damaged {
            self.problem(
                ProblemKind::ParityDamaged,
                format!("parity object {name}"),
                why.clone(),
            );
        }
        if !read.is_empty() {
            let read: HashSet<&PackId> = read.iter().collect();
            let groups = self.repo.parity_groups()?;
            let mut verified = HashSet::new();
            for group in read.iter().filter_map(|id| groups.get(*id)).flatten() {
                if !verified.insert(group.name.clone()) {
                    continue;
                }
                match crate::parity::verify(self.repo.backend(), group) {
                    Ok(()) => {}
                    Err(e) if e.is_damage() => {
                        self.problem(
                            ProblemKind::ParityDamaged,
                            format!("parity object {}", group.name),
                            e.message().to_string(),
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(Some(status))
    }

    fn list_packs(&self) -> Result<HashMap<PackId, u64>> {
        Ok(self
            .repo
            .backend()
            .list(FileKind::Pack)?
            .into_iter()
            .filter_map(|(name, size)| PackId::from_hex(&name).ok().map(|id| (id, size)))
            .collect())
    }

    /// Phase 1: index deltas against the packs in `data/` and their trailers.
    fn check_index(&mut self, on_disk: &HashMap<PackId, u64>) -> Result<IndexView> {
        let repo = self.repo;
        let mut ids: Vec<IndexId> = repo
            .backend()
            .list(FileKind::Index)?
            .into_iter()
            .filter_map(|(name, _)| IndexId::from_hex(&name).ok())
            .collect();
        ids.sort();
        let mut view = IndexView {
            deltas: ids.len() as u64,
            ..IndexView::default()
        };
        let mut readable = HashSet::new();
        for batch in ids.chunks(64) {
            let read: Vec<_> = batch
                .par_iter()
                .map(|id| (*id, repo.read_index(id)))
                .collect();
            for (delta_id, delta) in read {
                let delta = match delta {
                    Ok(delta) => delta,
                    Err(e) if e.kind() == ErrorKind::Corrupt => {
                        self.problem(
                            ProblemKind::IndexDamaged,
                            format!("index {delta_id}"),
                            e.message().to_string(),
                        );
                        continue;
                    }
                    // Removed since the listing (a concurrent repair): not damage.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                readable.insert(delta_id);
                for pack in delta.packs {
                    let entry = view.packs.entry(pack.id).or_insert_with(|| IndexedPack {
                        size: pack.size,
                        blobs: Vec::new(),
                        deltas: Vec::new(),
                    });
                    entry.deltas.push(delta_id);
                    if entry.blobs.is_empty() {
                        entry.blobs = pack.blobs;
                    } else {
                        for blob in pack.blobs {
                            if !entry.blobs.contains(&blob) {
                                entry.blobs.push(blob);
                            }
                        }
                    }
                }
            }
        }
        // The cache may still hold entries of deltas that have been damaged
        // since it loaded them: make it hold exactly the readable ones, so a
        // lookup means what the repository says.
        if repo.cache().loaded_deltas()? != readable {
            repo.cache().clear()?;
            repo.sync_cache(&NoProgress)?;
        }
        self.check_packs(on_disk, &view)?;
        Ok(view)
    }

    fn check_packs(&mut self, on_disk: &HashMap<PackId, u64>, view: &IndexView) -> Result<()> {
        let mut to_read = Vec::new();
        for (id, pack) in &view.packs {
            let listed_by = pack
                .deltas
                .iter()
                .map(IndexId::short)
                .collect::<Vec<_>>()
                .join(", ");
            let found = on_disk.get(id);
            if found != Some(&pack.size) {
                let what = match found {
                    None => "it is not in data/".to_string(),
                    Some(size) => format!("it has {size} bytes, the index says {}", pack.size),
                };
                if self.rebuilt_by_parity(*id, &what)? {
                    continue;
                }
            }
            match found {
                None => {
                    let spare = self.spare_copies(id, &pack.blobs, on_disk)?;
                    let lost = pack.blobs.len() - spare;
                    let detail = if lost == 0 {
                        format!(
                            "index delta {listed_by} lists it, but it is not in data/; every blob in it has a second copy in another pack, so nothing is lost"
                        )
                    } else if spare > 0 {
                        format!(
                            "index delta {listed_by} lists it, but it is not in data/; {} lost ({} read from second copies)",
                            plural::count(lost, "blob in it is", "blobs in it are"),
                            plural::count(spare, "tree or chunk list", "trees and chunk lists")
                        )
                    } else {
                        format!(
                            "index delta {listed_by} lists it, but it is not in data/; {} lost",
                            plural::count(lost, "blob in it is", "blobs in it are")
                        )
                    };
                    self.pack_problem(ProblemKind::PackMissing, *id, detail);
                    if lost == 0 {
                        self.covered.insert(self.suspect_packs[id]);
                    }
                }
                Some(&size) if size != pack.size => {
                    self.pack_problem(
                        ProblemKind::PackSize,
                        *id,
                        format!(
                            "it has {size} bytes, index delta {listed_by} says {}: truncated or replaced; `snap check --read-data` tells which of its blobs survive",
                            pack.size
                        ),
                    );
                }
                Some(&size) => to_read.push((*id, size)),
            }
        }
        let repo = self.repo;
        let trailers: Vec<_> = to_read
            .par_iter()
            .map(|(id, size)| (*id, read_trailer(repo.backend(), repo.codec(), id, *size)))
            .collect();
        for (id, trailer) in trailers {
            let pack = &view.packs[&id];
            let trailer = match trailer {
                Ok(trailer) => trailer,
                Err(e)
                    if e.is_damage()
                        && self.rebuilt_by_parity(
                            id,
                            &format!("its trailer is unreadable ({})", e.message()),
                        )? =>
                {
                    continue;
                }
                Err(e) if e.is_damage() => {
                    self.pack_problem(
                        ProblemKind::PackDamaged,
                        id,
                        format!("its trailer is unreadable ({})", e.message()),
                    );
                    continue;
                }
                Err(e) => return Err(e),
            };
            let in_trailer: HashSet<EntryKey> = trailer.blobs.iter().map(entry_key).collect();
            let in_index: HashSet<EntryKey> = pack.blobs.iter().map(entry_key).collect();
            if in_trailer != in_index {
                let wrong: Vec<&BlobEntry> = pack
                    .blobs
                    .iter()
                    .filter(|b| !in_trailer.contains(&entry_key(b)))
                    .collect();
                let p = self.problem(
                    ProblemKind::TrailerMismatch,
                    format!("pack {id}"),
                    format!(
                        "its trailer lists {}, the index {}; {} not in the trailer",
                        plural::count(trailer.blobs.len(), "blob", "blobs"),
                        pack.blobs.len(),
                        plural::count(wrong.len(), "index entry is", "index entries are")
                    ),
                );
                for blob in wrong {
                    self.suspect_blobs.insert((id, blob.id), p);
                }
            }
        }
        Ok(())
    }

    /// Whether blob `id`, bad in pack `pack`, is a tree or chunk list
    /// with a copy in another pack that no check found a problem with.
    fn has_sound_copy(&self, pack: &PackId, id: &BlobId) -> Result<bool> {
        Ok(self.repo.cache().copies(id)?.iter().any(|c| {
            c.pack != *pack
                && !self.suspect_packs.contains_key(&c.pack)
                && !self.bad_blobs.contains_key(&(c.pack, *id))
        }))
    }

    /// Reports the packs that failed while trees and chunk lists were read
    /// during the walk, and whose second copies served instead (a pack
    /// damaged where `--read-data` did not look).
    fn note_second_copies(&mut self) {
        let (_, failed) = self.repo.second_copy_reads();
        for pack in failed {
            if self.suspect_packs.contains_key(&pack) || self.verified_packs.contains(&pack) {
                continue;
            }
            let p = self.problem(
                ProblemKind::PackDamaged,
                format!("pack {pack}"),
                "trees or chunk lists in it cannot be read; they were read from their second copies",
            );
            self.covered.insert(p);
        }
    }

    /// How many of `blobs` (stored in pack `pack`) have a copy in another
    /// pack in `on_disk`: trees and chunk lists are stored
    /// twice.
    fn spare_copies(
        &self,
        pack: &PackId,
        blobs: &[BlobEntry],
        on_disk: &HashMap<PackId, u64>,
    ) -> Result<usize> {
        let mut spare = 0;
        for blob in blobs.iter().filter(|b| b.kind != BlobKind::Data) {
            let copies = self.repo.cache().copies(&blob.id)?;
            if copies
                .iter()
                .any(|c| c.pack != *pack && on_disk.contains_key(&c.pack))
            {
                spare += 1;
            }
        }
        Ok(spare)
    }

    /// Reads the trailers of packs that no readable delta lists.
    fn check_orphans(
        &mut self,
        on_disk: &HashMap<PackId, u64>,
        view: &mut IndexView,
    ) -> Result<()> {
        let orphans: Vec<(PackId, u64)> = on_disk
            .iter()
            .filter(|(id, _)| !view.packs.contains_key(id))
            .map(|(id, size)| (*id, *size))
            .collect();
        let repo = self.repo;
        let trailers: Vec<_> = orphans
            .par_iter()
            .map(|(id, size)| (*id, read_trailer(repo.backend(), repo.codec(), id, *size)))
            .collect();
        for (id, trailer) in trailers {
            match trailer {
                Ok(trailer) => {
                    for blob in &trailer.blobs {
                        self.orphan_blobs.insert(blob.id, id);
                    }
                    view.orphans.insert(id, trailer.blobs);
                }
                Err(e) if e.is_damage() => {
                    // Packs are moved into data/ only once complete, so this is
                    // damage, not an interrupted write.
                    self.pack_problem(
                        ProblemKind::PackDamaged,
                        id,
                        format!(
                            "no index delta lists it and its trailer is unreadable ({})",
                            e.message()
                        ),
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Phase 2: reads `packs` in full, one reader thread ahead of the
    /// verification, which runs on the rayon pool blob by blob.
    fn read_data(
        &mut self,
        packs: &[PackId],
        on_disk: &HashMap<PackId, u64>,
        view: &IndexView,
    ) -> Result<()> {
        let repo: &'r Repository = self.repo;
        let backend = repo.backend();
        let wanted: Vec<PackId> = packs
            .iter()
            .filter(|id| on_disk.contains_key(id))
            .copied()
            .collect();
        self.progress.found(
            wanted.len() as u64,
            wanted.iter().map(|id| on_disk[id]).sum(),
        );
        self.progress.phase(Phase::Working);
        std::thread::scope(|scope| {
            // One pack queued while one is verified and one is being read.
            let (tx, rx) = crossbeam_channel::bounded(1);
            let wanted = &wanted;
            scope.spawn(move || {
                for id in wanted {
                    let bytes = backend.read(FileKind::Pack, &id.to_hex());
                    if tx.send((*id, bytes)).is_err() {
                        break;
                    }
                }
            });
            // Leaving early drops `rx`, which stops the reader.
            for (id, bytes) in rx {
                self.progress.current(&id.to_hex());
                self.verify_pack(id, bytes, view)?;
                self.progress.add_files(1);
            }
            Ok(())
        })
    }

    fn verify_pack(&mut self, id: PackId, bytes: Result<Vec<u8>>, view: &IndexView) -> Result<()> {
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) if e.is_damage() => {
                self.pack_problem(
                    ProblemKind::PackMissing,
                    id,
                    format!("it cannot be read ({})", e.message()),
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.packs_read += 1;
        self.bytes_read += bytes.len() as u64;
        let mut hasher = blake3::Hasher::new();
        hasher.update_rayon(&bytes);
        let mut hash_ok = hasher.finalize().as_bytes() == id.as_bytes();
        let mut bytes = bytes;
        // A pack its group rebuilds is judged by the rebuilt bytes.
        if !hash_ok
            && !self.suspect_packs.contains_key(&id)
            && let Some(rebuilt) = self.rebuilt_pack(id, "its bytes do not hash to its name")?
        {
            bytes = rebuilt.to_vec();
            hash_ok = true;
        }
        let entries: &[BlobEntry] = view
            .packs
            .get(&id)
            .map(|p| p.blobs.as_slice())
            .or_else(|| view.orphans.get(&id).map(Vec::as_slice))
            .unwrap_or_default();
        let verdicts: Vec<Verdict> = entries
            .par_iter()
            .map(|entry| {
                let start = entry.offset as usize;
                let Some(frame) = bytes.get(start..start + entry.length as usize) else {
                    return Ok(Verdict::Bad(entry.id));
                };
                // Trees are bounded before they are decompressed, as on every read.
                if entry.kind == BlobKind::Tree
                    && check_tree_size(&entry.id, entry.length, entry.raw_length).is_err()
                {
                    return Ok(Verdict::Bad(entry.id));
                }
                // A dictionary that cannot be loaded is damage of its own
                // (reported where it is stored), not of this blob or pack.
                let mut missing_dictionary = None;
                let decoded =
                    self.repo
                        .codec()
                        .decode_with(&entry.id, frame, entry.raw_length, &mut |d| {
                            self.repo.dictionary(d).inspect_err(|e| {
                                if e.is_damage() && *d != entry.id {
                                    missing_dictionary = Some((*d, e.message().to_string()));
                                }
                            })
                        });
                match (decoded, missing_dictionary) {
                    (Ok(_), _) => Ok(Verdict::Good),
                    (Err(_), Some((d, why))) => Ok(Verdict::Undecodable(entry.id, d, why)),
                    (Err(e), None) if e.kind() == ErrorKind::Corrupt => Ok(Verdict::Bad(entry.id)),
                    (Err(e), None) => Err(e),
                }
            })
            .collect::<Result<_>>()?;
        let mut bad = Vec::new();
        for verdict in verdicts {
            match verdict {
                Verdict::Good => {}
                Verdict::Bad(blob) => bad.push(blob),
                Verdict::Undecodable(blob, dictionary, why) => {
                    self.undecodable.insert((id, blob), (dictionary, why));
                }
            }
        }
        self.progress.add_bytes(bytes.len() as u64);
        if !hash_ok || !bad.is_empty() {
            let mut details = Vec::new();
            if !hash_ok {
                details.push(
                    self.with_parity_failure(id, "its bytes do not hash to its name".to_string()),
                );
            }
            if !bad.is_empty() {
                details.push(format!(
                    "{} of its {} {} verification",
                    bad.len(),
                    plural::count(entries.len(), "blob", "blobs"),
                    if bad.len() == 1 { "fails" } else { "fail" }
                ));
            }
            let detail = details.join(", ");
            // One problem per pack: damage found by reading joins the one
            // the structure check already reported.
            let p = match self.suspect_packs.get(&id) {
                Some(&p) => {
                    let mut problems = lock(&self.problems);
                    if !problems.drafts[p].details.contains(&detail) {
                        problems.drafts[p].details.push(detail);
                    }
                    p
                }
                None => self.problem(ProblemKind::PackDamaged, format!("pack {id}"), detail),
            };
            if hash_ok || !bad.is_empty() {
                let mut spare = true;
                for blob in &bad {
                    spare &= self.has_sound_copy(&id, blob)?;
                }
                if spare && !self.suspect_packs.contains_key(&id) {
                    self.covered.insert(p);
                }
            }
            for blob in bad {
                self.bad_blobs.insert((id, blob), p);
            }
        }
        self.verified_packs.insert(id);
        Ok(())
    }

    /// Reads every snapshot; returns the readable ones oldest first, and the
    /// ids of the damaged ones.
    fn read_snapshots(&self) -> Result<(Snapshots, Vec<SnapshotId>)> {
        let repo = self.repo;
        let (good, damaged) =
            repo.read_every_snapshot(|id| read_stored_snapshot(repo, id), true)?;
        for (id, e) in &damaged {
            self.problem(
                ProblemKind::SnapshotDamaged,
                format!("snapshot {id}"),
                e.message().to_string(),
            );
        }
        Ok((good, damaged.into_iter().map(|(id, _)| id).collect()))
    }

    /// Phase 3: the damage below every snapshot's root. A snapshot that
    /// stands for more paths than a walk follows, or whose damaged paths
    /// are too many to list, is damaged as a whole (restore refuses it).
    fn walk(
        &self,
        snapshots: &[(SnapshotId, Snapshot)],
    ) -> Result<Vec<(SnapshotId, Arc<[Damaged]>)>> {
        snapshots
            .par_iter()
            .map(|(id, snapshot)| {
                let walked = self.tree_damage(&snapshot.tree, 0)?;
                let whole = |detail: String| {
                    vec![Damaged {
                        path: Vec::new(),
                        kind: EntryKind::Dir,
                        problem: self.problem(
                            ProblemKind::TreeDamaged,
                            format!("tree {}", snapshot.tree),
                            detail,
                        ),
                    }]
                };
                let damaged = if walked.paths > MAX_WALK_PATHS {
                    whole(format!(
                        "its folders repeat subtrees so often that it stands for more than the {MAX_WALK_PATHS} paths a walk follows (a hostile repository); restore refuses it"
                    ))
                } else {
                    let mut out = Vec::new();
                    if walked.damage.flatten(&mut Vec::new(), &mut out) {
                        out
                    } else {
                        whole(format!(
                            "more than {MAX_DAMAGED_PATHS} of its paths are damaged"
                        ))
                    }
                };
                Ok((*id, damaged.into()))
            })
            .collect()
    }

    fn tree_damage(&self, id: &TreeId, depth: usize) -> Result<Walked> {
        if let Some(found) = lock(&self.tree_memo).get(id) {
            return Ok(found.clone());
        }
        let walked = self.walk_tree(id, depth)?;
        lock(&self.tree_memo).insert(*id, walked.clone());
        Ok(walked)
    }

    fn walk_tree(&self, id: &TreeId, depth: usize) -> Result<Walked> {
        let whole = |problem| Walked {
            damage: Arc::new(Damage::Here(EntryKind::Dir, problem)),
            paths: 0,
        };
        if depth >= MAX_TREE_DEPTH {
            return Ok(whole(self.problem(
                ProblemKind::TreeDamaged,
                format!("tree {id}"),
                format!("folders nested deeper than {MAX_TREE_DEPTH} levels"),
            )));
        }
        if let Some(p) = self.blob_problem(id)?.problem {
            return Ok(whole(p));
        }
        let tree = match self.repo.read_tree(id) {
            Ok(tree) => tree,
            Err(e) if e.is_damage() => {
                return Ok(whole(self.problem(
                    ProblemKind::TreeDamaged,
                    format!("tree {id}"),
                    e.message().to_string(),
                )));
            }
            Err(e) => return Err(e),
        };
        let parts = tree
            .nodes
            .par_iter()
            .map(|node| self.node_damage(node, depth))
            .collect::<Result<Vec<_>>>()?;
        let mut paths = 0u64;
        let mut below = Vec::new();
        for (node, (damage, node_paths)) in tree.nodes.iter().zip(parts) {
            paths = paths.saturating_add(1).saturating_add(node_paths);
            if let Some(damage) = damage {
                below.push((node.name.clone(), damage));
            }
        }
        Ok(Walked {
            damage: Arc::new(Damage::Below(below)),
            paths,
        })
    }

    /// A node's damage (None: none) and the paths below it.
    fn node_damage(&self, node: &Node, depth: usize) -> Result<(Option<Arc<Damage>>, u64)> {
        match (node.kind, node.subtree) {
            (NodeKind::File, _) => Ok((
                self.file_problem(node)?
                    .map(|problem| Arc::new(Damage::Here(EntryKind::File, problem))),
                0,
            )),
            (NodeKind::Dir, Some(subtree)) => {
                let walked = self.tree_damage(&subtree, depth + 1)?;
                let damaged = !matches!(&*walked.damage, Damage::Below(b) if b.is_empty());
                Ok((damaged.then_some(walked.damage), walked.paths))
            }
            _ => Ok((None, 0)),
        }
    }

    /// The first problem among the blobs a file needs (every one is judged,
    /// so the set of used blobs is complete); when they are all sound, the
    /// rule restore applies: the chunks must hold exactly the file's size.
    fn file_problem(&self, node: &Node) -> Result<Option<usize>> {
        let depth = node.content_depth.min(MAX_CONTENT_DEPTH);
        let mut content = Content::default();
        if let Some(dictionary) = &node.dictionary {
            content.problem = self.blob_problem(dictionary)?.problem;
        }
        for id in &node.content {
            content.add(if depth == 0 {
                Content::chunk(self.blob_problem(id)?)
            } else {
                self.list_content(id, depth)?
            });
        }
        if content.problem.is_some() {
            return Ok(content.problem);
        }
        Ok(node
            .check_content(content.chunks, content.bytes, content.empty_chunk)
            .err()
            .map(|e| {
                self.problem(
                    ProblemKind::FileDamaged,
                    format!("file {}", node.display_name()),
                    e.message().to_string(),
                )
            }))
    }

    /// Judges a chunk list of `depth` and everything below it.
    fn list_content(&self, id: &BlobId, depth: u8) -> Result<Content> {
        if let Some(found) = lock(&self.list_memo).get(&(*id, depth)) {
            return Ok(*found);
        }
        let judged = match self.blob_problem(id)?.problem {
            Some(p) => Content {
                problem: Some(p),
                ..Content::default()
            },
            None => match self
                .repo
                .read_blob(id)
                .and_then(|bytes| ChunkList::from_bytes(id, &bytes))
            {
                Ok(list) => {
                    let mut content = Content::default();
                    for child in &list.ids {
                        content.add(if depth <= 1 {
                            Content::chunk(self.blob_problem(child)?)
                        } else {
                            self.list_content(child, depth - 1)?
                        });
                    }
                    content
                }
                Err(e) if e.is_damage() => Content {
                    problem: Some(self.problem(
                        ProblemKind::BlobDamaged,
                        format!("chunk list {id}"),
                        e.message().to_string(),
                    )),
                    ..Content::default()
                },
                Err(e) => return Err(e),
            },
        };
        lock(&self.list_memo).insert((*id, depth), judged);
        Ok(judged)
    }

    /// Judges one blob by what the index and the pack checks found.
    fn blob_problem(&self, id: &BlobId) -> Result<Judged> {
        if let Some(found) = lock(&self.blob_memo).get(id) {
            return Ok(*found);
        }
        let location = self.repo.cache().lookup(id)?;
        let problem = match &location {
            None => Some(match self.orphan_blobs.get(id) {
                Some(pack) => self.problem(
                    ProblemKind::PackUnindexed,
                    format!("pack {pack}"),
                    "no index delta lists it, but snapshots use blobs in it (the delta that listed it is damaged or missing)",
                ),
                None => self.problem(
                    ProblemKind::BlobMissing,
                    format!("blob {id}"),
                    "it is in no index delta and in no pack",
                ),
            }),
            Some(at) => match self.stored_problem(&at.pack, id) {
                // A tree or chunk list is as good as its best copy.
                Some(p) if at.kind != BlobKind::Data => {
                    let copies = self.repo.cache().copies(id)?;
                    let sound = copies.iter().any(|c| {
                        c.pack != at.pack
                            && self.stored_problem(&c.pack, id).is_none()
                            && !self.undecodable.contains_key(&(c.pack, *id))
                    });
                    (!sound).then_some(p)
                }
                Some(p) => Some(p),
                // Read in full, but its dictionary could not be loaded: it is
                // as good as its dictionary, which stands for the damage.
                None => self.undecodable.get(&(at.pack, *id)).map(|(dictionary, why)| {
                    self.repo
                        .cache()
                        .lookup(dictionary)
                        .ok()
                        .flatten()
                        .and_then(|d| self.stored_problem(&d.pack, dictionary))
                        .unwrap_or_else(|| {
                            self.problem(
                                ProblemKind::BlobDamaged,
                                format!("dictionary {dictionary}"),
                                why.clone(),
                            )
                        })
                }),
            },
        };
        let judged = Judged {
            problem,
            raw_length: location.map(|at| at.raw_length),
        };
        // Two threads may judge the same blob at once; count it once.
        if lock(&self.blob_memo).insert(*id, judged).is_none() && location.is_some() {
            self.indexed_used.fetch_add(1, Ordering::Relaxed);
        }
        Ok(judged)
    }

    /// What phases 1 and 2 found about a blob stored in `pack`.
    fn stored_problem(&self, pack: &PackId, id: &BlobId) -> Option<usize> {
        if let Some(&p) = self.bad_blobs.get(&(*pack, *id)) {
            Some(p)
        } else if self.verified_packs.contains(pack) {
            None
        } else {
            self.suspect_blobs
                .get(&(*pack, *id))
                .or_else(|| self.suspect_packs.get(pack))
                .copied()
        }
    }

    fn report(self, input: ReportInput<'_>) -> Result<CheckReport> {
        let problems = into_inner(self.problems);
        let position: HashMap<SnapshotId, usize> = input
            .snapshots
            .iter()
            .map(|(id, _)| *id)
            .chain(input.damaged_snapshots.iter().copied())
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        type Paths = BTreeMap<(usize, SnapshotId), BTreeSet<RawPath>>;
        let mut affected: Vec<Paths> = vec![BTreeMap::new(); problems.drafts.len()];
        let index_damaged: Vec<usize> = (0..problems.drafts.len())
            .filter(|&i| problems.drafts[i].kind == ProblemKind::IndexDamaged)
            .collect();
        let mut damaged: BTreeMap<SnapshotId, BTreeSet<DamagedEntry>> = BTreeMap::new();
        for (snapshot, entries) in &input.damaged {
            let key = (position[snapshot], *snapshot);
            for entry in entries.iter() {
                affected[entry.problem]
                    .entry(key)
                    .or_default()
                    .insert(entry.path.clone());
                // What lost its index entries is what the damaged deltas cost.
                if matches!(
                    problems.drafts[entry.problem].kind,
                    ProblemKind::PackUnindexed | ProblemKind::BlobMissing
                ) {
                    for &i in &index_damaged {
                        affected[i]
                            .entry(key)
                            .or_default()
                            .insert(entry.path.clone());
                    }
                }
                damaged.entry(*snapshot).or_default().insert(DamagedEntry {
                    path: entry.path.clone(),
                    kind: entry.kind,
                });
            }
        }
        for id in &input.damaged_snapshots {
            if let Some(&i) = problems
                .by_key
                .get(&(ProblemKind::SnapshotDamaged, format!("snapshot {id}")))
            {
                affected[i]
                    .entry((position[id], *id))
                    .or_default()
                    .insert(Vec::new());
            }
        }
        let mut errors: Vec<Problem> = problems
            .drafts
            .iter()
            .zip(affected)
            .enumerate()
            .map(|(i, (draft, paths))| Problem {
                kind: draft.kind,
                object: draft.object.clone(),
                message: format!(
                    "{}; {}",
                    draft.details.join("; "),
                    if self.covered.contains(&i) {
                        COVERED_HINT
                    } else {
                        draft.kind.hint()
                    }
                ),
                affected: paths
                    .into_iter()
                    .map(|((_, snapshot), paths)| Affected {
                        snapshot,
                        paths: paths.iter().map(|p| display_path(p)).collect(),
                    })
                    .collect(),
            })
            .collect();
        errors.sort_by(|a, b| (a.kind, &a.object).cmp(&(b.kind, &b.object)));

        let mut cleanup = Vec::new();
        let mut orphans: Vec<&PackId> = input.index.orphans.keys().collect();
        orphans.sort();
        for id in orphans {
            let object = format!("pack {id}");
            if problems
                .by_key
                .contains_key(&(ProblemKind::PackUnindexed, object.clone()))
            {
                continue;
            }
            cleanup.push(Cleanup {
                kind: CleanupKind::OrphanPack,
                object,
                message: "no index delta lists it and no snapshot uses its blobs (left by an interrupted backup); `snap prune` removes it".into(),
                bytes: input.on_disk.get(id).copied().unwrap_or(0),
            });
        }
        let (indexed, _) = self.repo.cache().counts()?;
        let unused = indexed.saturating_sub(self.indexed_used.load(Ordering::Relaxed));
        if unused > 0 {
            cleanup.push(Cleanup {
                kind: CleanupKind::UnreferencedBlobs,
                object: "index".into(),
                message: format!(
                    "{unused} of {indexed} indexed blobs are used by no snapshot (forgotten snapshots, interrupted backups); `snap prune` removes them"
                ),
                bytes: 0,
            });
        }
        cleanup.extend(temp_files(self.repo));

        let snapshots = (input.snapshots.len() + input.damaged_snapshots.len()) as u64;
        let blobs = lock(&self.blob_memo).len() as u64;
        Ok(CheckReport {
            ok: errors.is_empty(),
            errors,
            cleanup,
            snapshots,
            index_files: input.index.deltas,
            packs: input.on_disk.len() as u64,
            // Distinct trees: every tree walked has one memo entry, however
            // many snapshots or folders share it and whichever thread got there.
            trees: lock(&self.tree_memo).len() as u64,
            blobs,
            packs_read: self.packs_read,
            bytes_read: self.bytes_read,
            damaged,
            damaged_snapshots: input.damaged_snapshots,
            parity: None,
        })
    }
}

/// Reads a snapshot, verifying the file as stored: the index cache may
/// hold a copy of it, which must not hide damage to the file itself.
fn read_stored_snapshot(repo: &Repository, id: &SnapshotId) -> Result<Snapshot> {
    let bytes = repo.backend().read(FileKind::Snapshot, &id.to_hex())?;
    if SnapshotId::of(&bytes) != *id {
        return Err(Error::corrupt(
            format!("snapshot {id}"),
            "its content does not match its name",
        ));
    }
    repo.read_snapshot(id)
}

/// Files in the repository's `tmp/` folder.
fn temp_files(repo: &Repository) -> Vec<Cleanup> {
    let Ok(entries) = std::fs::read_dir(repo.backend().temp_dir()) else {
        return Vec::new();
    };
    let mut out: Vec<Cleanup> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| Cleanup {
            kind: CleanupKind::TempFile,
            object: format!("tmp/{}", e.file_name().to_string_lossy()),
            message: "left by an interrupted snap process; the next backup removes it once it is an hour old".into(),
            bytes: e.metadata().map_or(0, |m| m.len()),
        })
        .collect();
    out.sort_by(|a, b| a.object.cmp(&b.object));
    out
}

/// A path inside a snapshot as `snap ls` prints it; `/` for the root.
pub fn display_path(path: &[Vec<u8>]) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.iter()
        .map(|name| crate::format::tree::escape_name(name))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse_and_cover_every_pack_once() {
        assert_eq!(
            "2/5".parse::<ReadData>().unwrap(),
            ReadData::Slice { n: 2, m: 5 }
        );
        assert_eq!(
            "12.5%".parse::<ReadData>().unwrap(),
            ReadData::Percent(12.5)
        );
        for bad in ["0/3", "4/3", "1/0", "x", "0%", "101%", "1/", "/2"] {
            assert!(bad.parse::<ReadData>().is_err(), "{bad}");
        }
        for i in 0..200u8 {
            let id = PackId::of(&[i]);
            let slices: Vec<u64> = (1..=7).filter(|&n| slice_of(&id, 7) == n).collect();
            assert_eq!(slices.len(), 1);
        }
    }

    #[test]
    fn root_path_is_a_slash() {
        assert_eq!(display_path(&[]), "/");
        assert_eq!(
            display_path(&[b"a".to_vec(), b"b\xff".to_vec()]),
            "a/b\\xff"
        );
    }
}
