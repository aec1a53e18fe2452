//! A malicious repository must not make `snap restore` write outside its
//! target, and must not crash snap. The hostile trees are written with the
//! library's own saver, which does not validate trees on write, so each
//! case is exactly the bytes an attacker could store.
//!
//! Every case checks: no panic (exit code 101) and no death by signal; the
//! folder around the target holds nothing but the target; a separate
//! "outside" folder, which hostile names and symlinks point at, stays
//! empty; and either the restore fails or the bad entry is not restored.

use crate::common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::{Env, dir_names, exit_code, list_tree, stderr_text};
use snap::internals::format::pack::BlobKind;
use snap::internals::format::tree::ChunkList;
use snap::internals::pack::BlobSaver;
use snap::{BlobId, NoProgress, Node, NodeKind, Repository, Snapshot, SnapshotId, Tree, TreeId};

/// Snap must finish any of these quickly; a hang is a failure too.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Writes blobs into a repository, then one snapshot of the tree `build` returns.
fn write_snapshot(env: &Env, build: impl FnOnce(&BlobSaver<'_>) -> TreeId) -> SnapshotId {
    let repo = Repository::open(common::local_backend(&env.repo), &NoProgress)
        .expect("open the repository");
    let saver = repo.saver();
    let tree = build(&saver);
    saver.flush().expect("flush blobs");
    drop(saver);
    let snapshot = Snapshot {
        time: "2024-01-01T00:00:00Z".into(),
        host: "attacker".into(),
        user: "mallory".into(),
        paths: vec!["/hostile".into()],
        tags: Vec::new(),
        parent: None,
        tree,
        summary: snap::Summary::default(),
        program: "hostile test".into(),
        original: None,
    };
    // The repository's index cache is locked while `repo` lives; the CLI runs after.
    repo.write_snapshot(&snapshot).expect("write the snapshot")
}

fn data(saver: &BlobSaver<'_>, bytes: &[u8]) -> BlobId {
    saver.save(BlobKind::Data, bytes).unwrap()
}

/// A tree blob with exactly these nodes, in this order, unvalidated.
fn tree(saver: &BlobSaver<'_>, nodes: Vec<Node>) -> TreeId {
    saver
        .save(
            BlobKind::Tree,
            &snap::internals::format::to_msgpack(&Tree { nodes }),
        )
        .unwrap()
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    common::bare_node(name, kind)
}

fn file(saver: &BlobSaver<'_>, name: &[u8], content: &[u8]) -> Node {
    Node {
        size: content.len() as u64,
        content: if content.is_empty() {
            Vec::new()
        } else {
            vec![data(saver, content)]
        },
        ..node(name, NodeKind::File)
    }
}

fn dir(name: &[u8], subtree: TreeId) -> Node {
    Node {
        subtree: Some(subtree),
        ..node(name, NodeKind::Dir)
    }
}

fn symlink(name: &[u8], target: &[u8]) -> Node {
    Node {
        target: Some(target.to_vec()),
        ..node(name, NodeKind::Symlink)
    }
}

/// A repository, a restore target inside a "jail" folder (which must end up
/// holding nothing but the target) and an "outside" folder (which must stay empty).
struct Case {
    env: Env,
    jail: PathBuf,
    target: PathBuf,
    outside: PathBuf,
}

impl Case {
    fn new() -> Self {
        let env = Env::new();
        let jail = env.path("jail");
        let outside = env.path("outside");
        fs::create_dir(&jail).unwrap();
        fs::create_dir(&outside).unwrap();
        let target = jail.join("target");
        Self {
            env,
            jail,
            target,
            outside,
        }
    }

    /// `snap restore SNAP --target TARGET EXTRA...`.
    fn restore(&self, snap: &str, extra: &[&str]) -> Output {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            snap.into(),
            "--target".into(),
            self.target.clone().into(),
            // Replacing what is in the target needs a confirmation.
            "--yes".into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.snap(args)
    }

    fn snap<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args
            .into_iter()
            .map(|a| a.as_ref().to_os_string())
            .collect();
        let out = self
            .env
            .cmd()
            .args(&args)
            .timeout(TIMEOUT)
            .output()
            .expect("run snap");
        assert!(
            out.status.code().is_some(),
            "`snap {args:?}` was killed ({:?}; a crash, or over {TIMEOUT:?}):\n{}",
            out.status,
            stderr_text(&out)
        );
        let code = exit_code(&out);
        assert_ne!(code, 101, "snap panicked:\n{}", stderr_text(&out));
        out
    }

    /// Nothing escaped the target.
    #[track_caller]
    fn assert_contained(&self) {
        let around: Vec<OsString> = dir_names(&self.jail);
        assert!(
            around.is_empty() || around == [OsString::from("target")],
            "restore wrote next to its target: {around:?}"
        );
        let outside = list_tree(&self.outside);
        assert_eq!(
            outside,
            vec![PathBuf::new()],
            "restore wrote outside its target: {outside:?}"
        );
    }

    /// Listing a hostile snapshot may fail but must not crash.
    fn list_everything(&self) {
        self.snap(["ls", "--recursive", "latest"]);
        self.snap(["--json", "ls", "--recursive", "latest"]);
        self.snap(["snapshots"]);
    }

    /// Restores `latest` with every overwrite policy; each must fail or leave
    /// out `bad` (a path relative to the target), and stay contained.
    #[track_caller]
    fn restore_all_policies(&self, bad: &[&[u8]]) {
        self.list_everything();
        for policy in [None, Some("never"), Some("if-changed"), Some("always")] {
            let extra: Vec<&str> = policy.map(|p| vec!["--overwrite", p]).unwrap_or_default();
            let out = self.restore("latest", &extra);
            self.assert_contained();
            if exit_code(&out) == 0 {
                for path in bad {
                    let path = self.target.join(OsStr::from_bytes(path));
                    assert!(
                        fs::symlink_metadata(&path).is_err(),
                        "{policy:?}: restore succeeded and restored the hostile entry {}",
                        path.display()
                    );
                }
            }
            let _ = fs::remove_dir_all(&self.target);
        }
    }
}

