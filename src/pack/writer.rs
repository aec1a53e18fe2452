//! Appends blob frames to a temporary file and seals it into a pack.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use tempfile::TempPath;

use crate::codec::{BlobCodec, FileClass};
use crate::error::{Error, Result};
use crate::format::pack::{BlobEntry, BlobKind, HEADER_LEN, MAGIC, PackTrailer};
use crate::format::{FORMAT_VERSION, to_msgpack_exact};
use crate::id::{BlobId, PackId};

/// Blobs after which a pack is full whatever its size: its entries wait in
/// memory until it is sealed and indexed, so a pack of tiny blobs must not
/// gather hundreds of thousands of them. 8,192 rather than 16,384 (a
/// pack of small files then holds about 7 MiB): peak RSS of a backup of a
/// million small files 42-44 -> 37-41 MiB for 4-5% of its time; 4,096
/// saved one MiB more but cost 10-15% of the time, with four times as many
/// packs to seal, store and index (docs/PERFORMANCE.md).
pub const MAX_PACK_BLOBS: usize = 8_192;

/// Bytes gathered before they are hashed and written at once.
///
/// The pack's name is blake3 of its bytes. blake3 hashes 1 KiB chunks of
/// one input side by side (SIMD), but input fed a frame at a time (a few
/// hundred bytes for a small file) goes through one block after the other:
/// hashing a whole buffer instead took blake3's share of a 300,000-file
/// backup's CPU from 8.9% to 6.1%, ids included (docs/PERFORMANCE.md).
const BUFFER: usize = 1 << 20;

/// A pack being written to a temporary file.
pub struct PackWriter {
    file: File,
    /// Bytes appended but not yet hashed and written.
    buffer: Vec<u8>,
    path: TempPath,
    hasher: blake3::Hasher,
    size: u64,
    target: u64,
    blobs: Vec<BlobEntry>,
}

/// A sealed pack, still in its temporary file.
pub struct FinishedPack {
    /// blake3 of the pack's bytes: its name.
    pub id: PackId,
    /// Size in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<BlobEntry>,
    /// The temporary file (removed when dropped, unless moved away).
    pub path: TempPath,
}

impl PackWriter {
    /// Starts a pack in `temp_dir` that is full once it reaches `target` bytes.
    pub fn create(temp_dir: &Path, target: u64) -> Result<Self> {
        let (file, path) = tempfile::Builder::new()
            .prefix("pack-")
            .tempfile_in(temp_dir)
            .map_err(|e| Error::io("cannot create a temporary pack in", temp_dir, e))?
            .into_parts();
        let mut writer = Self {
            file,
            buffer: Vec::with_capacity(BUFFER),
            path,
            hasher: blake3::Hasher::new(),
            size: 0,
            target,
            blobs: Vec::new(),
        };
        let mut header = MAGIC.to_vec();
        header.push(FORMAT_VERSION);
        writer.append(&header)?;
        debug_assert_eq!(writer.size, u64::from(HEADER_LEN));
        Ok(writer)
    }

    /// Starts the second copy of a metadata pack: like [`PackWriter::create`],
    /// with one zero byte between the header and the first frame, so that it
    /// never has the bytes, and so the name, of the first copy even when it
    /// holds the same blobs.
    pub fn create_second_copy(temp_dir: &Path, target: u64) -> Result<Self> {
        let mut writer = Self::create(temp_dir, target)?;
        writer.append(&[0])?;
        Ok(writer)
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buffer.len() + bytes.len() > BUFFER {
            self.write_buffer()?;
        }
        if bytes.len() >= BUFFER {
            self.hash_and_write(bytes)?;
        } else {
            self.buffer.extend_from_slice(bytes);
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Hashes and writes what the buffer holds.
    fn write_buffer(&mut self) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffer);
        let written = self.hash_and_write(&buffer);
        self.buffer = buffer;
        self.buffer.clear();
        written
    }

    /// Hashes and writes `bytes`, past the buffer.
    fn hash_and_write(&mut self, bytes: &[u8]) -> Result<()> {
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io("cannot write temporary pack", &self.path, e))
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the pack reached its target size or [`MAX_PACK_BLOBS`].
    pub fn is_full(&self) -> bool {
        self.size >= self.target || self.blobs.len() >= MAX_PACK_BLOBS
    }

    /// Number of blobs so far.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob was added yet.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Appends one blob frame.
    pub fn add(
        &mut self,
        id: BlobId,
        kind: BlobKind,
        frame: &[u8],
        raw_length: u32,
    ) -> Result<BlobEntry> {
        let offset = u32::try_from(self.size).map_err(|_| Error::usage("pack grew past 4 GiB"))?;
        let length =
            u32::try_from(frame.len()).map_err(|_| Error::usage("blob frame over 4 GiB"))?;
        self.append(frame)?;
        let entry = BlobEntry {
            id,
            kind,
            offset,
            length,
            raw_length,
        };
        self.blobs.push(entry);
        Ok(entry)
    }

    /// Appends the trailer, flushes and names the pack.
    pub fn finish(mut self, codec: &BlobCodec) -> Result<FinishedPack> {
        let trailer = PackTrailer {
            blobs: std::mem::take(&mut self.blobs),
        };
        let frame = codec.encode_file(FileClass::Index, &to_msgpack_exact(&trailer))?;
        let frame_len =
            u32::try_from(frame.len()).map_err(|_| Error::usage("pack trailer over 4 GiB"))?;
        self.append(&frame)?;
        self.append(&frame_len.to_le_bytes())?;
        self.write_buffer()?;
        Ok(FinishedPack {
            id: PackId(*self.hasher.finalize().as_bytes()),
            size: self.size,
            blobs: trailer.blobs,
            path: self.path,
        })
    }
}
