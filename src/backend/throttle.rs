//! Bandwidth limits (`--limit-upload`, `--limit-download`, in KiB/s): a
//! token bucket per direction, filled at the limit and holding at most one
//! second's worth, so that over any span of T seconds a direction moves at
//! most `limit * (T + 1)` bytes.
//!
//! The buckets are governor's (GCRA, the algorithm OpenDAL's own
//! `ThrottleLayer` uses). That layer does not fit: it throttles writes only,
//! shares one bucket between both directions, and fails any write larger
//! than its burst, so a pack would either fail or pass unthrottled.
//!
//! Where bytes are counted is the backend's business: an S3 backend counts
//! the bytes of its requests' bodies as they stream in (a download is paced
//! on the wire) and the body of each PUT or part before it is sent; a local
//! folder counts what is written into and read out of the repository.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::error::{Error, Result};

/// Upload and download limits in KiB/s (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Bytes sent to the repository.
    pub upload: Option<NonZeroU32>,
    /// Bytes read from the repository.
    pub download: Option<NonZeroU32>,
}

/// Parses a limit in KiB/s: a whole number greater than 0. `what` names
/// the flag or profile key in the error.
pub fn parse_limit(text: &str, what: &str) -> Result<NonZeroU32> {
    text.trim().parse::<NonZeroU32>().map_err(|_| {
        Error::usage(format!(
            "{what}: `{text}` is not a rate; give a whole number of KiB/s greater than 0 \
                 (1024 is 1 MiB/s)"
        ))
    })
}

/// The buckets of both directions, shared by every request of a backend.
#[derive(Clone, Default)]
pub struct Throttle {
    upload: Option<Arc<Bucket>>,
    download: Option<Arc<Bucket>>,
}

impl Throttle {
    /// Buckets for `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            upload: limits.upload.map(|l| Arc::new(Bucket::new(l))),
            download: limits.download.map(|l| Arc::new(Bucket::new(l))),
        }
    }

    /// Waits until `bytes` may be sent.
    pub async fn upload(&self, bytes: usize) {
        if let Some(bucket) = &self.upload {
            bucket.take(bytes).await;
        }
    }

    /// Waits until `bytes` may be received.
    pub async fn download(&self, bytes: usize) {
        if let Some(bucket) = &self.download {
            bucket.take(bytes).await;
        }
    }

    /// [`Self::upload`] for a thread outside any async runtime.
    pub fn upload_blocking(&self, bytes: usize) {
        if let Some(bucket) = &self.upload {
            bucket.take_blocking(bytes);
        }
    }

    /// [`Self::download`] for a thread outside any async runtime.
    pub fn download_blocking(&self, bytes: usize) {
        if let Some(bucket) = &self.download {
            bucket.take_blocking(bytes);
        }
    }
}

/// One direction's token bucket, counting bytes.
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    /// Bytes the bucket holds when full (one second's worth), so the most
    /// one wait may ask for.
    burst: NonZeroU32,
}

impl Bucket {
    fn new(kib_per_second: NonZeroU32) -> Self {
        // Bytes per second; a rate beyond u32 bytes (4 GiB/s) is capped there.
        let rate = kib_per_second.saturating_mul(NonZeroU32::new(1024).expect("non-zero"));
        Self {
            limiter: RateLimiter::direct(Quota::per_second(rate)),
            burst: rate,
        }
    }

    /// `bytes` cut into pieces the bucket can hold.
    fn pieces(&self, bytes: usize) -> impl Iterator<Item = NonZeroU32> {
        let burst = self.burst.get() as usize;
        let mut left = bytes;
        std::iter::from_fn(move || {
            let piece = left.min(burst);
            left -= piece;
            NonZeroU32::new(u32::try_from(piece).expect("at most the burst"))
        })
    }

    async fn take(&self, bytes: usize) {
        for piece in self.pieces(bytes) {
            // A piece is never larger than the burst, so capacity suffices.
            let _ = self.limiter.until_n_ready(piece).await;
        }
    }

    fn take_blocking(&self, bytes: usize) {
        let clock = DefaultClock::default();
        for piece in self.pieces(bytes) {
            while let Ok(Err(not_yet)) = self.limiter.check_n(piece) {
                std::thread::sleep(not_yet.wait_time_from(clock.now()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn limits_parse_as_positive_whole_numbers() {
        assert_eq!(parse_limit("1024", "--limit-upload").unwrap().get(), 1024);
        assert_eq!(parse_limit(" 7 ", "--limit-upload").unwrap().get(), 7);
        for bad in ["0", "-5", "fast", "1.5", "", "10M"] {
            let e = parse_limit(bad, "--limit-download").unwrap_err();
            assert!(
                e.to_string().starts_with("--limit-download: `"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_bucket_holds_one_second_and_then_paces() {
        let throttle = Throttle::new(Limits {
            upload: NonZeroU32::new(64),
            download: None,
        });
        let start = Instant::now();
        // A full bucket (64 KiB) at once, then 128 KiB at 64 KiB/s.
        throttle.upload_blocking(3 * 64 * 1024);
        throttle.download_blocking(100 << 20);
        assert!(start.elapsed() >= Duration::from_millis(1900));
    }
}