#[test]
fn dot_dot_name_cannot_climb_out() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let inside = tree(s, vec![file(s, b"escaped", b"pwned\n")]);
        tree(s, vec![dir(b"..", inside), file(s, b"ok.txt", b"fine\n")])
    });
    case.restore_all_policies(&[b"../escaped"]);
}

#[test]
fn nested_dot_dot_names_cannot_climb_out() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let leaf = tree(s, vec![file(s, b"escaped", b"pwned\n")]);
        let up2 = tree(s, vec![dir(b"..", leaf)]);
        let up1 = tree(s, vec![dir(b"..", up2)]);
        tree(s, vec![dir(b"d", up1)])
    });
    case.restore_all_policies(&[b"escaped", b"d/../../escaped"]);
    // Browsing into the hostile folder fails cleanly too.
    let out = case.snap(["ls", "latest:d"]);
    assert_ne!(
        exit_code(&out),
        0,
        "listing a hostile folder should report damage"
    );
}

/// A root whose only entry is a folder called `name` holding `escaped`:
/// every restore must reject the name and write nothing outside the target.
fn folder_name_is_rejected(name: &[u8]) {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let inside = tree(s, vec![file(s, b"escaped", b"pwned\n")]);
        tree(s, vec![dir(name, inside)])
    });
    case.restore_all_policies(&[b"escaped"]);
}

#[test]
fn dot_name_is_rejected() {
    folder_name_is_rejected(b".");
}

#[test]
fn names_with_slashes_cannot_address_other_paths() {
    for name in [&b"a/b"[..], b"../escaped", b"./x", b"a/../../escaped"] {
        let case = Case::new();
        write_snapshot(&case.env, |s| {
            let a = tree(s, vec![]);
            let mut nodes = vec![file(s, name, b"pwned\n"), dir(b"a", a)];
            nodes.sort_by(|x, y| x.name.cmp(&y.name));
            tree(s, nodes)
        });
        case.restore_all_policies(&[name, b"a/b", b"x", b"escaped"]);
    }
}

