//! Keys of encrypted repositories.
//!
//! A random 32-byte repository secret is the root of everything. From it,
//! with blake3's `derive_key` and distinct contexts, come: the key of blob
//! ids (keyed blake3), the chunker's gear seed, the X25519 identity that seals
//! index deltas and pack trailers, and the X25519 identity that seals blobs,
//! trees and snapshots.
//!
//! `keys/<id>` files hold that material, each sealed (an age file) to one
//! passphrase (scrypt) or to a set of age/SSH recipients: one file per way
//! in. A write-only key carries everything except the data identity (only
//! its public recipient), so it can deduplicate and write but never decrypt
//! what is stored.
//!
//! Layout of `keys/<id>`: envelope magic `SNAPKEYF`, version byte, MessagePack
//! [`KeyFile`]. An exported key file (`snap key add --output`) is envelope
//! magic `SNAPKEYX`, version byte, MessagePack [`ExportedKey`], not sealed:
//! it is a secret like an SSH private key and written with mode 0600.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use age::secrecy::{ExposeSecret, SecretString};
use age::x25519;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, FileKind};
use crate::codec::{Crypto, Hasher};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{envelope, from_msgpack, open_envelope, to_msgpack};
use crate::id::RepoId;

/// Magic of `keys/<id>` files.
pub const KEY_FILE_MAGIC: &[u8; 8] = b"SNAPKEYF";
/// Magic of exported key files.
pub const EXPORTED_MAGIC: &[u8; 8] = b"SNAPKEYX";

/// scrypt work factor (log2 N) for passphrase key files: 64 MiB and about
/// 0.2 s here, within what restic spends on its key derivation.
pub const SCRYPT_LOG_N: u8 = 16;

const CONTEXT_ID: &str = "snap 2026-11 blob id key";
const CONTEXT_SEED: &str = "snap 2026-11 chunker gear seed";
const CONTEXT_INDEX: &str = "snap 2026-11 index identity";
const CONTEXT_DATA: &str = "snap 2026-11 data identity";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Read and write everything.
    Full,
    /// Add snapshots; read nothing that is stored.
    WriteOnly,
}

/// How a key file is unlocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Lock {
    /// A passphrase (age scrypt).
    Passphrase,
    /// age or SSH identities matching the recipients it was sealed to.
    Recipients,
}

/// The key material, as stored inside a sealed key file or an exported key.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyMaterial {
    /// The repository secret (full keys only).
    #[serde(default, with = "serde_bytes")]
    secret: Option<Vec<u8>>,
    /// Key of blob ids.
    #[serde(with = "serde_bytes")]
    id_key: Vec<u8>,
    /// Chunker gear seed.
    chunker_seed: u64,
    /// Secret of the index identity.
    #[serde(with = "serde_bytes")]
    index_secret: Vec<u8>,
    /// Recipient (age1...) of the data identity.
    data_recipient: String,
}

/// A `keys/<id>` file.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// How it is unlocked.
    pub lock: Lock,
    /// What it may do.
    pub access: Access,
    /// When it was made (RFC 3339).
    pub created: String,
    /// Host it was made on.
    pub host: String,
    /// The sealed [`KeyMaterial`]: an age file.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// An exported key file (`--key-file`).
#[derive(Clone, Serialize, Deserialize)]
pub struct ExportedKey {
    /// The repository it belongs to.
    pub repo: RepoId,
    /// What it may do.
    pub access: Access,
    /// The material.
    pub material: KeyMaterial,
}

/// The unlocked keys of a repository.
#[derive(Clone)]
pub struct RepoKeys {
    material: KeyMaterial,
    id_key: [u8; 32],
    index: Arc<x25519::Identity>,
    data_recipient: x25519::Recipient,
    data: Option<Arc<x25519::Identity>>,
}

fn identity_from_bytes(bytes: &[u8; 32]) -> x25519::Identity {
    let hrp = bech32::Hrp::parse("age-secret-key-").expect("valid human-readable part");
    let text = bech32::encode::<bech32::Bech32>(hrp, bytes).expect("32 bytes always encode");
    x25519::Identity::from_str(&text.to_uppercase()).expect("a bech32 secret key parses")
}

