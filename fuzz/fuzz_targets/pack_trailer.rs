//! Arbitrary bytes as a whole pack file: `read_trailer` must return a
//! trailer or an error, never panic or allocate what a hostile length asks.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use snap::backend::{Backend, FileKind};
use snap::internals::codec::BlobCodec;
use snap::{Error, PackId, Result};

/// A backend holding one pack in memory.
struct OnePack(Vec<u8>);

impl Backend for OnePack {
    fn location(&self) -> String {
        "memory".into()
    }
    fn exists(&self) -> Result<bool> {
        Ok(true)
    }
    fn create(&self) -> Result<()> {
        Ok(())
    }
    fn read(&self, _: FileKind, _: &str) -> Result<Vec<u8>> {
        Ok(self.0.clone())
    }
    fn read_range(&self, _: FileKind, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        self.0
            .get(start..start.saturating_add(length as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::corrupt(format!("pack {name}"), "short"))
    }
    fn write(&self, _: FileKind, _: &str, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn write_file(&self, _: FileKind, _: &str, _: &Path) -> Result<()> {
        Ok(())
    }
    fn list(&self, _: FileKind) -> Result<Vec<(String, u64)>> {
        Ok(Vec::new())
    }
    fn remove(&self, _: FileKind, _: &str) -> Result<()> {
        Ok(())
    }
    fn temp_dir(&self) -> &Path {
        Path::new("/nonexistent")
    }
    fn cache_dir(&self) -> Option<PathBuf> {
        None
    }
}

fuzz_target!(|data: &[u8]| {
    let backend = OnePack(data.to_vec());
    let codec = BlobCodec::plain(3);
    let _ =
        snap::internals::pack::read_trailer(&backend, &codec, &PackId([0; 32]), data.len() as u64);
});
