//! `snap dump`: part of a snapshot as one stream. A file goes out as it
//! is; a folder (or anything else, or a file when an archive is asked for)
//! as a tar or zip archive. Entries come from the tree walk `ls -R` uses
//! and file content from [`FileReader`], the reader `cat` uses, which
//! judges a file by [`Repository::file_layout`] as restore does and holds
//! one chunk at a time: memory stays bounded whatever is dumped.
//!
//! A damaged file stops the dump (an archive is complete or not made):
//! written to a file, nothing is left behind; written to a stream, the
//! stream ends without the archive's end marker, so `tar` and `unzip`
//! report it cut short instead of taking it for a whole archive. A
//! cancelled dump ([`DumpOptions::cancel`], set by Ctrl-C) stops the same
//! way, with an `Interrupted` error.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, unescape_name};
use crate::ops::browse::{FileReader, components, copy_error, printable, walk};
use crate::progress::{Phase, Progress};
use crate::repo::Repository;

/// The archive formats `snap dump` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// POSIX tar with GNU long names and PAX records (exact mtimes,
    /// `SCHILY.xattr.*` extended attributes); hard links stay links.
    Tar,
    /// zip with deflate; modes, mtimes (to the second), owners and
    /// symlinks in Info-ZIP's Unix fields. Hard links become copies;
    /// fifos and devices cannot be held and are skipped.
    Zip,
}

/// What `dump` writes.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// The archive to write; `None`: a file as it is, anything else as tar.
    pub archive: Option<Archive>,
    /// Whether to write owner names besides uid and gid. Names are looked
    /// up on this machine, so they are right only for a snapshot taken on
    /// it: [`DumpOptions::for_snapshot`] writes them only then.
    pub owner_names: bool,
    /// Set (by a signal handler) to stop the dump at its next write.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl DumpOptions {
    /// The options for dumping from `snapshot`: owner names only when the
    /// snapshot was taken on this host (another host may give the same uid
    /// another name, and `tar` run as root extracts by name first).
    pub fn for_snapshot(archive: Option<Archive>, snapshot: &Snapshot) -> Self {
        Self {
            archive,
            owner_names: snapshot.host == crate::host::hostname(),
            cancel: None,
        }
    }

    /// The archive `node` is written as, or `None` when its content goes
    /// out as it is (a file, no archive asked for).
    pub fn archive_for(&self, node: &Node) -> Option<Archive> {
        match (self.archive, node.kind) {
            (None, NodeKind::File) => None,
            (archive, _) => Some(archive.unwrap_or(Archive::Tar)),
        }
    }
}

/// What a dump wrote.
#[derive(Debug, Clone, Default)]
pub struct DumpReport {
    /// Entries written (1 for a file written as it is).
    pub entries: u64,
    /// Bytes of file content written (before compression).
    pub bytes: u64,
    /// Entries the archive format cannot hold, each `path: why`.
    pub skipped: Vec<String>,
}

/// Writes the node found at `path` (as the user gave it) to `out`.
pub fn dump(
    repo: &Repository,
    node: &Node,
    path: &str,
    options: &DumpOptions,
    out: &mut dyn Write,
    progress: &dyn Progress,
) -> Result<DumpReport> {
    report_totals(repo, node, progress)?;
    let open = Cell::new(true);
    let mut gate = Gate {
        out,
        open: &open,
        cancel: options.cancel.as_deref(),
    };
    let Some(archive) = options.archive_for(node) else {
        let shown = printable(path);
        let mut content = FileReader::new(repo, node)
            .map_err(|e| at_path(e, &shown))?
            .counted(progress);
        progress.current(&shown);
        let bytes = io::copy(&mut content, &mut gate)
            .map_err(|e| at_path(copy_error(e, "cannot write output"), &shown))?;
        progress.add_files(1);
        return Ok(DumpReport {
            entries: 1,
            bytes,
            skipped: Vec::new(),
        });
    };
    let names = OwnerNames::new(options.owner_names);
    match archive {
        Archive::Tar => write_entries(
            repo,
            node,
            path,
            &open,
            &mut Tar::new(&mut gate, names),
            progress,
        ),
        Archive::Zip => write_entries(repo, node, path, &open, &mut Zip::new(&mut gate), progress),
    }
}

