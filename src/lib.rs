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

pub mod backend;
pub mod codec;
pub mod duration;
pub mod error;
pub mod format;
mod glob;
pub mod hooks;
pub mod host;
pub mod id;
pub mod index;
pub mod keys;
pub mod lock;
pub mod ops;
pub mod pack;
pub mod profile;
pub mod progress;
pub mod repo;
pub mod retention;
pub mod select;
mod sync;

pub use backend::{Backend, LocalBackend};
pub use error::{Error, ErrorKind, Result};
pub use format::snapshot::Snapshot;
pub use format::tree::{Node, NodeKind, Tree};
pub use id::{BlobId, PackId, SnapshotId, TreeId};
pub use ops::backup::{BackupOptions, BackupReport, NamedSource, SourceInput, backup};
pub use ops::restore::{Overwrite, RestoreOptions, RestoreReport, restore};
pub use progress::{NoProgress, Progress};
pub use repo::{InitOptions, Repository};
