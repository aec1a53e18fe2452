//! Pack files: the writer that appends blob frames and seals a pack with its
//! trailer, and the reader that gets a trailer back. Layout in
//! [`crate::format::pack`].

mod reader;
mod writer;

pub use reader::read_trailer;
pub use writer::{FinishedPack, PackWriter};
