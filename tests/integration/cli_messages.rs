//! Counts in the library's messages carry their noun in the right number:
//! selectors, and `check`'s problems with packs that hold one blob or more.

use crate::common;

use std::fs;
use std::path::PathBuf;

use common::{Env, assert_code, stderr_text};

/// One snapshot of one small file: a data pack with 1 blob and a metadata
/// pack with 2 trees, stored twice (two metadata packs). Returns the
/// packs, the one with fewer bytes (the data pack) first.
fn one_file_repo() -> (Env, Vec<PathBuf>) {
    let env = Env::new();
    let src = env.path("d");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), "hello\n").unwrap();
    env.backup(&[&src], &[]);
    let mut packs: Vec<PathBuf> = common::list_tree(&env.repo.join("data"))
        .into_iter()
        .map(|rel| env.repo.join("data").join(rel))
        .filter(|p| p.is_file())
        .collect();
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    assert_eq!(packs.len(), 3, "{packs:?}");
    (env, packs)
}

#[test]
fn a_selector_past_the_snapshots_counts_them_in_the_right_number() {
    let (env, _) = one_file_repo();
    let out = env.run(["ls", "latest~3"]);
    assert_code(&out, 10);
    assert!(
        stderr_text(&out).contains("no snapshot `latest~3`: 1 snapshot matches"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn check_counts_lost_and_bad_blobs_in_the_right_number() {
    let (env, packs) = one_file_repo();
    let mut said = Vec::new();
    // The data pack; both copies of the metadata; one copy of it.
    for gone in [&packs[..1], &packs[1..], &packs[1..2]] {
        for pack in gone {
            fs::rename(pack, pack.with_extension("aside")).unwrap();
        }
        let out = env.run(["check"]);
        assert_code(&out, 4);
        said.push(String::from_utf8_lossy(&out.stdout).into_owned() + &stderr_text(&out));
        for pack in gone {
            fs::rename(pack.with_extension("aside"), pack).unwrap();
        }
    }
    let lost = said.join("\n");
    assert!(lost.contains("; 1 blob in it is lost"), "{lost}");
    assert!(lost.contains("; 2 blobs in it are lost"), "{lost}");
    assert!(
        said[2].contains("every blob in it has a second copy in another pack, so nothing is lost"),
        "{lost}"
    );
    assert!(!lost.contains("(s)"), "{lost}");

    // The data pack's one chunk (stored as it is: too short to compress), damaged.
    let (data, at) = packs
        .iter()
        .find_map(|p| {
            let bytes = fs::read(p).unwrap();
            let at = bytes.windows(6).position(|w| w == b"hello\n")?;
            Some((p.clone(), at as u64))
        })
        .expect("the chunk is stored in the clear in an unencrypted repository");
    common::flip_byte(&data, at + 2);
    let out = env.run(["check", "--read-data"]);
    assert_code(&out, 4);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr_text(&out);
    assert!(
        text.contains("1 of its 1 blob fails verification"),
        "{text}"
    );
}
