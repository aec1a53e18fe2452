//! Trust through the real binary: what a write-only key may not do, which
//! key files can never be removed, the modes of everything snap creates,
//! where the index cache lives, readers that never wait for another
//! process, and `init` on a folder that is not empty.

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Env, assert_code, contents, is_root, list_tree, pseudo_random, stderr_text};

/// An encrypted repository with two snapshots, its owner's passphrase
/// file and a write-only key file.
struct Encrypted {
    env: Env,
    password: PathBuf,
    writer: PathBuf,
}

impl Encrypted {
    fn new() -> Self {
        let env = Env::uninitialized();
        let password = env.path("owner.pw");
        common::write_password_file(&password, "owner passphrase");
        let this = Self {
            writer: env.path("writer.key"),
            password,
            env,
        };
        assert_code(&this.owner(&["init", "--encrypt"]), 0);
        let src = this.env.path("src");
        fs::create_dir_all(&src).unwrap();
        for version in 0..2u64 {
            fs::write(src.join("data.bin"), pseudo_random(200_000, version)).unwrap();
            assert_code(&this.owner(&["backup".as_ref(), src.as_os_str()]), 0);
        }
        let writer = this.writer.clone();
        assert_code(
            &this.owner(&[
                "key".as_ref(),
                "add".as_ref(),
                "--write-only".as_ref(),
                "--output".as_ref(),
                writer.as_os_str(),
            ]),
            0,
        );
        this
    }

    /// `snap --password-file OWNER ARGS`.
    fn owner<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.env
            .cmd()
            .arg("--password-file")
            .arg(&self.password)
            .args(args)
            .output()
            .unwrap()
    }

    /// `snap --key-file FILE ARGS`.
    fn with_key_file<S: AsRef<OsStr>>(&self, file: &Path, args: &[S]) -> Output {
        self.env
            .cmd()
            .arg("--key-file")
            .arg(file)
            .args(args)
            .output()
            .unwrap()
    }

    /// `snap --password-file FILE ARGS`.
    fn with_password<S: AsRef<OsStr>>(&self, file: &Path, args: &[S]) -> Output {
        self.env
            .cmd()
            .arg("--password-file")
            .arg(file)
            .args(args)
            .output()
            .unwrap()
    }

    /// Key ids with their access, as `key list --json` shows them.
    fn keys(&self) -> Vec<(String, String)> {
        let out = self.owner(&["--json", "key", "list"]);
        assert_code(&out, 0);
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["access"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Adds a passphrase key (full, or write-only) stored in the repository;
    /// returns its password file and id.
    fn add_stored_key(&self, name: &str, write_only: bool) -> (PathBuf, String) {
        let file = self.env.path(name);
        common::write_password_file(&file, &format!("{name} passphrase"));
        let mut args: Vec<&OsStr> = vec![
            "--json".as_ref(),
            "key".as_ref(),
            "add".as_ref(),
            "--new-password-file".as_ref(),
            file.as_os_str(),
        ];
        if write_only {
            args.push("--write-only".as_ref());
        }
        let out = self.owner(&args);
        assert_code(&out, 0);
        let added: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (file, added["id"].as_str().unwrap().to_string())
    }
}

/// Regression: `snap --key-file writer.key key remove <id>` removed the
/// owner's key (exit 0), and `repair index` rewrote the index under a
/// write-only key. Every command that deletes or rewrites refuses such a
/// key with exit 5 and changes nothing, whether the key came from an
/// exported file or from a passphrase key file stored in the repository.
#[test]
fn write_only_key_deletes_and_rewrites_nothing() {
    let repo = Encrypted::new();
    let (writer_password, writer_id) = repo.add_stored_key("writer-stored", true);
    let owner_id = repo
        .keys()
        .into_iter()
        .find(|(id, access)| access == "full" && *id != writer_id)
        .unwrap()
        .0;
    let listed = repo.owner(&["--json", "snapshots"]);
    assert_code(&listed, 0);
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let first_snapshot = listed[0]["id"].as_str().unwrap().to_string();
    let new_password = repo.env.path("new.pw");
    common::write_password_file(&new_password, "another passphrase");
    let new_password = new_password.to_str().unwrap().to_string();
    let commands: Vec<Vec<&str>> = vec![
        vec!["key", "remove", &owner_id],
        vec!["key", "remove", &writer_id],
        vec!["key", "passwd", "--new-password-file", &new_password],
        vec!["key", "add", "--new-password-file", &new_password],
        vec!["repair", "index"],
        vec!["repair", "index", "--dry-run"],
        vec!["repair", "snapshots"],
        vec!["repair", "snapshots", "--no-read-data"],
        vec!["forget", "--keep-last", "1"],
        vec!["forget", &first_snapshot],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["prune"],
        vec!["prune", "--dry-run"],
    ];
    let before = contents(&repo.env.repo);
    for args in &commands {
        for (how, out) in [
            ("--key-file", repo.with_key_file(&repo.writer, args)),
            (
                "a stored write-only passphrase key",
                repo.with_password(&writer_password, args),
            ),
        ] {
            assert_code(&out, 5);
            let err = stderr_text(&out);
            assert!(
                err.starts_with("snap: a write-only key cannot") && err.lines().count() == 1,
                "{args:?} with {how}: {err}"
            );
            assert_eq!(
                contents(&repo.env.repo),
                before,
                "{args:?} with {how} changed the repository"
            );
        }
    }
    // The owner still opens the repository and removes the write-only key.
    assert_code(&repo.owner(&["key", "remove", &writer_id]), 0);
}

/// Whatever key opened the repository (a passphrase, an exported full key
/// file), the last key file with full access is never removed, nor the key
/// file in use.
#[test]
fn last_full_key_is_never_removed_whatever_key_opened_it() {
    let repo = Encrypted::new();
    let full_file = repo.env.path("full.key");
    assert_code(
        &repo.owner(&[
            "key".as_ref(),
            "add".as_ref(),
            "--output".as_ref(),
            full_file.as_os_str(),
        ]),
        0,
    );
    let (_, writer_id) = repo.add_stored_key("writer-stored", true);
    let keys = repo.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let owner_id = keys
        .iter()
        .find(|(id, _)| *id != writer_id)
        .unwrap()
        .0
        .clone();

    // An exported full key opens the repository without a key file of its
    // own: only the write-only key file would be left.
    let out = repo.with_key_file(&full_file, &["key", "remove", &owner_id[..12]]);
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("last key with full access"),
        "{}",
        stderr_text(&out)
    );
    // The key in use, opened by its passphrase.
    let out = repo.owner(&["key", "remove", &owner_id]);
    assert_code(&out, 2);
    assert!(
        stderr_text(&out).contains("key in use"),
        "{}",
        stderr_text(&out)
    );
    assert_eq!(repo.keys().len(), 2);

    // With a second full key, the first can go; then the second is the last.
    let (second_password, second_id) = repo.add_stored_key("second", false);
    assert_code(
        &repo.with_password(&second_password, &["key", "remove", &owner_id]),
        0,
    );
    let out = repo.with_key_file(&full_file, &["key", "remove", &second_id]);
    assert_code(&out, 2);
    assert!(stderr_text(&out).contains("last key with full access"));
    // The write-only key file may go: the full one stays.
    assert_code(
        &repo.with_key_file(&full_file, &["key", "remove", &writer_id]),
        0,
    );
    let left = repo.with_password(&second_password, &["--json", "key", "list"]);
    assert_code(&left, 0);
    let rows: serde_json::Value = serde_json::from_slice(&left.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["id"], second_id.as_str());
}

