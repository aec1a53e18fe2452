//! Pack files: the writer that appends blob frames and seals a pack with its
//! trailer, the reader that gets a trailer back, and the [`BlobSaver`] that
//! fills packs and names them in index deltas. Layout in
//! [`crate::format::pack`].

mod reader;
mod saver;
mod writer;

pub use reader::read_trailer;
pub use saver::{BLOBS_PER_DELTA, BlobSaver, SaverLog};
pub use writer::{FinishedPack, MAX_PACK_BLOBS, PackWriter};