#[test]
fn absolute_names_cannot_point_anywhere() {
    let case = Case::new();
    // An absolute name would replace the target when joined to it. Point it
    // at the test's own "outside" folder rather than at /etc, so a
    // vulnerable build damages nothing but a temporary folder.
    let absolute = case.outside.join("escaped");
    let dir_name = case.outside.join("escaped_dir");
    write_snapshot(&case.env, |s| {
        let inside = tree(s, vec![file(s, b"file", b"pwned\n")]);
        let mut nodes = vec![
            file(s, absolute.as_os_str().as_bytes(), b"pwned\n"),
            dir(dir_name.as_os_str().as_bytes(), inside),
        ];
        nodes.sort_by(|x, y| x.name.cmp(&y.name));
        tree(s, nodes)
    });
    case.restore_all_policies(&[]);
}

#[test]
fn single_absolute_name_is_rejected() {
    // The exact name the attack would use, as a file: `/etc`. Only its
    // rejection is checked (a vulnerable build would meet the real /etc, a
    // folder, and refuse or fail to replace it by a file).
    let case = Case::new();
    write_snapshot(&case.env, |s| tree(s, vec![file(s, b"/etc", b"pwned\n")]));
    let out = case.restore("latest", &[]);
    assert_ne!(
        exit_code(&out),
        0,
        "a tree holding `/etc` must be reported as damaged"
    );
    case.assert_contained();
}

#[test]
fn names_with_nul_are_rejected() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        tree(
            s,
            vec![file(s, b"x\0y", b"pwned\n"), file(s, b"y", b"fine\n")],
        )
    });
    case.restore_all_policies(&[b"x"]);
}

#[test]
fn empty_name_is_rejected() {
    folder_name_is_rejected(b"");
}

#[test]
fn duplicate_names_are_rejected() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        tree(
            s,
            vec![file(s, b"dup", b"first\n"), file(s, b"dup", b"second\n")],
        )
    });
    case.list_everything();
    for policy in [None, Some("never"), Some("if-changed"), Some("always")] {
        let extra: Vec<&str> = policy.map(|p| vec!["--overwrite", p]).unwrap_or_default();
        let out = case.restore("latest", &extra);
        case.assert_contained();
        if exit_code(&out) == 0 {
            // Which of the two won must not depend on thread timing: a
            // damaged tree is reported, not restored half-way.
            panic!("{policy:?}: a tree with duplicate names was restored without an error");
        }
        let _ = fs::remove_dir_all(&case.target);
    }
}

#[test]
fn symlink_and_folder_with_the_same_name_cannot_redirect_writes() {
    let case = Case::new();
    let outside = case.outside.as_os_str().as_bytes().to_vec();
    write_snapshot(&case.env, |s| {
        let inside = tree(s, vec![file(s, b"escaped", b"pwned\n")]);
        tree(s, vec![symlink(b"x", &outside), dir(b"x", inside)])
    });
    // Several rounds: the two entries race on parallel workers.
    for _ in 0..3 {
        case.restore_all_policies(&[b"x/escaped"]);
    }
}

