//! Long operations report here; the command line decides whether that becomes
//! a progress bar, nothing, or something else. The library never prints.

/// Receives progress and notices from long operations.
pub trait Progress: Send + Sync {
    /// A notice for the user (for example: waiting for another process).
    fn message(&self, _text: &str) {}
    /// A warning: something was skipped, the operation goes on.
    fn warn(&self, _text: &str) {}
    /// `bytes` more content bytes were processed.
    fn add_bytes(&self, _bytes: u64) {}
    /// `files` more files were processed.
    fn add_files(&self, _files: u64) {}
}

/// Progress that goes nowhere (tests, library users who do not care).
pub struct NoProgress;

impl Progress for NoProgress {}