/// [`dump`] into the file `dest`, atomically: a temporary file next to it,
/// flushed to disk and renamed over it, so `dest` is either what it was
/// or the whole dump (never a cut-off archive).
pub fn dump_to_file(
    repo: &Repository,
    node: &Node,
    path: &str,
    options: &DumpOptions,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<DumpReport> {
    if dest.is_dir() {
        return Err(Error::usage(format!(
            "{} is a folder; give --output a file name",
            dest.display()
        )));
    }
    let folder = match dest.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".snap-dump-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(folder)
        .map_err(|e| Error::io("cannot create a file in", folder, e))?;
    let temp_path = temp.path().to_path_buf();
    let report = {
        let mut out = io::BufWriter::with_capacity(1 << 20, temp.as_file_mut());
        let report = dump(repo, node, path, options, &mut out, progress).map_err(|e| {
            if e.kind() == ErrorKind::Interrupted {
                Error::new(
                    ErrorKind::Interrupted,
                    format!("dump interrupted; {} was left as it was", dest.display()),
                )
            } else {
                e
            }
        })?;
        out.flush()
            .map_err(|e| Error::io("cannot write", &temp_path, e))?;
        report
    };
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io("cannot write", temp.path(), e))?;
    temp.persist(dest)
        .map_err(|e| Error::io("cannot write", dest, e.error))?;
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io("cannot flush the folder", folder, e))?;
    Ok(report)
}

/// Passes writes on while `open`, and drops them once a dump failed: what
/// the archive writers write when dropped (tar's end marker, zip's central
/// directory) must not reach the output and make a cut-off archive look
/// whole. Once `cancel` is set, every write fails with an `Interrupted`
/// error (inside the `io::Error`, where [`copy_error`] finds it), which
/// stops the dump wherever it is writing.
struct Gate<'a> {
    out: &'a mut dyn Write,
    open: &'a Cell<bool>,
    cancel: Option<&'a AtomicBool>,
}

impl Write for Gate<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(io::Error::other(Error::new(
                ErrorKind::Interrupted,
                "dump interrupted; the output stops short (an archive without its end)",
            )));
        }
        if self.open.get() {
            self.out.write(buf)
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.open.get() {
            self.out.flush()
        } else {
            Ok(())
        }
    }
}

/// One entry as an archive writer gets it.
enum Entry<'a, 'r> {
    /// A directory, symlink or special file: the node says it all.
    Plain,
    /// A file and its content.
    File(&'a mut FileReader<'r>),
    /// A further name of a file already written under this archive path.
    HardLink(&'a [u8]),
}

/// Writes entries in one archive format.
trait ArchiveWriter {
    /// Whether a later name of a hard-linked file can be a link entry
    /// (otherwise its content is written again).
    fn keeps_hard_links(&self) -> bool;

    /// Adds an entry at `path` (raw bytes, `/`-separated); `Ok(Some(why))`
    /// when the format cannot hold this kind of entry.
    fn add(
        &mut self,
        path: &[u8],
        node: &Node,
        entry: Entry<'_, '_>,
    ) -> io::Result<Option<&'static str>>;

