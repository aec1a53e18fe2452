//! The write pass: walks the snapshot (folders in parallel) and creates
//! each selected entry in the target. File contents are written chunk by
//! chunk at their offsets, verified, holes kept; a file that replaces
//! another is written to a temporary file beside it, flushed and renamed
//! over it, so a reader or a crash sees the old file or the new one.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::plan::{PlanAction, Selection};
use super::{Overwrite, Restorer, check_depth, join_rel};
use crate::error::{Error, Result};
use crate::format::tree::{Node, NodeKind};

impl Restorer<'_> {
    /// Restores the entries of the folder `dir` into `dest`, in parallel.
    pub(super) fn restore_children(&self, dir: &Node, dest: &Path, rel: &str) -> Result<()> {
        let Some(subtree) = dir.subtree else {
            return Ok(());
        };
        check_depth(rel)?;
        let tree = match self.repo.read_tree(&subtree) {
            Ok(tree) => tree,
            Err(e) if e.is_damage() => {
                self.damaged(if rel.is_empty() { "/" } else { rel }, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        tree.nodes.par_iter().try_for_each(|child| {
            let child_rel = join_rel(rel, &child.name);
            self.restore_node(
                child,
                &dest.join(OsStr::from_bytes(&child.name)),
                &child_rel,
            )
        })
    }

    /// Makes room for a new entry at `dest`; `false` when the policy keeps what is there.
    pub(super) fn clear_dest(&self, dest: &Path, node: &Node) -> Result<bool> {
        let Ok(meta) = fs::symlink_metadata(dest) else {
            return Ok(true);
        };
        if self.existing_action(&meta, node) != PlanAction::Overwrite {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(false);
        }
        // Files are replaced by rename; anything else in the way is removed
        // first (a symlink is removed itself, never followed).
        if meta.is_dir() {
            fs::remove_dir_all(dest).map_err(|e| Error::io("cannot replace", dest, e))?;
        } else if node.kind != NodeKind::File {
            fs::remove_file(dest).map_err(|e| Error::io("cannot replace", dest, e))?;
        }
        Ok(true)
    }

    /// Restores `node` at `dest` (`rel`: its path in the snapshot), as the
    /// selection and the overwrite policy say.
    pub(super) fn restore_node(&self, node: &Node, dest: &Path, rel: &str) -> Result<()> {
        let selection = self.selection(rel, node.kind);
        if selection == Selection::Skip {
            return Ok(());
        }
        if selection == Selection::Enter {
            // Only a real folder (or nothing yet) is entered; whatever else is
            // there belongs to the user and is not what was asked for.
            let existing = fs::symlink_metadata(dest).ok();
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                // In the way of a selected entry below it? Then the overwrite
                // policy decides, as for any entry restore would replace.
                if !self.selects_below(node, rel)? || !self.clear_dest(dest, node)? {
                    return Ok(());
                }
                fs::create_dir(dest).map_err(|e| Error::io("cannot create folder", dest, e))?;
            }
            self.restore_children(node, dest, rel)?;
            if existing.is_none() && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
                self.apply_metadata(node, dest, rel);
            }
            return Ok(());
        }
        if self.includes.is_some()
            && let Some(parent) = dest.parent()
            && !parent.is_dir()
        {
            // Folders above an included entry were entered (and checked to be
            // real folders or absent), not created: create them now.
            fs::create_dir_all(parent).map_err(|e| Error::io("cannot create folder", parent, e))?;
        }
        match node.kind {
            NodeKind::Dir => {
                let existing = fs::symlink_metadata(dest).ok();
                let existed = existing.as_ref().is_some_and(fs::Metadata::is_dir);
                if existing.is_some() && !existed && !self.clear_dest(dest, node)? {
                    return Ok(());
                }
                if !existed {
                    fs::create_dir(dest).map_err(|e| Error::io("cannot create folder", dest, e))?;
                }
                self.restore_children(node, dest, rel)?;
                // An existing folder keeps its own metadata unless told to overwrite.
                let keep = existed
                    && matches!(self.options.overwrite, Overwrite::Never | Overwrite::Refuse);
                if !keep && fs::symlink_metadata(dest).is_ok_and(|m| m.is_dir()) {
                    self.dirs.fetch_add(1, Ordering::Relaxed);
                    self.apply_metadata(node, dest, rel);
                }
                Ok(())
            }
            NodeKind::File => self.restore_file(node, dest, rel),
            NodeKind::Symlink => self.restore_symlink(node, dest, rel),
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                self.restore_special(node, dest, rel)
            }
            NodeKind::Socket => {
                self.warn(format!("{rel} is a socket; sockets are not restored"));
                Ok(())
            }
        }
    }

    /// Creates a fifo or device node; one that cannot be made here is a warning.
    fn restore_special(&self, node: &Node, dest: &Path, rel: &str) -> Result<()> {
        if !self.clear_dest(dest, node)? {
            return Ok(());
        }
        let mode = nix::sys::stat::Mode::from_bits_truncate(node.mode);
        let made = match node.kind {
            NodeKind::Fifo => nix::unistd::mkfifo(dest, mode),
            NodeKind::Chardev => {
                nix::sys::stat::mknod(dest, nix::sys::stat::SFlag::S_IFCHR, mode, node.rdev)
            }
            _ => nix::sys::stat::mknod(dest, nix::sys::stat::SFlag::S_IFBLK, mode, node.rdev),
        };
        match made {
            Ok(()) => {
                self.others.fetch_add(1, Ordering::Relaxed);
                self.apply_metadata(node, dest, rel);
            }
            Err(e) => self.warn(format!("cannot create {} {rel}: {e}", node.kind.as_str())),
        }
        Ok(())
    }

    /// Writes a regular file (or defers it when it is a further name of a
    /// file already restored).
    fn restore_file(&self, node: &Node, dest: &Path, rel: &str) -> Result<()> {
        if !self.clear_dest(dest, node)? {
            return Ok(());
        }
        if self.defer_hard_link(node, dest, rel) {
            return Ok(());
        }
        self.progress.current(rel);
        if fs::symlink_metadata(dest).is_err() {
            // Nothing there: create the file in place (O_EXCL: a symlink
            // appearing meanwhile is not followed).
            use std::os::unix::fs::OpenOptionsExt;
            let file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(dest)
                .map_err(|e| Error::io("cannot create", dest, e))?;
            let written = self.write_content(node, &file, dest);
            drop(file);
            if let Err(e) = written {
                let _ = fs::remove_file(dest);
                if !e.is_damage() {
                    return Err(e);
                }
                self.damaged(rel, &e);
                return Ok(());
            }
            self.apply_metadata(node, dest, rel);
            self.files.fetch_add(1, Ordering::Relaxed);
            self.progress.add_files(1);
            return Ok(());
        }
        // Replacing: write beside it and rename over it, so a reader never
        // sees a half-written file.
        let dir = dest.parent().expect("restore destinations have a parent");
        let temp = tempfile::Builder::new()
            .prefix(".snap-restore-")
            .tempfile_in(dir)
            .map_err(|e| Error::io("cannot create a file in", dir, e))?;
        match self.write_content(node, temp.as_file(), temp.path()) {
            Ok(()) => {}
            Err(e) if e.is_damage() => {
                self.damaged(rel, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.apply_metadata(node, temp.path(), rel);
        // Durable before it takes the old file's name: a crash leaves the
        // old file or the new one, never a torn one.
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("cannot flush", temp.path(), e))?;
        temp.persist(dest)
            .map_err(|e| Error::io("cannot move restored file into", dest, e.error))?;
        self.files.fetch_add(1, Ordering::Relaxed);
        self.progress.add_files(1);
        Ok(())
    }

    /// Writes a file's chunks at their offsets, in parallel. All-zero chunks
    /// are left as holes, so sparse files stay sparse.
    fn write_content(&self, node: &Node, file: &File, path: &Path) -> Result<()> {
        let layout = self.repo.file_layout(node)?;
        let mut placed = Vec::with_capacity(layout.len());
        let mut offset = 0u64;
        for (id, location) in layout {
            placed.push((id, offset, location));
            offset += u64::from(location.raw_length);
        }
        file.set_len(node.size)
            .map_err(|e| Error::io("cannot size", path, e))?;
        placed.par_iter().try_for_each(|(id, at, location)| {
            let at = *at;
            let data = self.repo.read_blob_at(id, location)?;
            if data.iter().any(|&b| b != 0) {
                file.write_all_at(&data, at)
                    .map_err(|e| Error::io("cannot write", path, e))?;
            }
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.progress.add_bytes(data.len() as u64);
            Ok(())
        })
    }
}
