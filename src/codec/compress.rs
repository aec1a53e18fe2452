//! zstd compression of blob plaintext. Every blob is one standard zstd frame,
//! so `zstd -d` recovers it; zstd itself stores incompressible blocks raw, so
//! already-compressed data grows by a few bytes per 128 KiB at most.
//!
//! Blobs compressed with a dictionary (the small pages of SQLite images, see
//! docs/SQLITE.md) start with a zstd skippable frame naming the dictionary
//! blob, which `zstd -d` skips: `zstd -d -D <dictionary>` recovers them.

use std::cell::RefCell;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, LazyLock, Mutex, MutexGuard, PoisonError};

use crate::id::BlobId;
use crate::sync::{cores, file_workers};

thread_local! {
    // Decompression contexts are small (the tables of one frame); one per
    // thread, reused for every blob.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    static DICT_DECOMPRESSOR: RefCell<Option<(BlobId, zstd::bulk::Decompressor<'static>)>> = const { RefCell::new(None) };
}

/// A zstd compression context, the level and the dictionary (if any) it
/// was made for.
struct Context {
    level: i32,
    dictionary: Option<BlobId>,
    compressor: zstd::bulk::Compressor<'static>,
}

/// The process's zstd compression contexts for large inputs, at most one
/// per core (small inputs have [`SMALL_CONTEXTS`]).
///
/// A context holds megabytes of tables, so it is made once and reused for
/// every blob. A backup runs more worker threads than cores (most of them
/// wait for the disk at any time when the files are not cached), so one
/// context per thread would make memory grow with the thread count; here
/// the threads share one context per core instead, and a thread that finds
/// them all busy waits for one, which also keeps compression to one thread
/// per core. Compressing is the only thing done while a context is held,
/// so the wait always ends.
struct Contexts {
    state: Mutex<ContextsState>,
    returned: Condvar,
    limit: usize,
}

struct ContextsState {
    idle: Vec<Context>,
    /// Contexts made so far (idle or in use).
    made: usize,
    /// Threads waiting for a context: a context given back wakes one only
    /// when there is one (a `notify_one` is a system call even when no
    /// thread waits, and it came once per small file).
    waiting: usize,
}

static CONTEXTS: LazyLock<Contexts> = LazyLock::new(|| Contexts::new(cores()));

/// Inputs up to this size are compressed with [`SMALL_CONTEXTS`]: zstd
/// sizes its tables to the input (for 16 KiB and less, tables of 16 KiB),
/// so such a context takes about 150 KiB instead of megabytes.
const SMALL_INPUT: usize = 16 << 10;

/// Contexts for inputs of at most [`SMALL_INPUT`] without a dictionary
/// (small files, most trees): as many as a backup has walk workers
/// ([`file_workers`]), which then compress small files without waiting
/// for each other. With one context per core, each of them waited for a
/// context, a sleep and a wake-up per file: a backup of 300,000 small files
/// spent 8% of its time (a third of its system time) on them. They take
/// about 2.5 MiB in all.
static SMALL_CONTEXTS: LazyLock<Contexts> = LazyLock::new(|| Contexts::new(file_workers()));

impl Contexts {
    fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(ContextsState {
                idle: Vec::new(),
                made: 0,
                waiting: 0,
            }),
            returned: Condvar::new(),
            limit,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ContextsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes a thread waiting for a context, if any, once `state` is
    /// unlocked.
    fn wake_one(&self, state: MutexGuard<'_, ContextsState>) {
        let someone = state.waiting > 0;
        drop(state);
        if someone {
            self.returned.notify_one();
        }
    }

    /// Runs `f` with a context for `level` and `dictionary`: an idle one made
    /// for them, else a new one while fewer than `limit` exist, else an idle
    /// one set to them, else the next one returned. Setting a context to
    /// another level or dictionary keeps its tables' memory, so blobs of
    /// mixed levels (small ones, `BlobCodec`) or dictionaries (databases)
    /// cost no new context each.
    fn with<T>(
        &self,
        level: i32,
        dictionary: Option<&Dictionary>,
        f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> io::Result<T>,
    ) -> io::Result<T> {
        let id = dictionary.map(|d| d.id);
        let mut state = self.lock();
        let found = loop {
            if let Some(i) = state
                .idle
                .iter()
                .position(|c| c.level == level && c.dictionary == id)
            {
                break Some(state.idle.swap_remove(i));
            }
            if state.made < self.limit {
                state.made += 1;
                break None;
            }
            if let Some(other) = state.idle.pop() {
                break Some(other);
            }
            state.waiting += 1;
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        };
        drop(state);
        let dictionary_bytes = dictionary.map_or(&[][..], Dictionary::bytes);
        let made =
            match found {
                Some(mut context) if context.level != level || context.dictionary != id => context
                    .compressor
                    .set_dictionary(level, dictionary_bytes)
                    .map(|()| Context {
                        level,
                        dictionary: id,
                        ..context
                    }),
                Some(context) => Ok(context),
                None => zstd::bulk::Compressor::with_dictionary(level, dictionary_bytes).map(
                    |compressor| Context {
                        level,
                        dictionary: id,
                        compressor,
                    },
                ),
            };
        let mut context = match made {
            Ok(context) => context,
            Err(e) => {
                // The context is dropped: one fewer exists.
                let mut state = self.lock();
                state.made -= 1;
                self.wake_one(state);
                return Err(e);
            }
        };
        let result = f(&mut context.compressor);
        let mut state = self.lock();
        state.idle.push(context);
        self.wake_one(state);
        result
    }
}

