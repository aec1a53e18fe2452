//! The CLI on S3 repositories (a real S3 server on 127.0.0.1: s3s-fs in the
//! test process, or moto with `SNAP_TEST_S3=moto`) and `snap copy` between
//! local and S3 repositories, encrypted or not.

use crate::common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use common::{
    assert_code, assert_same_tree, build_tree, run_json, run_ok, s3, snap_command, stderr_text,
};
use snap::backend::{Backend, FileKind, S3Backend};

/// A repository location (local or s3://) plus the environment snap needs:
/// the AWS variables and a cache folder of its own (one "machine").
struct Repo {
    location: PathBuf,
    port: u16,
    cache: PathBuf,
    password_file: Option<PathBuf>,
    /// Variables set after the AWS ones (to override them).
    extra_env: Vec<(&'static str, String)>,
}

impl Repo {
    fn s3(dir: &Path, bucket: &str, prefix: &str) -> Self {
        Self {
            location: PathBuf::from(format!("s3://{bucket}/{prefix}")),
            port: s3::server().port,
            cache: dir.join("cache"),
            password_file: None,
            extra_env: Vec::new(),
        }
    }

    fn local(dir: &Path, name: &str) -> Self {
        Self {
            location: dir.join(name),
            port: s3::server().port,
            cache: dir.join("cache"),
            password_file: None,
            extra_env: Vec::new(),
        }
    }

    /// `snap -r LOCATION` with this repository's environment, ready for
    /// arguments.
    fn cmd(&self) -> Command {
        let mut cmd = snap_command();
        cmd.envs(s3::aws_env(self.port))
            .envs(self.extra_env.iter().cloned())
            .env("XDG_CACHE_HOME", &self.cache)
            .arg("-r")
            .arg(&self.location);
        if let Some(file) = &self.password_file {
            cmd.arg("--password-file").arg(file);
        }
        cmd
    }

    fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd().args(args).output().expect("run snap")
    }

    #[track_caller]
    fn ok<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_ok(self.cmd().args(args))
    }

    #[track_caller]
    fn json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_json(self.cmd().arg("--json").args(args))
    }

    fn snapshot_ids(&self) -> Vec<String> {
        self.json(["snapshots"])
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[track_caller]
    fn restore_matches(&self, snapshot: &str, expected: &Path, scratch: &Path) {
        let target = scratch.join(format!("restore-{}", rand_suffix()));
        self.ok([
            OsStr::new("restore"),
            OsStr::new(snapshot),
            OsStr::new("--target"),
            target.as_os_str(),
        ]);
        assert_same_tree(expected, &target.join(expected.file_name().unwrap()));
        std::fs::remove_dir_all(&target).unwrap();
    }
}

