//! Sealing of stored frames with age. In an unencrypted repository sealing
//! is the identity, so the framing is the same in every mode: only the
//! config's encryption mode decides whether frames are age files.
//!
//! Every sealed frame is one standard age file (X25519 recipient), so the
//! reference `age` CLI decrypts it given the identity that
//! `snap key export-identity` prints.
//!
//! Wrapping a file key to an X25519 recipient costs two scalar
//! multiplications, more than compressing and encrypting a small file. So a
//! file key is wrapped once per [`SESSION_USES`] frames: those frames share
//! the age header (stanza and header MAC) and differ in the 16-byte nonce
//! that follows it, from which age derives each frame's own payload key
//! (`HKDF(nonce, "payload", file key)`). Each frame is still a complete,
//! standard age file. Opening caches unwrapped file keys by stanza, so
//! reading many frames of one session costs one unwrap.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret;
use age::x25519;
use age_core::format::{FileKey, Stanza};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;

/// Frames sealed under one wrapped file key before a new one is made.
pub const SESSION_USES: u32 = 4096;

/// Unwrapped file keys remembered for opening, at most.
const CACHED_KEYS: usize = 4096;

/// age's payload chunk size.
const CHUNK: usize = 64 << 10;

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
        /// The current sealing session and the unwrapped keys.
        state: Arc<AgeState>,
    },
}

/// What an age [`Crypto`] remembers between frames.
#[derive(Default)]
pub struct AgeState {
    session: Mutex<Option<Session>>,
    unwrapped: Mutex<HashMap<Vec<u8>, Zeroizing<[u8; 16]>>>,
}

/// An unwrapped age file key, wiped when dropped.
type FileKeyBytes = Zeroizing<[u8; 16]>;

/// One wrapped file key and the age header that carries it.
struct Session {
    header: Arc<Vec<u8>>,
    file_key: Zeroizing<[u8; 16]>,
    uses: u32,
}

/// An identity that unwraps like `inner`, remembering what it unwrapped.
struct Caching<'a> {
    inner: &'a x25519::Identity,
    state: &'a AgeState,
}

impl age::Identity for Caching<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        let mut name = stanza.tag.as_bytes().to_vec();
        for arg in &stanza.args {
            name.push(b' ');
            name.extend_from_slice(arg.as_bytes());
        }
        name.push(b'\n');
        name.extend_from_slice(&stanza.body);
        let cache = lock(&self.state.unwrapped);
        if let Some(key) = cache.get(&name) {
            return Some(Ok(FileKey::new(Box::new(**key))));
        }
        drop(cache);
        let unwrapped = self.inner.unwrap_stanza(stanza);
        if let Some(Ok(key)) = &unwrapped {
            let mut cache = lock(&self.state.unwrapped);
            if cache.len() >= CACHED_KEYS {
                cache.clear();
            }
            cache.insert(name, Zeroizing::new(*key.expose_secret()));
        }
        unwrapped
    }
}

impl AgeState {
    /// The header and file key to seal the next frame with.
    fn next(&self, recipient: &x25519::Recipient) -> Result<(Arc<Vec<u8>>, FileKeyBytes)> {
        let mut session = lock(&self.session);
        if session.as_ref().is_none_or(|s| s.uses >= SESSION_USES) {
            *session = Some(Session::new(recipient)?);
        }
        let s = session.as_mut().expect("just made");
        s.uses += 1;
        Ok((Arc::clone(&s.header), s.file_key.clone()))
    }
}

impl Session {
    /// Wraps a new file key to `recipient` and writes the age header that
    /// carries it.
    fn new(recipient: &x25519::Recipient) -> Result<Self> {
        let mut file_key = Zeroizing::new([0u8; 16]);
        getrandom::fill(&mut *file_key).map_err(|e| failed(&e))?;
        let (stanzas, _) =
            age::Recipient::wrap_file_key(recipient, &FileKey::new(Box::new(*file_key)))
                .map_err(|e| failed(&e))?;
        Ok(Self {
            header: Arc::new(header(&stanzas, &file_key)),
            file_key,
            uses: 0,
        })
    }
}

