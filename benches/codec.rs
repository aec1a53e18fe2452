//! Throughput of the backup pipeline's stages and of a whole backup.
//!
//! `cargo bench --bench codec` (a few minutes on two cores). One stage:
//! `cargo bench --bench codec -- compress`. The input is generated (benches/common):
//! text-like bytes (words drawn by xorshift from a small vocabulary) that
//! compress about as well as prose or source code, so chunking, hashing and
//! zstd see realistic work.

use std::hint::black_box;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use snap::internals::codec::compress::{compress, decompress};
use snap::internals::codec::{BlobCodec, Chunker, ChunkerParams, Hasher};
use snap::internals::format::pack::BlobKind;
use snap::internals::pack::PackWriter;
use snap::{BackupOptions, InitOptions, NoProgress};

mod common;
use common::{XorShift, init_repository, text};

/// Size of the in-memory input for the stage benchmarks.
const INPUT_LEN: usize = 32 << 20;

/// Size of the generated folder for the end-to-end backup.
const TREE_LEN: usize = 32 << 20;

/// Blob size for hashing and compression: the chunker's average.
const BLOB_LEN: usize = ChunkerParams::FILES.avg_size as usize;

fn bytes(len: usize) -> Throughput {
    Throughput::Bytes(len as u64)
}

fn chunker(c: &mut Criterion) {
    let data = text(INPUT_LEN, 1);
    let chunker = Chunker::new(ChunkerParams::FILES);
    let mut group = c.benchmark_group("chunker");
    group.throughput(bytes(data.len()));
    group.bench_function("fastcdc_files_32MiB", |b| {
        b.iter(|| {
            let mut chunks = 0usize;
            chunker
                .chunk_batches::<_, io::Error>(data.as_slice(), data.len() as u64, |batch| {
                    chunks += batch.len();
                    Ok(())
                })
                .expect("reading from memory cannot fail");
            black_box(chunks)
        });
    });
    group.finish();
}

fn hash(c: &mut Criterion) {
    let data = text(INPUT_LEN, 2);
    let mut group = c.benchmark_group("hash");
    group.throughput(bytes(data.len()));
    group.bench_function("blake3_1MiB_blobs", |b| {
        b.iter(|| {
            for blob in data.chunks(BLOB_LEN) {
                black_box(Hasher::Plain.blob_id(blob));
            }
        });
    });
    group.finish();
}

fn compression(c: &mut Criterion) {
    let data = text(INPUT_LEN, 3);
    let frames: Vec<Vec<u8>> = data
        .chunks(BLOB_LEN)
        .map(|blob| compress(blob, 3).expect("zstd compresses"))
        .collect();
    let packed: usize = frames.iter().map(Vec::len).sum();
    eprintln!(
        "compress: zstd level 3 turns {} MiB of generated text into {:.1} MiB (ratio {:.2})",
        data.len() >> 20,
        packed as f64 / f64::from(1 << 20),
        data.len() as f64 / packed as f64
    );

    let mut group = c.benchmark_group("compress");
    group.throughput(bytes(data.len()));
    group.bench_function("zstd3_1MiB_blobs", |b| {
        b.iter(|| {
            for blob in data.chunks(BLOB_LEN) {
                black_box(compress(blob, 3).expect("zstd compresses"));
            }
        });
    });
    group.bench_function("unzstd_1MiB_blobs", |b| {
        b.iter(|| {
            for frame in &frames {
                black_box(decompress(frame, BLOB_LEN).expect("frame decompresses"));
            }
        });
    });
    group.finish();
}

/// age sealing and opening: 1 MiB blobs (cipher throughput) and 4 KiB
/// blobs (per-blob cost: a wrapped file key is shared by a session of
/// frames, so small blobs cost no X25519 each).
fn encryption(c: &mut Criterion) {
    use snap::internals::codec::Crypto;
    let identity = age::x25519::Identity::generate();
    let crypto = Crypto::age(
        identity.to_public(),
        Some(std::sync::Arc::new(identity.clone())),
    );
    let data = text(INPUT_LEN, 4);
    let mut group = c.benchmark_group("encryption");
    group.throughput(bytes(data.len()));
    group.bench_function("seal_1MiB_blobs", |b| {
        b.iter(|| {
            for blob in data.chunks(BLOB_LEN) {
                black_box(crypto.seal(blob.to_vec()).expect("seals"));
            }
        });
    });
    let small = &data[..4 << 20];
    group.throughput(bytes(small.len()));
    group.bench_function("seal_4KiB_blobs", |b| {
        b.iter(|| {
            for blob in small.chunks(4 << 10) {
                black_box(crypto.seal(blob.to_vec()).expect("seals"));
            }
        });
    });
    let sealed: Vec<Vec<u8>> = small
        .chunks(4 << 10)
        .map(|blob| crypto.seal(blob.to_vec()).expect("seals"))
        .collect();
    group.bench_function("open_4KiB_blobs", |b| {
        b.iter(|| {
            for frame in &sealed {
                black_box(crypto.open(frame).expect("opens"));
            }
        });
    });
    group.finish();
}