/// The arguments of `copy --to TARGET EXTRA...`.
fn copy_to<'a>(target: &'a Repo, extra: &[&'a OsStr]) -> Vec<&'a OsStr> {
    let mut args = vec![
        OsStr::new("copy"),
        OsStr::new("--to"),
        target.location.as_os_str(),
    ];
    args.extend_from_slice(extra);
    args
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

#[test]
fn every_command_works_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let repo = Repo::s3(dir.path(), &bucket, "backups/laptop");
    let source = build_tree(dir.path(), "src");
    repo.ok(["init"]);
    // init twice is refused, and nothing is lost.
    assert_code(&repo.run(["init"]), 2);
    let first = repo.json([OsStr::new("backup"), source.root.as_os_str()]);
    std::fs::write(source.root.join("added.txt"), b"a new file").unwrap();
    let second = repo.json([OsStr::new("backup"), source.root.as_os_str()]);
    assert_eq!(repo.snapshot_ids().len(), 2);
    assert!(first["id"] != second["id"]);
    repo.restore_matches("latest", &source.root, dir.path());
    repo.ok(["check", "--read-data"]);
    let ls = String::from_utf8(repo.ok(["ls", "latest"])).unwrap();
    assert!(ls.contains("src"), "{ls}");
    // forget + prune remove data on S3 too, and the rest still checks.
    repo.ok(["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(repo.snapshot_ids().len(), 1);
    repo.ok(["check", "--read-data"]);
    repo.restore_matches("latest", &source.root, dir.path());
    // No lock is left behind.
    let vars: std::collections::HashMap<_, _> = s3::aws_env(repo.port).into_iter().collect();
    let backend = S3Backend::with_vars(&format!("s3://{bucket}/backups/laptop"), |name| {
        vars.get(name).cloned()
    })
    .unwrap();
    assert_eq!(
        backend.list(FileKind::Lock).unwrap(),
        vec![],
        "locks left behind"
    );
}

#[test]
fn another_machine_sees_new_snapshots_and_its_cache_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let a = Repo::s3(&dir.path().join("a"), &bucket, "shared");
    let b = Repo::s3(&dir.path().join("b"), &bucket, "shared");
    let source = build_tree(dir.path(), "src");
    a.ok(["init"]);
    a.json([OsStr::new("backup"), source.root.as_os_str()]);
    assert_eq!(b.snapshot_ids().len(), 1);
    std::fs::write(source.root.join("from-b"), b"written on machine b").unwrap();
    b.json([OsStr::new("backup"), source.root.as_os_str()]);
    // a's cache is stale: it loads b's index delta, and dedup uses it.
    assert_eq!(a.snapshot_ids().len(), 2);
    a.restore_matches("latest", &source.root, dir.path());
    // A prune on b replaces deltas a has loaded: a rebuilds its cache.
    b.ok(["forget", "--keep-last", "1", "--prune"]);
    a.ok(["check"]);
    // A cache deleted outright is rebuilt from the index deltas.
    std::fs::remove_dir_all(&a.cache).unwrap();
    a.ok(["check", "--read-data"]);
    a.restore_matches("latest", &source.root, dir.path());
}

#[test]
fn copy_local_to_s3_and_back_twice_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let local = Repo::local(dir.path(), "local");
    let remote = Repo::s3(dir.path(), &bucket, "offsite");
    let source = build_tree(dir.path(), "src");
    local.ok(["init"]);
    local.json([OsStr::new("backup"), source.root.as_os_str()]);
    std::fs::write(source.root.join("second.txt"), b"second").unwrap();
    local.json([OsStr::new("backup"), source.root.as_os_str()]);
    // The target must exist.
    let out = local.run(copy_to(&remote, &[]));
    assert_code(&out, 1);
    assert!(
        stderr_text(&out).contains("not a snap repository"),
        "{}",
        stderr_text(&out)
    );
    remote.ok(["init"]);
    let report = local.json(copy_to(&remote, &[]));
    assert_eq!(report["copied"].as_array().unwrap().len(), 2);
    assert_eq!(report["same_ids"], true);
    assert!(report["bytes_added"].as_u64().unwrap() > 0);
    remote.ok(["check", "--read-data"]);
    remote.restore_matches("latest", &source.root, dir.path());
    // Again: nothing to do, nothing sent.
    let again = local.json(copy_to(&remote, &[]));
    assert_eq!(again["copied"].as_array().unwrap().len(), 0);
    assert_eq!(again["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(again["bytes_added"], 0);
    assert_eq!(remote.snapshot_ids().len(), 2);
    // Back from S3 into a new local repository: the copies are recognised
    // as the originals, so copying back into the first one is a no-op too.
    let back = remote.json(copy_to(&local, &[]));
    assert_eq!(back["copied"].as_array().unwrap().len(), 0, "{back}");
    let restored = Repo::local(dir.path(), "restored");
    restored.ok(["init"]);
    let report = remote.json(copy_to(&restored, &[OsStr::new("latest")]));
    assert_eq!(report["copied"].as_array().unwrap().len(), 1);
    assert_eq!(restored.snapshot_ids().len(), 1);
    restored.ok(["check", "--read-data"]);
    restored.restore_matches("latest", &source.root, dir.path());
    // An unknown selector is "nothing matched".
    let out = remote.run(copy_to(&restored, &[OsStr::new("ffffffff")]));
    assert_code(&out, 10);
    // A repository into itself is refused.
    let out = local.run(copy_to(&local, &[]));
    assert_code(&out, 2);
}

#[test]
fn copy_between_encrypted_and_unencrypted_repositories_re_ids_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let password = dir.path().join("password");
    std::fs::write(&password, "correct horse\n").unwrap();
    let mut encrypted = Repo::s3(dir.path(), &bucket, "encrypted");
    encrypted.password_file = Some(password.clone());
    let plain = Repo::local(dir.path(), "plain");
    let source = build_tree(dir.path(), "src");
    encrypted.ok(["init", "--encrypt"]);
    encrypted.json([OsStr::new("backup"), source.root.as_os_str()]);
    plain.ok(["init"]);
    // Encrypted -> unencrypted: ids differ, so every blob is re-stored.
    let report = encrypted.json(copy_to(&plain, &[]));
    assert_eq!(report["same_ids"], false);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1);
    plain.ok(["check", "--read-data"]);
    plain.restore_matches("latest", &source.root, dir.path());
    let again = encrypted.json(copy_to(&plain, &[]));
    assert_eq!(again["skipped"].as_array().unwrap().len(), 1);
    // Unencrypted -> a second encrypted repository, with the target's password.
    let mut other = Repo::local(dir.path(), "other");
    other.password_file = Some(password.clone());
    other.ok(["init", "--encrypt"]);
    let out = plain.run(copy_to(&other, &[]));
    assert_code(&out, 5);
    let report = plain.json(copy_to(
        &other,
        &[OsStr::new("--to-password-file"), password.as_os_str()],
    ));
    assert_eq!(report["copied"].as_array().unwrap().len(), 1);
    other.ok(["check", "--read-data"]);
    other.restore_matches("latest", &source.root, dir.path());
    // The copy of a copy still knows its original: nothing to copy back.
    let back = other.json(copy_to(
        &encrypted,
        &[OsStr::new("--to-password-file"), password.as_os_str()],
    ));
    assert_eq!(back["skipped"].as_array().unwrap().len(), 1, "{back}");
}

#[test]
fn copy_chunker_params_keeps_encrypted_copies_deduplicated() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let password = dir.path().join("password");
    std::fs::write(&password, "pw one\n").unwrap();
    let password2 = dir.path().join("password2");
    std::fs::write(&password2, "pw two\n").unwrap();
    let mut local = Repo::local(dir.path(), "local");
    local.password_file = Some(password.clone());
    local.ok(["init", "--encrypt"]);
    let mut remote = Repo::s3(dir.path(), &bucket, "copy");
    remote.password_file = Some(password2.clone());
    remote.ok([
        OsStr::new("init"),
        OsStr::new("--encrypt"),
        OsStr::new("--copy-chunker-params-from"),
        local.location.as_os_str(),
        OsStr::new("--from-password-file"),
        password.as_os_str(),
    ]);
    let source = build_tree(dir.path(), "src");
    local.json([OsStr::new("backup"), source.root.as_os_str()]);
    let report = local.json(copy_to(
        &remote,
        &[OsStr::new("--to-password-file"), password2.as_os_str()],
    ));
    assert_eq!(report["same_ids"], true);
    remote.restore_matches("latest", &source.root, dir.path());
    // A backup straight into the copy finds every chunk already there.
    let direct = remote.json([OsStr::new("backup"), source.root.as_os_str()]);
    assert_eq!(direct["bytes_added"], 0, "{direct}");
    // The other password does not open the source.
    let mut wrong = Repo::local(dir.path(), "local");
    wrong.password_file = Some(password2.clone());
    assert_code(&wrong.run(["snapshots"]), 5);
}

