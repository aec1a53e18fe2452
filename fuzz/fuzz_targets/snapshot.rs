//! Arbitrary bytes as a snapshot file (envelope, zstd, MessagePack) and as
//! a bare MessagePack body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snap::Snapshot;
use snap::internals::codec::{BlobCodec, FileClass};
use snap::internals::format::{from_msgpack, open_envelope, snapshot};

fuzz_target!(|data: &[u8]| {
    let _ = from_msgpack::<Snapshot>("snapshot", data);
    if let Ok(body) = open_envelope(snapshot::MAGIC, "snapshot", data)
        && let Ok(plain) =
            BlobCodec::plain(3).decode_file(FileClass::Data, "snapshot", body, snapshot::MAX_LEN)
    {
        let _ = from_msgpack::<Snapshot>("snapshot", &plain);
    }
});
