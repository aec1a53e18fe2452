//! `snap drill`: a restore rehearsal. The snapshot (or a sample of its
//! files) is restored into a scratch folder by the one restore there is,
//! every restored byte is hashed again and compared with the chunk ids the
//! snapshot names, every entry's metadata with its node, every SQLite
//! database gets `PRAGMA integrity_check`, the profile's `drill` hook may
//! try the copy out; then the scratch folder goes and the outcome is kept
//! in the repository as a drill record (FORMAT.md, "Drill records").
//!
//! Restore already refuses unsound files (`Repository::file_layout`, the
//! rule check applies too) and verifies chunks as it reads them; the drill
//! adds the second half of the rehearsal: that what landed on disk is the
//! snapshot, read back from the disk.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::config::Feature;
pub use crate::format::drill::DrillRecord;
use crate::format::drill::MAX_PATHS;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Node, NodeKind, escape_name};
use crate::hooks::{self, Hook};
use crate::id::{SnapshotId, TreeId};
use crate::ops::browse::root_node;
use crate::ops::restore::{self, RestoreOptions};
use crate::ops::sqlite::{self, DatabaseCheck};
use crate::progress::Progress;
use crate::repo::{NamedDrillRecord, Repository};
use crate::sync::{into_inner, lock};

/// The profile's `drill` hook, run against the restored copy.
#[derive(Debug, Clone)]
pub struct DrillHook {
    /// The shell command.
    pub command: String,
    /// Its working folder (the profile's).
    pub dir: PathBuf,
    /// Longest run time.
    pub timeout: Duration,
}

/// How to drill.
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// The folder the scratch folder is made in (the system's temporary
    /// folder when empty).
    pub scratch: PathBuf,
    /// Drill only this percentage of the files (0 < p <= 100), chosen by
    /// [`Self::seed`].
    pub sample_percent: Option<f64>,
    /// The seed choosing the sample; random when `None` (the report says
    /// which, so a drill can be repeated).
    pub seed: Option<u64>,
    /// The hook to run against the restored copy.
    pub hook: Option<DrillHook>,
}

/// One restored entry that is not what the snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// Its path in the snapshot.
    pub path: String,
    /// What differs.
    pub what: String,
}

/// How the drill hook went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookOutcome {
    /// Whether it exited with 0 in time.
    pub ok: bool,
    /// Its error, when it failed.
    pub message: String,
}

/// What a drill found.
#[derive(Debug, Clone)]
pub struct DrillReport {
    /// The snapshot drilled.
    pub snapshot: SnapshotId,
    /// Its root tree.
    pub tree: TreeId,
    /// Its time.
    pub snapshot_time: String,
    /// When the drill started (RFC 3339, UTC).
    pub time: String,
    /// The seed that chose the sample.
    pub seed: u64,
    /// The sampled percentage of files (`None`: all of them).
    pub sample_percent: Option<f64>,
    /// Files restored and verified.
    pub files: u64,
    /// Directories verified.
    pub dirs: u64,
    /// Symlinks and other entries verified.
    pub others: u64,
    /// Content bytes read back and verified.
    pub bytes: u64,
    /// Files restore could not restore: repository data is damaged.
    pub damaged: Vec<String>,
    /// Restored entries that differ from the snapshot.
    pub differences: Vec<Difference>,
    /// integrity_check of every restored SQLite database.
    pub databases: Vec<DatabaseCheck>,
    /// The drill hook, when the profile has one.
    pub hook: Option<HookOutcome>,
    /// Metadata the scratch folder could not hold, entries not restorable here.
    pub warnings: Vec<String>,
    /// Seconds spent restoring, verifying (bytes, metadata, databases), in
    /// the hook, and in all.
    pub restore_s: f64,
    /// See `restore_s`.
    pub verify_s: f64,
    /// See `restore_s`.
    pub hook_s: f64,
    /// See `restore_s`.
    pub duration_s: f64,
    /// The drill record written (its file name under `drills/`).
    pub record: Option<String>,
}

impl DrillReport {
    /// Whether everything restored matched and every check passed.
    pub fn ok(&self) -> bool {
        self.damaged.is_empty()
            && self.differences.is_empty()
            && self.databases.iter().all(|d| d.ok)
            && self.hook.as_ref().is_none_or(|h| h.ok)
    }

