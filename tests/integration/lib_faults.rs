//! Storage faults injected from code: a [`Faulty`] backend built around a
//! local repository (no `SNAP_FAULTS` in anyone's environment), driving the
//! library's `backup`, `restore` and `check` directly. Each failing call
//! must return one clear I/O error naming what it could not do, and leave
//! the repository consistent: `check` with every pack read passes, and the
//! same operation then succeeds without faults.

use std::fs;
use std::path::PathBuf;

use snap::backend::FileKind;
use snap::backend::faulty::{Failure, Fault, Faulty, Op};
use snap::ops::browse::root_node;
use snap::ops::check::select_packs;
use snap::{
    BackupOptions, CheckOptions, ErrorKind, NoProgress, ReadData, Repository, RestoreOptions,
    SnapshotId,
};

use crate::common::{contents, init_small_repo, local_backend, pseudo_random};

/// A small repository and a source folder beside it, removed on drop.
struct Lab {
    dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
    /// Source files written so far (each backup after the first adds one,
    /// so that it has new data to store).
    files: u64,
}

impl Lab {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let repo = dir.path().join("repo");
        let src = dir.path().join("src");
        init_small_repo(&repo, 16 << 10);
        let mut lab = Self {
            dir,
            repo,
            src,
            files: 0,
        };
        lab.add_file();
        lab.add_file();
        lab
    }

    /// Adds a file of new pseudo-random bytes, in a nested folder.
    fn add_file(&mut self) {
        let folder = self.src.join(format!("part-{}", self.files % 2));
        fs::create_dir_all(&folder).expect("create a source folder");
        let bytes = pseudo_random(300 << 10, 0xfa17 + self.files);
        fs::write(folder.join(format!("file-{}.bin", self.files)), bytes)
            .expect("write a source file");
        self.files += 1;
    }

    /// Opens the repository through `faults` (none: the plain backend).
    fn open(&self, faults: Vec<Fault>) -> snap::Result<Repository> {
        let backend = Box::new(Faulty::new(local_backend(&self.repo), faults));
        Repository::open(backend, &NoProgress)
    }

    /// Backs up the source folder.
    fn backup(&self, repo: &Repository) -> snap::Result<SnapshotId> {
        let options = BackupOptions::new(vec![self.src.clone()]);
        snap::backup(repo, &options, &NoProgress).map(|report| report.id)
    }

    /// Restores snapshot `id` into a fresh folder named `name`.
    fn restore(&self, repo: &Repository, id: &SnapshotId, name: &str) -> snap::Result<PathBuf> {
        let (_, snapshot) = repo
            .snapshots()?
            .into_iter()
            .find(|(found, _)| found == id)
            .expect("the snapshot to restore is listed");
        let target = self.dir.path().join(name);
        let options = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        snap::restore(repo, &root_node(snapshot.tree), "", &options, &NoProgress)?;
        Ok(target)
    }

    /// Checks without faults, reading every pack in full.
    fn check(&self) -> snap::CheckReport {
        let repo = self.open(Vec::new()).expect("open without faults");
        snap::check(&repo, &read_everything(&repo), &NoProgress).expect("check runs")
    }

    /// What a failed operation must leave: a repository that checks clean,
    /// takes the next backup, and restores it as the source is now.
    #[track_caller]
    fn assert_consistent(&self, after: &str) {
        let report = self.check();
        assert!(
            report.ok,
            "after {after}: check finds damage: {:?}",
            report.errors
        );
        let repo = self.open(Vec::new()).expect("open without faults");
        let id = self
            .backup(&repo)
            .unwrap_or_else(|e| panic!("after {after}: the next backup fails: {e}"));
        let target = self
            .restore(&repo, &id, &format!("check-{}", self.files))
            .unwrap_or_else(|e| panic!("after {after}: the next restore fails: {e}"));
        assert!(
            contents(&target.join("src")) == contents(&self.src),
            "after {after}: the restored tree differs from the source"
        );
    }
}