/// Magic of the skippable frame that names a blob's dictionary (zstd
/// reserves 0x184D2A50-0x184D2A5F for skippable frames).
const DICTIONARY_MAGIC: u32 = 0x184D_2A5E;

/// Bytes of that frame: magic, length (32), dictionary id.
pub const DICTIONARY_HEADER_LEN: usize = 40;

/// Largest dictionary snap trains or accepts.
pub const MAX_DICTIONARY_LEN: usize = 112 << 10;

/// A zstd dictionary stored as a data blob under `id`.
#[derive(Clone)]
pub struct Dictionary {
    /// The id of the blob holding it.
    pub id: BlobId,
    bytes: Arc<Vec<u8>>,
}

impl Dictionary {
    /// The dictionary in `bytes`, stored as blob `id`.
    pub fn new(id: BlobId, bytes: Vec<u8>) -> Self {
        Self {
            id,
            bytes: Arc::new(bytes),
        }
    }

    /// Its bytes (a zstd dictionary, as `zstd --train` writes them).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Trains a dictionary of at most `size` bytes on `samples`.
pub fn train(samples: &[&[u8]], size: usize) -> io::Result<Vec<u8>> {
    zstd::dict::from_samples(samples, size.min(MAX_DICTIONARY_LEN))
}

/// Compresses `data` with `dictionary` into the dictionary header and one
/// zstd frame.
pub fn compress_with(
    data: &[u8],
    level: i32,
    dictionary: &Dictionary,
) -> crate::error::Result<Vec<u8>> {
    CONTEXTS
        .with(level, Some(dictionary), |compressor| {
            let mut out = Vec::with_capacity(DICTIONARY_HEADER_LEN + data.len() / 2);
            out.extend_from_slice(&DICTIONARY_MAGIC.to_le_bytes());
            out.extend_from_slice(&32u32.to_le_bytes());
            out.extend_from_slice(&dictionary.id.0);
            out.extend_from_slice(&compressor.compress(data)?);
            Ok(out)
        })
        .map_err(|e: io::Error| {
            crate::error::Error::new(
                crate::error::ErrorKind::Io,
                format!("zstd compression failed: {e}"),
            )
        })
}

/// The dictionary a compressed blob names, and the frame after the header;
/// `None` for a blob compressed without one.
pub fn split_dictionary(compressed: &[u8]) -> Option<(BlobId, &[u8])> {
    let header = compressed.get(..DICTIONARY_HEADER_LEN)?;
    if header[..4] != DICTIONARY_MAGIC.to_le_bytes() || header[4..8] != 32u32.to_le_bytes() {
        return None;
    }
    let id = BlobId(header[8..].try_into().expect("32 bytes"));
    Some((id, &compressed[DICTIONARY_HEADER_LEN..]))
}

/// Decompresses one zstd frame compressed with `dictionary`, whose content is
/// at most `max_len` bytes.
pub fn decompress_with(
    frame: &[u8],
    max_len: usize,
    dictionary: &Dictionary,
) -> io::Result<Vec<u8>> {
    if max_len > BULK_LIMIT {
        let mut out = Vec::new();
        let decoder = zstd::stream::read::Decoder::with_dictionary(
            io::BufReader::new(frame),
            dictionary.bytes(),
        )?;
        decoder.take(max_len as u64 + 1).read_to_end(&mut out)?;
        return bounded(out, max_len);
    }
    DICT_DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(id, _)| *id != dictionary.id) {
            let decompressor = zstd::bulk::Decompressor::with_dictionary(dictionary.bytes())?;
            *slot = Some((dictionary.id, decompressor));
        }
        let (_, decompressor) = slot.as_mut().expect("just set");
        decompressor.decompress(frame, max_len)
    })
}

fn bounded(out: Vec<u8>, max_len: usize) -> io::Result<Vec<u8>> {
    if out.len() > max_len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("content exceeds {max_len} bytes"),
        ));
    }
    Ok(out)
}

/// Compresses `data` into one zstd frame at `level`.
pub fn compress(data: &[u8], level: i32) -> crate::error::Result<Vec<u8>> {
    let contexts = if data.len() <= SMALL_INPUT {
        &SMALL_CONTEXTS
    } else {
        &CONTEXTS
    };
    contexts
        .with(level, None, |compressor| compressor.compress(data))
        .map_err(|e| {
            crate::error::Error::new(
                crate::error::ErrorKind::Io,
                format!("zstd compression failed: {e}"),
            )
        })
}

/// Up to this size, decompression allocates the bound up front (fastest).
const BULK_LIMIT: usize = 64 << 20;