/// Runs `snap` for `env` under `umask`, through the shell (a process sets
/// its own umask; the test does not touch its own).
fn snap_with_umask(env: &Env, umask: &str, args: &[&OsStr]) -> Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(common::snap_bin())
        .arg("-r")
        .arg(&env.repo)
        .args(args)
        .env_remove("SNAP_REPO")
        .env("SNAP_PASSWORD", "owner passphrase")
        .env("XDG_CACHE_HOME", env.cache_home());
    cmd.output().unwrap()
}

/// Every entry below `root` whose mode is not 0700 (folders) or 0600 (files).
fn not_private(root: &Path) -> Vec<String> {
    let mut wrong = Vec::new();
    for rel in list_tree(root) {
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let expected = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != expected {
            wrong.push(format!("{} is {mode:o}", path.display()));
        }
    }
    wrong
}

/// Regression: with umask 022 the repository folders were 0755 and the
/// cache `index.redb` 0644, so any local user could read hosts, paths and
/// chunk ids from the cache. Now every folder snap creates for a repository
/// or cache is 0700 and every file 0600, whatever the umask; as root, the
/// files are also read as `nobody`, who must be refused. Restored files
/// keep the modes recorded in the snapshot.
#[test]
fn repository_and_cache_are_private_whatever_the_umask() {
    for umask in ["022", "000"] {
        let env = Env::uninitialized();
        // The test's own folder must not be what keeps other users out.
        fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let src = env.path("src");
        fs::create_dir_all(src.join("shared")).unwrap();
        fs::write(src.join("shared/readable.txt"), b"for everyone").unwrap();
        fs::set_permissions(
            src.join("shared/readable.txt"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        fs::set_permissions(src.join("shared"), fs::Permissions::from_mode(0o755)).unwrap();
        let key_file = env.path("full.key");
        let target = env.path("restored");
        for args in [
            vec!["init".as_ref(), "--encrypt".as_ref()],
            vec!["backup".as_ref(), src.as_os_str()],
            vec![
                "key".as_ref(),
                "add".as_ref(),
                "--output".as_ref(),
                key_file.as_os_str(),
            ],
            vec!["check".as_ref(), "--read-data".as_ref()],
            vec![
                "restore".as_ref(),
                "latest".as_ref(),
                "--target".as_ref(),
                target.as_os_str(),
            ],
        ] {
            assert_code(&snap_with_umask(&env, umask, &args), 0);
        }
        let mut wrong = not_private(&env.repo);
        wrong.extend(not_private(&env.cache_home()));
        let root_mode = fs::metadata(&env.repo).unwrap().permissions().mode() & 0o777;
        let key_mode = fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!((root_mode, key_mode), (0o700, 0o600), "umask {umask}");
        assert!(wrong.is_empty(), "umask {umask}: {wrong:#?}");
        assert!(env.repo_cache().join("index.redb").is_file());
        let restored = target.join("src/shared");
        let modes = [
            fs::metadata(&restored).unwrap().permissions().mode() & 0o777,
            fs::metadata(restored.join("readable.txt"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
        ];
        assert_eq!(modes, [0o755, 0o644], "umask {umask}: restored modes");

        if is_root() {
            // `nobody` reaches the folders (the test folder is 0755) but
            // snap's own modes keep it out.
            let as_nobody = |program: &str, path: &Path| {
                std::process::Command::new("setpriv")
                    .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                    .arg(program)
                    .arg(path)
                    .output()
                    .expect("setpriv runs a command as nobody")
            };
            let shared = env.path("restored/src/shared/readable.txt");
            assert!(
                as_nobody("cat", &shared).status.success(),
                "nobody must reach the test folder for this test to mean anything"
            );
            for path in [
                env.repo_cache().join("index.redb"),
                env.repo.join("config"),
                key_file.clone(),
            ] {
                let out = as_nobody("cat", &path);
                assert!(
                    !out.status.success() && stderr_text(&out).contains("Permission denied"),
                    "nobody read {}",
                    path.display()
                );
            }
            for dir in [
                env.repo.clone(),
                env.repo.join("snapshots"),
                env.repo_cache(),
            ] {
                let out = as_nobody("ls", &dir);
                assert!(!out.status.success(), "nobody listed {}", dir.display());
            }
        }
    }
}

/// The index cache of a local repository lives in the user's cache folder
/// (`XDG_CACHE_HOME/snap/<id>`), not in the repository: a copy of the
/// repository carries no cache. The `cache/index.redb` an older version left
/// inside is removed on open (anything else in that folder stays), and a
/// copy with the same repository id shares the cache safely: it rebuilds
/// when the deltas it loaded are not in the repository it opens.
#[test]
fn cache_lives_in_the_user_cache_folder_and_old_cache_is_removed() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(300_000, 1)).unwrap();
    env.backup(&[&src], &[]);
    assert!(!env.repo.join("cache").exists());
    assert!(env.repo_cache().join("index.redb").is_file());

    // An old repository with its cache inside.
    fs::create_dir(env.repo.join("cache")).unwrap();
    fs::write(env.repo.join("cache/index.redb"), b"an old cache").unwrap();
    env.ok(["snapshots"]);
    assert!(!env.repo.join("cache").exists());
    fs::create_dir(env.repo.join("cache")).unwrap();
    fs::write(env.repo.join("cache/index.redb"), b"an old cache").unwrap();
    fs::write(env.repo.join("cache/notes.txt"), b"the user's").unwrap();
    env.ok(["snapshots"]);
    assert_eq!(
        common::dir_names(&env.repo.join("cache")),
        vec![std::ffi::OsString::from("notes.txt")]
    );
    fs::remove_dir_all(env.repo.join("cache")).unwrap();

    // A copy (same id, same cache) that diverges: each side still restores
    // exactly what it holds, and both check clean.
    let copy = env.path("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let run_on = |repo: &Path, args: &[&OsStr]| {
        let out = common::snap_command()
            .env("XDG_CACHE_HOME", env.cache_home())
            .arg("-r")
            .arg(repo)
            .args(args)
            .output()
            .unwrap();
        assert_code(&out, 0);
        out
    };
    fs::write(src.join("b.bin"), pseudo_random(300_000, 2)).unwrap();
    run_on(&copy, &["backup".as_ref(), src.as_os_str()]);
    fs::remove_file(src.join("b.bin")).unwrap();
    fs::write(src.join("c.bin"), pseudo_random(300_000, 3)).unwrap();
    run_on(&env.repo, &["backup".as_ref(), src.as_os_str()]);
    for (repo, lacks) in [(&copy, "c.bin"), (&env.repo, "b.bin")] {
        run_on(repo, &["check".as_ref(), "--read-data".as_ref()]);
        let target = env.path(&format!("restore-{lacks}"));
        run_on(
            repo,
            &[
                "restore".as_ref(),
                "latest".as_ref(),
                "--target".as_ref(),
                target.as_os_str(),
            ],
        );
        assert!(!target.join("src").join(lacks).exists());
        assert_eq!(
            common::dir_names(&target.join("src")).len(),
            2,
            "{}",
            repo.display()
        );
    }
    assert_eq!(
        fs::read_dir(env.cache_home().join("snap"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "tmp")
            .count(),
        1,
        "one cache for the repository id"
    );
}

/// Waits for `child` at most `limit`; kills it and fails when it takes longer.
fn wait_at_most(mut child: Child, limit: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().ok();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still waiting after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A child process killed when the test ends, also when it fails while
/// the child is stopped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// Regression: with a backup holding the index cache (here stopped with
/// SIGSTOP), `snapshots`, `ls`, `cat`, `diff`, `log`, `find`, `stats`, a
/// restore into an empty folder and `copy` (its source) waited for it (up
/// to an hour). Now they go on with a private cache. The limit is generous: this is no speed test.
#[test]
fn readers_never_wait_behind_a_stopped_backup() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("small.txt"), b"first version").unwrap();
    env.backup(&[&src], &[]);
    fs::write(src.join("small.txt"), b"second version").unwrap();
    env.backup(&[&src], &[]);
    fs::write(src.join("big.bin"), pseudo_random(96 << 20, 9)).unwrap();

    let snapshots = env.snapshots();
    let (older, newer) = (
        snapshots[0]["id"].as_str().unwrap().to_string(),
        snapshots[1]["id"].as_str().unwrap().to_string(),
    );
    let mut backup = KillOnDrop(
        env.spawnable()
            .args(["-q", "backup", "--force"])
            .arg(&src)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The backup announces itself in locks/ after it opened the cache.
    let started = Instant::now();
    while !env.holds_lock() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backup never took its lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&backup.0, "STOP");
    assert!(
        backup.0.try_wait().unwrap().is_none(),
        "the backup finished before it could be stopped; give it more data"
    );

    let target = env.path("restored");
    let target_arg = target.to_str().unwrap().to_string();
    let other = env.path("other").to_str().unwrap().to_string();
    let init_other = common::snap_command()
        .env("XDG_CACHE_HOME", env.cache_home())
        .args(["-r", &other, "init"])
        .output()
        .unwrap();
    assert_code(&init_other, 0);
    let readers: Vec<Vec<&str>> = vec![
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["cat", "latest:src/small.txt"],
        vec!["diff", &older, &newer],
        vec!["log", "src/small.txt"],
        vec!["find", "*.txt"],
        vec!["stats"],
        vec!["restore", "latest", "--target", &target_arg],
        // copy reads its source the same way (the target is another repository).
        vec!["copy", "--to", &other, &newer],
    ];
    for args in &readers {
        let child = env
            .spawnable()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_at_most(child, Duration::from_secs(120), &format!("{args:?}"));
        assert_code(&out, 0);
        if args[0] == "cat" {
            assert_eq!(out.stdout, b"second version");
        }
    }
    assert_eq!(
        fs::read(target.join("src/small.txt")).unwrap(),
        b"second version"
    );

    signal(&backup.0, "CONT");
    let status = backup.0.wait().unwrap();
    assert!(status.success(), "the backup failed after SIGCONT");
    assert_eq!(env.snapshots().len(), 3);
    // Readers leave no private cache behind.
    let leftovers: Vec<PathBuf> = fs::read_dir(env.cache_home().join("snap"))
        .unwrap()
        .flat_map(|cache| fs::read_dir(cache.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name != "index.redb" && !(name.starts_with("index.") && name.ends_with(".blobs"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `snap init` on a folder that holds anything and is not a repository is
/// refused (exit 2, one line) and writes nothing into it; an empty folder
/// is fine.
#[test]
fn init_refuses_a_non_empty_folder() {
    let env = Env::uninitialized();
    fs::create_dir_all(env.repo.join("photos")).unwrap();
    fs::write(env.repo.join("notes.txt"), b"mine").unwrap();
    let before = contents(&env.repo);
    let out = env.run(["init"]);
    assert_code(&out, 2);
    let err = stderr_text(&out);
    assert!(
        err.contains("is not empty") && err.lines().count() == 1,
        "{err}"
    );
    assert_eq!(contents(&env.repo), before);
    assert!(!env.cache_home().exists(), "init wrote a cache");

    fs::remove_dir_all(&env.repo).unwrap();
    fs::create_dir(&env.repo).unwrap();
    env.ok(["init"]);
    assert!(env.repo.join("config").is_file());
    // And a repository is still refused as one.
    let out = env.run(["init"]);
    assert_code(&out, 2);
    assert!(stderr_text(&out).contains("already a snap repository"));
}
