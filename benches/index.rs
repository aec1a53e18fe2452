//! Index cache lookups as the cache grows: cost per lookup and the memory a
//! process needs to do them.
//!
//! `cargo bench --bench index` builds caches of 100 000 and 1 000 000
//! synthetic blobs (as index deltas of 1000-blob packs, the way a backup adds
//! them) and measures hits and misses. `SNAP_BENCH_BLOBS` sets the sizes, a
//! comma-separated list: `SNAP_BENCH_BLOBS=100000,1000000,10000000` adds a
//! ten-million-blob cache (about 2 GB on disk, six minutes or more to build
//! on two cores).
//!
//! Memory is measured in a fresh child process per size (this same binary,
//! re-run with `SNAP_BENCH_INDEX_CHILD` set), so what building the caches
//! allocated does not count: the child opens one cache, reads its resident
//! set size, does random lookups, reads it again and prints one line.
//!
//! `index_add` times what a first backup does to the cache: 131 072 blobs
//! added as deltas of 8192 (`BLOBS_PER_DELTA`), one transaction each, into a
//! cache that starts empty. Ids are random, so each delta lands all over the
//! B-tree: this is where inserting in arrival order cost a page write and a
//! page read a blob.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use snap::BlobId;
use snap::id::{IndexId, PackId};
use snap::internals::codec::Hasher;
use snap::internals::format::index::{IndexDelta, PackIndex};
use snap::internals::format::pack::{BlobEntry, BlobKind};
use snap::internals::index::IndexCache;

const DEFAULT_SIZES: &[u64] = &[100_000, 1_000_000];
const BLOBS_PER_PACK: u64 = 1000;
/// Blobs added per `add_deltas` call (one transaction).
const BLOBS_PER_TRANSACTION: u64 = 100_000;
/// Distinct ids the lookup benchmarks cycle through.
const PROBES: usize = 1 << 16;
/// Lookups the memory child does: enough to touch most pages of a 1M cache.
const CHILD_LOOKUPS: usize = 500_000;

const CHILD_ENV: &str = "SNAP_BENCH_INDEX_CHILD";
const CHILD_BLOBS_ENV: &str = "SNAP_BENCH_INDEX_CHILD_BLOBS";

fn sizes() -> Vec<u64> {
    match std::env::var("SNAP_BENCH_BLOBS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .replace('_', "")
                    .parse()
                    .expect("SNAP_BENCH_BLOBS: comma-separated counts")
            })
            .collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    }
}

/// The id of synthetic blob number `n`: spread over the key space like real ids.
fn blob_id(n: u64) -> BlobId {
    Hasher::Plain.blob_id(&n.to_le_bytes())
}

/// `count` ids of blobs in a cache of `blobs` (hits) or not in it (misses).
fn probes(blobs: u64, count: usize, hits: bool) -> Vec<BlobId> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if hits {
                blob_id(x % blobs)
            } else {
                blob_id(blobs + x % blobs)
            }
        })
        .collect()
}

/// Creates a cache at `path` holding blobs `0..blobs`.
fn build(path: &Path, blobs: u64) {
    build_in(path, blobs, BLOBS_PER_TRANSACTION);
}

/// Creates a cache at `path` holding blobs `0..blobs`, added `per_delta` at
/// a time (one transaction each).
fn build_in(path: &Path, blobs: u64, per_delta: u64) {
    let cache = IndexCache::open(path, &|| {}).expect("cache opens");
    let mut next = 0u64;
    while next < blobs {
        let end = (next + per_delta).min(blobs);
        let mut packs = Vec::new();
        let mut pack_start = next;
        while pack_start < end {
            let pack_end = (pack_start + BLOBS_PER_PACK).min(end);
            let mut offset = 9u32;
            let entries = (pack_start..pack_end)
                .map(|n| {
                    let entry = BlobEntry {
                        id: blob_id(n),
                        kind: BlobKind::Data,
                        offset,
                        length: 400_000,
                        raw_length: 1 << 20,
                    };
                    offset += entry.length;
                    entry
                })
                .collect();
            packs.push(PackIndex {
                id: PackId::of(&pack_start.to_le_bytes()),
                size: u64::from(offset),
                blobs: entries,
            });
            pack_start = pack_end;
        }
        let delta = IndexDelta {
            packs,
            obsolete: Vec::new(),
        };
        let delta_id = IndexId::of(&next.to_le_bytes());
        cache
            .add_deltas(&[(delta_id, delta)])
            .expect("deltas added");
        next = end;
    }
}

