//! Sealing of stored frames. In an unencrypted repository sealing is the
//! identity, so the framing is the same in every mode: only the config's
//! encryption mode decides whether frames are age files.

use std::borrow::Cow;
use std::fmt;

/// How frames are sealed in a repository.
#[derive(Clone)]
pub enum Crypto {
    /// Unencrypted repository: frames are stored as they are.
    None,
}

/// A frame that failed to open.
#[derive(Debug)]
pub struct OpenError(pub String);

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OpenError {}

impl Crypto {
    /// Seals a compressed frame.
    pub fn seal(&self, frame: Vec<u8>) -> crate::error::Result<Vec<u8>> {
        match self {
            Crypto::None => Ok(frame),
        }
    }

    /// Opens a sealed frame.
    pub fn open<'a>(&self, sealed: &'a [u8]) -> Result<Cow<'a, [u8]>, OpenError> {
        match self {
            Crypto::None => Ok(Cow::Borrowed(sealed)),
        }
    }
}
