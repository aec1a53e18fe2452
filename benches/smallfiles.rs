//! The per-file cost of a backup of many small files, stage by stage and
//! whole, so that a regression shows up without running the peers
//! (`benches/scripts/bench-scale.sh` compares with restic).
//!
//! `cargo bench --bench smallfiles` (under a minute on two cores). The tree
//! is 6,000 generated text files of 0.1-3 KB in 60 folders of 100, like the
//! trees of bench-scale.sh; `SNAP_BENCH_FILES` sets another count. Each
//! stage reports files per second:
//!
//! - `open_read`: open each file and read it through the chunker, as the
//!   backup does (page cache warm);
//! - `hash`: the blob id of each file's bytes;
//! - `compress`: zstd at the repository's default level, one frame per file;
//! - `index_add`: one blob entry per file added to a fresh index cache;
//! - `first_backup`: `snap::backup` of the whole tree into a fresh repository.

use std::hint::black_box;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use snap::id::{IndexId, PackId};
use snap::internals::codec::compress::compress;
use snap::internals::codec::{Chunker, ChunkerParams, Hasher};
use snap::internals::format::index::{IndexDelta, PackIndex};
use snap::internals::format::pack::{BlobEntry, BlobKind};
use snap::internals::index::IndexCache;
use snap::{BackupOptions, InitOptions};

mod common;
use common::{XorShift, text};

const DEFAULT_FILES: usize = 6_000;
const FILES_PER_FOLDER: usize = 100;
/// Blob entries per pack in the index stage: about what a pack of
/// compressed small files holds.
const BLOBS_PER_PACK: usize = 1_000;

fn file_count() -> usize {
    std::env::var("SNAP_BENCH_FILES").map_or(DEFAULT_FILES, |n| {
        n.replace('_', "")
            .parse()
            .expect("SNAP_BENCH_FILES: a file count")
    })
}

/// Writes `count` files of 100-3000 bytes of text under `root`, 100 to a
/// folder; returns their paths and contents.
fn write_tree(root: &Path, count: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let mut rng = XorShift(17);
    (0..count)
        .map(|i| {
            let folder = root.join(format!("d{:03}", i / FILES_PER_FOLDER));
            if i % FILES_PER_FOLDER == 0 {
                std::fs::create_dir_all(&folder).expect("source folder created");
            }
            let path = folder.join(format!("f{:03}.txt", i % FILES_PER_FOLDER));
            let bytes = text(100 + rng.below(2901), i as u64 + 1);
            std::fs::write(&path, &bytes).expect("source file written");
            (path, bytes)
        })
        .collect()
}

fn small_files(c: &mut Criterion) {
    let count = file_count();
    let source = tempfile::tempdir().expect("temporary folder");
    let root = source.path().join("tree");
    let files = write_tree(&root, count);
    let level = InitOptions::default().compression;
    let chunker = Chunker::new(ChunkerParams::FILES);

    let mut group = c.benchmark_group("smallfiles");
    group.throughput(Throughput::Elements(count as u64));

    group.bench_function("open_read", |b| {
        b.iter(|| {
            let mut read = 0u64;
            for (path, _) in &files {
                let file = std::fs::File::open(path).expect("source file opens");
                read += chunker
                    .chunk_batches::<_, io::Error>(&file, 3000, |batch| {
                        black_box(batch.len());
                        Ok(())
                    })
                    .expect("source file reads");
            }
            black_box(read)
        });
    });

    group.bench_function("hash", |b| {
        b.iter(|| {
            for (_, bytes) in &files {
                black_box(Hasher::Plain.blob_id(bytes));
            }
        });
    });

    group.bench_function("compress", |b| {
        b.iter(|| {
            for (_, bytes) in &files {
                black_box(compress(bytes, level).expect("zstd compresses"));
            }
        });
    });

    let delta = index_delta(&files);
    group.bench_function("index_add", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temporary folder");
                let cache =
                    IndexCache::open(&dir.path().join("index.redb"), &|| {}).expect("cache opens");
                (dir, cache, delta.clone())
            },
            |(dir, cache, delta)| {
                cache
                    .add_deltas(&[(IndexId::of(b"smallfiles"), delta)])
                    .expect("delta added");
                // Returned so the cache is deleted outside the timing.
                (dir, cache)
            },
            BatchSize::PerIteration,
        );
    });

    let options = BackupOptions::new(vec![root.clone()]);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("first_backup", |b| {
        common::first_backup(b, &options, |report| {
            assert_eq!(
                report.snapshot.summary.files_new, count as u64,
                "every file stored"
            );
        });
    });
    group.finish();
}

/// An index delta with one entry per file, in packs of `BLOBS_PER_PACK`.
fn index_delta(files: &[(PathBuf, Vec<u8>)]) -> IndexDelta {
    let packs = files
        .chunks(BLOBS_PER_PACK)
        .enumerate()
        .map(|(n, pack)| {
            let mut offset = 9u32;
            let blobs = pack
                .iter()
                .map(|(_, bytes)| {
                    let entry = BlobEntry {
                        id: Hasher::Plain.blob_id(bytes),
                        kind: BlobKind::Data,
                        offset,
                        length: bytes.len() as u32 / 2,
                        raw_length: bytes.len() as u32,
                    };
                    offset += entry.length;
                    entry
                })
                .collect();
            PackIndex {
                id: PackId::of(&n.to_le_bytes()),
                size: u64::from(offset),
                blobs,
            }
        })
        .collect();
    IndexDelta {
        packs,
        obsolete: Vec::new(),
    }
}

// Short windows: the whole run stays under a minute on two cores.
criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = small_files
}
criterion_main!(benches);
