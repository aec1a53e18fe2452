//! Mutex access that survives a poisoned lock.
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
