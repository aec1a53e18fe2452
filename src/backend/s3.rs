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
//! throttling, a connection that fails) are retried with exponential
//! backoff by OpenDAL's retry layer; permanent ones (403, 404, 400) are not.
//! A failure is reported in one line: the operation and the object, the
//! cause in words and what to check (a missing bucket, refused credentials,
//! an endpoint that does not answer), and "gave up after N attempts" only
//! when N attempts were made. The raw exchange (HTTP status, headers,
//! request id) is appended in brackets when `RUST_LOG` is set.
//!
//! Bandwidth limits ([`Throttle`]) count the bytes of request bodies: a
//! download is read as a stream and paced as it arrives; a PUT, or each
//! part of a multipart upload, waits until its bytes may go. Listings,
//! HEAD and DELETE requests are not counted, nor are retries.
//!
//! The rest of snap is synchronous: a small private tokio runtime drives the
//! requests, and any number of threads may call in at once (uploads and
//! range reads overlap).

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::IntoFuture;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use opendal::Operator;
use opendal::layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer};

use super::throttle::Throttle;
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

/// Time a whole request may take, and a stalled read or write, before it
/// fails as a (retried) timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const IO_TIMEOUT: Duration = Duration::from_secs(60);

tokio::task_local! {
    /// Retries made so far by the request this task runs ([`S3Backend::call`]).
    static RETRIES_MADE: Cell<usize>;
}

/// Counts the retries of the request being run, so that an error says how
/// many attempts were really made: OpenDAL marks every error its retry
/// layer lets through the same way, retried or not.
struct CountRetries;

impl RetryInterceptor for CountRetries {
    fn intercept(&self, _event: RetryEvent<'_>) {
        // Parts of a multipart upload run in tasks of their own, outside
        // the count: their failures say nothing about attempts.
        let _ = RETRIES_MADE.try_with(|n| n.set(n.get() + 1));
    }
}