#[test]
fn transient_s3_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let proxy = s3::FlakyProxy::start(s3::server().port, 3, 503);
    let mut repo = Repo::s3(dir.path(), &bucket, "flaky");
    repo.port = proxy.port;
    let source = build_tree(dir.path(), "src");
    repo.ok(["init"]);
    repo.json([OsStr::new("backup"), source.root.as_os_str()]);
    assert!(proxy.requests.load(std::sync::atomic::Ordering::SeqCst) > 3);
    repo.ok(["check", "--read-data"]);
}

#[test]
fn a_permanent_s3_error_names_the_operation_and_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    // Throttled forever: retried, then given up on.
    let proxy = s3::FlakyProxy::start(s3::server().port, usize::MAX, 503);
    let mut repo = Repo::s3(dir.path(), &bucket, "down");
    repo.port = proxy.port;
    let out = repo.run(["snapshots"]);
    assert_code(&out, 1);
    let err = stderr_text(&out);
    assert!(err.contains(&format!("s3://{bucket}/down/config")), "{err}");
    assert!(err.contains("cannot read config"), "{err}");
    assert!(err.contains("attempts"), "{err}");
    assert!(proxy.requests.load(std::sync::atomic::Ordering::SeqCst) >= 6);
    // Access denied is not retried, and names the object too.
    let proxy = s3::FlakyProxy::start(s3::server().port, usize::MAX, 403);
    repo.port = proxy.port;
    let out = repo.run(["snapshots"]);
    assert_code(&out, 1);
    let err = stderr_text(&out);
    assert!(err.contains(&format!("s3://{bucket}/down/config")), "{err}");
    assert!(!err.contains("attempts"), "{err}");
    assert_eq!(
        proxy.requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{err}"
    );
    // A bad location is a usage error.
    let bad = Repo {
        location: PathBuf::from("s3://Not_A_Bucket/x"),
        ..Repo::local(dir.path(), "unused")
    };
    assert_code(&bad.run(["snapshots"]), 2);
}