/// Decompresses one zstd frame whose content is at most `max_len` bytes.
/// A frame claiming more is an error; memory grows with the real content,
/// never with a bound a hostile index or trailer claims.
pub fn decompress(frame: &[u8], max_len: usize) -> io::Result<Vec<u8>> {
    if max_len <= BULK_LIMIT {
        return DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(zstd::bulk::Decompressor::new()?);
            }
            slot.as_mut().expect("just set").decompress(frame, max_len)
        });
    }
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::with_buffer(frame)?;
    decoder.take(max_len as u64 + 1).read_to_end(&mut out)?;
    bounded(out, max_len)
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
    fn dictionary_frames_name_their_dictionary_and_round_trip() {
        let pages: Vec<Vec<u8>> = (0..200u32)
            .map(|i| {
                format!("page {i}: the quiet morning light on the beach {}", i * 7)
                    .repeat(60)
                    .into_bytes()
            })
            .collect();
        let samples: Vec<&[u8]> = pages.iter().map(Vec::as_slice).collect();
        let bytes = train(&samples, 16 << 10).unwrap();
        let dictionary = Dictionary::new(BlobId([7; 32]), bytes);
        let data = b"page 999: the quiet morning light on the beach 6993".repeat(50);
        let with = compress_with(&data, 3, &dictionary).unwrap();
        let (id, frame) = split_dictionary(&with).unwrap();
        assert_eq!(id, dictionary.id);
        assert!(with.len() < compress(&data, 3).unwrap().len() + DICTIONARY_HEADER_LEN);
        assert_eq!(
            decompress_with(frame, data.len(), &dictionary).unwrap(),
            data
        );
        assert!(decompress_with(frame, data.len() - 1, &dictionary).is_err());
        // Without the dictionary the frame does not decode.
        assert!(decompress(frame, data.len()).is_err());
        assert!(split_dictionary(&compress(&data, 3).unwrap()).is_none());
    }

    #[test]
    fn threads_waiting_for_a_context_are_woken_when_one_is_given_back() {
        // One context for four threads: most of the time three of them wait.
        // A wake-up lost leaves a thread waiting for ever (the timeout).
        let contexts = Arc::new(Contexts::new(1));
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..4 {
            let (contexts, done) = (Arc::clone(&contexts), done.clone());
            std::thread::spawn(move || {
                let data = format!("thread {t} compresses this line again. ").repeat(50);
                for _ in 0..300 {
                    let frame = contexts
                        .with(1, None, |c| c.compress(data.as_bytes()))
                        .unwrap();
                    assert_eq!(decompress(&frame, data.len()).unwrap(), data.as_bytes());
                }
                done.send(()).unwrap();
            });
        }
        for _ in 0..4 {
            finished
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a thread waited for a context that was given back");
        }
        let state = contexts.lock();
        assert_eq!((state.made, state.idle.len(), state.waiting), (1, 1, 0));
    }

    #[test]
    fn contexts_set_to_another_level_or_dictionary_compress_as_new_ones() {
        let pages: Vec<Vec<u8>> = (0..200u32)
            .map(|i| {
                format!("row {i}: a note about the garden {}", i * 3)
                    .repeat(40)
                    .into_bytes()
            })
            .collect();
        let samples: Vec<&[u8]> = pages.iter().map(Vec::as_slice).collect();
        // An id no other test uses: contexts are kept by dictionary id, which
        // names the dictionary's bytes (tests run at once share them).
        let dictionary = Dictionary::new(BlobId([0x5a; 32]), train(&samples, 8 << 10).unwrap());
        let data = b"row 4242: a note about the garden 12726, and more".repeat(30);
        // More rounds than contexts exist, from many threads, so that
        // contexts are handed from level to level and to and from the
        // dictionary: every frame must be the one a fresh context makes.
        std::thread::scope(|scope| {
            for thread in 0..8 {
                let (data, dictionary) = (&data, &dictionary);
                scope.spawn(move || {
                    for round in 0..50 {
                        match (thread + round) % 4 {
                            0 => assert_eq!(
                                compress(data, 1).unwrap(),
                                zstd::bulk::compress(data, 1).unwrap()
                            ),
                            1 => assert_eq!(
                                compress(data, 19).unwrap(),
                                zstd::bulk::compress(data, 19).unwrap()
                            ),
                            2 => {
                                let with = compress_with(data, 3, dictionary).unwrap();
                                let (_, frame) = split_dictionary(&with).unwrap();
                                assert_eq!(
                                    decompress_with(frame, data.len(), dictionary).unwrap(),
                                    *data
                                );
                            }
                            _ => {
                                // No dictionary left over from the round before.
                                let frame = compress(data, 3).unwrap();
                                assert_eq!(frame, zstd::bulk::compress(data, 3).unwrap());
                                assert_eq!(decompress(&frame, data.len()).unwrap(), *data);
                            }
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn bounded_decompression() {
        let frame = compress(&[0u8; 10_000], 3).unwrap();
        assert!(decompress(&frame, 9_999).is_err());
    }
}