    /// Ends the archive.
    fn finish(&mut self) -> io::Result<()>;
}

/// Walks what is dumped and hands every entry to `archive`, depth first in
/// name order, a folder before its entries. `path` is the user's
/// `SNAP:PATH` path: entries are named from its last component (the root
/// of a snapshot: from its entries).
fn write_entries(
    repo: &Repository,
    node: &Node,
    path: &str,
    open: &Cell<bool>,
    archive: &mut dyn ArchiveWriter,
    progress: &dyn Progress,
) -> Result<DumpReport> {
    let shown = printable(path);
    // What precedes the archive names in the snapshot paths the walk gives.
    let parent_len = shown.rfind('/').map_or(0, |slash| slash + 1);
    let mut report = DumpReport::default();
    let mut first_names: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut visit = |shown_path: &str, node: &Node| -> Result<()> {
        let name = archive_path(&shown_path[parent_len..]);
        if node.kind == NodeKind::File {
            progress.current(shown_path);
        }
        let skipped = add_entry(
            repo,
            archive,
            &name,
            node,
            &mut first_names,
            &mut report,
            progress,
        )
        .map_err(|e| at_path(e, shown_path))?;
        if let Some(why) = skipped {
            report.skipped.push(format!("{shown_path}: {why}"));
        } else {
            report.entries += 1;
        }
        Ok(())
    };
    let result = if node.kind == NodeKind::Dir {
        let top_is_root = components(path).is_empty();
        let top = if top_is_root {
            Ok(())
        } else {
            visit(&shown, node)
        };
        top.and_then(|()| walk(repo, node, &shown, true, &mut visit))
    } else {
        visit(&shown, node)
    }
    .and_then(|()| {
        archive
            .finish()
            .map_err(|e| copy_error(e, "cannot write output"))
    });
    if result.is_err() {
        open.set(false);
    }
    result.map(|()| report)
}

/// Hands one entry to `archive`, reading a file's content or linking a
/// later name of a hard-linked file to its first.
fn add_entry(
    repo: &Repository,
    archive: &mut dyn ArchiveWriter,
    name: &[u8],
    node: &Node,
    first_names: &mut HashMap<(u64, u64), Vec<u8>>,
    report: &mut DumpReport,
    progress: &dyn Progress,
) -> Result<Option<&'static str>> {
    let written = |e| copy_error(e, "cannot write output");
    if node.kind != NodeKind::File {
        return archive.add(name, node, Entry::Plain).map_err(written);
    }
    let linked = node.links > 1 && node.inode != 0 && archive.keeps_hard_links();
    if linked && let Some(first) = first_names.get(&(node.dev, node.inode)) {
        return archive
            .add(name, node, Entry::HardLink(first))
            .map_err(written);
    }
    let mut content = FileReader::new(repo, node)?.counted(progress);
    let skipped = archive
        .add(name, node, Entry::File(&mut content))
        .map_err(written)?;
    progress.add_files(1);
    report.bytes += node.size;
    if linked {
        first_names.insert((node.dev, node.inode), name.to_vec());
    }
    Ok(skipped)
}

/// Tells `progress` the files and content bytes a dump of `node` writes
/// (a walk of its folder listings, only when someone looks at the totals).
fn report_totals(repo: &Repository, node: &Node, progress: &dyn Progress) -> Result<()> {
    if !progress.shows_totals() {
        return Ok(());
    }
    progress.phase(Phase::Scanning);
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut count = |_: &str, node: &Node| {
        if node.kind == NodeKind::File {
            files += 1;
            bytes += node.size;
        }
        Ok(())
    };
    if node.kind == NodeKind::Dir {
        walk(repo, node, "", true, &mut count)?;
    } else {
        count("", node)?;
    }
    progress.found(files, bytes);
    progress.phase(Phase::Working);
    Ok(())
}

