//! Mutex access that survives a poisoned lock, and how many threads to run.
//!
//! A worker thread that panics while holding a lock poisons it; the data
//! behind snap's locks (counters, memo tables, lists of warnings) stays
//! consistent at every step, so the other threads carry on with it rather
//! than panic in turn.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, taking the guard even when another thread panicked
/// while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes the value out of `mutex`, even when a thread panicked while
/// holding it.
pub(crate) fn into_inner<T>(mutex: Mutex<T>) -> T {
    mutex.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// The cores this process may use (2 when unknown).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZero::get)
}

/// Threads that read files and compress what they read at once: two per
/// core, at least 16 (most of them wait for the disk at any moment). The
/// walk runs this many workers (`ops/backup/walk.rs`), and the codec keeps
/// as many contexts for small inputs, so that none of them waits for one.
pub(crate) fn file_workers() -> usize {
    (2 * cores()).max(16)
}
