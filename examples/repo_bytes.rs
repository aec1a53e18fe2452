//! Where an unencrypted repository's bytes go, per class: data blobs, trees,
//! chunk lists (frame and plaintext bytes), pack headers and trailers, index
//! deltas, snapshots, the config and everything else in the folder.
//!
//! `cargo run --release --example repo_bytes -- REPO [LEVEL...]`
//!
//! With levels (e.g. `3 9 19`), every blob, trailer and index delta is also
//! compressed again at each level, so the table shows what each class would
//! cost at that level without running a backup per level. Data blobs are
//! split by plaintext size (tiny: under 512 bytes) to show what tiny blobs
//! cost. Each level's cell also shows the seconds spent compressing that
//! class at that level (one thread). Used for the repository-size numbers in docs/PERFORMANCE.md.

use std::collections::BTreeMap;
use std::path::Path;

use snap::backend::FileKind;
use snap::internals::format::pack::BlobKind;
use snap::{NoProgress, Repository};

#[derive(Default, Clone)]
struct Class {
    count: u64,
    raw: u64,
    stored: u64,
    at_level: BTreeMap<i32, u64>,
    seconds: BTreeMap<i32, f64>,
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(root) = args.next() else {
        eprintln!("usage: repo_bytes REPO [LEVEL...]");
        std::process::exit(2);
    };
    let levels: Vec<i32> = args
        .map(|a| a.to_string_lossy().parse().expect("a zstd level"))
        .collect();
    if let Err(e) = run(Path::new(&root), &levels) {
        eprintln!("repo_bytes: {e}");
        std::process::exit(1);
    }
}

thread_local! {
    // One zstd context per level, as snap keeps one per thread.
    static COMPRESSORS: std::cell::RefCell<BTreeMap<i32, zstd::bulk::Compressor<'static>>> =
        Default::default();
}

fn recompress(class: &mut Class, plain: &[u8], levels: &[i32]) -> snap::Result<()> {
    for &level in levels {
        let start = std::time::Instant::now();
        let frame = COMPRESSORS
            .with(|c| {
                let mut map = c.borrow_mut();
                let compressor = match map.entry(level) {
                    std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(zstd::bulk::Compressor::new(level)?)
                    }
                };
                compressor.compress(plain)
            })
            .map_err(|e| snap::Error::io("compress", Path::new("-"), e))?;
        *class.seconds.entry(level).or_default() += start.elapsed().as_secs_f64();
        *class.at_level.entry(level).or_default() += frame.len() as u64;
    }
    Ok(())
}

fn run(root: &Path, levels: &[i32]) -> snap::Result<()> {
    let backend = snap::backend::open(root, Default::default())?;
    let repo = Repository::open_reader(backend, &Default::default(), &NoProgress)?;
    let backend = repo.backend();
    let codec = repo.codec();
    let mut classes: BTreeMap<&str, Class> = BTreeMap::new();
    let packs = backend.list(FileKind::Pack)?;
    for (name, size) in &packs {
        let id = snap::PackId::from_hex(name)?;
        let trailer = snap::internals::pack::read_trailer(backend, codec, &id, *size)?;
        let blobs_end: u64 = trailer
            .blobs
            .last()
            .map_or(9, |b| u64::from(b.offset) + u64::from(b.length));
        let header = classes.entry("pack headers").or_default();
        header.count += 1;
        header.stored += 9;
        header.raw += 9;
        let body = snap::internals::format::to_msgpack(&trailer);
        let t = classes.entry("pack trailers").or_default();
        t.count += 1;
        t.stored += size - blobs_end;
        t.raw += body.len() as u64;
        recompress(t, &body, levels)?;
        let bytes = backend.read(FileKind::Pack, name)?;
        for blob in &trailer.blobs {
            let key = match blob.kind {
                BlobKind::Data if blob.raw_length < 512 => "data < 512 B",
                BlobKind::Data if blob.raw_length < 4096 => "data 512 B-4 KiB",
                BlobKind::Data => "data >= 4 KiB",
                BlobKind::Tree => "trees",
                BlobKind::List => "chunk lists",
            };
            let frame = &bytes[blob.offset as usize..blob.offset as usize + blob.length as usize];
            let class = classes.entry(key).or_default();
            class.count += 1;
            class.raw += u64::from(blob.raw_length);
            class.stored += u64::from(blob.length);
            if !levels.is_empty() {
                // Dictionary-compressed chunks keep their dictionary: count
                // them at their stored size.
                if snap::internals::codec::compress::split_dictionary(frame).is_some() {
                    for &level in levels {
                        *class.at_level.entry(level).or_default() += u64::from(blob.length);
                    }
                } else {
                    let plain = repo.decode_blob(&blob.id, frame, blob.raw_length)?;
                    recompress(class, &plain, levels)?;
                }
            }
        }
    }
    for (kind, label) in [
        (FileKind::Index, "index deltas"),
        (FileKind::Snapshot, "snapshots"),
    ] {
        for (name, size) in backend.list(kind)? {
            let class = classes.entry(label).or_default();
            class.count += 1;
            class.stored += size;
            let body = codec.decode_file(
                snap::internals::codec::FileClass::Index,
                label,
                &backend.read(kind, &name)?[9..],
                1 << 30,
            )?;
            class.raw += body.len() as u64;
            recompress(class, &body, levels)?;
        }
    }
    let total = folder_bytes(root)?;
    let counted: u64 = classes.values().map(|c| c.stored).sum();
    let rest = classes.entry("config, keys, other").or_default();
    rest.stored = total - counted;
    rest.raw = rest.stored;

    print!("| class | count | plaintext | stored | stored/plaintext |");
    for level in levels {
        print!(" at level {level} |");
    }
    println!();
    println!("|---|---:|---:|---:|---:|{}", "---:|".repeat(levels.len()));
    let mut sums = Class::default();
    for (label, c) in &classes {
        print!(
            "| {label} | {} | {} | {} | {:.3} |",
            c.count,
            c.raw,
            c.stored,
            c.stored as f64 / c.raw.max(1) as f64
        );
        for level in levels {
            let v = c.at_level.get(level).copied().unwrap_or(c.stored);
            *sums.at_level.entry(*level).or_default() += v;
            let t = c.seconds.get(level).copied().unwrap_or(0.0);
            print!(" {v} ({t:.2} s) |");
        }
        println!();
        sums.raw += c.raw;
        sums.stored += c.stored;
    }
    print!("| total | | {} | {} | |", sums.raw, sums.stored);
    for level in levels {
        print!(" {} |", sums.at_level[level]);
    }
    println!();
    Ok(())
}

/// Bytes of every regular file under `dir` (what `du -sb` counts, less the
/// folders themselves).
fn folder_bytes(dir: &Path) -> snap::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| snap::Error::io("read", dir, e))? {
        let entry = entry.map_err(|e| snap::Error::io("read", dir, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| snap::Error::io("read", dir, e))?;
        if meta.is_dir() {
            total += folder_bytes(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}