fn pack_writer(c: &mut Criterion) {
    let data = text(INPUT_LEN, 4);
    let blobs: Vec<_> = data
        .chunks(BLOB_LEN)
        .map(|blob| {
            let frame = compress(blob, 3).expect("zstd compresses");
            (Hasher::Plain.blob_id(blob), frame, blob.len() as u32)
        })
        .collect();
    let frame_bytes: usize = blobs.iter().map(|(_, frame, _)| frame.len()).sum();
    let codec = BlobCodec::plain(3);
    let target = u64::from(InitOptions::default().pack_size);
    let dir = tempfile::tempdir().expect("temporary folder");

    let mut group = c.benchmark_group("pack");
    group.throughput(bytes(frame_bytes));
    group.bench_function("write_and_finish", |b| {
        b.iter(|| {
            let mut pack = PackWriter::create(dir.path(), target).expect("pack created");
            for (id, frame, raw_length) in &blobs {
                pack.add(*id, BlobKind::Data, frame, *raw_length)
                    .expect("blob added");
            }
            // Dropping the finished pack removes its temporary file.
            black_box(pack.finish(&codec).expect("pack finished").id)
        });
    });
    group.finish();
}

/// Writes a folder that looks like an app's state: many small markdown-ish
/// files in a few subfolders plus some larger files. Returns its size.
fn write_tree(root: &Path) -> usize {
    let mut rng = XorShift(5);
    let mut seed = 100;
    let mut write = |path: PathBuf, len: usize| {
        seed += 1;
        std::fs::write(path, text(len, seed)).expect("source file written");
        len
    };
    let mut total = 0;
    for folder in ["memories", "journal", "notes", "people"] {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir).expect("source folder created");
        for i in 0..100 {
            total += write(dir.join(format!("{i:03}.md")), 1024 + rng.below(32 * 1024));
        }
    }
    let big = root.join("data");
    std::fs::create_dir_all(&big).expect("source folder created");
    let mut i = 0;
    while total < TREE_LEN {
        total += write(
            big.join(format!("blob-{i}.jsonl")),
            (TREE_LEN - total).min(6 << 20),
        );
        i += 1;
    }
    total
}

fn end_to_end(c: &mut Criterion) {
    let source = tempfile::tempdir().expect("temporary folder");
    let root = source.path().join("entity");
    std::fs::create_dir_all(&root).expect("source folder created");
    let total = write_tree(&root);
    let options = BackupOptions::new(vec![root.clone()]);

    let mut group = c.benchmark_group("backup");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(bytes(total));
    group.bench_function("first_32MiB_tree", |b| {
        common::first_backup(b, &options, |report| {
            black_box(report.id);
        });
    });
    // Nothing changed since the parent snapshot: only metadata is compared.
    // The parent is named, because finding it reads every snapshot and each
    // iteration adds one: the timing would grow with the iteration count.
    let dir = tempfile::tempdir().expect("temporary folder");
    let repo = init_repository(dir.path());
    let parent = snap::backup(&repo, &options, &NoProgress)
        .expect("backup succeeds")
        .id;
    let unchanged = BackupOptions {
        parent: Some(parent),
        ..options.clone()
    };
    group.bench_function("unchanged_32MiB_tree", |b| {
        b.iter(|| {
            black_box(
                snap::backup(&repo, &unchanged, &NoProgress)
                    .expect("backup succeeds")
                    .id,
            )
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
}

criterion_group! {
    name = benches;
    config = config();
    targets = chunker, hash, compression, encryption, pack_writer, end_to_end
}
criterion_main!(benches);
