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
    /// A backup finished with the file at `path` (as read from disk).
    fn file(&self, _status: FileStatus, _path: &std::path::Path) {}
}

/// What a backup did with a file, as [`Progress::file`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Not in the parent snapshot: read and stored.
    New,
    /// In the parent snapshot with other metadata: read and stored again.
    Changed,
    /// Metadata as in the parent snapshot: its content was reused unread.
    Unchanged,
}

impl FileStatus {
    /// The status as one word: `new`, `changed` or `unchanged`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::New => "new",
            FileStatus::Changed => "changed",
            FileStatus::Unchanged => "unchanged",
        }
    }
}

/// Progress that goes nowhere (tests, library users who do not care).
pub struct NoProgress;

impl Progress for NoProgress {}
