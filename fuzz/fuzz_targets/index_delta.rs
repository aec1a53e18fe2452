//! Arbitrary bytes as an index delta file (envelope, zstd, MessagePack) and
//! as a bare MessagePack body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snap::internals::codec::{BlobCodec, FileClass};
use snap::internals::format::index::{self, IndexDelta};
use snap::internals::format::{from_msgpack, open_envelope};

/// Keeps a fuzz run's memory small; real deltas may be larger.
const MAX_LEN: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = from_msgpack::<IndexDelta>("index delta", data);
    if let Ok(body) = open_envelope(index::MAGIC, "index delta", data)
        && let Ok(plain) =
            BlobCodec::plain(3).decode_file(FileClass::Index, "index delta", body, MAX_LEN)
    {
        let _ = from_msgpack::<IndexDelta>("index delta", &plain);
    }
});