#[test]
fn existing_symlink_in_the_target_is_never_followed() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let d = tree(s, vec![file(s, b"f", b"restored\n")]);
        let nested = tree(s, vec![dir(b"d", d)]);
        tree(s, vec![dir(b"d", d), dir(b"src", nested)])
    });
    // The target already holds symlinks to "outside" where the snapshot has
    // folders (`d`, `src/d`) and a file (`f`, for a single-file restore).
    let plant = |case: &Case| {
        let _ = fs::remove_dir_all(&case.target);
        fs::create_dir_all(case.target.join("src")).unwrap();
        std::os::unix::fs::symlink(&case.outside, case.target.join("d")).unwrap();
        std::os::unix::fs::symlink(&case.outside, case.target.join("src/d")).unwrap();
        std::os::unix::fs::symlink(case.outside.join("f"), case.target.join("f")).unwrap();
    };
    let is_symlink = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    // (what to restore, extra flags, the files a replacing restore writes)
    let runs: [(&str, &[&str], &[&str]); 6] = [
        ("latest", &[], &["d/f", "src/d/f"]),
        ("latest", &["--include", "d/f"], &["d/f"]),
        ("latest", &["--include", "src/d/f"], &["src/d/f"]),
        ("latest:d", &[], &["d/f"]),
        ("latest:d/f", &[], &["f"]),
        ("latest:src", &[], &["src/d/f"]),
    ];
    for (snap, flags, written) in runs {
        for policy in [None, Some("never"), Some("if-changed"), Some("always")] {
            plant(&case);
            let mut extra: Vec<&str> = flags.to_vec();
            if let Some(p) = policy {
                extra.extend(["--overwrite", p]);
            }
            let what = format!("restore {snap} {extra:?}");
            let out = case.restore(snap, &extra);
            let code = exit_code(&out);
            case.assert_contained();
            match policy {
                None => assert_ne!(
                    code, 0,
                    "{what}: the default refuses to replace existing entries"
                ),
                Some("never") => {
                    assert_eq!(code, 0, "{what}: {}", stderr_text(&out));
                    for link in ["d", "src/d", "f"] {
                        assert!(
                            is_symlink(&case.target.join(link)),
                            "{what}: `never` replaced {link}"
                        );
                    }
                }
                Some(_) => {
                    assert_eq!(code, 0, "{what}: {}", stderr_text(&out));
                    for path in written {
                        let path = case.target.join(path);
                        assert_eq!(
                            fs::read_to_string(&path).ok().as_deref(),
                            Some("restored\n"),
                            "{what}: {} not restored",
                            path.display()
                        );
                        assert!(!is_symlink(&path), "{what}");
                        assert!(
                            !is_symlink(path.parent().unwrap()),
                            "{what}: wrote through a symlink"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn symlink_from_an_earlier_restore_is_never_followed() {
    // Snapshot A has `d -> outside`; snapshot B has a folder `d` with a file.
    // Restoring A, then B over it, must not write through A's symlink.
    let case = Case::new();
    let outside = case.outside.as_os_str().as_bytes().to_vec();
    let a = write_snapshot(&case.env, |s| tree(s, vec![symlink(b"d", &outside)]));
    let b = write_snapshot(&case.env, |s| {
        let d = tree(s, vec![file(s, b"f", b"restored\n")]);
        tree(s, vec![dir(b"d", d)])
    });
    for policy in [None, Some("never"), Some("if-changed"), Some("always")] {
        let _ = fs::remove_dir_all(&case.target);
        let out = case.restore(&a.to_hex(), &[]);
        assert_eq!(exit_code(&out), 0, "{}", stderr_text(&out));
        assert_eq!(fs::read_link(case.target.join("d")).unwrap(), case.outside);
        let extra: Vec<&str> = policy.map(|p| vec!["--overwrite", p]).unwrap_or_default();
        let out = case.restore(&b.to_hex(), &extra);
        case.assert_contained();
        let restored = fs::read_to_string(case.target.join("d/f")).ok();
        match policy {
            None => assert_ne!(exit_code(&out), 0, "the default refuses to replace `d`"),
            Some("never") => assert_eq!(exit_code(&out), 0, "{}", stderr_text(&out)),
            Some(_) => {
                assert_eq!(exit_code(&out), 0, "{}", stderr_text(&out));
                assert_eq!(restored.as_deref(), Some("restored\n"), "{policy:?}");
                assert!(
                    fs::symlink_metadata(case.target.join("d"))
                        .unwrap()
                        .is_dir()
                );
            }
        }
    }
}

#[test]
fn file_whose_size_lies_is_not_restored_as_if_whole() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let five = data(s, b"12345");
        let longer = Node {
            size: 1000,
            content: vec![five],
            ..node(b"claims_more", NodeKind::File)
        };
        let shorter = Node {
            size: 2,
            content: vec![five],
            ..node(b"claims_less", NodeKind::File)
        };
        let empty = Node {
            size: 1 << 40,
            ..node(b"claims_a_tebibyte", NodeKind::File)
        };
        tree(
            s,
            vec![empty, shorter, longer, file(s, b"ok.txt", b"fine\n")],
        )
    });
    case.list_everything();
    let out = case.restore("latest", &[]);
    let code = exit_code(&out);
    assert_ne!(
        code,
        0,
        "files with lying sizes must be reported: {}",
        stderr_text(&out)
    );
    case.assert_contained();
    let restored = list_tree(&case.target);
    for bad in ["claims_more", "claims_less", "claims_a_tebibyte"] {
        if let Ok(meta) = fs::symlink_metadata(case.target.join(bad)) {
            panic!(
                "{bad} was restored although its chunks do not match its size ({} bytes)",
                meta.len()
            );
        }
    }
    assert!(
        restored
            .iter()
            .all(|p| !p.to_string_lossy().contains(".snap-restore")),
        "temporary files left behind: {restored:?}"
    );
    assert_eq!(
        fs::read_to_string(case.target.join("ok.txt"))
            .ok()
            .as_deref(),
        Some("fine\n"),
        "the rest is restored; exit {code}, stderr:\n{}",
        stderr_text(&out)
    );
    for path in [
        "latest:claims_more",
        "latest:claims_less",
        "latest:claims_a_tebibyte",
    ] {
        case.snap(["cat", path]);
    }
}

#[test]
fn garbage_tree_blob_is_reported_as_damage() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let garbage = s.save(BlobKind::Tree, b"\xc1 not message pack").unwrap();
        let wrong_shape = s
            .save(
                BlobKind::Tree,
                &snap::internals::format::to_msgpack(&vec![1u8, 2, 3]),
            )
            .unwrap();
        tree(s, vec![dir(b"a", garbage), dir(b"b", wrong_shape)])
    });
    case.list_everything();
    let out = case.restore("latest", &[]);
    assert_eq!(
        exit_code(&out),
        4,
        "damaged trees exit with 4: {}",
        stderr_text(&out)
    );
    case.assert_contained();
}

