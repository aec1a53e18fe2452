//! Sealing of stored frames with age. In an unencrypted repository sealing
//! is the identity, so the framing is the same in every mode: only the
//! config's encryption mode decides whether frames are age files.
//!
//! Every sealed frame is one standard age file (X25519 recipient), so the
//! reference `age` CLI decrypts it given the identity that
//! `snap key export-identity` prints.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::sync::Arc;

use age::x25519;

use crate::error::{Error, ErrorKind, Result};

/// How frames are sealed in a repository.
#[derive(Clone)]
pub enum Crypto {
    /// Unencrypted repository: frames are stored as they are.
    None,
    /// Frames are age files encrypted to `recipient`; `identity` is absent
    /// for a write-only key, which can seal but not open.
    Age {
        /// Encrypts.
        recipient: x25519::Recipient,
        /// Decrypts, when this key may read.
        identity: Option<Arc<x25519::Identity>>,
    },
}

impl Crypto {
    /// Seals a compressed frame.
    pub fn seal(&self, frame: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            Crypto::None => Ok(frame),
            Crypto::Age { recipient, .. } => {
                let failed = |e: &dyn std::fmt::Display| {
                    Error::new(ErrorKind::Io, format!("age encryption failed: {e}"))
                };
                let encryptor = age::Encryptor::with_recipients(std::iter::once(
                    recipient as &dyn age::Recipient,
                ))
                .map_err(|e| failed(&e))?;
                let mut out = Vec::with_capacity(frame.len() + 256);
                let mut writer = encryptor.wrap_output(&mut out).map_err(|e| failed(&e))?;
                writer.write_all(&frame).map_err(|e| failed(&e))?;
                writer.finish().map_err(|e| failed(&e))?;
                Ok(out)
            }
        }
    }

    /// Opens a sealed frame. A key that may only write gets a `Key` error;
    /// anything that fails to decrypt or authenticate is an error the caller
    /// reports as damage.
    pub fn open<'a>(&self, sealed: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        match self {
            Crypto::None => Ok(Cow::Borrowed(sealed)),
            Crypto::Age { identity: None, .. } => Err(write_only_error()),
            Crypto::Age {
                identity: Some(identity),
                ..
            } => {
                let failed = |e: &dyn std::fmt::Display| {
                    Error::new(ErrorKind::Corrupt, format!("does not decrypt: {e}"))
                };
                let decryptor = age::Decryptor::new_buffered(sealed).map_err(|e| failed(&e))?;
                let mut reader = decryptor
                    .decrypt(std::iter::once(identity.as_ref() as &dyn age::Identity))
                    .map_err(|e| failed(&e))?;
                let mut out = Vec::with_capacity(sealed.len());
                reader.read_to_end(&mut out).map_err(|e| failed(&e))?;
                Ok(Cow::Owned(out))
            }
        }
    }
}

/// The error for reading with a write-only key.
pub fn write_only_error() -> Error {
    Error::new(
        ErrorKind::Key,
        "this key can only write: it can add snapshots but not read, list, restore or delete them; use a full key or passphrase",
    )
}
