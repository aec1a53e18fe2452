//! What a backup reads: the sources resolved from the options (paths made
//! absolute through their canonical parents, named sources, commands and
//! standard input), laid out as the snapshot's top folders, and the streams
//! of commands and standard input stored as files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use globset::GlobSet;

use super::metadata::made_node;
use super::walk::{ReadError, Walker};
use super::{BackupOptions, SourceInput};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Node, NodeKind};
use crate::glob::glob_set;
use crate::id::BlobId;

/// Absolute paths chosen by [`super::backup_selected`]: an entry is backed up when
/// it is one of them, lies below one, or is a folder leading to one.
pub(super) struct SelectedPaths {
    chosen: HashSet<PathBuf>,
    leading: HashSet<PathBuf>,
}

impl SelectedPaths {
    pub(super) fn new(paths: &[PathBuf]) -> Result<Self> {
        let mut chosen = HashSet::new();
        let mut leading = HashSet::new();
        for path in paths {
            // Resolved as the sources are, so the walk's paths compare equal.
            let absolute = absolute_path(path)?;
            leading.extend(absolute.ancestors().skip(1).map(Path::to_path_buf));
            chosen.insert(absolute);
        }
        Ok(Self { chosen, leading })
    }

    pub(super) fn keeps(&self, path: &Path) -> bool {
        self.leading.contains(path) || path.ancestors().any(|a| self.chosen.contains(a))
    }
}

/// A source: its name in the snapshot (`/`-separated parts), what it
/// reads, and its own excludes.
pub(super) struct Source {
    pub(super) name: Vec<u8>,
    pub(super) input: Input,
    pub(super) excludes: Option<GlobSet>,
}

/// What a source reads.
pub(super) enum Input {
    /// An absolute path.
    Path(PathBuf),
    /// A command or standard input.
    Stream(SourceInput),
}

impl Source {
    /// What the snapshot's `paths` records: the absolute path, or the name of a stream.
    pub(super) fn recorded_path(&self) -> String {
        match &self.input {
            Input::Path(path) => path.display().to_string(),
            Input::Stream(_) => String::from_utf8_lossy(&self.name).into_owned(),
        }
    }
}

/// The sources `options` names, checked (they exist; no two share a
/// name or nest) and sorted by name.
pub(super) fn resolve_sources(options: &BackupOptions) -> Result<Vec<Source>> {
    if options.paths.is_empty() && options.sources.is_empty() {
        return Err(Error::usage("nothing to back up: give at least one path"));
    }
    let mut sources = Vec::new();
    for path in &options.paths {
        fs::symlink_metadata(path).map_err(|e| Error::io("cannot back up", path, e))?;
        let absolute = absolute_path(path)?;
        let name = absolute
            .file_name()
            .map_or_else(|| b"root".to_vec(), |n| n.as_bytes().to_vec());
        sources.push(Source {
            name,
            input: Input::Path(absolute),
            excludes: None,
        });
    }
    for named in &options.sources {
        crate::profile::check_source_name(&named.name)?;
        let input = match &named.input {
            SourceInput::Path(path) => {
                fs::symlink_metadata(path).map_err(|e| {
                    Error::io(&format!("cannot back up source `{}`", named.name), path, e)
                })?;
                Input::Path(absolute_path(path)?)
            }
            stream => Input::Stream(stream.clone()),
        };
        let excludes = if named.excludes.is_empty() {
            None
        } else {
            Some(glob_set(&named.excludes, "exclude pattern")?)
        };
        sources.push(Source {
            name: named.name.as_bytes().to_vec(),
            input,
            excludes,
        });
    }
    if sources
        .iter()
        .filter(|s| matches!(s.input, Input::Stream(SourceInput::Stdin)))
        .count()
        > 1
    {
        return Err(Error::usage("standard input can be read only once"));
    }
    sources.sort_by(|a, b| a.name.cmp(&b.name));
    let by_name: HashMap<&[u8], &Source> = sources.iter().map(|s| (s.name.as_slice(), s)).collect();
    for (i, b) in sources.iter().enumerate() {
        // The same name, or a source at a folder of another's name (`a` and `a/b`).
        let same = (i > 0 && sources[i - 1].name == b.name).then(|| &sources[i - 1]);
        let folder = b
            .name
            .iter()
            .enumerate()
            .filter(|&(_, &byte)| byte == b'/')
            .find_map(|(at, _)| by_name.get(&b.name[..at]).copied());
        if let Some(a) = same.or(folder) {
            return Err(Error::usage(format!(
                "{} and {} would both appear as `{}` in the snapshot; give them different names or back them up separately",
                a.recorded_path(),
                b.recorded_path(),
                String::from_utf8_lossy(&a.name)
            )));
        }
    }
    Ok(sources)
}

