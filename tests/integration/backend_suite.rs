//! One suite for every storage backend: the local folder and S3 (a real
//! S3 server on 127.0.0.1: s3s-fs in the test process, or moto with
//! `SNAP_TEST_S3=moto`), each also throttled. Each backend must pass
//! every check.

use crate::common;

use std::num::NonZeroU32;
use std::path::Path;

use snap::ErrorKind;
use snap::backend::throttle::Throttle;
use snap::backend::{self, Backend, FileKind, Limits, S3Backend};

use common::s3;

fn name(i: u8) -> String {
    hex::encode([i; 32])
}

/// The contract of [`Backend`], as repository code relies on it.
fn suite(backend: &dyn Backend, scratch: &Path) {
    // An empty location is no repository, and reading from it is NotFound.
    assert!(!backend.exists().unwrap());
    assert_eq!(
        backend.read(FileKind::Config, "config").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    backend.create().unwrap();
    for kind in [
        FileKind::Pack,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
        FileKind::Key,
    ] {
        assert!(backend.list(kind).unwrap().is_empty(), "{kind:?}");
    }

    // Whole files: written atomically, read back, listed with sizes.
    backend
        .write(FileKind::Config, "config", b"config bytes")
        .unwrap();
    assert!(backend.exists().unwrap());
    assert_eq!(
        backend.read(FileKind::Config, "config").unwrap(),
        b"config bytes"
    );
    backend
        .write(FileKind::Index, &name(1), b"delta one")
        .unwrap();
    backend
        .write(FileKind::Index, &name(2), b"delta two!")
        .unwrap();
    backend
        .write(FileKind::Snapshot, &name(3), b"snap")
        .unwrap();
    backend.write(FileKind::Lock, &name(4), b"lock").unwrap();
    assert_eq!(
        backend.list(FileKind::Index).unwrap(),
        vec![(name(1), 9), (name(2), 10)]
    );
    assert_eq!(
        backend.list(FileKind::Snapshot).unwrap(),
        vec![(name(3), 4)]
    );
    assert_eq!(backend.list(FileKind::Lock).unwrap(), vec![(name(4), 4)]);
    // Overwriting replaces the whole content.
    backend
        .write(FileKind::Lock, &name(4), b"lock, renewed")
        .unwrap();
    assert_eq!(
        backend.read(FileKind::Lock, &name(4)).unwrap(),
        b"lock, renewed"
    );

    // Packs: stored from a local file (which is consumed), read by range.
    let pack: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = scratch.join("pack-test");
    std::fs::write(&local, &pack).unwrap();
    let pack_name = format!("ab{}", &name(5)[2..]);
    backend
        .write_file(FileKind::Pack, &pack_name, &local)
        .unwrap();
    assert!(!local.exists(), "the local pack file is moved or uploaded");
    assert_eq!(
        backend.list(FileKind::Pack).unwrap(),
        vec![(pack_name.clone(), pack.len() as u64)]
    );
    assert_eq!(backend.read(FileKind::Pack, &pack_name).unwrap(), pack);
    assert_eq!(
        backend
            .read_range(FileKind::Pack, &pack_name, 1000, 5000)
            .unwrap(),
        &pack[1000..6000]
    );
    assert_eq!(
        backend
            .read_range(FileKind::Pack, &pack_name, 299_990, 10)
            .unwrap(),
        &pack[299_990..]
    );
    // A range past the end is damage (a lying index), not a short read.
    for (offset, length) in [(299_995, 10), (400_000, 10)] {
        let err = backend
            .read_range(FileKind::Pack, &pack_name, offset, length)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{offset}+{length}: {err}");
    }

    // Missing files are NotFound, and the message names the object.
    let err = backend.read(FileKind::Snapshot, &name(9)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains(&name(9)), "{err}");
    let err = backend
        .read_range(FileKind::Pack, &name(9), 0, 1)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // Names that could escape the repository are refused.
    for bad in ["", "../config", "a/b", "x y"] {
        let err = backend.write(FileKind::Snapshot, bad, b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{bad:?}");
    }

    // Removing: gone from reads and listings; removing again is fine.
    backend.remove(FileKind::Index, &name(1)).unwrap();
    backend.remove(FileKind::Index, &name(1)).unwrap();
    assert_eq!(backend.list(FileKind::Index).unwrap(), vec![(name(2), 10)]);
    assert_eq!(
        backend.read(FileKind::Index, &name(1)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    backend.remove(FileKind::Pack, &pack_name).unwrap();
    assert!(backend.list(FileKind::Pack).unwrap().is_empty());
    // Also for a pack read before (a cache must not keep it alive).
    let err = backend
        .read_range(FileKind::Pack, &pack_name, 0, 10)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // Many threads at once (uploads and reads overlap).
    std::thread::scope(|scope| {
        for i in 0..8u8 {
            scope.spawn(move || {
                let data = vec![i; 10_000 + usize::from(i)];
                backend
                    .write(FileKind::Snapshot, &name(100 + i), &data)
                    .unwrap();
                assert_eq!(
                    backend.read(FileKind::Snapshot, &name(100 + i)).unwrap(),
                    data
                );
            });
        }
    });
    assert_eq!(backend.list(FileKind::Snapshot).unwrap().len(), 9);
}

#[test]
fn local_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend::open(&dir.path().join("repo"), Limits::default()).unwrap();
    suite(backend.as_ref(), dir.path());
}

/// Limits high enough never to wait: the suite checks that a throttled
/// backend still keeps the contract (the waits are tested through the CLI).
fn generous_limits() -> Limits {
    Limits {
        upload: NonZeroU32::new(1 << 20),
        download: NonZeroU32::new(1 << 20),
    }
}

#[test]
fn throttled_local_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backend::open(&dir.path().join("repo"), generous_limits()).unwrap();
    suite(backend.as_ref(), dir.path());
}

#[test]
fn throttled_s3_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let location = format!("s3://{}/throttled", s3::new_bucket());
    let backend = open_s3(&location, dir.path()).with_throttle(Throttle::new(generous_limits()));
    suite(&backend, dir.path());
}

/// An S3 backend on the test server, its temporary packs below `scratch`.
fn open_s3(location: &str, scratch: &Path) -> S3Backend {
    let mut vars: std::collections::HashMap<_, _> =
        s3::aws_env(s3::server().port).into_iter().collect();
    // Temporary packs go below the test's folder, not the user's cache.
    vars.insert("XDG_CACHE_HOME", scratch.display().to_string());
    S3Backend::with_vars(location, |name| vars.get(name).cloned()).unwrap()
}

#[test]
fn s3_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let open = |location: &str| open_s3(location, dir.path());
    let bucket = s3::new_bucket();
    let location = format!("s3://{bucket}/some/prefix");
    let backend = open(&location);
    assert_eq!(backend.location(), location);
    suite(&backend, dir.path());
    // Another prefix of the same bucket is another repository.
    let other = open(&format!("s3://{bucket}/other"));
    assert!(!other.exists().unwrap());
}

#[test]
fn s3_backend_uploads_a_pack_over_64_mib_in_parts_and_reads_its_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let backend = open_s3(&format!("s3://{}/big", s3::new_bucket()), dir.path());
    backend.create().unwrap();
    // Over the 64 MiB single-PUT limit: a multipart upload of 16 MiB parts,
    // the last one short. Too large to cache whole, so reads are ranged.
    let len = (65 << 20) + 12_345;
    let pack = common::pseudo_random(len, 7);
    let local = dir.path().join("big-pack");
    std::fs::write(&local, &pack).unwrap();
    let pack_name = name(0xcd);
    backend
        .write_file(FileKind::Pack, &pack_name, &local)
        .unwrap();
    assert_eq!(
        backend.list(FileKind::Pack).unwrap(),
        vec![(pack_name.clone(), len as u64)]
    );
    for offset in [0, (16 << 20) - 10, (48 << 20) + 3, len - 100] {
        assert_eq!(
            backend
                .read_range(FileKind::Pack, &pack_name, offset as u64, 100)
                .unwrap(),
            &pack[offset..offset + 100],
            "at {offset}"
        );
    }
    let err = backend
        .read_range(FileKind::Pack, &pack_name, len as u64 - 50, 100)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}