fn bytes32(what: &str, bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| Error::corrupt(what, "key material of the wrong length"))
}

impl RepoKeys {
    /// Keys of a brand-new repository.
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the operating system's random source works");
        Self::from_secret(&secret)
    }

    /// Everything derived from the repository secret.
    fn from_secret(secret: &[u8; 32]) -> Self {
        let id_key = blake3::derive_key(CONTEXT_ID, secret);
        let seed_bytes = blake3::derive_key(CONTEXT_SEED, secret);
        let index_secret = blake3::derive_key(CONTEXT_INDEX, secret);
        let data = identity_from_bytes(&blake3::derive_key(CONTEXT_DATA, secret));
        let material = KeyMaterial {
            secret: Some(secret.to_vec()),
            id_key: id_key.to_vec(),
            chunker_seed: u64::from_le_bytes(seed_bytes[..8].try_into().expect("8 bytes")),
            index_secret: index_secret.to_vec(),
            data_recipient: data.to_public().to_string(),
        };
        Self {
            material,
            id_key,
            index: Arc::new(identity_from_bytes(&index_secret)),
            data_recipient: data.to_public(),
            data: Some(Arc::new(data)),
        }
    }

    fn from_material(material: KeyMaterial) -> Result<Self> {
        if let Some(secret) = &material.secret {
            return Ok(Self::from_secret(&bytes32("key", secret)?));
        }
        let data_recipient = x25519::Recipient::from_str(&material.data_recipient)
            .map_err(|e| Error::corrupt("key", e))?;
        Ok(Self {
            id_key: bytes32("key", &material.id_key)?,
            index: Arc::new(identity_from_bytes(&bytes32(
                "key",
                &material.index_secret,
            )?)),
            data_recipient,
            data: None,
            material,
        })
    }

    /// What these keys may do.
    pub fn access(&self) -> Access {
        if self.data.is_some() {
            Access::Full
        } else {
            Access::WriteOnly
        }
    }

    /// The same keys without the power to read.
    pub fn write_only(&self) -> Self {
        let mut material = self.material.clone();
        material.secret = None;
        Self {
            material,
            data: None,
            ..self.clone()
        }
    }

    /// How blob ids are computed.
    pub fn hasher(&self) -> Hasher {
        Hasher::Keyed(self.id_key)
    }

    /// The chunker's gear seed.
    pub fn chunker_seed(&self) -> u64 {
        self.material.chunker_seed
    }

    /// Seals blobs, trees and snapshots.
    pub fn data_crypto(&self) -> Crypto {
        Crypto::age(self.data_recipient.clone(), self.data.clone())
    }

    /// Seals index deltas and pack trailers.
    pub fn index_crypto(&self) -> Crypto {
        Crypto::age(self.index.to_public(), Some(self.index.clone()))
    }

    /// The identities, as an age identity file, for recovery with the `age` CLI.
    pub fn identity_file_text(&self) -> Result<String> {
        let data = self
            .data
            .as_ref()
            .ok_or_else(crate::codec::crypto::write_only_error)?;
        Ok(format!(
            "# snap repository identities: decrypt blobs, trees and snapshots (data)\n{}\n# and index deltas and pack trailers (index)\n{}\n",
            data.to_string().expose_secret(),
            self.index.to_string().expose_secret()
        ))
    }
}

/// How to unlock an encrypted repository. The password is asked for only
/// when a passphrase key file has to be tried.
#[derive(Default)]
pub struct Credentials {
    /// An exported key file (`--key-file`).
    pub key_file: Option<PathBuf>,
    /// age identity files (`--identity-file`): age keys or SSH private keys.
    pub identity_files: Vec<PathBuf>,
    /// Produces the passphrase.
    pub password: Option<Box<dyn Fn() -> Result<SecretString> + Send + Sync>>,
}

/// What a new key file is sealed to.
pub enum NewLock {
    /// A passphrase.
    Passphrase(SecretString),
    /// Recipients: `age1...`, `ssh-ed25519 ...`, `ssh-rsa ...` lines.
    Recipients(Vec<String>),
}