/// A repository under a prefix of an S3 bucket.
pub struct S3Backend {
    op: Operator,
    runtime: tokio::runtime::Runtime,
    location: String,
    bucket: String,
    /// The service URL, for messages.
    endpoint: String,
    /// Whether errors carry the raw OpenDAL error (`RUST_LOG` is set).
    raw_errors: bool,
    tmp: PathBuf,
    /// Upload and download limits.
    throttle: Throttle,
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
        let endpoint = match vars("AWS_ENDPOINT_URL").filter(|e| !e.is_empty()) {
            Some(endpoint) => {
                let endpoint = endpoint.trim_end_matches('/').to_string();
                builder = builder.endpoint(&endpoint);
                endpoint
            }
            None => format!("https://s3.{region}.amazonaws.com"),
        };
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
            .with_jitter()
            .with_notify(CountRetries);
        let op = Operator::new(builder)
            .map_err(|e| Error::usage(format!("cannot use {location}: {e}")))?
            // Timeouts turn a stalled connection into a retryable error.
            .layer(
                TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
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
            bucket,
            endpoint,
            raw_errors: vars("RUST_LOG").is_some_and(|v| !v.is_empty()),
            tmp,
            throttle: Throttle::default(),
            packs: Mutex::new(VecDeque::new()),
        })
    }

    /// This backend, moving bytes no faster than `throttle` allows.
    #[must_use]
    pub fn with_throttle(mut self, throttle: Throttle) -> Self {
        self.throttle = throttle;
        self
    }

    /// Reads an object, or `range` of it, as a stream: each piece counts
    /// against the download limit as it arrives, so a limited download
    /// is paced on the wire (the server waits while snap does).
    async fn get(&self, path: &str, range: Option<Range<u64>>) -> opendal::Result<Vec<u8>> {
        let reader = self.op.reader(path).await?;
        let mut stream = match range {
            Some(range) => reader.into_stream(range).await?,
            None => reader.into_stream(..).await?,
        };
        let mut data = Vec::new();
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            self.throttle.download(piece.len()).await;
            data.extend_from_slice(&piece.to_bytes());
        }
        Ok(data)
    }

    /// Writes an object in one PUT, once the upload limit lets its bytes go.
    async fn put(&self, key: &str, data: Vec<u8>) -> opendal::Result<()> {
        self.throttle.upload(data.len()).await;
        self.op.write(key, data).await.map(|_| ())
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

    /// Runs a request (or a few in a row) on the runtime; a failure comes
    /// with the number of attempts the last request made.
    fn call<T, E>(
        &self,
        request: impl Future<Output = std::result::Result<T, E>>,
    ) -> std::result::Result<T, (E, usize)> {
        let (result, retries) =
            self.runtime
                .block_on(RETRIES_MADE.scope(Cell::new(0), async move {
                    let result = request.await;
                    (result, RETRIES_MADE.with(Cell::get))
                }));
        result.map_err(|e| (e, retries + 1))
    }

    /// Starts the count of attempts again, between the requests of one
    /// [`Self::call`].
    fn next_request() {
        let _ = RETRIES_MADE.try_with(|n| n.set(0));
    }

    /// An OpenDAL error as snap's, in one line: the operation and the
    /// object, how many attempts were made when there were several, the
    /// cause and what to check.
    fn error(
        &self,
        operation: &str,
        kind: FileKind,
        path: &str,
        failure: &(opendal::Error, usize),
    ) -> Error {
        let what = format!("{operation} {} {}/{path}", kind.noun(), self.location);
        self.failure(&what, failure)
    }

    /// An OpenDAL error as snap's: "cannot {what}", then as [`Self::error`].
    fn failure(&self, what: &str, (e, attempts): &(opendal::Error, usize)) -> Error {
        let error_kind = match e.kind() {
            opendal::ErrorKind::NotFound => ErrorKind::NotFound,
            _ => ErrorKind::Io,
        };
        let retried = if *attempts > 1 {
            format!(" (gave up after {attempts} attempts)")
        } else {
            String::new()
        };
        let mut message = format!("cannot {what}{retried}: {}", self.cause(e));
        if self.raw_errors {
            // The command line prints one line: the detail stays on it.
            message.push_str(&format!(" [detail: {e}]"));
        }
        Error::new(error_kind, message)
    }

    /// What went wrong, for people: the cause and, when there is one, the
    /// next thing to check. The raw error is a dump of the HTTP exchange.
    fn cause(&self, e: &opendal::Error) -> String {
        let endpoint = &self.endpoint;
        let bucket = &self.bucket;
        let raw = e.to_string();
        let status =
            field_after(&raw, "response: Parts { status: ").and_then(|s| s.parse::<u16>().ok());
        let code = quoted_after(e.message(), "code: \"").unwrap_or_default();
        let detail = quoted_after(e.message(), "message: \"").unwrap_or_default();
        let credentials = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE \
                           and ~/.aws/credentials), AWS_SESSION_TOKEN for temporary keys";
        match (status, code.as_str()) {
            (_, "NoSuchBucket") => format!(
                "bucket `{bucket}` does not exist at {endpoint}; create it first \
                 (snap does not create buckets), or check the bucket name and AWS_ENDPOINT_URL"
            ),
            (_, "InvalidAccessKeyId") => {
                format!("{endpoint} does not know the access key id; {credentials}")
            }
            (_, "SignatureDoesNotMatch") => format!(
                "{endpoint} refused the signature: the secret access key does not match \
                 the key id; {credentials}"
            ),
            (_, "RequestTimeTooSkewed") => format!(
                "{endpoint} refused the request: this machine's clock differs from the \
                 server's by too much{}; set the clock (NTP) and try again",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(" ({detail})")
                }
            ),
            (Some(403), _) | (_, "AccessDenied") => {
                // The server's own words, when it gave any: "access denied"
                // covers expired requests and codes snap has no name for.
                let answer = match (code.as_str(), detail.as_str()) {
                    ("", "") => String::new(),
                    (code, "") => format!(" ({code})"),
                    ("", detail) => format!(" ({detail})"),
                    (code, detail) => format!(" ({code}: {detail})"),
                };
                format!(
                    "access denied by {endpoint}{answer}; {credentials}, and that the key \
                     may use bucket `{bucket}`"
                )
            }
            (Some(404), _) => "no such object".to_string(),
            (Some(status @ (429 | 499 | 500..=599)), _) => {
                let answer = if code.is_empty() {
                    format!("HTTP {status}")
                } else {
                    code.clone()
                };
                format!("{endpoint} keeps failing ({answer}); try again later")
            }
            (Some(status), _) => {
                let answer = match (code.is_empty(), detail.is_empty()) {
                    (true, _) => format!("HTTP {status}"),
                    (false, true) => code.clone(),
                    (false, false) => format!("{code}: {detail}"),
                };
                format!("{endpoint} refused the request ({answer})")
            }
            (None, _) if e.message().contains("timeout reached") => {
                let limit = if e.message().starts_with("io ") {
                    IO_TIMEOUT
                } else {
                    REQUEST_TIMEOUT
                };
                format!(
                    "no answer from {endpoint} within {} s; check the network and AWS_ENDPOINT_URL",
                    limit.as_secs()
                )
            }
            (None, _) if e.message() == "send http request" => match os_error(e) {
                Some(io)
                    if io.kind() == std::io::ErrorKind::ConnectionRefused
                        || io.kind() == std::io::ErrorKind::HostUnreachable
                        || io.kind() == std::io::ErrorKind::NetworkUnreachable
                        || io.kind() == std::io::ErrorKind::TimedOut =>
                {
                    format!(
                        "cannot connect to {endpoint}: {io}; check AWS_ENDPOINT_URL and that \
                         the service is running"
                    )
                }
                Some(io) => format!("the connection to {endpoint} failed: {io}"),
                None => format!(
                    "cannot reach {endpoint}: {}; check AWS_ENDPOINT_URL and that the service \
                     is running",
                    innermost(e)
                ),
            },
            (None, _) if e.message() == "read data from http response" => {
                let why = os_error(e).map_or_else(|| innermost(e), |io| io.to_string());
                format!("the connection to {endpoint} broke off: {why}")
            }
            (None, _) if e.message() == "signing http request" => format!(
                "no credentials to sign requests with ({}); set AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY, or AWS_PROFILE and ~/.aws/credentials",
                innermost(e)
            ),
            (None, _) => {
                let message = e.message().lines().next().unwrap_or_default();
                if message.is_empty() {
                    e.kind().to_string()
                } else {
                    format!("{}: {message}", e.kind())
                }
            }
        }
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
                Self::next_request();
                Ok(Some(self.get(path, None).await?))
            };
            let data = self.call(download).map_err(|e: (opendal::Error, usize)| {
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

    /// Whether the bucket exists, when the config is not found: some
    /// servers answer a missing bucket like a missing object (and a HEAD
    /// answer has no body to tell them apart), but a listing says which.
    fn bucket_answers(&self, operation: &str) -> Result<()> {
        self.call(self.op.list_with("keys/").limit(1).into_future())
            .map(|_| ())
            .map_err(|e| self.error(operation, FileKind::Config, "config", &e))
    }

    /// Uploads a local file in one PUT, or in parts when it is large.
    async fn upload(&self, key: &str, path: &Path) -> std::result::Result<(), UploadError> {
        let size = std::fs::metadata(path).map_err(UploadError::Local)?.len();
        if size <= SINGLE_PUT_MAX {
            let data = std::fs::read(path).map_err(UploadError::Local)?;
            return self.put(key, data).await.map_err(UploadError::Remote);
        }
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(UploadError::Local)?;
        Self::next_request();
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
            Self::next_request();
            self.throttle.upload(part.len()).await;
            if let Err(e) = writer.write(part).await {
                let _ = writer.abort().await;
                return Err(UploadError::Remote(e));
            }
        }
        // The object appears only when the multipart upload completes.
        Self::next_request();
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
        let exists = self
            .call(self.op.exists("config"))
            .map_err(|e| self.error("look for", FileKind::Config, "config", &e))?;
        if !exists {
            self.bucket_answers("look for")?;
        }
        Ok(exists)
    }

    fn create(&self) -> Result<()> {
        // Object stores have no folders; check that the bucket answers.
        self.call(self.op.list_with("keys/").limit(1).into_future())
            .map(|_| ())
            .map_err(|e| self.failure(&format!("use {}", self.location), &e))
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let path = self.path(kind, name)?;
        match self.call(self.get(&path, None)) {
            Ok(data) => Ok(data),
            Err(e) => {
                if kind == FileKind::Config && e.0.kind() == opendal::ErrorKind::NotFound {
                    self.bucket_answers("read")?;
                }
                Err(self.error("read", kind, &path, &e))
            }
        }
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
        let data = match self.call(self.get(&path, Some(offset..end))) {
            Ok(data) => data,
            // The range starts past the end of the object.
            Err((e, _)) if e.kind() == opendal::ErrorKind::RangeNotSatisfied => Vec::new(),
            Err(e) if e.0.kind() == opendal::ErrorKind::NotFound => {
                return Err(self.error("read", kind, &path, &e));
            }
            // A range past the end fails as a short read: tell that (a lying
            // index, damage) from a failure of the store by the object's size.
            Err(e) => match self.call(self.op.stat(&path)) {
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
        if kind == FileKind::Pack {
            // A pack written back replaces a damaged one this cache may hold.
            lock(&self.packs).retain(|(n, _)| n != name);
        }
        self.call(self.put(&path, data.to_vec()))
            .map_err(|e| self.error("write", kind, &path, &e))
    }

    fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()> {
        let key = self.path(kind, name)?;
        match self.call(self.upload(&key, path)) {
            Ok(()) => {}
            Err((UploadError::Local(e), _)) => return Err(Error::io("cannot read", path, e)),
            Err((UploadError::Remote(e), attempts)) => {
                return Err(self.error("upload", kind, &key, &(e, attempts)));
            }
        }
        // Uploaded: the local copy has done its job ("moved").
        std::fs::remove_file(path).map_err(|e| Error::io("cannot remove", path, e))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        let folder = format!("{}/", kind.folder());
        let entries = self
            .call(self.op.list_with(&folder).recursive(true).into_future())
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
        match self.call(self.op.delete(&path)) {
            Ok(()) => Ok(()),
            Err((e, _)) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
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

/// The word after `label` in `text` (up to a space, comma or brace).
fn field_after<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let rest = &text[text.find(label)? + label.len()..];
    let end = rest.find([' ', ',', '}']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// The quoted text after `label` (which ends with the opening quote), as
/// Rust's `Debug` writes a string.
fn quoted_after(text: &str, label: &str) -> Option<String> {
    let rest = &text[text.find(label)? + label.len()..];
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    None
}

/// The operating system's error under an OpenDAL one (connection refused,
/// reset...), if there is one.
fn os_error(e: &opendal::Error) -> Option<&std::io::Error> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// The deepest cause's text.
fn innermost(e: &opendal::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_fields_are_read_from_opendal_text() {
        let message = r#"S3Error { code: "NoSuchBucket", message: "a \"b\"", request_id: "1" }"#;
        assert_eq!(
            quoted_after(message, "code: \"").as_deref(),
            Some("NoSuchBucket")
        );
        assert_eq!(
            quoted_after(message, "message: \"").as_deref(),
            Some("a \"b\"")
        );
        assert_eq!(quoted_after(message, "resource: \""), None);
        let raw = "x, context: { response: Parts { status: 403, version: HTTP/1.1 } }";
        assert_eq!(field_after(raw, "response: Parts { status: "), Some("403"));
        assert_eq!(field_after("none", "status: "), None);
    }

    #[test]
    fn a_refusal_names_the_servers_code() {
        let vars = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:9".to_string()),
            "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => Some("k".to_string()),
            _ => None,
        };
        let backend = S3Backend::with_vars("s3://bucket/prefix", vars).unwrap();
        let refusal = |code: &str, message: &str| {
            let text = format!(r#"S3Error {{ code: "{code}", message: "{message}" }}"#);
            let e = opendal::Error::new(opendal::ErrorKind::PermissionDenied, text)
                .with_context("response", "Parts { status: 403, version: HTTP/1.1 }");
            backend.cause(&e)
        };
        let skewed = refusal("RequestTimeTooSkewed", "too far from server time");
        assert!(skewed.contains("clock"), "{skewed}");
        assert!(skewed.contains("too far from server time"), "{skewed}");
        let expired = refusal("AccessDenied", "Request has expired");
        assert!(expired.starts_with("access denied by"), "{expired}");
        assert!(
            expired.contains("(AccessDenied: Request has expired)"),
            "{expired}"
        );
        let unknown = refusal("SomethingNew", "");
        assert!(unknown.contains("(SomethingNew)"), "{unknown}");
    }

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
