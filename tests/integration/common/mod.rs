//! Helpers shared by the CLI integration tests: a repository in a temporary
//! folder, running the real `snap` binary against it, a source tree with
//! every kind of entry, and an entry-by-entry tree comparison that returns
//! readable differences.
//!
//! Each test crate uses a subset of these helpers.
#![allow(dead_code)]

pub mod browser;
pub mod manifest;
pub mod s3;
pub mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use filetime::FileTime;

/// The `snap` binary built for these tests.
pub fn snap_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("snap")
}

/// The `XDG_CACHE_HOME` of snap processes the tests start outside an
/// [`Env`]: the index caches of local repositories live in the user's
/// cache folder, and the tests must not litter the real `~/.cache`.
/// Cargo's temporary folder for integration tests (inside `target/`).
pub fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache")
}

/// `snap` with an environment that cannot leak in from the caller's:
/// no `SNAP_REPO`, UTC as the local time zone (date selectors mean the end
/// of the day, local time), caches in [`cache_home`].
pub fn snap_command() -> Command {
    let mut cmd = Command::new(snap_bin());
    cmd.env_remove("SNAP_REPO")
        .env_remove("SNAP_CONFIG")
        .env("TZ", "UTC")
        .env("XDG_CACHE_HOME", cache_home());
    cmd
}

/// A local repository's storage for a test that opens it in its own
/// process: the index cache goes to a private temporary folder (removed
/// with the repository handle), never to the user's cache folder.
pub fn local_backend(repo: &Path) -> Box<dyn snap::backend::Backend> {
    Box::new(
        snap::backend::PrivateCache::new(Box::new(snap::LocalBackend::new(repo)))
            .expect("create a private cache folder"),
    )
}

/// Options for a test repository with 1 MiB packs and chunks of about
/// `avg_chunk` bytes (min a half, max four times), so that a few megabytes
/// make many packs, index deltas and chunk lists.
pub fn small_repo_options(avg_chunk: u32) -> snap::InitOptions {
    snap::InitOptions {
        pack_size: 1 << 20,
        chunker: snap::ChunkerParams {
            min_size: avg_chunk / 2,
            avg_size: avg_chunk,
            max_size: avg_chunk * 4,
            seed: 0,
        },
        ..snap::InitOptions::default()
    }
}

/// Initializes a local repository with [`small_repo_options`], from the
/// test process (its cache in a private folder, never `~/.cache`).
pub fn init_small_repo(repo: &Path, avg_chunk: u32) {
    snap::Repository::init(
        local_backend(repo),
        &small_repo_options(avg_chunk),
        &snap::NoProgress,
    )
    .expect("init a repository");
}