/// Sources arranged as the snapshot's folders: a source, or a folder made
/// for sources with nested names (`postgres/db.dump`).
pub(super) enum Slot<'s> {
    Source(&'s Source),
    Folder(BTreeMap<Vec<u8>, Slot<'s>>),
}

/// The folder tree of the snapshot's top level.
pub(super) fn layout(sources: &[Source]) -> BTreeMap<Vec<u8>, Slot<'_>> {
    let mut root = BTreeMap::new();
    for source in sources {
        let parts: Vec<&[u8]> = source.name.split(|&b| b == b'/').collect();
        let mut level = &mut root;
        for part in &parts[..parts.len() - 1] {
            let slot = level
                .entry(part.to_vec())
                .or_insert_with(|| Slot::Folder(BTreeMap::new()));
            level = match slot {
                Slot::Folder(children) => children,
                // resolve_sources refuses a source with another below it.
                Slot::Source(_) => unreachable!("a source cannot hold another"),
            };
        }
        level.insert(parts[parts.len() - 1].to_vec(), Slot::Source(source));
    }
    root
}

/// The absolute form of `path`, resolving symlinks in its parent only (a
/// source that is itself a symlink is backed up as a symlink).
fn absolute_path(path: &Path) -> Result<PathBuf> {
    let canonical_parent = |p: &Path| -> Result<PathBuf> {
        let parent = match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::canonicalize(&parent).map_err(|e| Error::io("cannot resolve", &parent, e))
    };
    match path.file_name() {
        Some(name)
            if path
                .components()
                .next_back()
                .is_some_and(|c| matches!(c, std::path::Component::Normal(_))) =>
        {
            Ok(canonical_parent(path)?.join(name))
        }
        _ => fs::canonicalize(path).map_err(|e| Error::io("cannot resolve", path, e)),
    }
}

impl Walker<'_> {
    /// Stores a command's output or standard input as one file, streaming it
    /// through the chunker. A failing command fails the backup.
    pub(super) fn backup_stream(
        &self,
        full_name: &[u8],
        input: &SourceInput,
        name: Vec<u8>,
        parent: Option<&Node>,
    ) -> Result<Node> {
        let shown = String::from_utf8_lossy(full_name).into_owned();
        let mut child = None;
        let reader: Box<dyn io::Read> = match input {
            SourceInput::Command { command, dir } => {
                let mut cmd = crate::hooks::shell(command);
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::inherit());
                if let Some(dir) = dir {
                    cmd.current_dir(dir);
                }
                let mut spawned = cmd.spawn().map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot run the command of `{shown}`: {e}"),
                    )
                })?;
                let stdout = spawned.stdout.take().expect("stdout is piped");
                child = Some(spawned);
                Box::new(stdout)
            }
            SourceInput::Stdin => Box::new(io::stdin().lock()),
            SourceInput::Path(_) => unreachable!("paths are not streams"),
        };
        let result = self.store_stream(reader, &shown);
        let status = match child.as_mut() {
            Some(child) => {
                if result.is_err() {
                    let _ = child.kill();
                }
                Some(child.wait().map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!("cannot wait for the command of `{shown}`: {e}"),
                    )
                })?)
            }
            None => None,
        };
        let (content, depth, read) = result?;
        if let Some(status) = status.filter(|s| !s.success()) {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the command of `{shown}` failed ({status}); its output was not saved and no snapshot was written"
                ),
            ));
        }
        let mut node = made_node(name, NodeKind::File, 0o600);
        node.content = content;
        node.content_depth = depth;
        node.size = read;
        self.counters.files.fetch_add(1, Ordering::Relaxed);
        self.count_read(Path::new(&shown), parent.is_some(), read);
        Ok(node)
    }

    /// Chunks and stores everything `reader` yields; returns the content ids,
    /// their depth and the length.
    fn store_stream(
        &self,
        reader: Box<dyn io::Read + '_>,
        shown: &str,
    ) -> Result<(Vec<BlobId>, u8, u64)> {
        let mut ids = Vec::new();
        let read = self
            .chunker
            .chunk_batches(reader, u64::MAX, |chunks: &[&[u8]]| {
                self.store_chunks(chunks, None, &mut ids)
            })
            .map_err(|e| match e {
                ReadError::Source(e) => Error::new(
                    ErrorKind::Io,
                    format!("cannot read the data of `{shown}`: {e}; no snapshot was written"),
                ),
                ReadError::Repo(e) => e,
            })?;
        let (content, depth) = self.saver.save_content(ids)?;
        Ok((content, depth, read))
    }
}