#[test]
fn odd_metadata_does_not_crash_restore() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let sub = tree(s, vec![]);
        tree(
            s,
            vec![
                Node {
                    mtime_ns: i64::MIN,
                    ctime_ns: i64::MIN,
                    mode: u32::MAX,
                    uid: u32::MAX,
                    gid: u32::MAX,
                    ..file(s, b"a_min_time", b"x")
                },
                Node {
                    mtime_ns: i64::MAX,
                    ..dir(b"b_max_time", sub)
                },
                Node {
                    links: 5,
                    inode: 77,
                    dev: 1,
                    ..file(s, b"c_link", b"one\n")
                },
                Node {
                    links: 5,
                    inode: 77,
                    dev: 1,
                    ..file(s, b"d_link", b"two, different content\n")
                },
                symlink(b"e_nul_target", b"a\0b"),
                Node {
                    kind: NodeKind::Socket,
                    ..node(b"f_socket", NodeKind::Socket)
                },
                symlink(b"g_empty_target", b""),
            ],
        )
    });
    case.list_everything();
    for policy in [None, Some("always")] {
        let extra: Vec<&str> = policy.map(|p| vec!["--overwrite", p]).unwrap_or_default();
        case.restore("latest", &extra);
        case.assert_contained();
    }
}

#[test]
fn chunk_list_bomb_fails_fast_with_bounded_memory() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let leaf = data(s, b"x");
        let mut id = leaf;
        for _ in 0..3 {
            id = s
                .save(
                    BlobKind::List,
                    &ChunkList {
                        ids: vec![id; 2048],
                    }
                    .to_bytes(),
                )
                .unwrap();
        }
        let bomb = Node {
            size: 1,
            content: vec![id],
            content_depth: 3,
            dictionary: None,
            ..node(b"bomb", NodeKind::File)
        };
        tree(s, vec![bomb])
    });
    // Under a 2 GiB address-space limit a full expansion (8.6e9 ids) aborts;
    // a restore that checks the size as it expands fails in milliseconds.
    let out = limited(&case)
        .args(["restore", "latest", "--target"])
        .arg(&case.target)
        .output()
        .expect("run prlimit");
    let code = exit_code(&out);
    assert!(
        code != 0 && code != 101,
        "exit {code}: {}",
        stderr_text(&out)
    );
    case.assert_contained();
}

