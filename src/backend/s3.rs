//! S3-compatible object storage (AWS S3, Backblaze B2, MinIO, Ceph RGW,
//! Garage...) through OpenDAL, for repositories at `s3://bucket/prefix`.
//!
//! Configuration comes from the standard AWS variables, read by OpenDAL:
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`),
//! `AWS_REGION` (default `us-east-1`), `AWS_ENDPOINT_URL` for stores other
//! than AWS. Requests use path-style addressing unless
//! `SNAP_S3_VIRTUAL_HOST=1`.
//!
//! Atomicity: an S3 object becomes visible only once its PUT (or multipart
//! upload) completes, so every write here is all-or-nothing, which is what
//! [`Backend::write`] promises. Transient failures (timeouts, 5xx,
//! throttling) are retried with exponential backoff by OpenDAL's retry
//! layer; a permanent failure names the operation and the object.
//!
//! The rest of snap is synchronous: a small private tokio runtime drives the
//! requests, and any number of threads may call in at once (uploads and
//! range reads overlap).

use std::collections::VecDeque;
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opendal::Operator;
use opendal::layers::{RetryLayer, TimeoutLayer};

use super::{Backend, FileKind};
use crate::error::{Error, ErrorKind, Result};
use crate::sync::lock;

/// Packs up to this size go up in one PUT; larger files in a multipart upload.
const SINGLE_PUT_MAX: u64 = 64 << 20;
/// Part size of multipart uploads.
const PART_SIZE: usize = 16 << 20;
/// Attempts for a request that fails transiently (first try included).
pub const RETRIES: usize = 6;

/// Packs up to this size are downloaded whole for range reads.
const WHOLE_PACK_MAX: u64 = 64 << 20;
/// Whole packs kept (in unnamed temporary files: at most 32 x 64 MiB, and
/// 32 x 16 MiB with the default pack size).
const CACHED_PACKS: usize = 32;

/// A pack downloaded whole into a temporary file, with its size (or `None`:
/// too large, read ranges directly), or why it could not be.
type CachedPack = std::result::Result<Option<(Arc<std::fs::File>, u64)>, (ErrorKind, String)>;

/// A repository under a prefix of an S3 bucket.
pub struct S3Backend {
    op: Operator,
    runtime: tokio::runtime::Runtime,
    location: String,
    tmp: PathBuf,
    /// Recently read packs, least recently used first. One GET per small
    /// blob would make a restore pay a round trip per file; blobs that are
    /// read together sit together in packs, so a pack is fetched once, in
    /// one GET, into a temporary file (deleted when it leaves the cache),
    /// and blobs are read from there. Threads that want the same pack wait
    /// for one download. Packs are immutable: a cached pack never goes stale.
    packs: Mutex<VecDeque<(String, Arc<OnceLock<CachedPack>>)>>,
}

/// Splits `s3://bucket/prefix` into bucket and prefix (without slashes at the ends).
pub fn parse_location(location: &str) -> Result<(String, String)> {
    let rest = location.strip_prefix("s3://").ok_or_else(|| {
        Error::usage(format!(
            "`{location}` is not an S3 location (s3://bucket/prefix)"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let valid_bucket = !bucket.is_empty()
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(Error::usage(format!(
            "`{location}`: the bucket name must be lowercase letters, digits, `-` and `.`"
        )));
    }
    let prefix = prefix.trim_matches('/').to_string();
    if prefix.split('/').any(|part| part == "." || part == "..") {
        return Err(Error::usage(format!(
            "`{location}`: the prefix must not contain `.` or `..`"
        )));
    }
    Ok((bucket.to_string(), prefix))
}

impl S3Backend {
    /// A backend for `s3://bucket/prefix` (which need not exist yet),
    /// configured by the process's environment.
    pub fn new(location: &str) -> Result<Self> {
        Self::with_vars(location, |name| std::env::var(name).ok())
    }

    /// A backend configured by the variables `vars` returns (the AWS
    /// variables of the module documentation). Credentials it does not
    /// give are looked for the AWS way (environment, profile files).
    pub fn with_vars(location: &str, vars: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let (bucket, prefix) = parse_location(location)?;
        // The HTTP client (reqwest with rustls); installing twice is harmless.
        opendal::install_default();
        let region = vars("AWS_REGION")
            .or_else(|| vars("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder = opendal::services::S3::default()
            .bucket(&bucket)
            .root(&format!("/{prefix}"))
            .region(&region);
        if let Some(endpoint) = vars("AWS_ENDPOINT_URL").filter(|e| !e.is_empty()) {
            builder = builder.endpoint(endpoint.trim_end_matches('/'));
        }
        if let (Some(key), Some(secret)) =
            (vars("AWS_ACCESS_KEY_ID"), vars("AWS_SECRET_ACCESS_KEY"))
        {
            builder = builder.access_key_id(&key).secret_access_key(&secret);
            if let Some(token) = vars("AWS_SESSION_TOKEN") {
                builder = builder.session_token(&token);
            }
        }
        if vars("SNAP_S3_VIRTUAL_HOST").is_some_and(|v| v == "1") {
            builder = builder.enable_virtual_host_style();
        }
        let retry = RetryLayer::new()
            .with_max_times(RETRIES - 1)
            .with_min_delay(Duration::from_millis(
                vars("SNAP_S3_RETRY_MIN_DELAY_MS")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(200),
            ))
            .with_max_delay(Duration::from_secs(20))
            .with_factor(2.0)
            .with_jitter();
        let op = Operator::new(builder)
            .map_err(|e| Error::usage(format!("cannot use {location}: {e}")))?
            // Timeouts turn a stalled connection into a retryable error.
            .layer(
                TimeoutLayer::new()
                    .with_timeout(Duration::from_secs(120))
                    .with_io_timeout(Duration::from_secs(60)),
            )
            .layer(retry);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("snap-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot start the S3 client: {e}")))?;
        let location = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let tmp = vars("XDG_CACHE_HOME")
            .filter(|dir| Path::new(dir).is_absolute())
            .map(PathBuf::from)
            .or_else(dirs::cache_dir)
            .unwrap_or_else(std::env::temp_dir)
            .join("snap")
            .join("tmp")
            .join(hex::encode(
                &blake3::hash(location.as_bytes()).as_bytes()[..8],
            ));
        Ok(Self {
            op,
            runtime,
            location,
            tmp,
            packs: Mutex::new(VecDeque::new()),
        })
    }

    /// The object key of a file, relative to the prefix.
    fn path(&self, kind: FileKind, name: &str) -> Result<String> {
        if kind == FileKind::Config {
            return Ok("config".to_string());
        }
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::usage(format!(
                "invalid {} name `{name}`",
                kind.noun()
            )));
        }
        Ok(if kind == FileKind::Pack {
            format!("data/{}/{name}", &name[..2.min(name.len())])
        } else {
            format!("{}/{name}", kind.folder())
        })
    }

    /// An OpenDAL error as snap's, naming the operation and the object.
    fn error(&self, operation: &str, kind: FileKind, path: &str, e: &opendal::Error) -> Error {
        let error_kind = match e.kind() {
            opendal::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        // The retry layer marks every error it lets through as persistent,
        // also those it never retried (403, 404 are permanent at once): only
        // throttling and 5xx answers (these kinds) can have been retried.
        let retryable = matches!(
            e.kind(),
            opendal::ErrorKind::RateLimited | opendal::ErrorKind::Unexpected
        );
        let retried = if e.is_persistent() && retryable {
            format!(" (gave up after {RETRIES} attempts)")
        } else {
            String::new()
        };
        Error::new(
            error_kind,
            format!(
                "cannot {operation} {} {}/{path}{retried}: {e}",
                kind.noun(),
                self.location
            ),
        )
    }

    /// A pack from the cache, downloading it whole when it is not there
    /// (`None` when it is too large for that).
    fn cached_pack(&self, name: &str, path: &str) -> Result<Option<(Arc<std::fs::File>, u64)>> {
        let cell = {
            let mut packs = lock(&self.packs);
            match packs.iter().position(|(n, _)| n == name) {
                Some(i) => {
                    let entry = packs.remove(i).expect("found");
                    let cell = Arc::clone(&entry.1);
                    packs.push_back(entry);
                    cell
                }
                None => {
                    if packs.len() >= CACHED_PACKS {
                        packs.pop_front();
                    }
                    let cell = Arc::new(OnceLock::new());
                    packs.push_back((name.to_string(), Arc::clone(&cell)));
                    cell
                }
            }
        };
        let cached = cell.get_or_init(|| {
            let download = async {
                let meta = self.op.stat(path).await?;
                if meta.content_length() > WHOLE_PACK_MAX {
                    return Ok(None);
                }
                let data = self.op.read(path).await?;
                Ok(Some(data.to_vec()))
            };
            let data = self
                .runtime
                .block_on(download)
                .map_err(|e: opendal::Error| {
                    let e = self.error("read", FileKind::Pack, path, &e);
                    (e.kind(), e.to_string())
                })?;
            let Some(data) = data else { return Ok(None) };
            let spill = || -> std::io::Result<std::fs::File> {
                std::os::unix::fs::DirBuilderExt::mode(
                    std::fs::DirBuilder::new().recursive(true),
                    super::local::PRIVATE_DIR_MODE,
                )
                .create(&self.tmp)?;
                let mut file = tempfile::tempfile_in(&self.tmp)?;
                std::io::Write::write_all(&mut file, &data)?;
                Ok(file)
            };
            let file = spill().map_err(|e| {
                let e = Error::io("cannot write a downloaded pack to", &self.tmp, e);
                (e.kind(), e.to_string())
            })?;
            Ok(Some((Arc::new(file), data.len() as u64)))
        });
        match cached {
            Ok(pack) => Ok(pack.clone()),
            Err((kind, message)) => {
                // Forget the failure: a later read tries again.
                lock(&self.packs).retain(|(n, c)| !(n == name && Arc::ptr_eq(c, &cell)));
                Err(Error::new(*kind, message.clone()))
            }
        }
    }

    /// Uploads a local file in one PUT, or in parts when it is large.
    async fn upload(&self, key: &str, path: &Path) -> std::result::Result<(), UploadError> {
        let size = std::fs::metadata(path).map_err(UploadError::Local)?.len();
        if size <= SINGLE_PUT_MAX {
            let data = std::fs::read(path).map_err(UploadError::Local)?;
            self.op
                .write(key, data)
                .await
                .map_err(UploadError::Remote)?;
            return Ok(());
        }
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(UploadError::Local)?;
        let mut writer = self
            .op
            .writer_with(key)
            .chunk(PART_SIZE)
            .concurrent(4)
            .await
            .map_err(UploadError::Remote)?;
        loop {
            let mut part = vec![0u8; PART_SIZE];
            let mut filled = 0;
            while filled < PART_SIZE {
                let n = file.read(&mut part[filled..]).map_err(UploadError::Local)?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            part.truncate(filled);
            if let Err(e) = writer.write(part).await {
                let _ = writer.abort().await;
                return Err(UploadError::Remote(e));
            }
        }
        // The object appears only when the multipart upload completes.
        writer.close().await.map_err(UploadError::Remote)?;
        Ok(())
    }
}

enum UploadError {
    Local(std::io::Error),
    Remote(opendal::Error),
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn exists(&self) -> Result<bool> {
        self.runtime
            .block_on(self.op.exists("config"))
            .map_err(|e| self.error("look for", FileKind::Config, "config", &e))
    }

    fn create(&self) -> Result<()> {
        // Object stores have no folders; check that the bucket answers.
        self.runtime
            .block_on(self.op.list_with("keys/").limit(1).into_future())
            .map(|_| ())
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot use {}: {e}", self.location)))
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name)?;
        self.runtime
            .block_on(self.op.read(&path))
            .map(|buffer| buffer.to_vec())
            .map_err(|e| self.error("read", kind, &path, &e))
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        let path = self.path(kind, name)?;
        let end = offset.saturating_add(u64::from(length));
        if kind == FileKind::Pack
            && let Some((file, size)) = self.cached_pack(name, &path)?
        {
            if end > size {
                return Err(Error::corrupt(
                    format!("pack {name}"),
                    format!("shorter than the index says ({length} bytes at offset {offset})"),
                ));
            }
            let mut buf = vec![0u8; length as usize];
            std::os::unix::fs::FileExt::read_exact_at(file.as_ref(), &mut buf, offset)
                .map_err(|e| Error::io("cannot read a downloaded pack in", &self.tmp, e))?;
            return Ok(buf);
        }
        let data = match self
            .runtime
            .block_on(self.op.read_with(&path).range(offset..end).into_future())
        {
            Ok(buffer) => buffer.to_vec(),
            // The range starts past the end of the object.
            Err(e) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => Vec::new(),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
                return Err(self.error("read", kind, &path, &e));
            }
            // A range past the end fails as a short read: tell that (a lying
            // index, damage) from a failure of the store by the object's size.
            Err(e) => match self.runtime.block_on(self.op.stat(&path)) {
                Ok(meta) if meta.content_length() < end => Vec::new(),
                _ => return Err(self.error("read", kind, &path, &e)),
            },
        };
        if data.len() != length as usize {
            return Err(Error::corrupt(
                format!("{} {name}", kind.noun()),
                format!("shorter than the index says ({length} bytes at offset {offset})"),
            ));
        }
        Ok(data)
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(kind, name)?;
        self.runtime
            .block_on(self.op.write(&path, data.to_vec()))
            .map(|_| ())
            .map_err(|e| self.error("write", kind, &path, &e))
    }

    fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()> {
        let key = self.path(kind, name)?;
        match self.runtime.block_on(self.upload(&key, path)) {
            Ok(()) => {}
            Err(UploadError::Local(e)) => return Err(Error::io("cannot read", path, e)),
            Err(UploadError::Remote(e)) => return Err(self.error("upload", kind, &key, &e)),
        }
        // Uploaded: the local copy has done its job ("moved").
        std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        let folder = format!("{}/", kind.folder());
        let entries = self
            .runtime
            .block_on(self.op.list_with(&folder).recursive(true).into_future())
            .map_err(|e| self.error("list", kind, &folder, &e))?;
        let mut out = Vec::new();
        for entry in entries {
            if !entry.metadata().is_file() {
                continue;
            }
            let name = entry.name();
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            // A pack must sit in the folder of its first two digits.
            if kind == FileKind::Pack && entry.path() != format!("data/{}/{name}", &name[..2]) {
                continue;
            }
            out.push((name.to_string(), entry.metadata().content_length()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        let path = self.path(kind, name)?;
        if kind == FileKind::Pack {
            lock(&self.packs).retain(|(n, _)| n != name);
        }
        match self.runtime.block_on(self.op.delete(&path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error("remove", kind, &path, &e)),
        }
    }

    fn temp_dir(&self) -> &Path {
        &self.tmp
    }

    fn parallel_writes(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        assert_eq!(
            parse_location("s3://bucket/a/b/").unwrap(),
            ("bucket".to_string(), "a/b".to_string())
        );
        assert_eq!(
            parse_location("s3://bucket").unwrap(),
            ("bucket".to_string(), String::new())
        );
        for bad in ["s3://", "s3:///x", "s3://Bucket/x", "s3://b/../x", "/tmp/x"] {
            assert_eq!(
                parse_location(bad).unwrap_err().kind(),
                ErrorKind::Usage,
                "{bad}"
            );
        }
    }
}
