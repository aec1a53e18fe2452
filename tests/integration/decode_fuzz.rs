//! Every decoder of repository bytes, fed random and mutated input: each
//! must return a value or an error, never panic. This is the part of the
//! cargo-fuzz targets (`fuzz/`, see `docs/FUZZING.md`) that runs on stable
//! Rust in every `cargo test`. It reaches the private decoders through
//! `snap::internals`, as the fuzz targets do.

use proptest::prelude::*;

use snap::backend::{Backend, FileKind, LocalBackend};
use snap::id::{BlobId, PackId, RepoId, SnapshotId};
use snap::internals::codec::{BlobCodec, ChunkerParams, FileClass};
use snap::internals::format::config::{self, Config};
use snap::internals::format::index::{self, IndexDelta, PackIndex};
use snap::internals::format::pack::{self, BlobEntry, BlobKind, PackTrailer};
use snap::internals::format::snapshot::{self, Snapshot};
use snap::internals::format::tree::{ChunkList, Node, NodeKind, Tree};
use snap::internals::format::{envelope, from_msgpack, open_envelope, to_msgpack};
use snap::keys::{self, ExportedKey, KEY_FILE_MAGIC, KeyFile};

/// Runs every decoder on `bytes`, both as a whole file and as a bare body.
fn decode_everything(bytes: &[u8]) {
    let codec = BlobCodec::plain(3);
    let id = BlobId([7; 32]);
    let _ = Config::from_bytes(bytes);
    if let Ok(tree) = Tree::from_bytes(&id, bytes) {
        assert_eq!(Tree::from_bytes(&id, &tree.to_bytes()).unwrap(), tree);
    }
    let _ = ChunkList::from_bytes(&id, bytes);
    let _ = from_msgpack::<Snapshot>("snapshot", bytes);
    let _ = from_msgpack::<IndexDelta>("index delta", bytes);
    let _ = from_msgpack::<PackTrailer>("trailer", bytes);
    let _ = from_msgpack::<ExportedKey>("key file", bytes);
    let _ = from_msgpack::<KeyFile>("key", bytes);
    for (magic, class) in [
        (snapshot::MAGIC, FileClass::Data),
        (index::MAGIC, FileClass::Index),
    ] {
        if let Ok(body) = open_envelope(magic, "file", bytes)
            && let Ok(plain) = codec.decode_file(class, "file", body, 1 << 20)
        {
            let _ = from_msgpack::<Snapshot>("snapshot", &plain);
            let _ = from_msgpack::<IndexDelta>("index delta", &plain);
        }
    }
    if let Ok(body) = open_envelope(KEY_FILE_MAGIC, "key", bytes) {
        let _ = from_msgpack::<KeyFile>("key", body);
    }
    let _ = codec.decode(&id, bytes, 1 << 16);
}

fn sample_tree() -> Tree {
    let node = |name: &[u8], kind| Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1,
        gid: 2,
        mtime_ns: 3,
        ctime_ns: 4,
        inode: 5,
        dev: 6,
        links: 1,
        rdev: 0,
        size: 9,
        xattrs: Vec::new(),
        target: (kind == NodeKind::Symlink).then(|| b"t".to_vec()),
        content: if kind == NodeKind::File {
            vec![BlobId([1; 32])]
        } else {
            Vec::new()
        },
        content_depth: 0,
        dictionary: None,
        subtree: (kind == NodeKind::Dir).then_some(BlobId([2; 32])),
    };
    Tree {
        nodes: vec![
            node(b"a", NodeKind::File),
            node(b"b", NodeKind::Dir),
            node(b"c", NodeKind::Symlink),
        ],
    }
}

/// Valid encodings of every kind of repository object, to mutate.
fn valid_encodings() -> Vec<Vec<u8>> {
    let codec = BlobCodec::plain(3);
    let entry = BlobEntry {
        id: BlobId([3; 32]),
        kind: BlobKind::Data,
        offset: 9,
        length: 20,
        raw_length: 11,
    };
    let delta = IndexDelta {
        packs: vec![PackIndex {
            id: PackId([4; 32]),
            size: 100,
            blobs: vec![entry],
        }],
        obsolete: Vec::new(),
    };
    let snap = Snapshot {
        time: "2026-01-01T00:00:00Z".into(),
        host: "h".into(),
        user: "u".into(),
        paths: vec!["/p".into()],
        tags: vec!["t".into()],
        parent: Some(SnapshotId([5; 32])),
        tree: BlobId([6; 32]),
        summary: Default::default(),
        program: "snap".into(),
        original: Some(SnapshotId([7; 32])),
    };
    vec![
        minimal_config().to_bytes(),
        sample_tree().to_bytes(),
        ChunkList {
            ids: vec![BlobId([9; 32]); 3],
        }
        .to_bytes(),
        to_msgpack(&snap),
        envelope(
            snapshot::MAGIC,
            &codec
                .encode_file(FileClass::Data, &to_msgpack(&snap))
                .unwrap(),
        ),
        to_msgpack(&delta),
        envelope(
            index::MAGIC,
            &codec
                .encode_file(FileClass::Index, &to_msgpack(&delta))
                .unwrap(),
        ),
        to_msgpack(&PackTrailer { blobs: vec![entry] }),
    ]
}

/// A valid config: the fields of format version 1, every later optional
/// field at its default.
fn minimal_config() -> Config {
    #[derive(serde::Serialize)]
    struct Minimal {
        id: RepoId,
        chunker: ChunkerParams,
        compression: i32,
        pack_size: u32,
        encryption: config::Encryption,
    }
    let bytes = envelope(
        config::MAGIC,
        &to_msgpack(&Minimal {
            id: RepoId([8; 32]),
            chunker: ChunkerParams::FILES,
            compression: 3,
            pack_size: 16 << 20,
            encryption: config::Encryption::None,
        }),
    );
    Config::from_bytes(&bytes).expect("a minimal config reads")
}

/// A pack of arbitrary bytes, read back through the local backend.
fn read_pack_trailer(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path());
    let id = PackId([0xab; 32]);
    std::fs::create_dir_all(dir.path().join("data/ab")).unwrap();
    backend.write(FileKind::Pack, &id.to_hex(), bytes).unwrap();
    let _ = snap::internals::pack::read_trailer(
        &backend,
        &BlobCodec::plain(3),
        &id,
        bytes.len() as u64,
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        decode_everything(&bytes);
    }

    #[test]
    fn mutated_objects_never_panic(
        which in 0usize..8,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_encodings().swap_remove(which);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        decode_everything(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn hostile_packs_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        trailer_len in any::<u32>(),
        with_magic in any::<bool>(),
    ) {
        let mut pack = if with_magic { envelope(pack::MAGIC, &body) } else { body };
        pack.extend_from_slice(&trailer_len.to_le_bytes());
        read_pack_trailer(&pack);
    }

    #[test]
    fn exported_key_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, envelope(keys::EXPORTED_MAGIC, &bytes)).unwrap();
        let _ = keys::read_exported(&path);
        std::fs::write(&path, &bytes).unwrap();
        let _ = keys::read_exported(&path);
    }
}

#[test]
fn valid_encodings_decode() {
    let all = valid_encodings();
    assert!(Config::from_bytes(&all[0]).is_ok());
    assert!(Tree::from_bytes(&BlobId([0; 32]), &all[1]).is_ok());
    assert!(from_msgpack::<Snapshot>("s", &all[3]).is_ok());
    assert!(from_msgpack::<IndexDelta>("i", &all[5]).is_ok());
    assert!(from_msgpack::<PackTrailer>("t", &all[7]).is_ok());
}
