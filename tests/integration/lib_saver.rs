//! The blob saver with its index deltas written on a thread beside the
//! workers (as a backup runs it): workers that outrun that indexer wait for
//! it rather than piling up blobs that wait for a delta in memory, the
//! wait ends, and every blob saved is indexed at the end.

use std::sync::atomic::{AtomicUsize, Ordering};

use snap::internals::format::pack::BlobKind;
use snap::internals::pack::{BLOBS_PER_DELTA, MAX_PACK_BLOBS};
use snap::{NoProgress, Repository};

use crate::common::{init_small_repo, local_backend};

#[test]
fn workers_wait_for_the_background_indexer_and_every_blob_is_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    init_small_repo(&path, 16 << 10);
    let repo = Repository::open(local_backend(&path), &NoProgress).unwrap();
    let saver = repo.saver();
    // Eight packs' worth of tiny blobs from more workers than this
    // machine has cores, as a backup of many small files saves them.
    let workers = 8;
    let per_worker = MAX_PACK_BLOBS;
    let most_unindexed = AtomicUsize::new(0);
    let ids = std::thread::scope(|s| {
        let indexer = s.spawn(|| saver.index_in_background());
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (saver, most) = (&saver, &most_unindexed);
                s.spawn(move || {
                    (0..per_worker)
                        .map(|i| {
                            let blob = format!("blob {w} {i}");
                            let id = saver.save(BlobKind::Data, blob.as_bytes()).unwrap();
                            most.fetch_max(saver.unindexed_packs(), Ordering::Relaxed);
                            id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let ids: Vec<_> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        saver.close().unwrap();
        indexer.join().unwrap().unwrap();
        ids
    });
    saver.flush().unwrap();
    // A local repository lets two deltas' worth of small blobs wait for
    // their delta, plus one: two full packs and one blob, so the third pack
    // sealed makes workers wait; one more may be sealed by workers that
    // checked just before.
    let most = most_unindexed.load(Ordering::Relaxed);
    assert!(
        most <= 2 * BLOBS_PER_DELTA / MAX_PACK_BLOBS + 2,
        "{most} sealed packs waited for their delta at once"
    );
    assert_eq!(ids.len(), workers * per_worker);
    for id in &ids {
        assert!(
            repo.cache().contains(id).unwrap(),
            "blob {id:?} not indexed"
        );
    }
    assert!(saver.log().deltas.len() >= 2);
}
