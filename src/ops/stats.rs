//! `snap stats`: what the repository holds and what deduplication saves.

use crate::backend::FileKind;
use crate::error::Result;
use crate::repo::Repository;

/// Repository-wide numbers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepoStats {
    /// Number of snapshots.
    pub snapshots: u64,
    /// Number of pack files.
    pub packs: u64,
    /// Bytes in pack files (what the data costs on disk).
    pub pack_bytes: u64,
    /// Number of index delta files.
    pub index_files: u64,
    /// Distinct blobs known to the index.
    pub blobs: u64,
    /// Sum of the file sizes of all snapshots (what plain copies would cost).
    pub snapshot_bytes: u64,
}

/// Counts snapshots, packs and blobs.
pub fn repo_stats(repo: &Repository) -> Result<RepoStats> {
    let backend = repo.backend();
    let packs = backend.list(FileKind::Pack)?;
    let snapshots = repo.snapshots()?;
    let (blobs, _) = repo.cache().counts()?;
    Ok(RepoStats {
        snapshots: snapshots.len() as u64,
        packs: packs.len() as u64,
        pack_bytes: packs.iter().map(|(_, size)| size).sum(),
        index_files: backend.list(FileKind::Index)?.len() as u64,
        blobs,
        snapshot_bytes: snapshots.iter().map(|(_, s)| s.summary.bytes).sum(),
    })
}