/// The raw bytes of a path printed by the walk (components escaped the
/// way snap prints names, joined with `/`).
fn archive_path(shown: &str) -> Vec<u8> {
    shown
        .split('/')
        .map(unescape_name)
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// Names the snapshot path in an error; damage becomes damage of that path
/// (exit code 4), whatever object it was found in.
fn at_path(e: Error, shown: &str) -> Error {
    if e.is_damage() {
        let message = format!("`{shown}` cannot be dumped: {}", e.message());
        Error::new(ErrorKind::Corrupt, message).with_source(e)
    } else {
        e
    }
}

/// Owner and group names of this machine, each looked up once.
struct OwnerNames {
    enabled: bool,
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
}

impl OwnerNames {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    fn user(&mut self, uid: u32) -> Option<&str> {
        let look_up = |id: u32| nix::unistd::User::from_uid(id.into()).ok().flatten();
        Self::cached(self.enabled, &mut self.users, uid, |id| {
            look_up(id).map(|u| u.name)
        })
    }

    fn group(&mut self, gid: u32) -> Option<&str> {
        let look_up = |id: u32| nix::unistd::Group::from_gid(id.into()).ok().flatten();
        Self::cached(self.enabled, &mut self.groups, gid, |id| {
            look_up(id).map(|g| g.name)
        })
    }

    fn cached(
        enabled: bool,
        known: &mut HashMap<u32, Option<String>>,
        id: u32,
        look_up: impl FnOnce(u32) -> Option<String>,
    ) -> Option<&str> {
        if !enabled {
            return None;
        }
        known.entry(id).or_insert_with(|| look_up(id)).as_deref()
    }
}

/// Seconds and nanoseconds of a time in nanoseconds since the epoch.
fn split_ns(ns: i64) -> (i64, u32) {
    let nanos = u32::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
    (ns.div_euclid(1_000_000_000), nanos)
}

fn os_path(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

/// PAX records: keyword and value.
type PaxRecords = Vec<(String, Vec<u8>)>;

struct Tar<'w, 'o> {
    builder: tar::Builder<&'w mut Gate<'o>>,
    names: OwnerNames,
}

impl<'w, 'o> Tar<'w, 'o> {
    fn new(out: &'w mut Gate<'o>, names: OwnerNames) -> Self {
        Self {
            builder: tar::Builder::new(out),
            names,
        }
    }

    /// The header of `node` without its type, size or path, and the PAX
    /// records that go before it: the mtime to the nanosecond and the
    /// extended attributes, as GNU tar writes them with `--xattrs`.
    fn header(&mut self, node: &Node) -> io::Result<(tar::Header, PaxRecords)> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(node.mode & 0o7777);
        header.set_uid(node.uid.into());
        header.set_gid(node.gid.into());
        let (secs, _) = split_ns(node.mtime_ns);
        header.set_mtime(u64::try_from(secs).unwrap_or(0));
        // The header holds names of up to 32 bytes; a longer one is left
        // out (the numbers are always there).
        if let Some(name) = self.names.user(node.uid).filter(|n| n.len() <= 32) {
            header.set_username(name)?;
        }
        if let Some(name) = self.names.group(node.gid).filter(|n| n.len() <= 32) {
            header.set_groupname(name)?;
        }
        let magnitude = node.mtime_ns.unsigned_abs();
        let sign = if node.mtime_ns < 0 { "-" } else { "" };
        let mut records = vec![(
            "mtime".to_string(),
            format!(
                "{sign}{}.{:09}",
                magnitude / 1_000_000_000,
                magnitude % 1_000_000_000
            )
            .into_bytes(),
        )];
        for xattr in &node.xattrs {
            // PAX keywords are UTF-8; a name that is not cannot be written.
            if let Ok(name) = std::str::from_utf8(&xattr.name) {
                records.push((format!("SCHILY.xattr.{name}"), xattr.value.clone()));
            }
        }
        Ok((header, records))
    }
}

impl ArchiveWriter for Tar<'_, '_> {
    fn keeps_hard_links(&self) -> bool {
        true
    }

    fn add(
        &mut self,
        path: &[u8],
        node: &Node,
        entry: Entry<'_, '_>,
    ) -> io::Result<Option<&'static str>> {
        use tar::EntryType;
        if node.kind == NodeKind::Socket {
            return Ok(Some("a socket cannot be archived"));
        }
        let (mut header, records) = self.header(node)?;
        header.set_size(0);
        self.builder.append_pax_extensions(
            records
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_slice())),
        )?;
        let path = os_path(path);
        match (node.kind, entry) {
            (NodeKind::File, Entry::HardLink(first)) => {
                header.set_entry_type(EntryType::Link);
                self.builder
                    .append_link(&mut header, path, os_path(first))?;
            }
            (NodeKind::File, Entry::File(content)) => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(node.size);
                self.builder.append_data(&mut header, path, content)?;
            }
            (NodeKind::Symlink, _) => {
                header.set_entry_type(EntryType::Symlink);
                let target = node.target.as_deref().unwrap_or_default();
                self.builder
                    .append_link(&mut header, path, os_path(target))?;
            }
            (kind, _) => {
                header.set_entry_type(match kind {
                    NodeKind::Dir => EntryType::Directory,
                    NodeKind::Fifo => EntryType::Fifo,
                    NodeKind::Chardev => EntryType::Char,
                    _ => EntryType::Block,
                });
                if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
                    let major = nix::sys::stat::major(node.rdev);
                    let minor = nix::sys::stat::minor(node.rdev);
                    header.set_device_major(u32::try_from(major).unwrap_or(u32::MAX))?;
                    header.set_device_minor(u32::try_from(minor).unwrap_or(u32::MAX))?;
                }
                self.builder.append_data(&mut header, path, io::empty())?;
            }
        }
        Ok(None)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.builder.finish()?;
        self.builder.get_mut().flush()
    }
}

