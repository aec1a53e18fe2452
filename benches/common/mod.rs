//! Inputs shared by the benchmarks: generated text, a deterministic random
//! generator, and a fresh repository with its own cache. Each bench target
//! includes this file as a module, so not every target uses every item.
#![allow(dead_code)]

use std::path::Path;

use criterion::{BatchSize, Bencher};
use snap::{BackupOptions, BackupReport, InitOptions, LocalBackend, NoProgress, Repository};

pub const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "memory",
    "snapshot",
    "repository",
    "chunk",
    "session",
    "remember",
    "garden",
    "morning",
    "letter",
    "quiet",
    "because",
    "between",
    "through",
    "something",
    "together",
    "conversation",
    "yesterday",
    "tomorrow",
    "{\"id\":",
    "\"text\":",
    "fn",
    "let",
    "return",
    "=>",
    "0x3f",
    "1970-01-01T00:00:00Z",
    "##",
    "-",
    "*",
];

/// A xorshift64 generator: fast, deterministic, good enough for test data.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `len` bytes of text-like data: words, punctuation, line breaks and the odd
/// random number, so zstd level 3 gets roughly 3:1 and no two runs repeat.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = XorShift(seed | 1);
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let roll = rng.next();
        match roll % 16 {
            0 => out.extend_from_slice(b".\n"),
            1 => out.extend_from_slice(b", "),
            2 => out.extend_from_slice(format!("{} ", rng.next() % 100_000).as_bytes()),
            _ => {
                out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
                out.push(b' ');
            }
        }
    }
    out.truncate(len);
    out
}

/// A fresh unencrypted repository in `dir/repo`, default options.
pub fn init_repository(dir: &Path) -> Repository {
    // A private cache, removed with the repository, not one in ~/.cache.
    let backend = snap::backend::PrivateCache::new(Box::new(LocalBackend::new(dir.join("repo"))))
        .expect("a private cache folder");
    Repository::init(Box::new(backend), &InitOptions::default(), &NoProgress)
        .expect("repository created")
}

/// Times `snap::backup` of `options` into a fresh repository per iteration
/// (created and deleted outside the timing), so every byte is chunked,
/// hashed, compressed and packed; `check` sees each report.
pub fn first_backup(b: &mut Bencher<'_>, options: &BackupOptions, check: impl Fn(&BackupReport)) {
    b.iter_batched(
        || {
            let dir = tempfile::tempdir().expect("temporary folder");
            let repo = init_repository(dir.path());
            (dir, repo)
        },
        |(dir, repo)| {
            let report = snap::backup(&repo, options, &NoProgress).expect("backup succeeds");
            check(&report);
            // Returned so the repository is deleted outside the timing.
            (dir, repo)
        },
        BatchSize::PerIteration,
    );
}
