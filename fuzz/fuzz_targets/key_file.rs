//! Arbitrary bytes as an exported key file (`--key-file`, read from disk as
//! snap reads it) and as a `keys/<id>` file body.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use snap::internals::format::{from_msgpack, open_envelope};
use snap::keys::{KEY_FILE_MAGIC, KeyFile, read_exported};

fuzz_target!(|data: &[u8]| {
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(data).expect("write the input");
    let _ = read_exported(file.path());
    if let Ok(body) = open_envelope(KEY_FILE_MAGIC, "key", data) {
        let _ = from_msgpack::<KeyFile>("key", body);
    }
});
