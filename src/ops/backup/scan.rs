//! The scan: counts the files and bytes a backup will visit, beside the
//! walk, so that progress has totals. It follows the walk's selection
//! rules (shared methods of [`Walker`]) and reads nothing but metadata.

use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::sources::{Input, Source};
use super::walk::{Scope, Walker};
use crate::progress::Phase;

impl Walker<'_> {
    /// Reports every file below the path sources as found, then
    /// [`Phase::Working`]; gives up quietly once `stop` is set (the walk
    /// has ended) or the backup is cancelled. Entries the walk cannot read
    /// are counted here and skipped there, so the totals may be a little
    /// larger than what is done.
    pub(super) fn scan_sources(&self, sources: &[Source], stop: &AtomicBool) {
        for source in sources {
            let Input::Path(root) = &source.input else {
                continue;
            };
            let scope = Scope {
                dev: fs::symlink_metadata(root).map(|m| m.dev()).unwrap_or(0),
                root,
                excludes: source.excludes.as_ref(),
            };
            if !self.scan_tree(root.clone(), &scope, stop) {
                return;
            }
        }
        self.progress.phase(Phase::Working);
    }

    /// Scans one source depth first without recursion; `false` when it
    /// stopped early.
    fn scan_tree(&self, root: PathBuf, scope: &Scope<'_>, stop: &AtomicBool) -> bool {
        let mut stack = vec![root];
        while let Some(path) = stack.pop() {
            if stop.load(Ordering::Relaxed) || self.check_cancel().is_err() {
                return false;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                if !self.too_large(&meta) {
                    self.progress.found(1, meta.len());
                }
                continue;
            }
            if !meta.is_dir()
                || (self.options.one_file_system && meta.dev() != scope.dev)
                || self.tagged_to_skip(&path)
            {
                continue;
            }
            let Ok(entries) = fs::read_dir(&path) else {
                continue;
            };
            let mut names: Vec<OsString> = entries.flatten().map(|e| e.file_name()).collect();
            names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
            names.retain(|name| self.keeps(&path, name, scope));
            self.fold_sqlite_companions(&path, &mut names);
            stack.extend(names.iter().map(|name| path.join(name)));
        }
        true
    }
}