/// Writes a password file as a careful user would: mode 0600, so snap has
/// no reason to warn that others can read it.
pub fn write_password_file(path: &Path, password: &str) {
    fs::write(path, format!("{password}\n")).expect("write the password file");
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

/// A tree node with plain metadata and no content, for tests that write
/// trees by hand (hostile repositories, packs of one kind).
pub fn bare_node(name: &[u8], kind: snap::NodeKind) -> snap::Node {
    let mode = if kind == snap::NodeKind::Dir {
        0o755
    } else {
        0o644
    };
    snap::Node {
        mtime_ns: 1_600_000_000_000_000_000,
        ctime_ns: 1_600_000_000_000_000_000,
        ..snap::Node::new(name.to_vec(), kind, mode)
    }
}

/// Whether the tests run as root (some checks only make sense for one or the other).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The exit code, failing the test with the output when the process died
/// from a signal (a crash is never an acceptable outcome).
pub fn exit_code(output: &Output) -> i32 {
    output.status.code().unwrap_or_else(|| {
        panic!(
            "snap was killed by a signal ({:?})\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Text of stderr, for messages in assertions.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts the exit code, printing everything snap said when it differs.
#[track_caller]
pub fn assert_code(output: &Output, expected: i32) {
    let code = exit_code(output);
    assert_eq!(
        code,
        expected,
        "unexpected exit code {code} (expected {expected})\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `cmd`, which must succeed (exit 0), and returns its stdout: the
/// rule behind [`Env::ok`] and the other repository wrappers' `ok`.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run snap");
    assert_code(&out, 0);
    out.stdout
}

/// Runs `cmd` (given `--json`), which must succeed, and parses its stdout,
/// failing with the text when it is not JSON.
#[track_caller]
pub fn run_json(cmd: &mut Command) -> serde_json::Value {
    let stdout = run_ok(cmd);
    serde_json::from_slice(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&stdout)
        )
    })
}

/// The pack file holding blob `id` of `repo` (the local repository in
/// `dir`) and the offset of the middle of its frame: where a test flips a
/// byte to damage that blob alone.
pub fn blob_middle(dir: &Path, repo: &snap::Repository, id: &snap::BlobId) -> (PathBuf, u64) {
    let at = repo.locate(id).expect("the blob is in the index");
    let hex = at.pack.to_hex();
    (
        dir.join("data").join(&hex[..2]).join(&hex),
        u64::from(at.offset) + u64::from(at.length) / 2,
    )
}

/// Where the first chunk of `path` (in the latest snapshot) is stored: pack file and offset.
pub fn chunk_location(repo: &Path, path: &str, tree_blob: bool) -> (PathBuf, u64) {
    let repo_handle = snap::Repository::open(local_backend(repo), &snap::NoProgress).unwrap();
    let (_, snapshot) = repo_handle.snapshots().unwrap().pop().unwrap();
    let node = snap::ops::browse::find_node(&repo_handle, snapshot.tree, path).unwrap();
    let id = if tree_blob {
        node.subtree.unwrap()
    } else {
        repo_handle.file_chunks(&node).unwrap()[0]
    };
    blob_middle(repo, &repo_handle, &id)
}

/// Where every copy of the listing of folder `path` (in the latest
/// snapshot) is stored, pack file and the middle of its frame: folder
/// listings are stored twice, so damaging one needs both flipped.
pub fn tree_copies(repo: &Path, path: &str) -> Vec<(PathBuf, u64)> {
    let handle = snap::Repository::open(local_backend(repo), &snap::NoProgress).unwrap();
    let (_, snapshot) = handle.snapshots().unwrap().pop().unwrap();
    let node = snap::ops::browse::find_node(&handle, snapshot.tree, path).unwrap();
    let id = node.subtree.unwrap();
    let copies = handle.cache().copies(&id).unwrap();
    assert!(copies.len() >= 2, "{path}: its listing is stored twice");
    copies
        .iter()
        .map(|at| {
            let hex = at.pack.to_hex();
            (
                repo.join("data").join(&hex[..2]).join(&hex),
                u64::from(at.offset) + u64::from(at.length) / 2,
            )
        })
        .collect()
}

/// Every pack of the unencrypted local repository `repo`: its file, its
/// size and the blobs its trailer lists.
pub fn pack_trailers(
    repo: &Path,
) -> Vec<(PathBuf, u64, Vec<snap::internals::format::pack::BlobEntry>)> {
    let handle = snap::Repository::open(local_backend(repo), &snap::NoProgress).unwrap();
    let mut out = Vec::new();
    for (name, size) in handle
        .backend()
        .list(snap::backend::FileKind::Pack)
        .unwrap()
    {
        let id = snap::PackId::from_hex(&name).unwrap();
        let trailer =
            snap::internals::pack::read_trailer(handle.backend(), handle.codec(), &id, size)
                .unwrap();
        out.push((
            repo.join("data").join(&name[..2]).join(&name),
            size,
            trailer.blobs,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Runs `cmd` with `input` on its stdin, written from a thread because
/// the program's output must be drained meanwhile (a large input would
/// otherwise deadlock on full pipes). The caller chooses where stdout and
/// stderr go. Returns the output and how writing stdin went: a program
/// may exit before it read everything.
pub fn output_with_stdin(
    cmd: &mut std::process::Command,
    input: &[u8],
) -> (Output, std::io::Result<()>) {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("start the program");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait for the program");
    let written = writer.join().expect("the stdin writer thread panicked");
    (out, written)
}

/// The string `field` of every row of the JSON array `rows` (a column of
/// a `--json` listing or report), failing when it is not one.
#[track_caller]
pub fn string_column<'a>(rows: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    rows.as_array()
        .unwrap_or_else(|| panic!("not a JSON array: {rows}"))
        .iter()
        .map(|row| {
            row[field]
                .as_str()
                .unwrap_or_else(|| panic!("no string {field:?} in {row}"))
        })
        .collect()
}

/// A repository in a fresh temporary folder, plus room for sources and
/// restore targets in the same folder.
pub struct Env {
    /// Holds everything the test creates; removed on drop.
    pub dir: tempfile::TempDir,
    /// The repository (`-r`).
    pub repo: PathBuf,
}

impl Env {
    /// A new, initialized repository.
    pub fn new() -> Self {
        let env = Self::uninitialized();
        let out = env.run(["init"]);
        assert_code(&out, 0);
        env
    }

    /// A temporary folder with a repository path that does not exist yet.
    pub fn uninitialized() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let repo = dir.path().join("repo");
        Self { dir, repo }
    }

    /// A path inside the test's folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The `XDG_CACHE_HOME` of this Env's snap processes: removed with it.
    pub fn cache_home(&self) -> PathBuf {
        self.path("xdg-cache")
    }

    /// The index cache folder of the repository (`XDG_CACHE_HOME/snap/<id>`);
    /// the Env must hold one repository that has been opened.
    #[track_caller]
    pub fn repo_cache(&self) -> PathBuf {
        let folders: Vec<PathBuf> = fs::read_dir(self.cache_home().join("snap"))
            .expect("the cache folder exists once a repository was opened")
            .map(|e| e.expect("list the cache folder").path())
            .filter(|p| p.file_name() != Some(OsStr::new("tmp")))
            .collect();
        match folders.as_slice() {
            [one] => one.clone(),
            other => panic!("expected one repository cache, found {other:?}"),
        }
    }

    /// Whether a lock file is in the repository's `locks` folder: a
    /// running command announces itself there, and none is left behind.
    pub fn holds_lock(&self) -> bool {
        fs::read_dir(self.repo.join("locks"))
            .expect("list the locks folder")
            .next()
            .is_some()
    }

    /// `snap -r REPO` ready for arguments.
    pub fn cmd(&self) -> Command {
        let mut cmd = snap_command();
        cmd.arg("-r")
            .arg(&self.repo)
            .env("XDG_CACHE_HOME", self.cache_home());
        cmd
    }

    /// `snap -r REPO` as a plain `std::process::Command`, for tests that
    /// spawn it and act while it runs (signals, pipes); the same
    /// environment as [`Env::cmd`].
    pub fn spawnable(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(snap_bin());
        cmd.env_remove("SNAP_REPO")
            .env_remove("SNAP_CONFIG")
            .env("TZ", "UTC")
            .env("XDG_CACHE_HOME", self.cache_home())
            .arg("-r")
            .arg(&self.repo);
        cmd
    }

    /// Runs `snap -r REPO ARGS...` and returns its output.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).output().expect("run snap")
    }

    /// Runs a command that must succeed (exit 0) and returns its stdout.
    #[track_caller]
    pub fn ok<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_ok(self.cmd().args(args))
    }

    /// Runs `snap --json ARGS...`, which must succeed, and parses stdout.
    #[track_caller]
    pub fn json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_json(self.cmd().arg("--json").args(args))
    }

    /// `snap backup PATHS... EXTRA...` with `--json`; returns the report.
    #[track_caller]
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> serde_json::Value {
        let mut args: Vec<OsString> = vec!["backup".into()];
        args.extend(paths.iter().map(|p| p.as_os_str().to_os_string()));
        args.extend(extra.iter().map(OsString::from));
        self.json(args)
    }

    /// `snap restore SNAPSHOT --target TARGET`, which must succeed.
    #[track_caller]
    pub fn restore(&self, snapshot: &str, target: &Path) {
        self.ok([
            OsStr::new("restore"),
            OsStr::new(snapshot),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
    }

    /// The snapshots, oldest first, as `snap snapshots --json` lists them.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        match self.json(["snapshots"]) {
            serde_json::Value::Array(rows) => rows,
            other => panic!("`snapshots --json` is not an array: {other}"),
        }
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

/// Every entry below `root` (not `root` itself), relative to it, with the
/// bytes of each file; folders (and anything else that is not a file) map
/// to `None`. Two calls compare equal when nothing below `root` was added,
/// removed or rewritten.
pub fn contents(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    list_tree(root)
        .into_iter()
        .filter(|rel| !rel.as_os_str().is_empty())
        .map(|rel| {
            let path = root.join(&rel);
            let bytes = path.is_file().then(|| {
                fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            });
            (rel, bytes)
        })
        .collect()
}

/// Damages one byte of `path` in place: the byte at `at`, or the last one
/// when the file is shorter.
pub fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let last = bytes
        .len()
        .checked_sub(1)
        .expect("a file with bytes to flip");
    let at = usize::try_from(at).unwrap_or(usize::MAX).min(last);
    bytes[at] ^= 0x55;
    write(path, &bytes);
}

/// The first entry `read_dir` lists in `dir`: in a repository folder such
/// as `snapshots` or `index`, the object a test damages.
#[track_caller]
pub fn first_entry(dir: &Path) -> PathBuf {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .next()
        .unwrap_or_else(|| panic!("{} is empty", dir.display()))
        .expect("list a folder entry")
        .path()
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Length of the sparse file in [`build_tree`].
pub const SPARSE_LEN: u64 = 64 << 20;

/// Where [`build_tree`] wrote non-zero bytes into the sparse file.
pub const SPARSE_WRITES: [(u64, &[u8]); 3] = [
    (0, b"sparse head"),
    (20 << 20, b"in the middle of nowhere"),
    (SPARSE_LEN - 4, b"tail"),
];

/// What [`build_tree`] made.
pub struct SourceTree {
    /// The source folder to back up (its name is the snapshot's root entry).
    pub root: PathBuf,
    /// The root's final component.
    pub name: String,
    /// Regular files (each hard link counts, as `snap backup` counts them).
    pub files: u64,
    /// Whether `user.snap` could be set on `small.txt`.
    pub has_xattr: bool,
}

/// The non-UTF-8 file name in [`build_tree`].
pub fn non_utf8_name() -> OsString {
    OsString::from_vec(b"caf\xe9-latin1.txt".to_vec())
}

/// The 255-byte file name in [`build_tree`].
pub fn long_name() -> String {
    format!("{}.txt", "n".repeat(251))
}

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Makes a named pipe (never opened by these tests: opening one blocks).
pub fn make_fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o640))
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// Builds `parent/name` with every kind of entry snap has to handle:
/// regular files of several sizes (empty to multi-MiB), a sparse file,
/// nested and empty folders, relative, absolute and dangling symlinks, a
/// hard link pair, a fifo, a non-UTF-8 name, a 255-byte name, unusual
/// modes (setuid when root), another owner (when root), an extended
/// attribute (when the filesystem allows) and distinct nanosecond mtimes
/// on everything.
pub fn build_tree(parent: &Path, name: &str) -> SourceTree {
    let root = parent.join(name);
    let p = |rel: &str| root.join(rel);
    for dir in [
        "dir/sub/deeper",
        "dir/empty_sub",
        "empty_dir",
        "private_dir",
    ] {
        fs::create_dir_all(p(dir)).unwrap();
    }
    let mut files = 0u64;
    let mut file = |rel: &Path, data: &[u8]| {
        write(&root.join(rel), data);
        files += 1;
    };
    file(Path::new("empty.txt"), b"");
    file(Path::new("small.txt"), b"hello, snapshot\n");
    file(Path::new("dir/file.md"), b"# title\n\nfirst version\n");
    file(Path::new("dir/sub/deeper/note.txt"), b"deep note\n");
    file(Path::new("medium.bin"), &pseudo_random(100 * 1024 + 7, 1));
    file(Path::new("big.bin"), &pseudo_random(5 * 1024 * 1024 + 3, 2));
    file(Path::new("app.log"), b"a log line\n");
    file(Path::new("dir/sub/trace.log"), b"another log line\n");
    file(Path::new("private.txt"), b"secret-ish\n");
    file(Path::new("script.sh"), b"#!/bin/sh\necho hi\n");
    file(Path::new("hard_a"), b"shared by two names\n");
    file(Path::new(&long_name()), b"long name\n");
    file(Path::new(&non_utf8_name()), b"latin-1 name\n");
    chmod(&p("private.txt"), 0o600);
    chmod(&p("script.sh"), 0o755);
    chmod(&p("private_dir"), 0o700);

    fs::hard_link(p("hard_a"), p("dir/hard_b")).unwrap();
    files += 1;

    let sparse = fs::File::create(p("sparse.img")).unwrap();
    sparse.set_len(SPARSE_LEN).unwrap();
    for (offset, data) in SPARSE_WRITES {
        std::os::unix::fs::FileExt::write_all_at(&sparse, data, offset).unwrap();
    }
    drop(sparse);
    files += 1;

    std::os::unix::fs::symlink("dir/file.md", p("link_rel")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/snap-test/absolute", p("link_abs")).unwrap();
    std::os::unix::fs::symlink("../missing", p("dir/dangling")).unwrap();
    make_fifo(&p("dir/pipe"));

    if is_root() {
        write(&p("setuid"), b"#!/bin/sh\n");
        chmod(&p("setuid"), 0o4755);
        write(&p("owned"), b"owned by someone else\n");
        std::os::unix::fs::chown(p("owned"), Some(1234), Some(5678)).unwrap();
        files += 2;
    }
    let has_xattr = xattr::set(p("small.txt"), "user.snap", b"xattr value").is_ok();
    if !has_xattr {
        println!(
            "note: the filesystem under {} has no user xattrs; not testing them",
            root.display()
        );
    }

    set_mtimes(&root);
    SourceTree {
        root,
        name: name.to_string(),
        files,
        has_xattr,
    }
}

/// Gives every entry below `root` (and `root` itself) a distinct mtime with
/// nanoseconds, children before their folder (a folder's mtime changes when
/// its entries do).
pub fn set_mtimes(root: &Path) {
    let mut entries = Vec::new();
    collect(root, &mut entries);
    // Deepest first, so setting a child's time comes before its folder's.
    entries.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in entries.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        let time = FileTime::from_unix_time(
            1_600_000_000 + i * 1_000,
            123_456_789 - u32::try_from(i).unwrap(),
        );
        filetime::set_symlink_file_times(path, time, time)
            .unwrap_or_else(|e| panic!("set times of {}: {e}", path.display()));
    }
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    out.push(path.to_path_buf());
    if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        for entry in fs::read_dir(path).unwrap() {
            collect(&entry.unwrap().path(), out);
        }
    }
}

/// Paths of every entry below `root`, relative to it, in byte order
/// (`root` itself is the empty path).
pub fn list_tree(root: &Path) -> Vec<PathBuf> {
    let mut all = Vec::new();
    collect(root, &mut all);
    let mut rel: Vec<PathBuf> = all
        .into_iter()
        .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
        .collect();
    rel.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    rel
}

fn kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "chardev"
    } else {
        "blockdev"
    }
}