fn parse_recipient(text: &str) -> Result<Box<dyn age::Recipient + Send>> {
    let text = text.trim();
    if let Ok(r) = x25519::Recipient::from_str(text) {
        return Ok(Box::new(r));
    }
    if let Ok(r) = age::ssh::Recipient::from_str(text) {
        return Ok(Box::new(r));
    }
    Err(Error::usage(format!(
        "`{}` is not an age recipient (age1...) or a supported SSH public key",
        text.chars().take(40).collect::<String>()
    )))
}

/// Reads recipients from a file: one per line, `#` comments and blank lines ignored.
pub fn read_recipients_file(path: &Path) -> Result<Vec<String>> {
    crate::profile::read_list_file(path, "recipients file")
}

/// Seals `keys` into a new key file.
pub fn seal(keys: &RepoKeys, lock: &NewLock) -> Result<KeyFile> {
    let plain = to_msgpack(&keys.material);
    let failed =
        |e: &dyn std::fmt::Display| Error::new(ErrorKind::Io, format!("cannot seal key: {e}"));
    let (encryptor, kind) = match lock {
        NewLock::Passphrase(pass) => {
            if pass.expose_secret().is_empty() {
                return Err(Error::usage("an empty passphrase is not allowed"));
            }
            let mut recipient = age::scrypt::Recipient::new(pass.clone());
            recipient.set_work_factor(SCRYPT_LOG_N);
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|e| failed(&e))?;
            (encryptor, Lock::Passphrase)
        }
        NewLock::Recipients(lines) => {
            if lines.is_empty() {
                return Err(Error::usage("no recipients given"));
            }
            let recipients = lines
                .iter()
                .map(|l| parse_recipient(l))
                .collect::<Result<Vec<_>>>()?;
            let encryptor = age::Encryptor::with_recipients(
                recipients.iter().map(|r| r.as_ref() as &dyn age::Recipient),
            )
            .map_err(|e| failed(&e))?;
            (encryptor, Lock::Recipients)
        }
    };
    let mut sealed = Vec::new();
    let mut writer = encryptor.wrap_output(&mut sealed).map_err(|e| failed(&e))?;
    writer.write_all(&plain).map_err(|e| failed(&e))?;
    writer.finish().map_err(|e| failed(&e))?;
    Ok(KeyFile {
        lock: kind,
        access: keys.access(),
        created: jiff::Timestamp::now().to_string(),
        host: crate::host::hostname(),
        sealed,
    })
}

/// Writes a key file into the repository; returns its id (hex).
pub fn store(backend: &dyn Backend, file: &KeyFile) -> Result<String> {
    let bytes = envelope(KEY_FILE_MAGIC, &to_msgpack(file));
    let id = hex::encode(blake3::hash(&bytes).as_bytes());
    backend.write(FileKind::Key, &id, &bytes)?;
    Ok(id)
}

/// Reads `keys/<id>`.
pub fn load(backend: &dyn Backend, id: &str) -> Result<KeyFile> {
    let what = format!("key {id}");
    let bytes = backend.read(FileKind::Key, id)?;
    from_msgpack(&what, open_envelope(KEY_FILE_MAGIC, &what, &bytes)?)
}

/// Every key file: id and contents (unreadable ones are skipped).
pub fn list(backend: &dyn Backend) -> Result<Vec<(String, KeyFile)>> {
    let mut out = Vec::new();
    for (id, _) in backend.list(FileKind::Key)? {
        if let Ok(file) = load(backend, &id) {
            out.push((id, file));
        }
    }
    Ok(out)
}

fn unseal(file: &KeyFile, identities: &[Box<dyn age::Identity>]) -> Option<KeyMaterial> {
    let decryptor = age::Decryptor::new_buffered(file.sealed.as_slice()).ok()?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref()))
        .ok()?;
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).ok()?;
    rmp_serde::from_slice(&plain).ok()
}

fn wrong_key(message: &str) -> Error {
    Error::new(ErrorKind::Key, message.to_string())
}