/// A chain of `depth` folders named `d` with a file at the bottom.
fn deep_chain(s: &BlobSaver<'_>, depth: usize) -> TreeId {
    let mut id = tree(s, vec![file(s, b"bottom.txt", b"bottom\n")]);
    for _ in 0..depth {
        id = tree(s, vec![dir(b"d", id)]);
    }
    id
}

#[test]
fn deep_snapshot_restores_and_lists() {
    let case = Case::new();
    write_snapshot(&case.env, |s| deep_chain(s, 1000));
    let out = case.snap(["ls", "--recursive", "latest"]);
    assert_eq!(exit_code(&out), 0, "ls: {}", stderr_text(&out));
    let out = case.restore("latest", &[]);
    assert_eq!(exit_code(&out), 0, "restore: {}", stderr_text(&out));
    case.assert_contained();
    let bottom: PathBuf = std::iter::repeat_n("d", 1000)
        .chain(["bottom.txt"])
        .collect();
    assert_eq!(
        fs::read_to_string(case.target.join(bottom)).unwrap(),
        "bottom\n"
    );
}

#[test]
fn snapshot_deeper_than_path_max_fails_cleanly() {
    // 2100 levels of `d/` are longer than PATH_MAX (4096 bytes): restore
    // cannot create the bottom and must stop with an error, not crash.
    let case = Case::new();
    write_snapshot(&case.env, |s| deep_chain(s, 2100));
    let out = case.restore("latest", &[]);
    assert_eq!(exit_code(&out), 1, "restore: {}", stderr_text(&out));
    case.assert_contained();
}

#[test]
fn very_deep_snapshot_does_not_crash_ls() {
    // Listing touches no filesystem, so nothing but the program bounds the depth.
    let case = Case::new();
    write_snapshot(&case.env, |s| deep_chain(s, 20_000));
    let out = case.snap(["ls", "--recursive", "latest"]);
    assert_ne!(exit_code(&out), 101);
}

/// `snap --json check ARGS...` on the case's repository: exit code and report.
fn check_report(case: &Case, args: &[&str]) -> (i32, serde_json::Value) {
    let mut all = vec!["--json", "check"];
    all.extend_from_slice(args);
    let out = case.snap(all);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json printed no JSON ({e}): {}", stderr_text(&out)));
    (exit_code(&out), report)
}