/// `check --read-data`: every pack read in full.
fn read_everything(repo: &Repository) -> CheckOptions {
    let read_packs = select_packs(repo, &ReadData::All)
        .expect("list the packs")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    CheckOptions { read_packs }
}

/// The `nth` call of `op` on `kind` fails with `failure`.
fn fault(op: Op, kind: FileKind, nth: u64, failure: Failure) -> Fault {
    Fault {
        op,
        kind: Some(kind),
        nth,
        onwards: false,
        failure,
    }
}

/// Every call of `op` on `kind` fails with `failure` (a single failed read
/// may be retried and get through).
fn every(op: Op, kind: FileKind, failure: Failure) -> Fault {
    Fault {
        onwards: true,
        ..fault(op, kind, 1, failure)
    }
}

/// The error is the injected I/O failure, in one line that says what could
/// not be done to which kind of object.
#[track_caller]
fn assert_injected(result: snap::Result<impl std::fmt::Debug>, what: &str, noun: &str) {
    let err = result.expect_err("the operation fails under the fault");
    let text = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Io, "{text}");
    assert!(text.contains("injected by SNAP_FAULTS"), "{text}");
    assert!(text.contains(what) && text.contains(noun), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
}

#[test]
fn a_backup_that_cannot_write_fails_clearly_and_leaves_the_repository_consistent() {
    let mut lab = Lab::new();
    let repo = lab.open(Vec::new()).expect("open");
    lab.backup(&repo).expect("a first backup without faults");
    drop(repo);
    for (kind, failure, noun) in [
        (FileKind::Pack, Failure::NoSpace, "pack"),
        (FileKind::Pack, Failure::Short, "pack"),
        (FileKind::Index, Failure::Io, "index"),
        (FileKind::Snapshot, Failure::NoSpace, "snapshot"),
        (FileKind::Snapshot, Failure::Lost, "snapshot"),
    ] {
        lab.add_file();
        let case = format!("a backup with {kind:?} write {failure:?}");
        let repo = lab
            .open(vec![fault(Op::Write, kind, 1, failure)])
            .expect("open");
        assert_injected(lab.backup(&repo), "write", noun);
        drop(repo);
        lab.assert_consistent(&case);
    }
}

#[test]
fn a_restore_that_cannot_read_fails_clearly_and_changes_nothing_stored() {
    let lab = Lab::new();
    let repo = lab.open(Vec::new()).expect("open");
    let id = lab.backup(&repo).expect("a backup without faults");
    drop(repo);
    let before = contents(&lab.repo);
    let repo = lab
        .open(vec![every(Op::Read, FileKind::Pack, Failure::Io)])
        .expect("open");
    assert_injected(lab.restore(&repo, &id, "torn"), "read", "pack");
    drop(repo);
    assert!(
        contents(&lab.repo) == before,
        "a failed restore changed the repository"
    );
    lab.assert_consistent("a restore with a pack read error");
}

#[test]
fn a_check_that_cannot_read_fails_clearly_and_changes_nothing_stored() {
    let lab = Lab::new();
    let repo = lab.open(Vec::new()).expect("open");
    lab.backup(&repo).expect("a backup without faults");
    drop(repo);
    let before = contents(&lab.repo);
    for (op, kind, what, noun) in [
        (Op::List, FileKind::Snapshot, "list", "snapshot"),
        (Op::Read, FileKind::Snapshot, "read", "snapshot"),
        (Op::Read, FileKind::Pack, "read", "pack"),
    ] {
        let repo = lab.open(vec![every(op, kind, Failure::Io)]).expect("open");
        let result = snap::check(&repo, &read_everything(&repo), &NoProgress);
        assert_injected(result.map(|r| r.ok), what, noun);
        drop(repo);
        assert!(
            contents(&lab.repo) == before,
            "a failed check ({what} {noun}) changed the repository"
        );
    }
    lab.assert_consistent("a check with read errors");
}
