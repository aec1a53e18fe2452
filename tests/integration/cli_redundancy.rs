//! Metadata stored twice, through the real binary: trees, chunk lists and
//! dictionaries live in two packs, so losing or corrupting any single pack
//! loses at most the files whose data chunks were in it. For every pack of
//! a small repository in turn (deleted, and separately with a byte of every
//! blob in it flipped), `restore` restores every other file bit for bit,
//! names the lost ones and exits 4 (0 when nothing is lost), and `check`
//! names the pack and exactly those files. Also encrypted, on S3, after a
//! SIGKILLed backup, and how prune gives a repository its second copies back.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{
    Env, assert_code, init_small_repo, local_backend, pseudo_random, s3, snap_command, stderr_text,
    write_password_file,
};
use snap::backend::{Backend, FileKind, S3Backend};
use snap::internals::format::pack::BlobKind;
use snap::{NodeKind, PackId, Repository, TreeId};

/// Files in folders: data enough for several 1 MiB data packs, a file long
/// enough for chunk lists, small files in nested folders, an empty file.
fn write_source(root: &Path) {
    let file = |rel: &str, data: &[u8]| {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    };
    for i in 0..6u64 {
        file(
            &format!("photos/img{i}.raw"),
            &pseudo_random(600 * 1024 + 17 * i as usize, 10 + i),
        );
    }
    file("photos/long.bin", &pseudo_random(1024 * 1024 + 5, 20));
    for i in 0..6u64 {
        file(
            &format!("docs/notes/n{i}.txt"),
            format!("note {i}\n").repeat(50 + i as usize).as_bytes(),
        );
    }
    file("docs/deep/er/readme.md", b"# deep\n");
    file("docs/empty.txt", b"");
    fs::create_dir_all(root.join("empty_folder")).unwrap();
}

/// Every regular file below `root`, as a path relative to its parent (the
/// snapshot path `snap` prints: `src/photos/img0.raw`), with its bytes.
fn source_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let parent = root.parent().unwrap();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(parent)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// What a local repository holds: each pack with whether it holds only
/// trees and lists, and the packs each file's data chunks are in.
struct Layout {
    packs: BTreeMap<PackId, bool>,
    files: BTreeMap<String, BTreeSet<PackId>>,
}

fn layout(repo_dir: &Path, password: Option<&Path>) -> Layout {
    let credentials = snap::keys::Credentials {
        password: password.map(|p| {
            let text = fs::read_to_string(p).unwrap().trim().to_string();
            Box::new(move || Ok(age::secrecy::SecretString::from(text.clone())))
                as Box<dyn Fn() -> snap::Result<age::secrecy::SecretString> + Send + Sync>
        }),
        ..snap::keys::Credentials::default()
    };
    let repo = Repository::open_with(local_backend(repo_dir), &credentials, &snap::NoProgress)
        .expect("open the repository");
    let mut files = BTreeMap::new();
    let (_, snapshot) = repo.snapshots().unwrap().pop().unwrap();
    walk(&repo, snapshot.tree, "", &mut files);
    let mut packs = BTreeMap::new();
    for (name, size) in repo.backend().list(FileKind::Pack).unwrap() {
        let id = PackId::from_hex(&name).unwrap();
        let trailer =
            snap::internals::pack::read_trailer(repo.backend(), repo.codec(), &id, size).unwrap();
        let metadata = trailer.blobs.iter().all(|b| b.kind != BlobKind::Data);
        packs.insert(id, metadata);
    }
    Layout { packs, files }
}

fn walk(
    repo: &Repository,
    tree: TreeId,
    prefix: &str,
    out: &mut BTreeMap<String, BTreeSet<PackId>>,
) {
    for node in repo.read_tree(&tree).unwrap().nodes {
        let path = format!("{prefix}{}", String::from_utf8(node.name.clone()).unwrap());
        match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(subtree)) => walk(repo, subtree, &format!("{path}/"), out),
            (NodeKind::File, _) => {
                let packs = repo
                    .file_layout(&node)
                    .unwrap()
                    .into_iter()
                    .map(|(_, at)| at.pack)
                    .collect();
                out.insert(path, packs);
            }
            _ => {}
        }
    }
}

/// The file of pack `id` in the local repository `repo`.
fn pack_path(repo: &Path, id: &PackId) -> PathBuf {
    let hex = id.to_hex();
    repo.join("data").join(&hex[..2]).join(hex)
}