/// Process memory in KiB from /proc/self/status: (resident now, peak resident).
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Child mode: open one cache, look up random blobs, report memory.
fn child(path: &Path, blobs: u64) {
    let ids = probes(blobs, CHILD_LOOKUPS, true);
    let (before_open, _) = memory_kib();
    let cache = IndexCache::open(path, &|| {}).expect("cache opens");
    let (opened, _) = memory_kib();
    let start = Instant::now();
    for id in &ids {
        assert!(
            cache.lookup(id).expect("lookup succeeds").is_some(),
            "blob {id} missing"
        );
    }
    let elapsed = start.elapsed();
    let (after, peak) = memory_kib();
    println!(
        "{} {} {} {} {}",
        opened.saturating_sub(before_open),
        after,
        peak,
        after.saturating_sub(before_open),
        elapsed.as_nanos() / ids.len() as u128
    );
}

struct Built {
    blobs: u64,
    path: PathBuf,
    build_time: Duration,
    file_bytes: u64,
}

fn memory_report(caches: &[Built]) {
    println!();
    println!("index cache memory: one fresh process per size, {CHILD_LOOKUPS} random hit lookups");
    println!();
    println!(
        "| blobs | build s | cache file MiB | RSS growth after open KiB | RSS after lookups MiB | peak RSS MiB | lookups grew RSS by MiB | ns/lookup (cold process) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let exe = std::env::current_exe().expect("own executable");
    for built in caches {
        let output = Command::new(&exe)
            .env(CHILD_ENV, &built.path)
            .env(CHILD_BLOBS_ENV, built.blobs.to_string())
            .output()
            .expect("child runs");
        assert!(
            output.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let fields: Vec<u64> = stdout
            .split_whitespace()
            .map(|f| f.parse().expect("number"))
            .collect();
        let [open_growth, after, peak, growth, ns] = fields[..] else {
            panic!("unexpected child output {stdout:?}");
        };
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} |",
            built.blobs,
            built.build_time.as_secs_f64(),
            built.file_bytes as f64 / f64::from(1 << 20),
            open_growth,
            after as f64 / 1024.0,
            peak as f64 / 1024.0,
            growth as f64 / 1024.0,
            ns
        );
    }
    println!();
}

fn lookups(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut caches = Vec::new();
    for blobs in sizes() {
        let path = dir.path().join(format!("{blobs}.redb"));
        eprintln!("building an index cache of {blobs} blobs...");
        let start = Instant::now();
        build(&path, blobs);
        let build_time = start.elapsed();
        let file_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
        caches.push(Built {
            blobs,
            path,
            build_time,
            file_bytes,
        });
    }
    memory_report(&caches);

    let mut group = c.benchmark_group("index_lookup");
    group.throughput(Throughput::Elements(1));
    for built in &caches {
        // Reopened, so the timing starts from what a new process would have.
        let cache = IndexCache::open(&built.path, &|| {}).expect("cache opens");
        for (name, hits) in [("hit", true), ("miss", false)] {
            let ids = probes(built.blobs, PROBES, hits);
            let mut next = 0;
            group.bench_with_input(BenchmarkId::new(name, built.blobs), &ids, |b, ids| {
                b.iter(|| {
                    next = (next + 1) % ids.len();
                    black_box(cache.lookup(&ids[next]).expect("lookup succeeds"))
                });
            });
        }
    }
    group.finish();
}

/// Blobs of the `index_add` benchmark and the deltas they come in.
const ADD_BLOBS: u64 = 131_072;
const ADD_PER_DELTA: u64 = 8192;

fn adds(c: &mut Criterion) {
    let mut group = c.benchmark_group("index_add");
    group.throughput(Throughput::Elements(ADD_BLOBS));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("deltas_of_8192", ADD_BLOBS), |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("temporary folder"),
            |dir| build_in(&dir.path().join("cache.redb"), ADD_BLOBS, ADD_PER_DELTA),
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = lookups, adds
}

fn main() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        let blobs = std::env::var(CHILD_BLOBS_ENV)
            .ok()
            .and_then(|n| n.parse().ok())
            .expect("blob count for the child");
        child(Path::new(&path), blobs);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
