//! snap: a content-addressed, deduplicating snapshot store.
//!
//! Files, directories and SQLite databases are split into content-defined
//! chunks, hashed with blake3, compressed with zstd and stored by hash in a
//! repository of immutable packs, index deltas and snapshot objects. See
//! `docs/DESIGN.md` for the layers and `docs/FORMAT.md` for the bytes.
//!
//! Snapshot a folder in-process:
//!
//! ```no_run
//! use snap::{BackupOptions, LocalBackend, NoProgress, Repository};
//!
//! let repo = Repository::open(Box::new(LocalBackend::new("/backups/repo")), &NoProgress)?;
//! let options = BackupOptions::new(vec!["/srv/app/data".into()]);
//! let report = snap::backup(&repo, &options, &NoProgress)?;
//! println!("snapshot {}", report.id);
//! # Ok::<(), snap::Error>(())
//! ```
//!
//! # The public surface
//!
//! The items re-exported here are what an embedding program needs: open or
//! initialise a repository ([`Repository`], [`InitOptions`]), back up
//! ([`backup`]), restore ([`restore`]), list snapshots
//! ([`Repository::snapshots`], [`Snapshot`]), compare two trees ([`diff`])
//! and verify a repository ([`check`]). The command families behind the CLI
//! are in [`ops`]; storage in [`backend`].
//!
//! The byte formats, codecs, pack files and the index are private. Fuzz
//! targets, benchmarks and tests that must build or take apart repository
//! objects by hand reach them through [`internals`], an unstable door that
//! is hidden from the documentation and may change in any release.

#![forbid(unsafe_code)]

pub mod backend;
pub(crate) mod codec;
pub mod duration;
pub mod error;
pub(crate) mod format;
mod glob;
pub mod hooks;
pub mod host;
pub mod id;
pub(crate) mod index;
pub mod keys;
pub mod lock;
pub mod ops;
pub(crate) mod pack;
pub(crate) mod parity;
pub(crate) mod plural;
pub mod profile;
pub mod progress;
pub mod repo;
pub mod retention;
pub mod select;
mod sync;

pub use backend::{Backend, LocalBackend};
pub use codec::ChunkerParams;
pub use error::{Error, ErrorKind, Result};
pub use format::config::SQLITE_CHUNK;
pub use format::parity::ParityLevel;
pub use format::snapshot::{Snapshot, Summary};
pub use format::tree::{Node, NodeKind, Tree, escape_name, escape_path};
pub use id::{BlobId, PackId, SnapshotId, TreeId};
pub use ops::backup::{BackupOptions, BackupReport, NamedSource, SourceInput, backup};
pub use ops::check::{CheckOptions, CheckReport, ReadData, check};
pub use ops::diff::{Change, ChangeKind, Diff, diff};
pub use ops::restore::{Overwrite, RestoreOptions, RestoreReport, restore};
pub use progress::{FileStatus, NoProgress, Phase, Progress};
pub use repo::{InitOptions, Repository};

/// Unstable access to the private layers (byte formats, codecs, packs, the
/// index cache) for the fuzz targets, the benchmarks and the tests that
/// craft or inspect repository objects by hand. Not part of the public
/// API: anything here may change or go away in any release.
#[doc(hidden)]
pub mod internals {
    /// The byte formats of repository objects (`crate::format`).
    pub mod format {
        pub use crate::format::*;
    }
    /// Chunking, hashing, compression and encryption (`crate::codec`).
    pub mod codec {
        pub use crate::codec::*;
    }
    /// Pack files: writing and reading their trailers (`crate::pack`).
    pub mod pack {
        pub use crate::pack::*;
    }
    /// The local index cache (`crate::index`).
    pub mod index {
        pub use crate::index::*;
    }
}
