//! Live SQLite databases in a backup: recognised by their header or the
//! `--sqlite` globs, their `-wal`, `-shm` and `-journal` companions folded
//! into one consistent capture, stored in page-aligned fixed-size chunks
//! compressed with a dictionary of the database's own pages.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::walk::{ReadError, Stored, Walker};
use crate::codec::{Dictionary, chunker};
use crate::error::{Error, Result};
use crate::format::config::Feature;
use crate::format::pack::BlobKind;
use crate::format::tree::{Node, escape_path};
use crate::id::BlobId;
use crate::ops::sqlite::{
    COMPANIONS, Capture, LOCK_TIMEOUT, capture, has_header, train_dictionary,
};
use crate::sync::lock;

impl Walker<'_> {
    /// Whether the file at `path` is to be captured as a SQLite database.
    fn is_database(&self, path: &Path) -> bool {
        self.sqlite_globs.is_match(path) || has_header(path)
    }

    /// Drops the `-wal`, `-shm` and `-journal` companions of databases from
    /// `names` (their content is folded into the database's capture) and
    /// returns the databases that have a non-empty log or journal beside them.
    pub(super) fn fold_sqlite_companions(
        &self,
        dir: &Path,
        names: &mut Vec<OsString>,
    ) -> HashSet<Vec<u8>> {
        let present: HashSet<&[u8]> = names.iter().map(|n| n.as_bytes()).collect();
        let mut companions = HashSet::new();
        let mut logged = HashSet::new();
        for name in names.iter() {
            for suffix in COMPANIONS {
                let Some(base) = name.as_bytes().strip_suffix(suffix.as_bytes()) else {
                    continue;
                };
                if !present.contains(base) || !self.is_database(&dir.join(OsStr::from_bytes(base)))
                {
                    continue;
                }
                companions.insert(name.clone());
                if suffix != "-shm" && fs::metadata(dir.join(name)).is_ok_and(|m| m.len() > 0) {
                    logged.insert(base.to_vec());
                }
            }
        }
        names.retain(|n| !companions.contains(n));
        logged
    }

    /// A consistent capture of the file at `path` when it is to be stored
    /// as a database; `None` for other files, and for databases that cannot
    /// be captured (they are stored as plain copies, with a warning).
    pub(super) fn capture_database(&self, path: &Path) -> Option<Capture> {
        if !self.is_database(path) {
            return None;
        }
        self.capture_checked(path)
    }

    /// A consistent capture of the file at `path`, known to be a database;
    /// `None` when it cannot be captured (it is stored as a plain copy, with
    /// a warning).
    pub(super) fn capture_checked(&self, path: &Path) -> Option<Capture> {
        let timeout = self.options.sqlite_lock_timeout.unwrap_or(LOCK_TIMEOUT);
        let cancel = self.options.cancel.as_deref();
        match capture(path, timeout, cancel) {
            Ok(capture) => Some(capture),
            // Stopped: the walk ends at its next cancel check, unwarned.
            Err(_) if cancel.is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed)) => None,
            Err(reason) => {
                self.warn(format!(
                    "{}: not captured as a SQLite database ({reason}); stored as a plain file copy",
                    escape_path(path)
                ));
                lock(&self.plain_copies).push(path.to_path_buf());
                None
            }
        }
    }

    /// Stores a captured image in page-aligned fixed-size chunks (SQLite
    /// rewrites pages in place), compressed with the database's dictionary,
    /// appending the chunks' ids; returns the length read, the dictionary
    /// and that it was captured.
    pub(super) fn store_capture(
        &self,
        path: &Path,
        capture: Capture,
        parent: Option<&Node>,
        ids: &mut Vec<BlobId>,
    ) -> Result<Stored, ReadError> {
        let size = self.repo.config().sqlite_chunk.div_ceil(capture.page_size) * capture.page_size;
        let image = capture.file;
        let dictionary = self
            .sqlite_dictionary(path, &image, capture.page_size, parent)
            .map_err(ReadError::Repo)?;
        let read = chunker::fixed_batches(image, size as usize, |chunks: &[&[u8]]| {
            self.store_chunks(chunks, dictionary.as_ref(), ids)
        })?;
        Ok((read, dictionary, true))
    }

    /// The dictionary to compress a database image's pages with: the one of
    /// its last snapshot, so unchanged pages keep their ids; else one
    /// trained on the image and stored now. `None` for small images, and for
    /// write-only keys, which cannot read a stored dictionary back.
    fn sqlite_dictionary(
        &self,
        path: &Path,
        image: &File,
        page_size: u32,
        parent: Option<&Node>,
    ) -> Result<Option<Dictionary>> {
        if !self.repo.can_read() {
            return Ok(None);
        }
        if let Some(id) = parent.and_then(|p| p.dictionary) {
            match self.repo.dictionary(&id) {
                Ok(dictionary) => return Ok(Some(dictionary)),
                Err(e) => self.warn(format!(
                    "{}: cannot load the dictionary of its last snapshot ({e}); training a new one",
                    escape_path(path)
                )),
            }
        }
        let len = image
            .metadata()
            .map_err(|e| Error::io("cannot read the capture of", path, e))?
            .len();
        let Some(bytes) = train_dictionary(image, len, page_size) else {
            return Ok(None);
        };
        self.store_dictionary(bytes).map(Some)
    }

    /// Stores a newly trained dictionary: the one place a backup adds a
    /// SQLite dictionary to the repository (a reused one is only loaded).
    fn store_dictionary(&self, bytes: Vec<u8>) -> Result<Dictionary> {
        self.repo.require_feature(Feature::SqliteDictionary)?;
        let id = self.saver.save(BlobKind::Data, &bytes)?;
        Ok(Dictionary::new(id, bytes))
    }
}
