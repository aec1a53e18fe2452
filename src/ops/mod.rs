//! Operations on a repository: one module per command family.

pub mod backup;
pub mod browse;
pub mod restore;
pub mod stats;
