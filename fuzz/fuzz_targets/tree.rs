//! Arbitrary bytes as a tree blob and as a chunk-list blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snap::BlobId;
use snap::internals::format::tree::{ChunkList, Tree};

fuzz_target!(|data: &[u8]| {
    let id = BlobId([0; 32]);
    if let Ok(tree) = Tree::from_bytes(&id, data) {
        // What validates must encode again and decode to the same tree.
        assert_eq!(Tree::from_bytes(&id, &tree.to_bytes()).unwrap(), tree);
    }
    let _ = ChunkList::from_bytes(&id, data);
});