fn user_xattrs(path: &Path) -> BTreeMap<OsString, Vec<u8>> {
    let Ok(names) = xattr::list(path) else {
        return BTreeMap::new();
    };
    names
        .filter(|n| n.as_bytes().starts_with(b"user."))
        .filter_map(|n| xattr::get(path, &n).ok().flatten().map(|v| (n, v)))
        .collect()
}

/// `root/rel`; `root` itself for the empty path (joining "" would add a
/// trailing slash, which fails on anything but a folder).
fn at(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// Groups of paths (relative to `root`) that are hard links of each other.
fn link_groups(root: &Path, paths: &[PathBuf]) -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
    let mut by_inode: BTreeMap<(u64, u64), BTreeSet<PathBuf>> = BTreeMap::new();
    for rel in paths {
        let meta = fs::symlink_metadata(at(root, rel)).unwrap();
        if meta.is_file() && meta.nlink() > 1 {
            by_inode
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .insert(rel.clone());
        }
    }
    let mut groups = BTreeMap::new();
    for group in by_inode.into_values() {
        for rel in &group {
            groups.insert(rel.clone(), group.clone());
        }
    }
    groups
}

/// Compares the tree at `actual` with the one at `expected` entry by entry
/// (the roots included): set of entries, type, content bytes, permission
/// bits, owner, mtime in nanoseconds, symlink targets, `user.*` extended
/// attributes and hard-link grouping. Returns one line per difference.
/// Never opens anything but regular files (opening a fifo blocks).
pub fn compare_trees(expected: &Path, actual: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let want = list_tree(expected);
    let have = list_tree(actual);
    let want_set: BTreeSet<_> = want.iter().cloned().collect();
    let have_set: BTreeSet<_> = have.iter().cloned().collect();
    for missing in want_set.difference(&have_set) {
        diffs.push(format!("{}: missing", missing.display()));
    }
    for extra in have_set.difference(&want_set) {
        diffs.push(format!("{}: not in the source", extra.display()));
    }
    for rel in want_set.intersection(&have_set) {
        compare_entry(&at(expected, rel), &at(actual, rel), rel, &mut diffs);
    }
    let want_links = link_groups(expected, &want);
    let have_links = link_groups(actual, &have);
    for (rel, group) in &want_links {
        let got = have_links.get(rel).cloned().unwrap_or_default();
        if &got != group {
            diffs.push(format!(
                "{}: hard links {:?}, expected {:?}",
                rel.display(),
                got,
                group
            ));
        }
    }
    for (rel, group) in &have_links {
        if !want_links.contains_key(rel) {
            diffs.push(format!(
                "{}: unexpected hard links {:?}",
                rel.display(),
                group
            ));
        }
    }
    diffs
}