/// Refuses a write-only key: such a key may add snapshots, never delete or
/// rewrite anything (a stolen writer must not be able to destroy backups or
/// lock the owner out). `action` says what was refused.
pub fn require_full(keys: &RepoKeys, action: &str) -> Result<()> {
    if keys.access() == Access::Full {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Key,
        format!(
            "a write-only key cannot {action}: it may only add snapshots; use a full key or passphrase"
        ),
    ))
}

/// The id of the one key file whose id starts with `prefix`.
pub fn find(list: &[(String, KeyFile)], prefix: &str) -> Result<String> {
    let found: Vec<_> = list
        .iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .collect();
    match found.as_slice() {
        [(id, _)] => Ok(id.clone()),
        [] => Err(Error::not_found(format!(
            "no key {prefix}; see `snap key list`"
        ))),
        _ => Err(Error::usage(format!("key prefix {prefix} is ambiguous"))),
    }
}

/// The keys of a repository that must be encrypted for what is asked
/// (`snap key ...`): an unencrypted repository has no keys to manage.
pub fn required(keys: Option<&RepoKeys>) -> Result<&RepoKeys> {
    keys.ok_or_else(|| Error::usage("this repository is not encrypted: it has no keys"))
}

/// These keys limited to `access`: a full key can hand out its write-only
/// half, never the other way round (callers check [`require_full`] first).
fn with_access(keys: &RepoKeys, access: Access) -> RepoKeys {
    match access {
        Access::Full => keys.clone(),
        Access::WriteOnly => keys.write_only(),
    }
}

/// Adds a key file with `access` (these keys, or their write-only half),
/// sealed to the lock `lock` produces (asked for only once adding is
/// allowed: no passphrase prompt for a key that may not add keys); returns
/// its id. Only a full key adds keys.
pub fn add(
    backend: &dyn Backend,
    keys: &RepoKeys,
    access: Access,
    lock: impl FnOnce() -> Result<NewLock>,
) -> Result<String> {
    require_full(keys, "add keys")?;
    store(backend, &seal(&with_access(keys, access), &lock()?)?)
}

/// Writes these keys (or their write-only half, by `access`) of the
/// repository `repo` to an exported key file at `path`, for `--key-file`.
/// Only a full key exports keys: it is a way in like a key file.
pub fn export(path: &Path, repo: &RepoId, keys: &RepoKeys, access: Access) -> Result<()> {
    require_full(keys, "add keys")?;
    write_exported(path, repo, &with_access(keys, access))
}

/// Removes the key file whose id starts with `prefix`; returns its id.
///
/// Refused for a write-only key (whatever file it came from), for the key
/// file in use (`in_use`: open the repository with another key to remove
/// it), for the last key file, and for the last key file with full access,
/// whatever key opened the repository: without one, nobody could read,
/// restore or prune again.
/// Key files that cannot be read do not count as full keys.
pub fn remove(
    backend: &dyn Backend,
    keys: &RepoKeys,
    in_use: Option<&str>,
    prefix: &str,
) -> Result<String> {
    require_full(keys, "remove keys")?;
    let list = list(backend)?;
    let id = find(&list, prefix)?;
    if Some(id.as_str()) == in_use {
        return Err(Error::usage(
            "refusing to remove the key in use; open the repository with another key to remove it",
        ));
    }
    if list.len() <= 1 {
        return Err(Error::usage(
            "refusing to remove the last key: the repository would be unreadable forever",
        ));
    }
    let removes_full = list
        .iter()
        .any(|(other, file)| *other == id && file.access == Access::Full);
    let other_full = list
        .iter()
        .any(|(other, file)| *other != id && file.access == Access::Full);
    if removes_full && !other_full {
        return Err(Error::usage(
            "refusing to remove the last key with full access: nobody could read, restore or prune the repository any more; add another full key first",
        ));
    }
    backend.remove(FileKind::Key, &id)?;
    Ok(id)
}

