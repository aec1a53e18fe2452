//! `snap dump` through the real binary: a folder as tar read back with the
//! `tar` program and as zip with `unzip`, compared with the source tree
//! (bytes, modes, mtimes, owners, symlinks, hard links, xattrs, non-UTF-8
//! names); a single file as it is; unknown snapshots and paths; damaged
//! data (exit 4 naming the path, an existing `--output` file untouched);
//! an encrypted repository; `snap cat` on a folder.

use crate::common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::tools::require_program;
use common::{
    Env, assert_code, assert_same_tree, build_tree, chunk_location, exit_code, flip_byte,
    list_tree, stderr_text,
};

/// Runs a program (not snap) that must succeed.
#[track_caller]
fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> Output {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Extracts a tar archive the way a user restoring everything would:
/// modes, xattrs and (as root) owners as recorded.
fn untar(archive: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    run_tool(
        "tar",
        &[
            "--extract".as_ref(),
            "--preserve-permissions".as_ref(),
            "--xattrs".as_ref(),
            "--xattrs-include=*".as_ref(),
            "--numeric-owner".as_ref(),
            "--file".as_ref(),
            archive.as_os_str(),
            "--directory".as_ref(),
            into.as_os_str(),
        ],
    );
}

/// `snap dump --archive ARCHIVE TARGET --output DEST`.
fn dump_into(env: &Env, archive: &str, target: &str, dest: &Path) -> Output {
    env.run([
        "dump".as_ref(),
        "--archive".as_ref(),
        archive.as_ref(),
        target.as_ref(),
        "--output".as_ref(),
        dest.as_os_str(),
    ])
}

#[test]
fn folder_as_tar_on_stdout_extracts_to_the_source_tree() {
    if !require_program("tar", "apt-get install tar") {
        return;
    }
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);

    let archive = env.ok(["dump", "latest:data"]);
    let tar_file = env.path("data.tar");
    fs::write(&tar_file, &archive).unwrap();
    let out = env.path("out");
    untar(&tar_file, &out);
    assert_same_tree(&tree.root, &out.join("data"));

    // Hard links stay links in the archive, not a second copy of the bytes.
    let listing = run_tool(
        "tar",
        &[
            "--list".as_ref(),
            "--verbose".as_ref(),
            "--file".as_ref(),
            tar_file.as_os_str(),
        ],
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("data/hard_a link to data/dir/hard_b"),
        "no hard link entry in:\n{listing}"
    );

    // The root of a snapshot: its entries at the top of the archive.
    let whole = env.path("whole.tar");
    env.ok([
        "dump".as_ref(),
        "latest".as_ref(),
        "--output".as_ref(),
        whole.as_os_str(),
    ]);
    let out = env.path("whole");
    untar(&whole, &out);
    assert_same_tree(&tree.root, &out.join("data"));
    assert_eq!(common::dir_names(&out), ["data"]);
}

#[test]
fn folder_as_zip_unzips_to_the_source_tree() {
    if !require_program("unzip", "apt-get install unzip") {
        return;
    }
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);

    let zip_file = env.path("data.zip");
    let out = dump_into(&env, "zip", "latest:data", &zip_file);
    // zip has no fifos: left out with a warning naming it, exit 3.
    assert_code(&out, 3);
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("left out data/dir/pipe: zip cannot hold fifos"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let unzipped = env.path("out");
    fs::create_dir_all(&unzipped).unwrap();
    // -X: owners; -K: setuid and setgid bits, as recorded.
    run_tool(
        "unzip",
        &[
            "-q".as_ref(),
            "-X".as_ref(),
            "-K".as_ref(),
            zip_file.as_os_str(),
            "-d".as_ref(),
            unzipped.as_os_str(),
        ],
    );
    let diffs = compare_as_zip_keeps(&tree.root, &unzipped.join("data"));
    assert!(
        diffs.is_empty(),
        "unzipped tree differs:\n  {}",
        diffs.join("\n  ")
    );
}

