//! A Bloom filter of the ids in the cache's `blobs` table (the rows added
//! since the run file was written), so that asking the cache about a blob
//! it lacks, which a backup does for every new chunk, seldom descends
//! redb's B-tree: that table grows by every blob a backup stores, and with
//! a page cache of a few MiB most of its leaves come from `pread`.
//!
//! It holds no id, only bits, and can only be wrong one way: it may say
//! "maybe" for a blob the table lacks (about 1% of them), never "no" for
//! one it holds. Blob ids are hashes, so their own bytes serve as the
//! filter's hash functions.
//!
//! Layers: a filter is sized for a number of ids, and when they are in, a
//! new layer [`GROWTH`] (four) times larger takes the next ones (a blob is "maybe" if
//! any layer says so), so the filter never needs the table's rows again.
//! It takes 10 bits an id, 1.25 MiB for a million new blobs; past
//! [`MAX_IDS`] it stops growing and says "maybe" for everything.

use std::sync::RwLock;

/// Bits a layer takes per id it is sized for: with [`PROBES`] probes,
/// under 1% of absent ids pass a full layer.
const BITS_PER_ID: usize = 10;
/// Bits looked at per id: the id's first 28 bytes, 4 at a time.
const PROBES: usize = 7;
/// Ids the first layer is sized for (80 KiB).
const FIRST_IDS: usize = 1 << 16;
/// How many times more ids each layer is sized for than the one before.
const GROWTH: usize = 4;
/// Ids the first two layers hold (400 KiB): the cache merges its table into
/// the run file before a third is needed (`MERGE_IDS` in `mod.rs`).
pub const TWO_LAYERS: usize = FIRST_IDS * (1 + GROWTH);
/// Ids past which the filter gives up: layers for 4 million ids take
/// 5 MiB, and a full run file is due by then (see `compact_if_sparse`).
const MAX_IDS: usize = 1 << 22;

/// One Bloom filter of a fixed size. Its words start zeroed by the
/// allocator, so a large layer's pages are only resident once written.
struct Layer {
    words: Vec<u64>,
    bits: u64,
    capacity: usize,
    ids: usize,
}

impl Layer {
    fn new(capacity: usize) -> Self {
        let bits = (capacity * BITS_PER_ID) as u64;
        Self {
            words: vec![0; bits.div_ceil(64) as usize],
            bits,
            capacity,
            ids: 0,
        }
    }

    /// The bits of `id` as word index and mask: each probe's 4 bytes are
    /// mapped onto the layer's bits by a multiply and shift.
    fn probes(&self, id: &[u8; 32]) -> [(usize, u64); PROBES] {
        std::array::from_fn(|i| {
            let word = u32::from_le_bytes(id[4 * i..4 * i + 4].try_into().expect("4 bytes"));
            let bit = (u64::from(word) * self.bits) >> 32;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn may_hold(&self, id: &[u8; 32]) -> bool {
        self.probes(id)
            .iter()
            .all(|&(word, mask)| self.words[word] & mask != 0)
    }

    fn insert(&mut self, id: &[u8; 32]) {
        for (word, mask) in self.probes(id) {
            self.words[word] |= mask;
        }
        self.ids += 1;
    }
}

struct Layers {
    layers: Vec<Layer>,
    /// Too many ids: every question is answered "maybe".
    given_up: bool,
    /// See [`MAX_IDS`] (smaller in tests).
    max_ids: usize,
}

/// The filter; see the module docs. Safe to ask from many threads; adding
/// takes it for a moment.
pub struct RecentFilter {
    inner: RwLock<Layers>,
}

impl RecentFilter {
    /// An empty filter (the table is empty).
    pub fn new() -> Self {
        Self::with_max(MAX_IDS)
    }

    fn with_max(max_ids: usize) -> Self {
        Self {
            inner: RwLock::new(Layers {
                layers: vec![Layer::new(FIRST_IDS.min(max_ids))],
                given_up: false,
                max_ids,
            }),
        }
    }

    /// Whether the table may hold `id`; `false` means it does not.
    pub fn may_hold(&self, id: &[u8; 32]) -> bool {
        let inner = self.inner.read().expect("filter lock");
        inner.given_up || inner.layers.iter().any(|layer| layer.may_hold(id))
    }

    /// Records that the table holds `ids`. Called before their rows are
    /// committed, so that no reader finds a row whose bits are not set.
    pub fn insert<'a>(&self, ids: impl IntoIterator<Item = &'a [u8; 32]>) {
        let mut inner = self.inner.write().expect("filter lock");
        for id in ids {
            if inner.given_up {
                return;
            }
            let last = inner.layers.last().expect("one layer at least");
            if last.ids >= last.capacity {
                let total: usize = inner.layers.iter().map(|l| l.capacity).sum();
                if total >= inner.max_ids {
                    inner.given_up = true;
                    inner.layers = Vec::new();
                    return;
                }
                let next = Layer::new(last.capacity * GROWTH);
                inner.layers.push(next);
            }
            inner
                .layers
                .last_mut()
                .expect("one layer at least")
                .insert(id);
        }
    }

    /// Ids recorded since the filter was made or cleared (`usize::MAX`
    /// once it gave up).
    pub fn ids(&self) -> usize {
        let inner = self.inner.read().expect("filter lock");
        if inner.given_up {
            usize::MAX
        } else {
            inner.layers.iter().map(|layer| layer.ids).sum()
        }
    }

    /// Forgets every id (the table was emptied).
    pub fn clear(&self) {
        let mut inner = self.inner.write().expect("filter lock");
        inner.layers = vec![Layer::new(FIRST_IDS.min(inner.max_ids))];
        inner.given_up = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> [u8; 32] {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    #[test]
    fn says_maybe_for_every_id_in_and_no_for_most_others() {
        let filter = RecentFilter::new();
        // Past the first two layers, so that three answer.
        let inside = 400_000u64;
        let ids: Vec<_> = (0..inside).map(id).collect();
        for batch in ids.chunks(10_000) {
            filter.insert(batch);
        }
        assert_eq!(filter.inner.read().unwrap().layers.len(), 3);
        assert!((0..inside).all(|n| filter.may_hold(&id(n))));
        let passed = (inside..inside + 100_000)
            .filter(|&n| filter.may_hold(&id(n)))
            .count();
        // Three layers, each under 1% when full (the last is not).
        assert!(passed < 2_000, "{passed} of 100000 absent ids passed");
        filter.clear();
        assert!((0..1000).all(|n| !filter.may_hold(&id(n))));
    }

    #[test]
    fn an_empty_filter_says_no() {
        let filter = RecentFilter::new();
        assert!(!filter.may_hold(&[0; 32]));
        assert!(!filter.may_hold(&[0xff; 32]));
        filter.insert([&[0xff; 32]]);
        assert!(filter.may_hold(&[0xff; 32]));
    }

    #[test]
    fn gives_up_past_its_largest_size_and_then_says_maybe() {
        // A layer for 100 ids, then it gives up.
        let filter = RecentFilter::with_max(100);
        let ids: Vec<_> = (0..500).map(id).collect();
        filter.insert(&ids[..100]);
        assert!(!filter.inner.read().unwrap().given_up);
        filter.insert(&ids[100..]);
        assert!(filter.inner.read().unwrap().given_up);
        assert!(filter.may_hold(&id(10_000)));
        filter.clear();
        assert!(!filter.may_hold(&id(10_000)));
        assert!(!filter.inner.read().unwrap().given_up);
    }
}
