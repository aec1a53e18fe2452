//! Long operations report here; the command line decides whether that becomes
//! a progress bar, JSON status lines, or nothing. The library never prints.
//!
//! Everything is a counter or a name, never text to parse back: an
//! operation first reports what it finds to do ([`Progress::found`], while
//! in [`Phase::Scanning`] the totals still grow), then [`Phase::Working`]
//! once the totals are complete, and what it has done
//! ([`Progress::add_files`], [`Progress::add_bytes`]) as it goes. All counts
//! only ever grow.

/// Receives progress and notices from long operations.
pub trait Progress: Send + Sync {
    /// A notice for the user (for example: waiting for another process).
    fn message(&self, _text: &str) {}
    /// A warning: something was skipped, the operation goes on.
    fn warn(&self, _text: &str) {}
    /// The operation moved to `phase`. An operation that knows its totals
    /// before it starts reports them with [`Progress::found`] and goes
    /// straight to [`Phase::Working`].
    fn phase(&self, _phase: Phase) {}
    /// `files` more files (or packs) holding `bytes` more bytes were found
    /// to process.
    fn found(&self, _files: u64, _bytes: u64) {}
    /// `bytes` more content bytes were processed.
    fn add_bytes(&self, _bytes: u64) {}
    /// `files` more files (or packs) were processed.
    fn add_files(&self, _files: u64) {}
    /// Work started on the item `name`: a path as snap prints it, or a
    /// pack's id.
    fn current(&self, _name: &str) {}
    /// A backup finished with the file at `path` (as read from disk).
    fn file(&self, _status: FileStatus, _path: &std::path::Path) {}
    /// Whether the totals are shown to anyone. When they are not, work done
    /// only to find them (a backup's scan of its sources) is skipped.
    fn shows_totals(&self) -> bool {
        false
    }
}

/// Where a long operation is, as [`Progress::phase`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Still finding what there is to do: the totals reported by
    /// [`Progress::found`] may grow, while work may already go on.
    Scanning,
    /// The totals are complete.
    Working,
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