/// Compares what zip can hold: every entry but fifos, with its type,
/// bytes, mode, owner, mtime to the second (not a symlink's own: unzip
/// does not set it) and symlink target. Hard links come back as copies.
fn compare_as_zip_keeps(expected: &Path, actual: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let want: Vec<PathBuf> = list_tree(expected)
        .into_iter()
        .filter(|rel| {
            !fs::symlink_metadata(expected.join(rel))
                .unwrap()
                .file_type()
                .is_fifo()
        })
        .collect();
    let have = list_tree(actual);
    if want != have {
        diffs.push(format!("entries {have:?}, expected {want:?}"));
        return diffs;
    }
    for rel in &want {
        let (a, b) = (expected.join(rel), actual.join(rel));
        let (ma, mb) = (
            fs::symlink_metadata(&a).unwrap(),
            fs::symlink_metadata(&b).unwrap(),
        );
        let name = rel.display();
        if ma.file_type() != mb.file_type() {
            diffs.push(format!(
                "{name}: type {:?}, expected {:?}",
                mb.file_type(),
                ma.file_type()
            ));
            continue;
        }
        if ma.is_symlink() {
            if fs::read_link(&a).unwrap() != fs::read_link(&b).unwrap() {
                diffs.push(format!("{name}: symlink target differs"));
            }
            continue;
        }
        if ma.is_file() && fs::read(&a).unwrap() != fs::read(&b).unwrap() {
            diffs.push(format!("{name}: content differs"));
        }
        if ma.permissions().mode() & 0o7777 != mb.permissions().mode() & 0o7777 {
            diffs.push(format!(
                "{name}: mode {:o}, expected {:o}",
                mb.permissions().mode() & 0o7777,
                ma.permissions().mode() & 0o7777
            ));
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(format!(
                "{name}: owner {}:{}, expected {}:{}",
                mb.uid(),
                mb.gid(),
                ma.uid(),
                ma.gid()
            ));
        }
        if ma.mtime() != mb.mtime() {
            diffs.push(format!(
                "{name}: mtime {}, expected {}",
                mb.mtime(),
                ma.mtime()
            ));
        }
    }
    diffs
}

#[test]
fn a_file_is_written_as_it_is_and_into_an_archive_when_asked() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    let original = fs::read(tree.root.join("big.bin")).unwrap();

    assert_eq!(env.ok(["dump", "latest:data/big.bin"]), original);
    let copy = env.path("copy.bin");
    let out = env.run([
        "dump".as_ref(),
        "latest:data/big.bin".as_ref(),
        "-o".as_ref(),
        copy.as_os_str(),
    ]);
    assert_code(&out, 0);
    assert!(out.stdout.is_empty());
    assert_eq!(fs::read(&copy).unwrap(), original);
    // A file made by --output is an ordinary new file (0666 less the
    // umask), not a private temporary file.
    assert_eq!(
        fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        new_file_mode()
    );

    if !require_program("tar", "apt-get install tar") {
        return;
    }
    let tar_file = env.path("one.tar");
    fs::write(
        &tar_file,
        env.ok(["dump", "--archive", "tar", "latest:data/script.sh"]),
    )
    .unwrap();
    let out = env.path("one");
    untar(&tar_file, &out);
    assert_eq!(common::dir_names(&out), ["script.sh"]);
    assert_eq!(
        fs::read(out.join("script.sh")).unwrap(),
        fs::read(tree.root.join("script.sh")).unwrap()
    );
    assert_eq!(
        fs::metadata(out.join("script.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
}

/// The mode of a file this process creates (0666 less the umask, which
/// the tests never change).
fn new_file_mode() -> u32 {
    let probe = tempfile::tempdir().unwrap();
    let file = probe.path().join("probe");
    fs::File::create(&file).unwrap();
    fs::metadata(&file).unwrap().permissions().mode() & 0o777
}

#[test]
fn unknown_snapshot_path_or_destination_is_one_line_and_writes_nothing() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    let dest = env.path("kept.tar");
    fs::write(&dest, b"what was there").unwrap();
    for (target, code, says) in [
        ("ffffffff:data", 10, "ffffffff"),
        ("latest:data/no-such-file", 10, "no-such-file"),
        ("latest~5:data", 10, "latest~5"),
    ] {
        let out = env.run([
            "dump".as_ref(),
            target.as_ref(),
            "--output".as_ref(),
            dest.as_os_str(),
        ]);
        assert_code(&out, code);
        let stderr = stderr_text(&out);
        assert_eq!(stderr.lines().count(), 1, "{target}: {stderr}");
        assert!(stderr.contains(says), "{target}: {stderr}");
        assert_eq!(fs::read(&dest).unwrap(), b"what was there");
    }
    let out = env.run([
        "dump".as_ref(),
        "latest:data".as_ref(),
        "--output".as_ref(),
        env.path("src").as_os_str(),
    ]);
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("is a folder"),
        "{}",
        stderr_text(&out)
    );
    let out = env.run(["dump", "--archive", "rar", "latest:data"]);
    assert_code(&out, 2);
    assert_eq!(
        common::dir_names(&env.path("")),
        ["kept.tar", "repo", "src", "xdg-cache"]
    );
}