/// The age v1 header of `stanzas` for `file_key`, with its MAC
/// (age-encryption.org/v1: HMAC-SHA256 under `HKDF(empty, "header", file
/// key)` of the header up to and including `---`). The age crate writes
/// the same header plus a random "grease" stanza of up to about 190
/// bytes, which every frame of the session would repeat; a header without
/// it is just as standard (the format does not ask for one).
fn header(stanzas: &[Stanza], file_key: &[u8; 16]) -> Vec<u8> {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut out = b"age-encryption.org/v1\n".to_vec();
    for stanza in stanzas {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(stanza.tag.as_bytes());
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = b64.encode(&stanza.body);
        for line in body.as_bytes().chunks(64) {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        // The body's last line is shorter than 64 characters, maybe empty.
        if body.len() % 64 == 0 {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"---");
    let key = age_core::primitives::hkdf(&[], b"header", file_key);
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(&out);
    out.push(b' ');
    out.extend_from_slice(b64.encode(mac.finalize().into_bytes()).as_bytes());
    out.push(b'\n');
    out
}

fn failed(e: &dyn std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("age encryption failed: {e}"))
}

/// age's STREAM: `frame` in 64 KiB chunks, ChaCha20-Poly1305 under
/// `payload_key`, nonces counting up with the last chunk flagged.
fn stream_seal(payload_key: &[u8; 32], frame: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let aead = ChaCha20Poly1305::new(Key::from_slice(payload_key));
    let chunks: Vec<&[u8]> = if frame.is_empty() {
        vec![frame]
    } else {
        frame.chunks(CHUNK).collect()
    };
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut nonce = [0u8; 12];
        nonce[3..11].copy_from_slice(&(i as u64).to_be_bytes());
        nonce[11] = u8::from(i == last);
        let sealed = aead
            .encrypt(Nonce::from_slice(&nonce), chunk)
            .map_err(|e| failed(&e))?;
        out.extend_from_slice(&sealed);
    }
    Ok(())
}

impl Crypto {
    /// Age sealing to `recipient`, opening with `identity` when given.
    pub fn age(recipient: x25519::Recipient, identity: Option<Arc<x25519::Identity>>) -> Self {
        Crypto::Age {
            recipient,
            identity,
            state: Arc::default(),
        }
    }
    /// Seals a compressed frame.
    pub fn seal(&self, frame: Vec<u8>) -> Result<Vec<u8>> {
        match self {
            Crypto::None => Ok(frame),
            Crypto::Age {
                recipient, state, ..
            } => {
                let (header, file_key) = state.next(recipient)?;
                let mut nonce = [0u8; 16];
                getrandom::fill(&mut nonce).map_err(|e| failed(&e))?;
                let payload_key =
                    Zeroizing::new(age_core::primitives::hkdf(&nonce, b"payload", &*file_key));
                let chunks = frame.len().div_ceil(CHUNK).max(1);
                let mut out = Vec::with_capacity(header.len() + 16 + frame.len() + 16 * chunks);
                out.extend_from_slice(&header);
                out.extend_from_slice(&nonce);
                stream_seal(&payload_key, &frame, &mut out)?;
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
                state,
                ..
            } => {
                let failed = |e: &dyn std::fmt::Display| {
                    Error::new(ErrorKind::Corrupt, format!("does not decrypt: {e}"))
                };
                let decryptor = age::Decryptor::new_buffered(sealed).map_err(|e| failed(&e))?;
                let mut reader = decryptor
                    .decrypt(std::iter::once(&Caching {
                        inner: identity,
                        state,
                    } as &dyn age::Identity))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames of one session share a header, and each is a standard age
    /// file: the age crate opens it with the bare identity, and any changed
    /// byte (header, nonce or payload) makes it fail.
    #[test]
    fn sealed_frames_are_standard_age_files_sharing_a_header() {
        let identity = x25519::Identity::generate();
        let crypto = Crypto::age(identity.to_public(), Some(Arc::new(identity.clone())));
        let sizes = [0, 1, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 200_000];
        let mut sealed = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            let frame: Vec<u8> = (0..*size).map(|j| (j * 31 + i) as u8).collect();
            let s = crypto.seal(frame.clone()).unwrap();
            let opened = age::decrypt(&identity, &s).unwrap();
            assert_eq!(opened, frame, "size {size}");
            assert_eq!(crypto.open(&s).unwrap().as_ref(), &frame[..]);
            sealed.push(s);
        }
        let header_len = sealed[0].len() - 32;
        // The version line, one X25519 stanza and the MAC line: no grease.
        assert_eq!(header_len, 168);
        assert!(
            sealed
                .iter()
                .all(|s| s[..header_len] == sealed[0][..header_len])
        );
        assert_ne!(
            sealed[0][header_len..header_len + 16],
            sealed[1][header_len..header_len + 16],
            "every frame has its own nonce"
        );
        for at in [10, header_len - 5, header_len + 3, sealed[4].len() - 1] {
            let mut bad = sealed[4].clone();
            bad[at] ^= 1;
            assert!(age::decrypt(&identity, &bad).is_err(), "byte {at}");
            assert_eq!(crypto.open(&bad).unwrap_err().kind(), ErrorKind::Corrupt);
        }
    }

    #[test]
    fn a_session_ends_after_its_uses() {
        let identity = x25519::Identity::generate();
        let crypto = Crypto::age(identity.to_public(), None);
        let first = crypto.seal(vec![1]).unwrap();
        for _ in 1..SESSION_USES {
            crypto.seal(vec![2]).unwrap();
        }
        let next = crypto.seal(vec![3]).unwrap();
        assert_ne!(first[..first.len() - 33], next[..next.len() - 33]);
        assert_eq!(age::decrypt(&identity, &next).unwrap(), vec![3]);
    }
}