/// Every path some error of a check report says is lost.
fn lost_paths(report: &serde_json::Value) -> Vec<String> {
    let mut paths: Vec<String> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["affected"].as_array().unwrap().iter())
        .flat_map(|a| a["paths"].as_array().unwrap().iter())
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[test]
fn check_fails_a_file_whose_size_lies_like_restore_cat_and_copy() {
    let case = Case::new();
    write_snapshot(&case.env, |s| {
        let five = data(s, b"12345");
        let terabyte = Node {
            size: 1_000_000_000_000,
            content: vec![five],
            ..node(b"claims_a_terabyte", NodeKind::File)
        };
        // The same lie one level down, in a chunk list.
        let list = s
            .save(BlobKind::List, &ChunkList { ids: vec![five; 3] }.to_bytes())
            .unwrap();
        let listed = Node {
            size: 16,
            content: vec![list],
            content_depth: 1,
            ..node(b"listed_lies", NodeKind::File)
        };
        let sub = tree(s, vec![terabyte, listed]);
        tree(
            s,
            vec![
                dir(b"deep", sub),
                file(s, b"ok.txt", b"fine\n"),
                Node {
                    size: 15,
                    content: vec![list],
                    content_depth: 1,
                    ..node(b"whole_list", NodeKind::File)
                },
            ],
        )
    });
    let lying = ["deep/claims_a_terabyte", "deep/listed_lies"];
    for args in [&[][..], &["--read-data"]] {
        let (code, report) = check_report(&case, args);
        assert_eq!(code, 4, "check {args:?}: {report}");
        assert_eq!(lost_paths(&report), lying, "check {args:?}: {report}");
        let kinds: Vec<&str> = common::string_column(&report["errors"], "kind");
        assert_eq!(kinds, ["file_damaged", "file_damaged"], "{report}");
        assert!(
            report.to_string().contains("its size is 1000000000000"),
            "{report}"
        );
    }
    // Text output names the path too.
    let out = case.snap(["check"]);
    assert_eq!(exit_code(&out), 4);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr_text(&out)
    );
    assert!(text.contains("deep/claims_a_terabyte"), "{text}");

    // Restore: everything else, exit 4, the lying files named.
    let out = case.restore("latest", &["--json"]);
    assert_eq!(exit_code(&out), 4, "restore: {}", stderr_text(&out));
    case.assert_contained();
    assert_eq!(fs::read(case.target.join("ok.txt")).unwrap(), b"fine\n");
    assert_eq!(
        fs::read(case.target.join("whole_list")).unwrap(),
        b"123451234512345"
    );
    for bad in lying {
        assert!(!case.target.join(bad).exists(), "{bad} was restored");
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut damaged: Vec<&str> = report["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    damaged.sort_unstable();
    assert_eq!(damaged, lying, "{report}");

    // Cat: an error and not a byte, never a short file.
    for path in lying {
        let out = case.snap(["cat", &format!("latest:{path}")]);
        assert_eq!(exit_code(&out), 4, "cat {path}: {}", stderr_text(&out));
        assert!(out.stdout.is_empty(), "cat {path} printed {:?}", out.stdout);
        assert!(
            stderr_text(&out).contains("its size is"),
            "{}",
            stderr_text(&out)
        );
    }
    let out = case.snap(["cat", "latest:whole_list"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr_text(&out));
    assert_eq!(out.stdout, b"123451234512345");

    // Copy refuses the snapshot rather than copying the lie.
    let target = case.env.path("copy-target");
    let init = common::snap_command()
        .arg("-r")
        .arg(&target)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(exit_code(&init), 0, "{}", stderr_text(&init));
    let out = case.snap([OsStr::new("copy"), OsStr::new("--to"), target.as_os_str()]);
    assert_eq!(exit_code(&out), 4, "copy: {}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("its size is"),
        "{}",
        stderr_text(&out)
    );
}

/// `snap -r REPO ARGS...` under a 2 GiB address-space limit, so a command
/// that allocates what a hostile repository claims dies instead of
/// swapping, and within [`TIMEOUT`], so one that walks without end is
/// killed; it must end with an error of its own, not a crash.
fn snap_limited(case: &Case, args: &[&str]) -> Output {
    let out = assert_cmd::Command::from_std(limited(case))
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .expect("run prlimit");
    let code = exit_code(&out);
    assert!(
        out.status.code().is_some() && code != 101,
        "snap {args:?} crashed ({:?}): {}",
        out.status,
        stderr_text(&out)
    );
    out
}

/// `snap -r REPO` under a 2 GiB address-space limit (`prlimit`), with
/// the test's environment (its caches in the test folder).
fn limited(case: &Case) -> std::process::Command {
    let snap = case.env.spawnable();
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--as=2147483648")
        .arg("--")
        .arg(snap.get_program())
        .args(snap.get_args());
    for (key, value) in snap.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd
}

/// An empty snapshot to diff against.
fn write_empty_snapshot(env: &Env) {
    write_snapshot(env, |s| tree(s, vec![]));
}

#[test]
fn tree_frame_that_inflates_to_a_gibibyte_is_refused_unread() {
    use std::io::Write;
    let case = Case::new();
    write_empty_snapshot(&case.env);
    // 1 GiB of zeros in one zstd frame of a few tens of kilobytes, stored as
    // a tree blob with its true plaintext length.
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
    let zeros = vec![0u8; 1 << 20];
    let mut hasher = blake3::Hasher::new();
    for _ in 0..1024 {
        encoder.write_all(&zeros).unwrap();
        hasher.update(&zeros);
    }
    let frame = encoder.finish().unwrap();
    assert!(frame.len() < 100_000, "{} bytes", frame.len());
    let bomb = BlobId(*hasher.finalize().as_bytes());
    write_snapshot(&case.env, |s| {
        s.save_frame(BlobKind::Tree, bomb, &frame, 1 << 30).unwrap();
        tree(s, vec![dir(b"bomb", bomb), file(s, b"ok.txt", b"fine\n")])
    });
    let refused = "compress at most";
    for args in [
        &["ls", "--recursive", "latest"][..],
        &["ls", "latest:bomb"],
        &["find", "*.txt"],
        &["diff", "latest~1", "latest"],
    ] {
        let out = snap_limited(&case, args);
        assert_eq!(exit_code(&out), 4, "{args:?}: {}", stderr_text(&out));
        assert!(
            stderr_text(&out).contains(refused),
            "{args:?}: {}",
            stderr_text(&out)
        );
    }
    for args in [&["check"][..], &["check", "--read-data"]] {
        let out = snap_limited(&case, &[&["--json"][..], args].concat());
        assert_eq!(exit_code(&out), 4, "{args:?}: {}", stderr_text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(lost_paths(&report), ["bomb"], "{args:?}: {report}");
    }
    let target = case.target.to_str().unwrap().to_string();
    let out = snap_limited(&case, &["restore", "latest", "--target", &target]);
    assert_eq!(exit_code(&out), 4, "restore: {}", stderr_text(&out));
    assert!(stderr_text(&out).contains(refused), "{}", stderr_text(&out));
    assert_eq!(fs::read(case.target.join("ok.txt")).unwrap(), b"fine\n");
    case.assert_contained();
}

/// A tree of `levels` levels whose two folders at each level are the same
/// subtree: a few kilobytes standing for 2^(levels + 1) paths.
fn repeated_subtrees(s: &BlobSaver<'_>, levels: usize) -> TreeId {
    let mut id = tree(s, vec![file(s, b"leaf.txt", b"leaf\n")]);
    for _ in 0..levels {
        id = tree(s, vec![dir(b"a", id), dir(b"b", id)]);
    }
    id
}

#[test]
fn tree_repeated_at_two_to_the_forty_paths_is_refused_by_every_walk() {
    let case = Case::new();
    write_empty_snapshot(&case.env);
    write_snapshot(&case.env, |s| {
        let hostile = repeated_subtrees(s, 40);
        tree(s, vec![dir(b"h", hostile), file(s, b"ok.txt", b"fine\n")])
    });
    let refused = "paths a walk follows";
    for args in [
        &["ls", "--recursive", "latest"][..],
        &["ls", "--recursive", "latest:h/a/a"],
        &["find", "leaf.txt"],
        &["diff", "latest~1", "latest"],
        &["diff", "latest~1", "latest", "h/b"],
    ] {
        let out = snap_limited(&case, args);
        assert_eq!(exit_code(&out), 4, "{args:?}: {}", stderr_text(&out));
        assert!(
            stderr_text(&out).contains(refused),
            "{args:?}: {}",
            stderr_text(&out)
        );
    }
    let target = case.target.to_str().unwrap().to_string();
    for extra in [&[][..], &["--dry-run"]] {
        let out = snap_limited(
            &case,
            &[&["restore", "latest", "--target", &target][..], extra].concat(),
        );
        assert_eq!(
            exit_code(&out),
            4,
            "restore {extra:?}: {}",
            stderr_text(&out)
        );
        assert!(stderr_text(&out).contains(refused), "{}", stderr_text(&out));
        // Refused before anything is written.
        assert!(!case.target.join("h").exists());
    }
    case.assert_contained();
    // check agrees with restore: the snapshot is lost as a whole; the
    // empty one is fine. A few levels stay walkable everywhere.
    for args in [&["check"][..], &["check", "--read-data"]] {
        let out = snap_limited(&case, &[&["--json"][..], args].concat());
        assert_eq!(exit_code(&out), 4, "{args:?}: {}", stderr_text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(lost_paths(&report), ["/"], "{args:?}: {report}");
        assert!(report.to_string().contains(refused), "{report}");
        assert_eq!(report["trees"], 43, "distinct trees: {report}");
    }
    let small = Case::new();
    write_snapshot(&small.env, |s| repeated_subtrees(s, 4));
    let out = small.snap(["ls", "--recursive", "latest"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr_text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("leaf.txt")
            .count(),
        16
    );
    assert_eq!(exit_code(&small.snap(["check"])), 0);
}
