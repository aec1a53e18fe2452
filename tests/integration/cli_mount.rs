//! `snap mount` through the real binary and a real FUSE mount: the tree
//! under the mount matches the source entry by entry (bytes, modes, owners,
//! mtimes, symlinks, hard links, xattrs, non-UTF-8 names), `find`, `stat`
//! and `sqlite3` work on it, new snapshots appear without remounting, and
//! `fusermount3 -u`, Ctrl-C and a killed mount end as documented. Needs
//! /dev/fuse and `fusermount3` (Debian's fuse3); skipped without them,
//! failed under CI.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tools::{find_program, require, require_program};
use common::{build_tree, compare_trees, s3, snap_bin};

/// A repository location with the environment its snap processes need.
struct Repo {
    location: PathBuf,
    cache: PathBuf,
    envs: Vec<(String, String)>,
}

impl Repo {
    fn local(dir: &Path) -> Self {
        Self {
            location: dir.join("repo"),
            cache: dir.join("cache"),
            envs: Vec::new(),
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = Command::new(snap_bin());
        cmd.env_remove("SNAP_REPO")
            .env_remove("SNAP_CONFIG")
            .env_remove("SNAP_PASSWORD")
            .env("TZ", "UTC")
            .env("XDG_CACHE_HOME", &self.cache)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("-r")
            .arg(&self.location);
        cmd
    }

    fn run<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Output {
        self.cmd().args(args).output().expect("run snap")
    }

    #[track_caller]
    fn ok<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&self, args: I) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "snap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Whether this machine can mount: /dev/fuse and `fusermount3`. Skips
/// (or fails under CI) when it cannot.
fn fuse_available() -> bool {
    let found = (Path::new("/dev/fuse").exists())
        .then(|| find_program("fusermount3"))
        .flatten();
    require(found, "/dev/fuse and fusermount3", "apt-get install fuse3").is_some()
}

/// A running `snap mount`.
struct Mounted {
    child: Option<Child>,
    point: PathBuf,
}

impl Mounted {
    /// Starts `snap mount POINT` and waits until `POINT/latest` shows.
    #[track_caller]
    fn start(repo: &Repo, point: &Path) -> Self {
        std::fs::create_dir_all(point).unwrap();
        let child = repo
            .cmd()
            .arg("mount")
            .arg(point)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start snap mount");
        let mut mounted = Self {
            child: Some(child),
            point: point.to_path_buf(),
        };
        let latest = point.join("latest");
        wait_for(Duration::from_secs(60), "the mount to show latest", || {
            if let Some(status) = mounted.child.as_mut().unwrap().try_wait().unwrap() {
                let out = mounted.child.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "snap mount ended with {status}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            latest.symlink_metadata().is_ok()
        });
        mounted
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    /// Waits for snap mount to end and returns its output.
    #[track_caller]
    fn wait(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "snap mount did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    /// Unmounts with `fusermount3 -u`, as a user would, and waits for the
    /// process: it must end with exit code 0.
    #[track_caller]
    fn unmount(self) {
        let status = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.point)
            .status()
            .unwrap();
        assert!(status.success(), "fusermount3 -u failed");
        let out = self.wait();
        assert_eq!(
            out.status.code(),
            Some(0),
            "snap mount after fusermount3 -u: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Mounted {
    /// A failed test still leaves no mount behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.point)
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[track_caller]
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap_or_else(|e| panic!("readlink {}: {e}", path.display()))
        .to_string_lossy()
        .into_owned()
}

/// Runs a program and returns its standard output; it must succeed.
#[track_caller]
fn output_of(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run a program");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `find DIR` relative to DIR, sorted, as bytes (names need not be UTF-8).
fn find_listing(dir: &Path) -> Vec<Vec<u8>> {
    let out = output_of(Command::new("find").arg(".").current_dir(dir));
    let mut lines: Vec<Vec<u8>> = out.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    lines.retain(|l| !l.is_empty());
    lines.sort();
    lines
}

/// A database in WAL mode with `rows` rows in table `items`, left in WAL
/// mode, so its captured image keeps header bytes 18-19 at 2.
fn wal_database(path: &Path, rows: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let db = rusqlite::Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", "wal").unwrap();
    db.execute_batch("create table items (id integer primary key, name text)")
        .unwrap();
    for i in 0..rows {
        db.execute(
            "insert into items (name) values (?1)",
            [format!("item {i}")],
        )
        .unwrap();
    }
}

#[test]
fn mount_shows_every_snapshot_as_it_was_stored() {
    if !fuse_available() || !require_program("sqlite3", "apt-get install sqlite3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::local(dir.path());
    let source = build_tree(dir.path(), "tree");
    let data = dir.path().join("data");
    wal_database(&data.join("app.db"), 250);
    repo.ok(["init"]);
    repo.ok([
        OsStr::new("backup"),
        OsStr::new("--tag"),
        OsStr::new("daily"),
        source.root.as_os_str(),
        data.as_os_str(),
    ]);
    let point = dir.path().join("mnt");
    let mount = Mounted::start(&repo, &point);

    // The layout: latest, one folder per snapshot named by local time and
    // short id, ids/, tags/ and hosts/ linking to it.
    assert_eq!(
        names(&point),
        ["hosts", "ids", "latest", "snapshots", "tags"]
    );
    let snapshots = names(&point.join("snapshots"));
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    let name = &snapshots[0];
    let (time, short) = name.split_once('_').unwrap();
    assert!(
        jiff::civil::DateTime::strptime("%Y-%m-%dT%H:%M:%S", time).is_ok(),
        "{name}"
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&repo.ok(["--json", "snapshots"])).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with(short), "{name} vs {id}");
    assert_eq!(
        link_target(&point.join("latest")),
        format!("snapshots/{name}")
    );
    assert_eq!(names(&point.join("ids")), std::slice::from_ref(&id));
    assert_eq!(names(&point.join("tags")), ["daily"]);
    assert_eq!(names(&point.join("tags/daily")), [name.as_str(), "latest"]);
    let host = listed[0]["host"].as_str().unwrap();
    assert_eq!(names(&point.join("hosts")), [host]);
    assert_eq!(
        link_target(&point.join("hosts").join(host).join("latest")),
        format!("../../snapshots/{name}")
    );
    assert!(point.join("ids").join(&id).join("tree/small.txt").is_file());

    // Entry by entry the same as the source: bytes, modes, owners, mtimes
    // to the nanosecond, symlink targets, hard links, xattrs, odd names.
    let latest = point.join("latest");
    let diffs = compare_trees(&source.root, &latest.join("tree"));
    assert!(diffs.is_empty(), "the mount differs: {diffs:#?}");
    assert_eq!(
        find_listing(&latest.join("tree")),
        find_listing(&source.root)
    );
    let stat = |rel: &str| {
        String::from_utf8(output_of(
            Command::new("stat")
                .args(["-c", "%i %h %s %Y"])
                .arg(latest.join(rel)),
        ))
        .unwrap()
    };
    assert_eq!(stat("tree/hard_a"), stat("tree/dir/hard_b"));
    assert!(stat("tree/hard_a").split(' ').nth(1) == Some("2"));
    std::fs::copy(latest.join("tree/big.bin"), dir.path().join("copied.bin")).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("copied.bin")).unwrap(),
        std::fs::read(source.root.join("big.bin")).unwrap()
    );
    // Nothing can be written.
    assert!(std::fs::write(latest.join("tree/new.txt"), b"x").is_err());
    assert!(std::fs::remove_file(latest.join("tree/small.txt")).is_err());

    // A database captured from WAL mode opens with sqlite3, plainly and as
    // immutable; the mount shows header bytes 18-19 as 1, cat gives the 2s.
    let db = latest.join("data/app.db");
    let count = |target: &OsStr| {
        let out = output_of(
            Command::new("sqlite3")
                .arg(target)
                .arg("select count(*) from items"),
        );
        String::from_utf8(out).unwrap().trim().to_string()
    };
    assert_eq!(count(db.as_os_str()), "250");
    let immutable = format!("file:{}?immutable=1", db.display());
    assert_eq!(count(OsStr::new(&immutable)), "250");
    let mounted = std::fs::read(&db).unwrap();
    let stored = repo.ok(["cat", "latest:data/app.db"]);
    assert_eq!(&stored[18..20], &[2, 2], "the capture keeps WAL mode");
    assert_eq!(&mounted[18..20], &[1, 1]);
    assert_eq!(mounted[..18], stored[..18]);
    assert_eq!(mounted[20..], stored[20..]);

    // A new snapshot shows up without remounting, and latest follows it.
    std::fs::write(source.root.join("added.txt"), b"written while mounted\n").unwrap();
    repo.ok([OsStr::new("backup"), source.root.as_os_str()]);
    wait_for(Duration::from_secs(20), "the new snapshot", || {
        names(&point.join("snapshots")).len() == 2
    });
    wait_for(Duration::from_secs(20), "latest to move", || {
        link_target(&point.join("latest")) != format!("snapshots/{name}")
    });
    assert_eq!(
        std::fs::read(point.join("latest/tree/added.txt")).unwrap(),
        b"written while mounted\n"
    );
    assert!(!point.join("tags/daily/latest/tree/added.txt").exists());

    mount.unmount();
    assert!(names(&point).is_empty(), "the mount point is left empty");
}

/// A repository in `dir` holding one backup of `build_tree`'s tree.
fn one_backup_of_a_tree(dir: &Path) -> (Repo, common::SourceTree) {
    let repo = Repo::local(dir);
    let source = build_tree(dir, "tree");
    repo.ok(["init"]);
    repo.ok([OsStr::new("backup"), source.root.as_os_str()]);
    (repo, source)
}

#[test]
fn ctrl_c_unmounts_and_a_killed_mount_is_named_next_time() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = one_backup_of_a_tree(dir.path());
    let point = dir.path().join("mnt");

    let mount = Mounted::start(&repo, &point);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mount.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = mount.wait();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(names(&point).is_empty(), "Ctrl-C leaves no mount");

    let mount = Mounted::start(&repo, &point);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mount.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = mount.wait();
    let out = repo.run([OsStr::new("mount"), point.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ended without unmounting") && stderr.contains("fusermount3 -u"),
        "{stderr}"
    );
    let cleaned = Command::new("fusermount3")
        .arg("-u")
        .arg(&point)
        .status()
        .unwrap();
    assert!(cleaned.success());
    // After the advice, mounting works again.
    Mounted::start(&repo, &point).unmount();
}

#[test]
fn a_mount_point_that_is_not_a_folder_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::local(dir.path());
    repo.ok(["init"]);
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep me").unwrap();
    for (point, says) in [
        (file.clone(), "is not a folder"),
        (dir.path().join("missing"), "does not exist"),
    ] {
        let out = repo.run([OsStr::new("mount"), point.as_os_str()]);
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn encrypted_and_s3_repositories_mount() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = build_tree(dir.path(), "tree");
    let server = s3::server();
    let mut on_s3 = Repo::local(dir.path());
    on_s3.location = PathBuf::from(format!("s3://{}/mounted", s3::new_bucket()));
    on_s3.envs = s3::aws_env(server.port)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut encrypted = Repo::local(dir.path());
    encrypted.location = dir.path().join("encrypted");
    encrypted
        .envs
        .push(("SNAP_PASSWORD".to_string(), "correct horse".to_string()));
    on_s3.ok(["init"]);
    encrypted.ok(["init", "--encrypt"]);
    for (repo, point) in [(&on_s3, "mnt-s3"), (&encrypted, "mnt-encrypted")] {
        repo.ok([OsStr::new("backup"), source.root.as_os_str()]);
        let point = dir.path().join(point);
        let mount = Mounted::start(repo, &point);
        let diffs = compare_trees(&source.root, &point.join("latest/tree"));
        assert!(diffs.is_empty(), "{}: {diffs:#?}", repo.location.display());
        mount.unmount();
    }
    // A wrong password never gets as far as mounting.
    let mut wrong = Repo::local(dir.path());
    wrong.location = encrypted.location.clone();
    wrong
        .envs
        .push(("SNAP_PASSWORD".to_string(), "wrong".to_string()));
    let point = dir.path().join("mnt-wrong");
    std::fs::create_dir_all(&point).unwrap();
    let out = wrong.run([OsStr::new("mount"), point.as_os_str()]);
    assert_eq!(out.status.code(), Some(5));
    assert!(names(&point).is_empty());
}

#[test]
fn a_damaged_chunk_fails_that_read_and_nothing_else() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::local(dir.path());
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("good.txt"), b"still fine\n").unwrap();
    repo.ok(["init"]);
    repo.ok([OsStr::new("backup"), source.as_os_str()]);
    std::fs::write(source.join("victim.bin"), common::pseudo_random(300_000, 9)).unwrap();
    repo.ok([OsStr::new("backup"), source.as_os_str()]);
    // The second snapshot's only new data pack holds victim.bin's chunks.
    let packs = |repo_dir: &Path| -> Vec<PathBuf> {
        let mut all = Vec::new();
        for shard in std::fs::read_dir(repo_dir.join("data")).unwrap() {
            for pack in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                let pack = pack.unwrap().path();
                all.push(pack);
            }
        }
        all
    };
    let biggest = packs(&repo.location)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    common::flip_byte(&biggest, 1000);
    let point = dir.path().join("mnt");
    let mount = Mounted::start(&repo, &point);
    let err = std::fs::read(point.join("latest/src/victim.bin")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(
        std::fs::read(point.join("latest/src/good.txt")).unwrap(),
        b"still fine\n"
    );
    mount.unmount();
}

/// Browsing stays right after the kernel forgets what it looked up (the
/// mount then drops those inode numbers, and hands out new ones when they
/// are looked up again): the tree, the shared number of hard links and
/// file contents are read again as before. Dropping the
/// kernel's caches needs root; without it the test only browses again.
#[test]
fn browsing_after_the_kernel_forgets_inodes_gives_the_same_tree() {
    if !fuse_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (repo, source) = one_backup_of_a_tree(dir.path());
    let point = dir.path().join("mnt");
    let mount = Mounted::start(&repo, &point);
    let tree = point.join("latest/tree");
    let hard_links = || {
        let stat = |rel: &str| {
            String::from_utf8(output_of(
                Command::new("stat")
                    .args(["-c", "%i %h"])
                    .arg(tree.join(rel)),
            ))
            .unwrap()
        };
        let (a, b) = (stat("hard_a"), stat("dir/hard_b"));
        assert_eq!(a, b, "two names of one file have one inode number");
        a
    };
    let before = hard_links();
    let mut renumbered = false;
    for round in 0..3 {
        if common::is_root() {
            // 2: free dentries and inodes, which makes the kernel send
            // FUSE forgets for everything below the mount point.
            std::fs::write("/proc/sys/vm/drop_caches", b"2").unwrap();
        }
        let diffs = compare_trees(&source.root, &tree);
        assert!(
            diffs.is_empty(),
            "round {round}: the mount differs: {diffs:#?}"
        );
        assert_eq!(find_listing(&tree), find_listing(&source.root));
        let after = hard_links();
        if !common::is_root() {
            assert_eq!(after, before, "nothing was forgotten, nothing renumbered");
        }
        renumbered |= after != before;
    }
    // A forgotten entry is dropped and gets a new number when looked up
    // again (numbers are never reused): the mount did forget.
    assert!(
        renumbered || !common::is_root(),
        "the inode numbers never changed: the forgets were not acted on"
    );
    mount.unmount();
}