#[test]
fn wrong_s3_credentials_fail_with_one_line_and_change_nothing() {
    if s3::server_checking_credentials().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let source = build_tree(dir.path(), "src");
    let good = Repo::s3(dir.path(), &bucket, "guarded");
    good.ok(["init"]);
    good.json([OsStr::new("backup"), source.root.as_os_str()]);
    for (name, value) in [
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ("AWS_ACCESS_KEY_ID", "someone-else"),
    ] {
        let bad = Repo {
            extra_env: vec![(name, value.to_string())],
            ..Repo::s3(dir.path(), &bucket, "guarded")
        };
        for args in [
            &["snapshots"][..],
            &["backup", "--json", "/nonexistent"][..],
        ] {
            let out = bad.run(args);
            // Refused at once (a 403 is not retried), with one line that
            // names the object and the credentials to check.
            assert_code(&out, 1);
            let err = stderr_text(&out);
            assert_eq!(err.trim_end().lines().count(), 1, "{name} {args:?}: {err}");
            assert!(
                err.contains(&format!("s3://{bucket}/guarded/config")),
                "{name} {args:?}: {err}"
            );
            assert!(
                err.contains("AWS_SECRET_ACCESS_KEY"),
                "{name} {args:?}: {err}"
            );
            assert!(!err.contains("attempts"), "{name} {args:?}: {err}");
        }
    }
    // Nothing was lost or added: the right keys still see the one snapshot.
    assert_eq!(good.snapshot_ids().len(), 1);
    good.ok(["check", "--read-data"]);
}

#[test]
fn copy_rewrites_chunk_lists_and_copied_chunker_params_keep_dedup() {
    use snap::{NoProgress, Repository as Lib};
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    // Small chunks and packs: a few megabytes make chunk lists (files of
    // more than 32 chunks) and many packs (uploads in parallel).
    let local = Repo::local(dir.path(), "local");
    let options = common::small_repo_options(32 << 10);
    drop(
        Lib::init(
            common::local_backend(&local.location),
            &options,
            &NoProgress,
        )
        .unwrap(),
    );
    let source = dir.path().join("big");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("a.bin"), common::pseudo_random(6 << 20, 1)).unwrap();
    std::fs::write(source.join("b.bin"), common::pseudo_random(3 << 20, 2)).unwrap();
    local.json([OsStr::new("backup"), source.as_os_str()]);

    // Into an encrypted S3 repository: new ids, chunk lists rewritten.
    let password = dir.path().join("password");
    std::fs::write(&password, "pw\n").unwrap();
    let mut encrypted = Repo::s3(dir.path(), &bucket, "enc");
    encrypted.password_file = Some(password.clone());
    encrypted.ok(["init", "--encrypt"]);
    let report = local.json(copy_to(
        &encrypted,
        &[OsStr::new("--to-password-file"), password.as_os_str()],
    ));
    assert_eq!(report["same_ids"], false);
    encrypted.ok(["check", "--read-data"]);
    encrypted.restore_matches("latest", &source, dir.path());

    // Into an unencrypted S3 repository that chunks like the source: a
    // backup straight into it finds every chunk there.
    let plain = Repo::s3(dir.path(), &bucket, "plain");
    plain.ok([
        OsStr::new("init"),
        OsStr::new("--copy-chunker-params-from"),
        local.location.as_os_str(),
    ]);
    let report = local.json(copy_to(&plain, &[]));
    assert_eq!(report["same_ids"], true);
    assert!(
        report["bytes_added"].as_u64().unwrap() >= 9 << 20,
        "{report}"
    );
    plain.ok(["check", "--read-data"]);
    plain.restore_matches("latest", &source, dir.path());
    let direct = plain.json([OsStr::new("backup"), source.as_os_str()]);
    assert_eq!(direct["bytes_added"], 0, "{direct}");
}

/// Turning a feature on rewrites the config on S3 too, with one PUT that
/// replaces the object: a copy of the SQLite dictionary fixture into a new
/// S3 repository turns its config from version 1 into version 2, and the
/// copy checks clean.
#[test]
fn a_copied_dictionary_turns_the_feature_on_in_an_s3_config() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = s3::new_bucket();
    let local = Repo::local(dir.path(), "local");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sqlite-dictionary/repo");
    let status = std::process::Command::new("cp")
        .arg("-R")
        .arg(&fixture)
        .arg(&local.location)
        .status()
        .unwrap();
    assert!(status.success());
    let remote = Repo::s3(dir.path(), &bucket, "offsite");
    remote.ok(["init"]);
    let vars: std::collections::HashMap<_, _> = s3::aws_env(remote.port).into_iter().collect();
    let backend = S3Backend::with_vars(&format!("s3://{bucket}/offsite"), |name| {
        vars.get(name).cloned()
    })
    .unwrap();
    let dictionaries = || {
        let bytes = backend.read(FileKind::Config, "config").unwrap();
        snap::internals::format::config::Config::from_bytes(&bytes)
            .unwrap()
            .has_feature(snap::internals::format::config::Feature::SqliteDictionary)
    };
    assert!(!dictionaries());
    local.ok(copy_to(&remote, &[]));
    assert!(dictionaries());
    remote.ok(["check", "--read-data"]);
}