/// Flips a byte in the middle of every blob frame of a pack (the trailer
/// stays readable): every blob in it fails its id check.
fn flip_every_blob(repo: &Repository, file: &Path, id: &PackId) {
    let mut bytes = fs::read(file).unwrap();
    let trailer =
        snap::internals::pack::read_trailer(repo.backend(), repo.codec(), id, bytes.len() as u64)
            .unwrap();
    for blob in &trailer.blobs {
        bytes[(blob.offset + blob.length / 2) as usize] ^= 0xff;
    }
    fs::write(file, bytes).unwrap();
}

/// How a pack is damaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    Deleted,
    Flipped,
}

/// Copies the repository folder `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-R")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// One damage case: a copy of a repository in a folder of its own, run
/// with its own cache and `extra` arguments (credentials).
struct Case {
    dir: tempfile::TempDir,
    repo: PathBuf,
    extra: Vec<std::ffi::OsString>,
}

impl Case {
    fn new(from: &Path, extra: &[&OsStr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        copy_dir(from, &repo);
        let extra = extra.iter().map(|a| a.to_os_string()).collect();
        Self { dir, repo, extra }
    }

    /// `snap --json -r REPO EXTRA... ARGS...`.
    fn run(&self, args: &[&OsStr]) -> Output {
        snap_command()
            .env("XDG_CACHE_HOME", self.dir.path().join("cache"))
            .args(["--json", "-r"])
            .arg(&self.repo)
            .args(&self.extra)
            .args(args)
            .output()
            .unwrap()
    }

    /// Restores the latest snapshot into a new folder.
    fn restore(&self) -> (Output, PathBuf) {
        let target = self.dir.path().join("target");
        let out = self.run(&[
            "restore".as_ref(),
            "latest".as_ref(),
            "--target".as_ref(),
            target.as_os_str(),
        ]);
        (out, target)
    }
}

/// The files with a data chunk in `pack`.
fn lost_with(layout: &Layout, pack: &PackId) -> BTreeSet<String> {
    layout
        .files
        .iter()
        .filter(|(_, packs)| packs.contains(pack))
        .map(|(path, _)| path.clone())
        .collect()
}

/// Asserts that a JSON restore report and the target agree with `lost`:
/// the damaged list is exactly `lost`, every other file is bit-identical
/// to the source, and no lost file was written.
#[track_caller]
fn assert_restored(
    out: &Output,
    target: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    lost: &BTreeSet<String>,
    what: &str,
) {
    assert_code(out, if lost.is_empty() { 0 } else { 4 });
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{what}: restore printed no JSON ({e})"));
    let damaged: BTreeSet<String> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert_eq!(&damaged, lost, "{what}: files named lost");
    for (path, bytes) in files {
        let restored = target.join(path);
        if lost.contains(path) {
            assert!(!restored.exists(), "{what}: lost {path} was written");
        } else {
            let got =
                fs::read(&restored).unwrap_or_else(|e| panic!("{what}: {path} not restored: {e}"));
            assert!(got == *bytes, "{what}: {path} differs");
        }
    }
    let text = stderr_text(out);
    for path in lost {
        assert!(
            text.contains(path.as_str()),
            "{what}: {path} not named:\n{text}"
        );
    }
}

/// Asserts that a JSON check report names pack `pack` and exactly the
/// files in `lost`, and never a tree.
#[track_caller]
fn assert_checked(out: &Output, pack: &PackId, lost: &BTreeSet<String>, what: &str) {
    assert_code(out, 4);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].as_array().unwrap();
    let object = format!("pack {pack}");
    assert!(
        errors.iter().any(|e| e["object"] == object.as_str()),
        "{what}: check does not name the pack: {report:#}"
    );
    let mut named = BTreeSet::new();
    for error in errors {
        assert_ne!(error["kind"], "tree_damaged", "{what}: {report:#}");
        for affected in error["affected"].as_array().unwrap() {
            for path in affected["paths"].as_array().unwrap() {
                named.insert(path.as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(&named, lost, "{what}: files check names");
    if lost.is_empty() {
        let message = errors
            .iter()
            .find(|e| e["object"] == object.as_str())
            .unwrap()["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("the snapshots are intact"),
            "{what}: {message}"
        );
    }
}

/// A small repository (1 MiB packs, 16 KiB chunks) with one backup of
/// [`write_source`]; returns the Env and the source root.
fn small_repository() -> (Env, PathBuf) {
    let env = Env::uninitialized();
    init_small_repo(&env.repo, 16 * 1024);
    let src = env.path("src");
    write_source(&src);
    env.ok([OsStr::new("backup"), src.as_os_str()]);
    (env, src)
}

#[test]
fn losing_or_corrupting_any_one_pack_loses_only_the_files_whose_data_was_in_it() {
    let (env, src) = small_repository();
    let files = source_files(&src);
    let layout = layout(&env.repo, None);
    let metadata = layout.packs.values().filter(|m| **m).count();
    assert!(
        metadata >= 2,
        "trees and lists are in two packs: {metadata}"
    );
    assert!(
        layout.packs.len() - metadata >= 3,
        "several data packs: {:?}",
        layout.packs
    );
    // The two copies of the metadata are in two different packs.
    assert_eq!(metadata % 2, 0);
    let mut warned = [0usize; 2];
    for (pack, is_metadata) in &layout.packs {
        for damage in [Damage::Deleted, Damage::Flipped] {
            let what = format!("{damage:?} pack {pack} (metadata: {is_metadata})");
            let case = Case::new(&env.repo, &[]);
            let file = pack_path(&case.repo, pack);
            match damage {
                Damage::Deleted => fs::remove_file(&file).unwrap(),
                Damage::Flipped => {
                    let handle =
                        Repository::open(local_backend(&case.repo), &snap::NoProgress).unwrap();
                    flip_every_blob(&handle, &file, pack);
                }
            }
            let lost = lost_with(&layout, pack);
            assert_eq!(lost.is_empty(), *is_metadata, "{what}");
            let (out, target) = case.restore();
            assert_restored(&out, &target, &files, &lost, &what);
            // The loss of the copy read first shows as a warning.
            if stderr_text(&out).contains("read from their second copies") {
                assert!(*is_metadata, "{what}");
                warned[damage as usize] += 1;
            }
            // A deleted pack shows without reading data; flipped bytes in
            // data need --read-data (trees are read in any case).
            let mut args: Vec<&OsStr> = vec!["check".as_ref()];
            if damage == Damage::Flipped {
                args.push("--read-data".as_ref());
            }
            assert_checked(&case.run(&args), pack, &lost, &what);
            if damage == Damage::Flipped && *is_metadata {
                let out = case.run(&["check".as_ref()]);
                if stderr_text(&out).contains("read from their second copies") {
                    assert_checked(&out, pack, &lost, &what);
                } else {
                    // The copy read first is intact: nothing to see
                    // without reading every pack.
                    assert_code(&out, 0);
                }
            }
        }
    }
    assert!(
        warned.iter().all(|n| *n >= metadata / 2),
        "losing a copy read first warns: {warned:?}"
    );
}

/// The environment of a command on an S3 repository: its AWS variables and
/// a cache folder of its own.
fn s3_cmd(dir: &Path, location: &str) -> assert_cmd::Command {
    let mut cmd = snap_command();
    cmd.envs(s3::aws_env(s3::server().port))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .arg("-r")
        .arg(location);
    cmd
}

#[test]
fn on_s3_a_lost_metadata_pack_loses_nothing_and_a_lost_data_pack_names_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let location = format!("s3://{bucket}/twice");
    let src = dir.path().join("src");
    write_source(&src);
    let files = source_files(&src);
    common::run_ok(s3_cmd(dir.path(), &location).arg("init"));
    common::run_ok(s3_cmd(dir.path(), &location).arg("backup").arg(&src));
    let vars: std::collections::HashMap<_, _> =
        s3::aws_env(s3::server().port).into_iter().collect();
    let backend = S3Backend::with_vars(&location, |name| vars.get(name).cloned()).unwrap();
    // Default 16 MiB packs: one data pack, the metadata in two.
    let mut packs: Vec<(String, u64)> = backend.list(FileKind::Pack).unwrap();
    packs.sort_by_key(|(_, size)| *size);
    assert_eq!(packs.len(), 3, "{packs:?}");
    let (smallest, _) = packs[0].clone();
    let (data, _) = packs[2].clone();
    backend.remove(FileKind::Pack, &smallest).unwrap();
    let restore = |name: &str| {
        let target = dir.path().join(name);
        let out = s3_cmd(dir.path(), &location)
            .args(["--json", "restore", "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        (out, target)
    };
    let (out, target) = restore("first");
    assert_restored(&out, &target, &files, &BTreeSet::new(), "s3 metadata pack");
    let id = PackId::from_hex(&smallest).unwrap();
    let out = s3_cmd(dir.path(), &location)
        .args(["--json", "check"])
        .output()
        .unwrap();
    assert_checked(&out, &id, &BTreeSet::new(), "s3 metadata pack");
    // Every file has data in the one data pack.
    backend.remove(FileKind::Pack, &data).unwrap();
    let lost: BTreeSet<String> = files
        .iter()
        .filter(|(_, bytes)| !bytes.is_empty())
        .map(|(path, _)| path.clone())
        .collect();
    let (out, target) = restore("second");
    assert_restored(&out, &target, &files, &lost, "s3 data pack");
}

#[test]
fn encrypted_every_pack_deleted_in_turn() {
    let env = Env::uninitialized();
    let password = env.path("password");
    write_password_file(&password, "correct horse battery staple");
    let pw = ["--password-file".as_ref(), password.as_os_str()];
    common::run_ok(env.cmd().args(pw).args(["init", "--encrypt"]));
    let src = env.path("src");
    write_source(&src);
    common::run_ok(env.cmd().args(pw).arg("backup").arg(&src));
    let files = source_files(&src);
    let layout = layout(&env.repo, Some(&password));
    assert_eq!(layout.packs.values().filter(|m| **m).count(), 2);
    for (pack, is_metadata) in &layout.packs {
        let what = format!("encrypted, deleted pack {pack}");
        let case = Case::new(&env.repo, &pw);
        fs::remove_file(pack_path(&case.repo, pack)).unwrap();
        let lost = lost_with(&layout, pack);
        assert_eq!(lost.is_empty(), *is_metadata, "{what}");
        let (out, target) = case.restore();
        assert_restored(&out, &target, &files, &lost, &what);
        assert_checked(&case.run(&["check".as_ref()]), pack, &lost, &what);
    }
}

/// After a metadata pack is lost, prune stores the trees and lists twice
/// again: then the other copy can go too and nothing is lost.
#[test]
fn prune_stores_metadata_twice_again_after_a_pack_is_lost() {
    let (env, src) = small_repository();
    let files = source_files(&src);
    let layout = layout(&env.repo, None);
    let first: Vec<&PackId> = layout
        .packs
        .iter()
        .filter(|(_, m)| **m)
        .map(|(id, _)| id)
        .collect();
    fs::remove_file(pack_path(&env.repo, first[0])).unwrap();
    env.ok(["prune", "--instant-delete"]);
    env.ok(["check", "--read-data"]);
    // Every metadata pack there is now, in turn: losing it loses nothing.
    let after = self::layout(&env.repo, None);
    for (pack, is_metadata) in after.packs.iter().filter(|(_, m)| **m) {
        assert!(is_metadata);
        let case = Case::new(&env.repo, &[]);
        fs::remove_file(pack_path(&case.repo, pack)).unwrap();
        let (out, target) = case.restore();
        assert_restored(
            &out,
            &target,
            &files,
            &BTreeSet::new(),
            &format!("after prune, pack {pack}"),
        );
    }
}

/// SIGKILL during a backup that stores metadata twice, at instants spread
/// over the backup: `check` finds no error and the next backup completes
/// with every tree in two packs.
#[test]
fn a_killed_backup_leaves_a_repository_that_checks_and_continues() {
    let base = Env::uninitialized();
    let src = base.path("src");
    write_source(&src);
    for i in 0..30u64 {
        fs::write(
            src.join(format!("docs/notes/more{i}.txt")),
            pseudo_random(40_000, 100 + i),
        )
        .unwrap();
    }
    let full = {
        let env = Env::uninitialized();
        init_small_repo(&env.repo, 16 * 1024);
        let started = std::time::Instant::now();
        env.ok([OsStr::new("backup"), src.as_os_str()]);
        started.elapsed()
    };
    const RUNS: u32 = 6;
    for run in 0..RUNS {
        let env = Env::uninitialized();
        init_small_repo(&env.repo, 16 * 1024);
        let mut child = env.spawnable().arg("backup").arg(&src).spawn().unwrap();
        std::thread::sleep(full * (run + 1) / (RUNS + 1));
        child.kill().ok();
        child.wait().unwrap();
        let out = env.run(["check"]);
        assert_code(&out, 0);
        env.ok([OsStr::new("backup"), src.as_os_str()]);
        env.ok(["check", "--read-data"]);
        let target = env.path("target");
        let out = env
            .cmd()
            .args(["--json", "restore", "latest", "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert_restored(
            &out,
            &target,
            &source_files(&src),
            &BTreeSet::new(),
            &format!("run {run}"),
        );
        // A prune removes what the killed backup left, keeping two copies.
        env.ok(["prune", "--instant-delete"]);
        env.ok(["check", "--read-data"]);
        let metadata = layout(&env.repo, None)
            .packs
            .values()
            .filter(|m| **m)
            .count();
        assert!(metadata >= 2, "run {run}: {metadata} metadata packs");
    }
}