fn compare_entry(expected: &Path, actual: &Path, rel: &Path, diffs: &mut Vec<String>) {
    let name = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let differ = |diffs: &mut Vec<String>, what: &str, want: String, got: String| {
        if want != got {
            diffs.push(format!(
                "{}: {what} is {got}, expected {want}",
                name.display()
            ));
        }
    };
    let want = fs::symlink_metadata(expected).unwrap();
    let got = fs::symlink_metadata(actual).unwrap();
    differ(diffs, "type", kind(&want).into(), kind(&got).into());
    if kind(&want) != kind(&got) {
        return;
    }
    if !want.file_type().is_symlink() {
        differ(
            diffs,
            "mode",
            format!("{:o}", want.mode() & 0o7777),
            format!("{:o}", got.mode() & 0o7777),
        );
    }
    differ(
        diffs,
        "owner",
        format!("{}:{}", want.uid(), want.gid()),
        format!("{}:{}", got.uid(), got.gid()),
    );
    differ(
        diffs,
        "mtime",
        format!("{}.{:09}", want.mtime(), want.mtime_nsec()),
        format!("{}.{:09}", got.mtime(), got.mtime_nsec()),
    );
    if want.is_file() {
        let (a, b) = (fs::read(expected).unwrap(), fs::read(actual).unwrap());
        if a != b {
            let first = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            diffs.push(format!(
                "{}: content differs ({} bytes, expected {}; first difference at byte {first})",
                name.display(),
                b.len(),
                a.len()
            ));
        }
    }
    if want.file_type().is_symlink() {
        differ(
            diffs,
            "symlink target",
            format!("{:?}", fs::read_link(expected).unwrap()),
            format!("{:?}", fs::read_link(actual).unwrap()),
        );
    }
    differ(
        diffs,
        "user xattrs",
        format!("{:?}", user_xattrs(expected)),
        format!("{:?}", user_xattrs(actual)),
    );
}

/// Fails with every difference, one a line.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let diffs = compare_trees(expected, actual);
    assert!(
        diffs.is_empty(),
        "{} differs from {} in {} ways:\n  {}",
        actual.display(),
        expected.display(),
        diffs.len(),
        diffs.join("\n  ")
    );
}

/// Names directly in `dir`, sorted.
pub fn dir_names(dir: &Path) -> Vec<OsString> {
    let mut names: Vec<OsString> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}