/// Replaces the passphrase key file `in_use` by one sealed to the
/// passphrase `password` gives (asked for only once the change is allowed);
/// returns the new id. The new file is written before the old one goes.
/// Refused for a write-only key: it deletes a key file.
pub fn change_passphrase(
    backend: &dyn Backend,
    keys: &RepoKeys,
    in_use: Option<&str>,
    password: impl FnOnce() -> Result<SecretString>,
) -> Result<String> {
    require_full(keys, "change key passphrases")?;
    let Some(current) = in_use else {
        return Err(Error::usage(
            "the repository was opened with a key file, not a passphrase",
        ));
    };
    if load(backend, current)?.lock != Lock::Passphrase {
        return Err(Error::usage(
            "the key in use is not a passphrase key; use `snap key add`",
        ));
    }
    let id = store(backend, &seal(keys, &NewLock::Passphrase(password()?))?)?;
    if id != current {
        backend.remove(FileKind::Key, current)?;
    }
    Ok(id)
}

/// Unlocks a repository. Returns the id of the key file that opened it
/// (`None` for an exported key file) and the keys.
pub fn unlock(
    backend: &dyn Backend,
    repo: &RepoId,
    credentials: &Credentials,
) -> Result<(Option<String>, RepoKeys)> {
    if let Some(path) = &credentials.key_file {
        let exported = read_exported(path)?;
        if exported.repo != *repo {
            return Err(wrong_key(&format!(
                "key file {} belongs to another repository",
                path.display()
            )));
        }
        return Ok((None, RepoKeys::from_material(exported.material)?));
    }
    let files = list(backend)?;
    if files.is_empty() {
        return Err(Error::corrupt(
            format!("repository {}", backend.location()),
            "it is encrypted but has no key files",
        ));
    }
    let (lock, identities): (Lock, Vec<Box<dyn age::Identity>>) = if credentials
        .identity_files
        .is_empty()
    {
        let Some(password) = &credentials.password else {
            return Err(wrong_key(
                "this repository is encrypted: give a password (--password-file, SNAP_PASSWORD_FILE, SNAP_PASSWORD, --password-command) or --identity-file / --key-file",
            ));
        };
        let mut identity = age::scrypt::Identity::new(password()?);
        identity.set_max_work_factor(22);
        (Lock::Passphrase, vec![Box::new(identity)])
    } else {
        let mut all: Vec<Box<dyn age::Identity>> = Vec::new();
        for path in &credentials.identity_files {
            all.extend(read_identities(path)?);
        }
        (Lock::Recipients, all)
    };
    for (id, file) in files.iter().filter(|(_, f)| f.lock == lock) {
        if let Some(material) = unseal(file, &identities) {
            return Ok((Some(id.clone()), RepoKeys::from_material(material)?));
        }
    }
    Err(wrong_key(match lock {
        Lock::Passphrase => "wrong password: no key file of this repository opens with it",
        Lock::Recipients => "no key file of this repository opens with the given identity",
    }))
}

/// Reads age identities (age keys, SSH private keys) from a file.
pub fn read_identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::io("cannot read identity file", path, e))?;
    if let Ok(identities) = age::IdentityFile::from_buffer(BufReader::new(&file)).and_then(|f| {
        f.into_identities()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }) && !identities.is_empty()
    {
        return Ok(identities
            .into_iter()
            .map(|i| i as Box<dyn age::Identity>)
            .collect());
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read identity file", path, e))?;
    match age::ssh::Identity::from_buffer(bytes.as_slice(), Some(path.display().to_string())) {
        Ok(age::ssh::Identity::Unencrypted(key)) => {
            Ok(vec![Box::new(age::ssh::Identity::Unencrypted(key))])
        }
        Ok(_) => Err(Error::new(
            ErrorKind::Key,
            format!(
                "{} is an encrypted or unsupported SSH key; use an unencrypted key or an age identity",
                path.display()
            ),
        )),
        Err(e) => Err(Error::new(
            ErrorKind::Key,
            format!(
                "{} holds no age identity or SSH private key: {e}",
                path.display()
            ),
        )),
    }
}

