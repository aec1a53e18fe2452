//! Operations on a repository: one module per command family.

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