#[test]
fn damaged_data_fails_naming_the_path_and_keeps_the_old_output() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    let (pack, offset) = chunk_location(&env.repo, "data/medium.bin", false);
    flip_byte(&pack, offset);

    let dest = env.path("out/data.tar");
    fs::create_dir_all(env.path("out")).unwrap();
    fs::write(&dest, b"yesterday's archive").unwrap();
    for archive in ["tar", "zip"] {
        let out = dump_into(&env, archive, "latest:data", &dest);
        assert_code(&out, 4);
        let stderr = stderr_text(&out);
        assert!(
            stderr.contains("`data/medium.bin` cannot be dumped"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(fs::read(&dest).unwrap(), b"yesterday's archive");
        assert_eq!(
            common::dir_names(&env.path("out")),
            ["data.tar"],
            "a temporary file was left"
        );
    }

    // On stdout the stream stops without tar's end marker: tar says the
    // archive is cut short rather than taking it for a whole one.
    let out = env.run(["dump", "latest:data"]);
    assert_code(&out, 4);
    assert!(stderr_text(&out).contains("`data/medium.bin`"));
    assert!(
        !out.stdout.ends_with(&[0u8; 1024]),
        "the cut-off stream has an end marker"
    );
    // The file alone: nothing written, the same error.
    let out = env.run(["dump", "latest:data/medium.bin"]);
    assert_code(&out, 4);
    assert!(out.stdout.is_empty());
    assert!(stderr_text(&out).contains("`data/medium.bin` cannot be dumped"));
    // What is not damaged still dumps.
    assert_eq!(
        env.ok(["dump", "latest:data/small.txt"]),
        fs::read(tree.root.join("small.txt")).unwrap()
    );
}

#[test]
fn encrypted_repository_dumps_like_a_plain_one() {
    if !require_program("tar", "apt-get install tar") {
        return;
    }
    let env = Env::uninitialized();
    let snap = |args: &[&std::ffi::OsStr]| {
        env.cmd()
            .env("SNAP_PASSWORD", "correct horse")
            .args(args)
            .output()
            .unwrap()
    };
    assert_code(&snap(&["init".as_ref(), "--encrypt".as_ref()]), 0);
    let tree = build_tree(&env.path("src"), "data");
    assert_code(&snap(&["backup".as_ref(), tree.root.as_os_str()]), 0);
    let tar_file = env.path("data.tar");
    let out = snap(&[
        "dump".as_ref(),
        "latest:data".as_ref(),
        "-o".as_ref(),
        tar_file.as_os_str(),
    ]);
    assert_code(&out, 0);
    let unpacked = env.path("out");
    untar(&tar_file, &unpacked);
    assert_same_tree(&tree.root, &unpacked.join("data"));

    let out = env
        .cmd()
        .env("SNAP_PASSWORD", "wrong")
        .args(["dump", "latest:data"])
        .output()
        .unwrap();
    assert_code(&out, 5);
    assert!(out.stdout.is_empty());
}

#[test]
fn cat_of_a_folder_points_to_dump_and_archives_never_go_to_a_terminal() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    let out = env.run(["cat", "latest:data/dir"]);
    assert_code(&out, 2);
    let stderr = stderr_text(&out);
    assert!(
        stderr.contains("is a folder") && stderr.contains("snap dump"),
        "{stderr}"
    );

    // `script` gives snap a terminal as stdout.
    let command = format!(
        "{} -r {} dump latest:data",
        common::snap_bin().display(),
        env.repo.display()
    );
    let out = std::process::Command::new("script")
        .args(["--quiet", "--return", "--command", &command, "/dev/null"])
        .env("XDG_CACHE_HOME", env.cache_home())
        .env_remove("SNAP_REPO")
        .output()
        .expect("run script");
    assert_eq!(
        exit_code(&out),
        2,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("not writing a tar archive to a terminal"),
        "{shown}"
    );
}