    /// The record kept in the repository.
    pub fn to_record(&self) -> DrillRecord {
        let mut failed_paths: Vec<String> = self
            .damaged
            .iter()
            .cloned()
            .chain(self.differences.iter().map(|d| d.path.clone()))
            .chain(
                self.databases
                    .iter()
                    .filter(|d| !d.ok)
                    .map(|d| d.path.clone()),
            )
            .collect();
        failed_paths.sort();
        failed_paths.dedup();
        failed_paths.truncate(MAX_PATHS);
        DrillRecord {
            time: self.time.clone(),
            tree: self.tree,
            snapshot_time: self.snapshot_time.clone(),
            snapshot: self.snapshot,
            ok: self.ok(),
            sample_percent: self.sample_percent,
            seed: self.seed,
            files: self.files,
            bytes: self.bytes,
            databases: self.databases.len() as u64,
            databases_failed: self.databases.iter().filter(|d| !d.ok).count() as u64,
            hook_ok: self.hook.as_ref().map(|h| h.ok),
            duration_s: self.duration_s,
            failed_paths,
            program: format!("snap {}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Drills snapshot `id`: restores it (or a sample) into a new scratch
/// folder under `options.scratch`, verifies it, runs the hook, removes the
/// scratch folder and writes the drill record. Damage and differences are
/// in the report (and the record), not errors; errors are failures of the
/// drill itself (the scratch folder, the repository's storage).
pub fn drill(
    repo: &Repository,
    id: SnapshotId,
    snapshot: &Snapshot,
    options: &DrillOptions,
    progress: &dyn Progress,
) -> Result<DrillReport> {
    if let Some(p) = options.sample_percent
        && !(p > 0.0 && p <= 100.0)
    {
        return Err(Error::usage(format!(
            "--sample must be more than 0% and at most 100%, not {p}%"
        )));
    }
    let started = Instant::now();
    let time = jiff::Timestamp::now().to_string();
    let seed = options.seed.unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        u64::from_le_bytes(bytes)
    });
    let parent = if options.scratch.as_os_str().is_empty() {
        std::env::temp_dir()
    } else {
        options.scratch.clone()
    };
    let scratch = tempfile::Builder::new()
        .prefix("snap-drill-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io("cannot create a scratch folder in", &parent, e))?;
    let drill = Drill {
        repo,
        progress,
        sample: options
            .sample_percent
            .map(|percent| Sample { percent, seed }),
        root: scratch.path(),
        damaged: Mutex::new(Vec::new()),
        warnings: Mutex::new(Vec::new()),
        differences: Mutex::new(Vec::new()),
        databases: Mutex::new(Vec::new()),
        files: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        others: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let root = root_node(snapshot.tree);
    let restore_started = Instant::now();
    if drill.sample.is_none() {
        drill.restore(&root, scratch.path(), "")?;
    } else {
        // Each sampled file is restored on its own, to its place below the
        // scratch folder; the folders above it are only made to hold it.
        drill.walk(&root, scratch.path(), "", &|node, path, rel| {
            if node.kind == NodeKind::File {
                drill.restore(node, path.parent().unwrap_or(scratch.path()), rel)?;
            }
            Ok(())
        })?;
    }
    let restore_s = restore_started.elapsed().as_secs_f64();
    let verify_started = Instant::now();
    let damaged: HashSet<String> = lock(&drill.damaged).iter().cloned().collect();
    let warnings = lock(&drill.warnings).clone();
    drill.walk(&root, scratch.path(), "", &|node, path, rel| {
        if !damaged.contains(rel) {
            drill.verify(node, path, rel, &warnings)?;
        }
        Ok(())
    })?;
    let verify_s = verify_started.elapsed().as_secs_f64();
    let hook_started = Instant::now();
    let hook = options.hook.as_ref().map(|hook| {
        progress.message("running the drill hook");
        let env = [
            (
                "SNAP_DRILL_DIR".to_string(),
                scratch.path().display().to_string(),
            ),
            ("SNAP_SNAPSHOT".to_string(), id.to_hex()),
        ];
        match hooks::run(&Hook {
            name: "drill",
            command: &hook.command,
            dir: &hook.dir,
            timeout: hook.timeout,
            env: &env,
        }) {
            Ok(()) => HookOutcome {
                ok: true,
                message: String::new(),
            },
            Err(e) => HookOutcome {
                ok: false,
                message: e.to_string(),
            },
        }
    });
    let hook_s = hook_started.elapsed().as_secs_f64();
    let mut differences = into_inner(drill.differences);
    differences.sort_by(|a, b| a.path.cmp(&b.path));
    let mut databases = into_inner(drill.databases);
    databases.sort_by(|a, b| a.path.cmp(&b.path));
    let mut damaged = into_inner(drill.damaged);
    damaged.sort();
    let mut report = DrillReport {
        snapshot: id,
        tree: snapshot.tree,
        snapshot_time: snapshot.time.clone(),
        time,
        seed,
        sample_percent: options.sample_percent,
        files: drill.files.into_inner(),
        dirs: drill.dirs.into_inner(),
        others: drill.others.into_inner(),
        bytes: drill.bytes.into_inner(),
        damaged,
        differences,
        databases,
        hook,
        warnings: into_inner(drill.warnings),
        restore_s,
        verify_s,
        hook_s,
        duration_s: 0.0,
        record: None,
    };
    remove_scratch(scratch)?;
    report.duration_s = started.elapsed().as_secs_f64();
    report.record = Some(repo.write_drill_record(&report.to_record())?);
    Ok(report)
}

/// Which files a sampled drill takes: each file's path hashed with the
/// seed, so the same seed picks the same files of the same snapshot.
#[derive(Clone, Copy)]
struct Sample {
    percent: f64,
    seed: u64,
}

impl Sample {
    fn picks(self, rel: &str) -> bool {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.seed.to_le_bytes());
        hasher.update(rel.as_bytes());
        let hash = hasher.finalize();
        let head: [u8; 8] = hash.as_bytes()[..8].try_into().expect("8 bytes");
        // The top 53 bits as a fraction in [0, 1).
        #[allow(clippy::cast_precision_loss)]
        let fraction = (u64::from_le_bytes(head) >> 11) as f64 / (1u64 << 53) as f64;
        fraction * 100.0 < self.percent
    }
}

/// One drill's state, shared by the parallel walks.
struct Drill<'a> {
    repo: &'a Repository,
    progress: &'a dyn Progress,
    sample: Option<Sample>,
    root: &'a Path,
    damaged: Mutex<Vec<String>>,
    warnings: Mutex<Vec<String>>,
    differences: Mutex<Vec<Difference>>,
    databases: Mutex<Vec<DatabaseCheck>>,
    files: AtomicU64,
    dirs: AtomicU64,
    others: AtomicU64,
    bytes: AtomicU64,
}

type Visit<'v> = dyn Fn(&Node, &Path, &str) -> Result<()> + Sync + 'v;

impl Drill<'_> {
    /// Restores `node` (at snapshot path `rel`) into `target` with the
    /// options a scratch folder needs: nothing there to refuse or keep
    /// safe, so no safety snapshot.
    fn restore(&self, node: &Node, target: &Path, rel: &str) -> Result<()> {
        let options = RestoreOptions {
            target: target.to_path_buf(),
            safety_snapshot: false,
            ..RestoreOptions::default()
        };
        let report = restore::restore(self.repo, node, rel, &options, self.progress)?;
        lock(&self.damaged).extend(report.damaged);
        lock(&self.warnings).extend(report.warnings);
        Ok(())
    }

    /// Calls `visit` for every entry below `dir` that the drill takes (all
    /// of them, or the sampled files), with its place under the scratch
    /// folder and its snapshot path; folders in parallel.
    fn walk(&self, dir: &Node, path: &Path, rel: &str, visit: &Visit<'_>) -> Result<()> {
        let Some(subtree) = dir.subtree else {
            return Ok(());
        };
        let tree = match self.repo.read_tree(&subtree) {
            Ok(tree) => tree,
            // A damaged listing fails the drill, which goes on with the
            // rest: restore reported the folder already, a sampled drill
            // meets it here first.
            Err(e) if e.is_damage() => {
                self.damaged_folder(rel, &e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        tree.nodes.par_iter().try_for_each(|node| {
            let child_rel = if rel.is_empty() {
                escape_name(&node.name)
            } else {
                format!("{rel}/{}", escape_name(&node.name))
            };
            let child_path = path.join(OsStr::from_bytes(&node.name));
            if node.kind == NodeKind::Dir {
                self.walk(node, &child_path, &child_rel, visit)?;
            }
            let taken = match self.sample {
                None => true,
                Some(sample) => node.kind == NodeKind::File && sample.picks(&child_rel),
            };
            if taken {
                visit(node, &child_path, &child_rel)?;
            }
            Ok(())
        })
    }

    /// Records the folder at `rel` whose listing could not be read, once
    /// (named as restore names it: the root is `/`).
    fn damaged_folder(&self, rel: &str, e: &Error) {
        let path = if rel.is_empty() { "/" } else { rel };
        let mut damaged = lock(&self.damaged);
        if !damaged.iter().any(|d| d == path) {
            self.progress.warn(&format!("cannot drill {path}: {e}"));
            damaged.push(path.to_string());
        }
    }

    fn differs(&self, rel: &str, what: impl Into<String>) {
        lock(&self.differences).push(Difference {
            path: rel.to_string(),
            what: what.into(),
        });
    }

    /// Compares the restored entry at `path` with `node`. Metadata the
    /// restore already warned it could not apply (`warnings`) is not a
    /// difference: the scratch folder, not the snapshot, is at fault.
    fn verify(&self, node: &Node, path: &Path, rel: &str, warnings: &[String]) -> Result<()> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Sockets are never restored, devices only where allowed
                // (restore warned).
                let warned = warnings.iter().any(|w| w.contains(rel));
                if node.kind != NodeKind::Socket && !warned {
                    self.differs(rel, "missing");
                }
                return Ok(());
            }
            Err(e) => return Err(Error::io("cannot examine", path, e)),
        };
        let kind = meta.file_type();
        let same_kind = match node.kind {
            NodeKind::File => kind.is_file(),
            NodeKind::Dir => kind.is_dir(),
            NodeKind::Symlink => kind.is_symlink(),
            NodeKind::Fifo => kind.is_fifo(),
            NodeKind::Chardev => kind.is_char_device(),
            NodeKind::Blockdev => kind.is_block_device(),
            NodeKind::Socket => kind.is_socket(),
        };
        if !same_kind {
            self.differs(rel, format!("is not a {}", node.kind.as_str()));
            return Ok(());
        }
        let warned = |what: &str| {
            warnings
                .iter()
                .any(|w| w.contains(what) && w.contains(&format!(" {rel}: ")))
        };
        match node.kind {
            NodeKind::File => {
                self.files.fetch_add(1, Ordering::Relaxed);
                self.verify_content(node, path, rel, meta.len())?;
            }
            NodeKind::Dir => {
                self.dirs.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::Symlink => {
                self.others.fetch_add(1, Ordering::Relaxed);
                let target = fs::read_link(path).map_err(|e| Error::io("cannot read", path, e))?;
                if Some(target.as_os_str().as_bytes()) != node.target.as_deref() {
                    self.differs(rel, "points elsewhere");
                }
            }
            _ => {
                self.others.fetch_add(1, Ordering::Relaxed);
            }
        }
        if node.kind != NodeKind::Symlink
            && meta.permissions().mode() & 0o7777 != node.mode & 0o7777
            && !warned("permissions")
        {
            self.differs(
                rel,
                format!(
                    "mode {:o}, the snapshot has {:o}",
                    meta.permissions().mode() & 0o7777,
                    node.mode & 0o7777
                ),
            );
        }
        let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        if mtime_ns != i128::from(node.mtime_ns) && !warned("times") {
            self.differs(rel, "modification time differs");
        }
        if nix::unistd::geteuid().is_root()
            && (meta.uid() != node.uid || meta.gid() != node.gid)
            && !warned("owner")
        {
            self.differs(rel, "owner differs");
        }
        for attr in &node.xattrs {
            let name = OsStr::from_bytes(&attr.name);
            let value = xattr::get(path, name).ok().flatten();
            if value.as_deref() != Some(attr.value.as_slice()) && !warned("extended attribute") {
                self.differs(
                    rel,
                    format!(
                        "extended attribute {} differs",
                        String::from_utf8_lossy(&attr.name)
                    ),
                );
            }
        }
        Ok(())
    }

    /// Reads the restored file back, chunk by chunk, and hashes every chunk
    /// as backup named it; then, for a SQLite database, integrity_check.
    fn verify_content(&self, node: &Node, path: &Path, rel: &str, len: u64) -> Result<()> {
        if len != node.size {
            self.differs(rel, format!("{len} bytes, the snapshot has {}", node.size));
            return Ok(());
        }
        let layout = match self.repo.file_layout(node) {
            Ok(layout) => layout,
            Err(e) if e.is_damage() => {
                lock(&self.damaged).push(rel.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let dictionary = match node.dictionary {
            Some(id) => match self.repo.dictionary(&id) {
                Ok(d) => Some(d),
                Err(e) if e.is_damage() => {
                    lock(&self.damaged).push(rel.to_string());
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let file = fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
        let codec = self.repo.codec();
        let mut offset = 0u64;
        let mut buf = Vec::new();
        for (id, location) in &layout {
            buf.resize(location.raw_length as usize, 0);
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| Error::io("cannot read back", path, e))?;
            let matches = codec.id(&buf) == *id
                || dictionary
                    .as_ref()
                    .is_some_and(|d| codec.id_with(Some(d), &buf) == *id);
            if !matches {
                self.differs(rel, format!("the bytes at offset {offset} differ"));
                return Ok(());
            }
            offset += u64::from(location.raw_length);
        }
        self.bytes.fetch_add(node.size, Ordering::Relaxed);
        if sqlite::has_header(path) {
            self.progress.message(&format!("integrity_check {rel}"));
            // Checked on a copy: opening the restored file could leave
            // journal files beside it, and the hook sees the restore as is.
            let copy = tempfile::Builder::new()
                .prefix("snap-drill-sqlite-")
                .tempfile_in(self.root)
                .map_err(|e| Error::io("cannot create a temporary file in", self.root, e))?;
            fs::copy(path, copy.path())
                .map_err(|e| Error::io("cannot copy a database to", copy.path(), e))?;
            let verdict = sqlite::integrity_check(copy.path());
            lock(&self.databases).push(DatabaseCheck {
                path: rel.to_string(),
                size: node.size,
                ok: verdict.is_ok(),
                message: verdict.err().unwrap_or_else(|| "ok".to_string()),
            });
        }
        Ok(())
    }
}

/// Removes the scratch folder, making restored read-only folders writable
/// first (as their owner may); symlinks are never followed. Folders are
/// emptied in parallel: removing tens of thousands of restored files one
/// by one waits on the filesystem for each, and took as long as the
/// restore itself on the peer dataset.
fn remove_scratch(scratch: tempfile::TempDir) -> Result<()> {
    fn remove_tree(dir: &Path) -> std::io::Result<()> {
        if fs::symlink_metadata(dir)?.permissions().mode() & 0o700 != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
        entries.par_iter().try_for_each(|entry| {
            if entry.file_type()?.is_dir() {
                remove_tree(&entry.path())
            } else {
                fs::remove_file(entry.path())
            }
        })?;
        fs::remove_dir(dir)
    }
    let path = scratch.keep();
    remove_tree(&path).map_err(|e| Error::io("cannot remove the scratch folder", &path, e))
}

/// The newest drill record of each snapshot, by its tree and time (so a
/// snapshot `snap tag` gave a new id keeps its drills).
#[derive(Debug, Default)]
pub struct LastDrills(HashMap<(TreeId, String), DrillRecord>);

impl LastDrills {
    /// The newest drill record of `snapshot`.
    pub fn of(&self, snapshot: &Snapshot) -> Option<&DrillRecord> {
        self.0.get(&(snapshot.tree, snapshot.time.clone()))
    }

    /// Whether no snapshot was ever drilled.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every readable drill record, oldest first; none (and no listing) in a
/// repository that never had one.
fn records(repo: &Repository) -> Result<Vec<NamedDrillRecord>> {
    if !repo.has_feature(Feature::DrillRecords) {
        return Ok(Vec::new());
    }
    Ok(repo.drill_records()?.0)
}

/// The newest drill record of each snapshot.
pub fn last_drills(repo: &Repository) -> Result<LastDrills> {
    let mut last = HashMap::new();
    // Oldest first: later records replace earlier ones.
    for (_, record) in records(repo)? {
        last.insert((record.tree, record.snapshot_time.clone()), record);
    }
    Ok(LastDrills(last))
}

/// What `snap check` says of drills: the newest record, and a warning
/// when `max_age_days` is given and no drill passed within it.
#[derive(Debug, Clone)]
pub struct DrillStatus {
    /// The newest drill record of any snapshot.
    pub last: Option<DrillRecord>,
    /// The newest drill record that passed.
    pub last_passed: Option<DrillRecord>,
    /// Set when no drill passed within the maximum age.
    pub warning: Option<String>,
}

/// The drill status of the repository, judged at `now`.
pub fn drill_status(
    repo: &Repository,
    max_age_days: Option<u32>,
    now: jiff::Timestamp,
) -> Result<DrillStatus> {
    let records = records(repo)?;
    let last = records.last().map(|(_, r)| r.clone());
    let last_passed = records
        .iter()
        .rev()
        .find(|(_, r)| r.ok)
        .map(|(_, r)| r.clone());
    let warning = max_age_days.and_then(|days| {
        let limit = now
            .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
            .unwrap_or(jiff::Timestamp::MIN);
        match &last_passed {
            Some(r) if r.timestamp() >= limit => None,
            Some(r) => Some(format!(
                "no restore drill passed in the last {days} days (the last passed at {}); run `snap drill`",
                r.time
            )),
            None => Some(format!(
                "no restore drill passed in the last {days} days (none ever did); run `snap drill`"
            )),
        }
    });
    Ok(DrillStatus {
        last,
        last_passed,
        warning,
    })
}

/// Removes the drill records of snapshots that no longer exist (no
/// snapshot with the record's tree and time): `forget` calls it after
/// removing snapshots. Returns how many went.
pub fn forget_records(repo: &Repository) -> Result<usize> {
    let records = records(repo)?;
    if records.is_empty() {
        return Ok(0);
    }
    let (snapshots, damaged) = repo.snapshots_and_damage()?;
    if !damaged.is_empty() {
        // A record of a snapshot that cannot be read is not an orphan.
        return Ok(0);
    }
    let alive: HashSet<(TreeId, &str)> = snapshots
        .iter()
        .map(|(_, s)| (s.tree, s.time.as_str()))
        .collect();
    let orphans: Vec<&String> = records
        .iter()
        .filter(|(_, r)| !alive.contains(&(r.tree, r.snapshot_time.as_str())))
        .map(|(name, _)| name)
        .collect();
    orphans
        .par_iter()
        .try_for_each(|name| repo.remove_drill_record(name))?;
    Ok(orphans.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{PrivateCache, local::LocalBackend};
    use crate::ops::backup::{BackupOptions, backup};
    use crate::progress::NoProgress;
    use crate::repo::InitOptions;

    /// What restore wrote is read back, not trusted: bytes changed on disk
    /// under the same size and time, and a mode changed, are differences
    /// naming their paths; what is intact is not.
    #[test]
    fn verify_names_what_differs_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("data");
        fs::create_dir(&src).unwrap();
        for (name, text) in [("a.txt", "hello"), ("b.txt", "world"), ("c.txt", "intact")] {
            fs::write(src.join(name), text).unwrap();
            fs::set_permissions(src.join(name), fs::Permissions::from_mode(0o644)).unwrap();
        }
        let backend = PrivateCache::new(Box::new(LocalBackend::new(dir.path().join("repo"))));
        let repo = Repository::init(
            Box::new(backend.unwrap()),
            &InitOptions::default(),
            &NoProgress,
        )
        .unwrap();
        let id = backup(&repo, &BackupOptions::new(vec![src]), &NoProgress)
            .unwrap()
            .id;
        let tree = repo.read_snapshot(&id).unwrap().tree;
        let scratch = dir.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        let drill = Drill {
            repo: &repo,
            progress: &NoProgress,
            sample: None,
            root: &scratch,
            damaged: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            differences: Mutex::new(Vec::new()),
            databases: Mutex::new(Vec::new()),
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            others: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        let root = root_node(tree);
        drill.restore(&root, &scratch, "").unwrap();
        let a = scratch.join("data/a.txt");
        let mtime = filetime::FileTime::from_last_modification_time(&fs::metadata(&a).unwrap());
        fs::write(&a, "jello").unwrap();
        filetime::set_file_mtime(&a, mtime).unwrap();
        fs::set_permissions(
            scratch.join("data/b.txt"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        drill
            .walk(&root, &scratch, "", &|node, path, rel| {
                drill.verify(node, path, rel, &[])
            })
            .unwrap();
        let mut differences = into_inner(drill.differences);
        differences.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(
            differences,
            [
                Difference {
                    path: "data/a.txt".into(),
                    what: "the bytes at offset 0 differ".into(),
                },
                Difference {
                    path: "data/b.txt".into(),
                    what: "mode 600, the snapshot has 644".into(),
                },
            ]
        );
        assert_eq!(drill.files.into_inner(), 3);
    }

    #[test]
    fn a_sample_depends_on_the_seed_and_the_percentage() {
        let paths: Vec<String> = (0..1000).map(|i| format!("dir/f{i}")).collect();
        let picked = |percent, seed| {
            let sample = Sample { percent, seed };
            paths.iter().filter(|p| sample.picks(p)).count()
        };
        assert_eq!(picked(100.0, 7), 1000);
        assert!((50..=150).contains(&picked(10.0, 7)));
        assert_eq!(picked(10.0, 7), picked(10.0, 7));
        let chosen = |seed| {
            let sample = Sample {
                percent: 10.0,
                seed,
            };
            paths
                .iter()
                .filter(|p| sample.picks(p))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_ne!(chosen(7), chosen(8));
    }
}