/// zip holds owners as numbers only (no names).
struct Zip<'w, 'o> {
    /// `None` once finished.
    writer: Option<zip::ZipWriter<zip::write::StreamWriter<&'w mut Gate<'o>>>>,
}

/// Info-ZIP's "Unix type 3" extra field: uid and gid (`unzip -X` restores them).
const ZIP_UNIX_OWNER: u16 = 0x7875;

/// Files this close to 4 GiB get zip64 sizes (deflate may grow a little).
const ZIP64_FROM: u64 = (1 << 32) - (1 << 26);

impl<'w, 'o> Zip<'w, 'o> {
    fn new(out: &'w mut Gate<'o>) -> Self {
        Self {
            writer: Some(zip::ZipWriter::new_stream(out)),
        }
    }
}

fn zip_error(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other),
    }
}

/// The DOS date and time of an mtime, in this machine's time zone as zip
/// tools expect (the exact second is in the extended timestamp).
fn dos_time(mtime_ns: i64) -> zip::DateTime {
    let Ok(time) = jiff::Timestamp::from_nanosecond(i128::from(mtime_ns)) else {
        return zip::DateTime::default();
    };
    let local = time.to_zoned(jiff::tz::TimeZone::system());
    let part = |v: i8| u8::try_from(v).unwrap_or(0);
    u16::try_from(local.year())
        .ok()
        .and_then(|year| {
            zip::DateTime::from_date_and_time(
                year,
                part(local.month()),
                part(local.day()),
                part(local.hour()),
                part(local.minute()),
                part(local.second()),
            )
            .ok()
        })
        .unwrap_or_default()
}

impl ArchiveWriter for Zip<'_, '_> {
    fn keeps_hard_links(&self) -> bool {
        false
    }

    fn add(
        &mut self,
        path: &[u8],
        node: &Node,
        entry: Entry<'_, '_>,
    ) -> io::Result<Option<&'static str>> {
        use zip::CompressionMethod::{Deflated, Stored};
        let (file_type, method) = match node.kind {
            NodeKind::File => (libc::S_IFREG, Deflated),
            // A folder is known by the `/` its name ends with. Its type
            // bits stay out: the zip crate writes a streamed entry marked
            // as a folder by seeking back to its header, which a pipe
            // cannot do, and unzip goes by the `/` anyway.
            NodeKind::Dir => (0, Stored),
            NodeKind::Symlink => (libc::S_IFLNK, Stored),
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev | NodeKind::Socket => {
                return Ok(Some("zip cannot hold fifos, devices or sockets; use tar"));
            }
        };
        let mut name = path.to_vec();
        if node.kind == NodeKind::Dir {
            name.push(b'/');
        }
        let mode = if node.kind == NodeKind::Symlink {
            0o777
        } else {
            node.mode & 0o7777
        };
        let (secs, _) = split_ns(node.mtime_ns);
        let mut owner = vec![1, 4];
        owner.extend_from_slice(&node.uid.to_le_bytes());
        owner.push(4);
        owner.extend_from_slice(&node.gid.to_le_bytes());
        let mut options = zip::write::FullFileOptions::default()
            .name(&name)
            .system(zip::System::Unix)
            .compression_method(method)
            .external_attributes((file_type | mode) << 16)
            .last_modified_time(dos_time(node.mtime_ns))
            .large_file(node.size >= ZIP64_FROM)
            .with_extended_timestamp(u32::try_from(secs).ok(), None, None)
            .map_err(zip_error)?;
        options
            .add_extra_field(ZIP_UNIX_OWNER, owner, false)
            .map_err(zip_error)?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the zip archive is already finished"))?;
        writer.start_file_with_options(options).map_err(zip_error)?;
        match entry {
            Entry::File(content) => {
                io::copy(content, writer)?;
            }
            Entry::Plain if node.kind == NodeKind::Symlink => {
                writer.write_all(node.target.as_deref().unwrap_or_default())?;
            }
            Entry::Plain | Entry::HardLink(_) => {}
        }
        Ok(None)
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.writer.take() {
            Some(writer) => writer.finish().map_err(zip_error)?.into_inner().flush(),
            None => Ok(()),
        }
    }
}