/// Sends `signal` to a `snap dump ARGS --output big.out` slowed by
/// `--limit-download` once its temporary file exists; the old `big.out`
/// stays, no `.snap-dump-*` file is left, and snap exits with `code`.
fn interrupt_dump_to_file(args: &[&str], signal: nix::sys::signal::Signal, code: i32) {
    use std::time::{Duration, Instant};
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), common::pseudo_random(16 << 20, 19)).unwrap();
    env.backup(&[&src], &[]);
    let out_dir = env.path("out");
    fs::create_dir_all(&out_dir).unwrap();
    let dest = out_dir.join("big.out");
    fs::write(&dest, b"the dump of yesterday").unwrap();

    // 16 MiB at 2 MiB/s: about 8 seconds, far longer than the wait below.
    let mut child = env
        .spawnable()
        .args(["--limit-download", "2048", "dump"])
        .args(args)
        .arg("--output")
        .arg(&dest)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let temp_exists = || common::dir_names(&out_dir).len() > 1;
    let started = Instant::now();
    while !temp_exists() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(temp_exists(), "the dump made no temporary file");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(code), "{stderr}");
    assert!(stderr.contains("dump interrupted"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(fs::read(&dest).unwrap(), b"the dump of yesterday");
    assert_eq!(
        common::dir_names(&out_dir),
        ["big.out"],
        "a temporary file was left"
    );
    assert!(!env.holds_lock(), "a lock was left behind");
}

/// Ctrl-C during `dump --output` stops it (exit 130 as a backup's) and
/// removes the half-written temporary file; the old output stays.
#[test]
fn sigint_stops_a_dump_to_a_file_and_leaves_no_temporary_file() {
    interrupt_dump_to_file(
        &["latest:src/big.bin"],
        nix::sys::signal::Signal::SIGINT,
        130,
    );
}

/// SIGTERM stops an archive the same way (exit 143).
#[test]
fn sigterm_stops_a_tar_dump_to_a_file_and_leaves_no_temporary_file() {
    interrupt_dump_to_file(
        &["--archive", "tar", "latest:src"],
        nix::sys::signal::Signal::SIGTERM,
        143,
    );
}

/// A damaged folder listing (tree blob) is named by the folder's path,
/// not by the object it is stored in; the old output stays.
#[test]
fn a_damaged_folder_listing_is_named_by_its_path() {
    let env = Env::new();
    let tree = build_tree(&env.path("src"), "data");
    env.backup(&[&tree.root], &[]);
    for (pack, offset) in common::tree_copies(&env.repo, "data/dir/sub") {
        flip_byte(&pack, offset);
    }

    let dest = env.path("data.tar");
    fs::write(&dest, b"yesterday's archive").unwrap();
    for archive in ["tar", "zip"] {
        let out = dump_into(&env, archive, "latest:data", &dest);
        assert_code(&out, 4);
        let stderr = stderr_text(&out);
        assert!(stderr.contains("`data/dir/sub`"), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(fs::read(&dest).unwrap(), b"yesterday's archive");
    }
    // Reached as the folder asked for, too.
    let out = dump_into(&env, "tar", "latest:data/dir/sub", &dest);
    assert_code(&out, 4);
    assert!(
        stderr_text(&out).contains("`data/dir/sub`"),
        "{}",
        stderr_text(&out)
    );
}
