//! Reads a pack's trailer: the list of its blobs, without the index.

use crate::backend::{Backend, FileKind};
use crate::codec::{BlobCodec, FileClass};
use crate::error::{Error, Result};
use crate::format::from_msgpack;
use crate::format::pack::{HEADER_LEN, MAGIC, MAX_TRAILER_LEN, PackTrailer};
use crate::id::PackId;

/// Reads and validates the trailer of pack `id`, whose size is `size`.
pub fn read_trailer(
    backend: &dyn Backend,
    codec: &BlobCodec,
    id: &PackId,
    size: u64,
) -> Result<PackTrailer> {
    let what = format!("pack {id}");
    if size < u64::from(HEADER_LEN) + 4 {
        return Err(Error::corrupt(&what, format!("only {size} bytes long")));
    }
    let name = id.to_hex();
    let header = backend.read_range(FileKind::Pack, &name, 0, HEADER_LEN)?;
    crate::format::open_envelope(MAGIC, &what, &header)?;
    let len_bytes = backend.read_range(FileKind::Pack, &name, size - 4, 4)?;
    let trailer_len = u32::from_le_bytes(len_bytes.try_into().expect("read 4 bytes"));
    if trailer_len > MAX_TRAILER_LEN || u64::from(trailer_len) + 4 + u64::from(HEADER_LEN) > size {
        return Err(Error::corrupt(
            &what,
            format!("trailer length {trailer_len} does not fit"),
        ));
    }
    let trailer_start = size - 4 - u64::from(trailer_len);
    let frame = backend.read_range(FileKind::Pack, &name, trailer_start, trailer_len)?;
    let body = codec.decode_file(
        FileClass::Index,
        &what,
        &frame,
        MAX_TRAILER_LEN as usize * 8,
    )?;
    let trailer: PackTrailer = from_msgpack(&what, &body)?;
    trailer
        .validate(trailer_start)
        .map_err(|e| Error::corrupt(&what, e))?;
    Ok(trailer)
}