/// Writes an exported key file with mode 0600 (never over an existing file).
pub fn write_exported(path: &Path, repo: &RepoId, keys: &RepoKeys) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let exported = ExportedKey {
        repo: *repo,
        access: keys.access(),
        material: keys.material.clone(),
    };
    let bytes = envelope(EXPORTED_MAGIC, &to_msgpack(&exported));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("cannot create key file", path, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io("cannot write key file", path, e))
}

/// Reads an exported key file.
pub fn read_exported(path: &Path) -> Result<ExportedKey> {
    let what = format!("key file {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| Error::io("cannot read key file", path, e))?;
    let body = open_envelope(EXPORTED_MAGIC, &what, &bytes)
        .map_err(|e| Error::new(ErrorKind::Key, e.message()))?;
    from_msgpack(&what, body).map_err(|e| Error::new(ErrorKind::Key, e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_write_only_cannot_read() {
        let keys = RepoKeys::generate();
        let again = RepoKeys::from_material(keys.material.clone()).unwrap();
        assert_eq!(keys.id_key, again.id_key);
        assert_eq!(keys.chunker_seed(), again.chunker_seed());
        let wo = RepoKeys::from_material(keys.write_only().material).unwrap();
        assert_eq!(wo.access(), Access::WriteOnly);
        assert_eq!(wo.id_key, keys.id_key);
        let sealed = wo.data_crypto().seal(b"secret".to_vec()).unwrap();
        assert_eq!(
            wo.data_crypto().open(&sealed).unwrap_err().kind(),
            ErrorKind::Key
        );
        assert_eq!(&*keys.data_crypto().open(&sealed).unwrap(), b"secret");
        assert!(wo.identity_file_text().is_err());
    }

    #[test]
    fn removal_keeps_a_full_key_and_refuses_write_only_keys() {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::backend::LocalBackend::new(dir.path().join("repo"));
        backend.create().unwrap();
        let keys = RepoKeys::generate();
        let writer = keys.write_only();
        // Recipients seal fast (no scrypt); the rules do not look at the lock.
        let lock = NewLock::Recipients(vec![x25519::Identity::generate().to_public().to_string()]);
        let full = store(&backend, &seal(&keys, &lock).unwrap()).unwrap();
        let stored_writer = store(&backend, &seal(&writer, &lock).unwrap()).unwrap();

        let refused = remove(&backend, &writer, None, &full).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Key);
        // Refused before the lock is asked for: no prompt for a key that may not add.
        let refused = add(&backend, &writer, Access::WriteOnly, || {
            unreachable!("the lock of a refused key is never asked for")
        })
        .unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Key);
        let path = dir.path().join("exported");
        let refused = export(&path, &RepoId([1; 32]), &writer, Access::WriteOnly).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::Key);
        assert!(!path.exists());
        // Opened with an exported full key (no key file in use): the only
        // full key file stays.
        let refused = remove(&backend, &keys, None, &full).unwrap_err();
        assert!(refused.message().contains("last key with full access"));
        let refused = remove(&backend, &keys, Some(&full), &full).unwrap_err();
        assert!(refused.message().contains("key in use"));
        assert_eq!(list(&backend).unwrap().len(), 2);
        assert_eq!(
            remove(&backend, &keys, None, &stored_writer).unwrap(),
            stored_writer
        );
        // The last key file goes neither.
        assert!(remove(&backend, &keys, None, &full).is_err());
        assert_eq!(list(&backend).unwrap().len(), 1);
    }

    #[test]
    fn sealed_with_passphrase_opens_only_with_it() {
        let keys = RepoKeys::generate();
        let file = seal(
            &keys,
            &NewLock::Passphrase(SecretString::from("correct horse".to_string())),
        )
        .unwrap();
        let right: Vec<Box<dyn age::Identity>> = vec![Box::new(age::scrypt::Identity::new(
            SecretString::from("correct horse".to_string()),
        ))];
        let wrong: Vec<Box<dyn age::Identity>> = vec![Box::new(age::scrypt::Identity::new(
            SecretString::from("wrong".to_string()),
        ))];
        assert!(unseal(&file, &right).is_some());
        assert!(unseal(&file, &wrong).is_none());
    }
}
