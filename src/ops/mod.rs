//! Operations on a repository: one module per command family.

/// Stack of the threads that walk trees (a backup's workers, and the
/// `snap` binary's main thread, rayon pool and web server): deep folder
/// nesting recurses deeply, one call per level. Only touched pages use
/// memory.
pub const WORKER_STACK: usize = 256 << 20;

pub mod backup;
pub mod browse;
pub mod check;
pub mod copy;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod find;
pub mod forget;
pub mod log;
pub mod mount;
pub mod parity;
pub mod paths;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod sqlite;
pub mod stats;
pub mod tag;
