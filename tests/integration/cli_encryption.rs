//! Encrypted repositories through the real binary: passphrases, recipients,
//! write-only keys, tamper detection, no plaintext in the repository, and
//! recovery of blobs with the reference `age` and `zstd` programs.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};

use assert_cmd::Command;
use common::tools::require_program;
use common::{first_entry, flip_byte, output_with_stdin, stderr_text};

const NAME: &str = "word_photo_beach_unique_name.md";
const CONTENT: &str = "The tide came in at seven; Lyra remembered the colour of the sky.";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let src = root.join("entity");
        fs::create_dir_all(src.join("memories")).unwrap();
        fs::write(src.join("memories").join(NAME), CONTENT).unwrap();
        let big: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        fs::write(src.join("big.bin"), big).unwrap();
        Self { _dir: dir, root }
    }

    /// A fixture whose repository is encrypted with the passphrase "pw" and
    /// holds one backup of the source: the start of most tests here.
    fn backed_up() -> Self {
        let f = Self::new();
        f.snap(Some("pw"))
            .args(["init", "--encrypt"])
            .assert()
            .success();
        f.snap(Some("pw"))
            .arg("backup")
            .arg(f.src())
            .assert()
            .success();
        f
    }

    fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    fn src(&self) -> PathBuf {
        self.root.join("entity")
    }

    fn cache_home(&self) -> PathBuf {
        self.root.join("xdg-cache")
    }

    fn snap(&self, password: Option<&str>) -> Command {
        let mut cmd = Command::cargo_bin("snap").unwrap();
        cmd.arg("-r")
            .arg(self.repo())
            .env_remove("SNAP_PASSWORD")
            .env_remove("SNAP_REPO")
            .env("XDG_CACHE_HOME", self.cache_home());
        if let Some(p) = password {
            cmd.env("SNAP_PASSWORD", p);
        }
        cmd
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn passphrase_round_trip_leaks_no_names_or_content() {
    let f = Fixture::backed_up();
    f.snap(Some("pw"))
        .arg("backup")
        .arg(f.src())
        .assert()
        .success();

    let mut files = Vec::new();
    all_files(&f.repo(), &mut files);
    assert!(files.len() > 4);
    for file in &files {
        let bytes = fs::read(file).unwrap();
        for needle in [NAME.as_bytes(), CONTENT.as_bytes(), b"memories", b"entity"] {
            assert!(
                !contains(&bytes, needle),
                "{} contains {:?}",
                file.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }

    let out = f
        .snap(Some("pw"))
        .arg("cat")
        .arg(format!("latest:entity/memories/{NAME}"))
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, CONTENT.as_bytes());
    let target = f.root.join("restored");
    f.snap(Some("pw"))
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(
        fs::read(target.join("entity/big.bin")).unwrap(),
        fs::read(f.src().join("big.bin")).unwrap()
    );
}

#[test]
fn wrong_or_missing_password_exits_5() {
    let f = Fixture::new();
    f.snap(Some("right"))
        .args(["init", "--encrypt"])
        .assert()
        .success();
    let out = f.snap(Some("wrong")).arg("snapshots").assert().code(5);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(stderr.contains("wrong password"), "{stderr}");
    assert!(
        !stderr.contains("wrong\n") && !stderr.contains("right"),
        "secret leaked: {stderr}"
    );
    f.snap(None)
        .arg("snapshots")
        .write_stdin("")
        .assert()
        .code(5);
}

#[test]
fn write_only_key_backs_up_but_cannot_read() {
    let f = Fixture::backed_up();
    let key = f.root.join("writer.key");
    f.snap(Some("pw"))
        .args(["key", "add", "--write-only", "--output"])
        .arg(&key)
        .assert()
        .success();

    let writer = |args: &[&str]| {
        let mut cmd = f.snap(None);
        cmd.arg("--key-file").arg(&key).args(args);
        cmd
    };
    let first = writer(&["--json", "backup"])
        .arg(f.src())
        .assert()
        .success();
    let first: serde_json::Value = serde_json::from_slice(&first.get_output().stdout).unwrap();
    assert_eq!(
        first["bytes_added"], 0,
        "dedup with the full key's snapshot: {first}"
    );
    let second = writer(&["--json", "backup"])
        .arg(f.src())
        .assert()
        .success();
    let second: serde_json::Value = serde_json::from_slice(&second.get_output().stdout).unwrap();
    assert_eq!(second["files_unchanged"], 2, "{second}");
    assert_eq!(second["bytes_read"], 0, "{second}");

    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["cat", "latest:entity/big.bin"],
    ] {
        let out = writer(&args).assert().code(5);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
        assert!(stderr.contains("can only write"), "{args:?}: {stderr}");
    }
    let target = f.root.join("t");
    writer(&["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .code(5);

    // The full key sees all three snapshots and restores the write-only one.
    let list = f
        .snap(Some("pw"))
        .args(["--json", "snapshots"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&list.get_output().stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    f.snap(Some("pw"))
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .success();
    assert_eq!(
        fs::read_to_string(target.join("entity/memories").join(NAME)).unwrap(),
        CONTENT
    );
}

#[test]
fn recipients_and_identity_file() {
    if !require_program("age-keygen", "apt-get install age") {
        return;
    }
    let f = Fixture::new();
    let identity = f.root.join("me.txt");
    let out = Process::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = fs::read_to_string(&identity).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    f.snap(None)
        .args(["init", "--recipient", &recipient])
        .assert()
        .success();
    f.snap(None)
        .arg("--identity-file")
        .arg(&identity)
        .arg("backup")
        .arg(f.src())
        .assert()
        .success();
    let out = f
        .snap(None)
        .arg("--identity-file")
        .arg(&identity)
        .arg("cat")
        .arg(format!("latest:entity/memories/{NAME}"))
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, CONTENT.as_bytes());
    // Another identity does not open it.
    let other = f.root.join("other.txt");
    Process::new("age-keygen")
        .arg("-o")
        .arg(&other)
        .output()
        .unwrap();
    f.snap(None)
        .arg("--identity-file")
        .arg(&other)
        .arg("snapshots")
        .assert()
        .code(5);
}

#[test]
fn key_management() {
    let f = Fixture::new();
    f.snap(Some("one"))
        .args(["init", "--encrypt"])
        .assert()
        .success();
    let list = f
        .snap(Some("one"))
        .args(["--json", "key", "list"])
        .assert()
        .success();
    let list: serde_json::Value = serde_json::from_slice(&list.get_output().stdout).unwrap();
    let first = list[0]["id"].as_str().unwrap().to_string();
    // Removing the last (and current) key is refused.
    f.snap(Some("one"))
        .args(["key", "remove", &first[..8]])
        .assert()
        .code(2);
    f.snap(Some("one"))
        .env("SNAP_NEW_PASSWORD", "two")
        .args(["key", "add"])
        .assert()
        .success();
    f.snap(Some("two")).arg("snapshots").assert().success();
    // Remove the first key using the second.
    f.snap(Some("two"))
        .args(["key", "remove", &first[..8]])
        .assert()
        .success();
    f.snap(Some("one")).arg("snapshots").assert().code(5);
    // Change the password.
    f.snap(Some("two"))
        .env("SNAP_NEW_PASSWORD", "three")
        .args(["key", "passwd"])
        .assert()
        .success();
    f.snap(Some("two")).arg("snapshots").assert().code(5);
    f.snap(Some("three")).arg("snapshots").assert().success();
}

#[test]
fn tampering_with_each_object_kind_is_detected() {
    let f = Fixture::backed_up();
    let mut files = Vec::new();
    all_files(&f.repo().join("data"), &mut files);
    // Every data pack: flip a byte in the middle; restoring must fail loudly, never return wrong bytes.
    let biggest = files
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let size = fs::metadata(&biggest).unwrap().len();
    flip_byte(&biggest, size / 2);
    let target = f.root.join("t1");
    let out = f
        .snap(Some("pw"))
        .args(["restore", "latest", "--target"])
        .arg(&target)
        .assert()
        .failure();
    assert_eq!(
        out.get_output().status.code(),
        Some(4),
        "{:?}",
        out.get_output()
    );
    if let Ok(bytes) = fs::read(target.join("entity/big.bin")) {
        assert_eq!(
            bytes,
            fs::read(f.src().join("big.bin")).unwrap(),
            "a damaged file was restored"
        );
    }

    // A snapshot object.
    let f = Fixture::backed_up();
    let snap_file = first_entry(&f.repo().join("snapshots"));
    flip_byte(&snap_file, 200);
    let out = f.snap(Some("pw")).arg("snapshots").assert().code(4);
    assert_names_file(out.get_output(), &snap_file);

    // An index delta: reported when the cache is rebuilt from it.
    let f = Fixture::backed_up();
    let index_file = first_entry(&f.repo().join("index"));
    flip_byte(&index_file, 300);
    fs::remove_dir_all(f.cache_home()).unwrap();
    let out = f
        .snap(Some("pw"))
        .arg("cat")
        .arg(format!("latest:entity/memories/{NAME}"))
        .assert()
        .failure();
    assert_names_file(out.get_output(), &index_file);
}

/// Asserts that stderr names the damaged `file`, so the user learns which
/// object to look at.
#[track_caller]
fn assert_names_file(out: &Output, file: &Path) {
    let stderr = stderr_text(out);
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(stderr.contains(name.as_ref()), "{stderr}");
}

fn pipe(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let (out, written) = output_with_stdin(
        Process::new(program).args(args).stdout(Stdio::piped()),
        input,
    );
    written.unwrap();
    assert!(out.status.success(), "{program} {args:?} failed");
    out.stdout
}

#[derive(serde::Deserialize)]
struct Entry {
    kind: String,
    offset: u32,
    length: u32,
}

#[derive(serde::Deserialize)]
struct Trailer {
    blobs: Vec<Entry>,
}

/// docs/FORMAT.md's recovery walkthrough, with the reference programs only.
#[test]
fn blobs_decrypt_with_age_and_zstd_cli() {
    if !require_program("age", "apt-get install age")
        || !require_program("zstd", "apt-get install zstd")
    {
        return;
    }
    let f = Fixture::backed_up();
    let out = f
        .snap(Some("pw"))
        .args(["key", "export-identity"])
        .assert()
        .success();
    let identity = f.root.join("identity.txt");
    fs::write(&identity, &out.get_output().stdout).unwrap();
    let identity = identity.to_str().unwrap().to_string();

    let mut packs = Vec::new();
    all_files(&f.repo().join("data"), &mut packs);
    let mut recovered = Vec::new();
    for pack in packs {
        let bytes = fs::read(&pack).unwrap();
        assert_eq!(&bytes[..8], b"SNAPPACK");
        let len = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
        let trailer_frame = &bytes[bytes.len() - 4 - len..bytes.len() - 4];
        let trailer = pipe(
            "zstd",
            &["-d", "-c"],
            &pipe("age", &["-d", "-i", &identity], trailer_frame),
        );
        let trailer: Trailer = rmp_serde::from_slice(&trailer).unwrap();
        for blob in trailer.blobs.iter().filter(|b| b.kind == "data") {
            let frame = &bytes[blob.offset as usize..(blob.offset + blob.length) as usize];
            recovered.push(pipe(
                "zstd",
                &["-d", "-c"],
                &pipe("age", &["-d", "-i", &identity], frame),
            ));
        }
    }
    assert!(
        recovered.iter().any(|b| b == CONTENT.as_bytes()),
        "the markdown file was not recovered"
    );
    let big = fs::read(f.src().join("big.bin")).unwrap();
    let total: usize = recovered
        .iter()
        .filter(|b| big.windows(b.len().min(64)).next().is_some())
        .map(Vec::len)
        .sum();
    assert!(
        total >= big.len(),
        "the big file's chunks were not all recovered"
    );
}

/// Every age header snap writes is the version line, the one X25519
/// stanza and the MAC: 168 bytes, no "grease" stanza (which every frame of
/// a session would repeat), and every frame still opens.
#[test]
fn age_headers_hold_only_the_x25519_stanza() {
    let f = Fixture::backed_up();
    let mut files = Vec::new();
    all_files(&f.repo().join("data"), &mut files);
    all_files(&f.repo().join("index"), &mut files);
    all_files(&f.repo().join("snapshots"), &mut files);
    let start = b"age-encryption.org/v1\n";
    let mut headers = 0;
    for file in &files {
        let bytes = fs::read(file).unwrap();
        let mut at = 0;
        while let Some(i) = bytes[at..].windows(start.len()).position(|w| w == start) {
            let header = &bytes[at + i..];
            let end = header.windows(4).position(|w| w == b"--- ").unwrap() + 4 + 43 + 1;
            let text = String::from_utf8_lossy(&header[..end]);
            assert_eq!(end, 168, "{}: {text}", file.display());
            assert_eq!(text.matches("\n-> ").count(), 1, "{text}");
            assert!(text.contains("\n-> X25519 "), "{text}");
            headers += 1;
            at += i + end;
        }
    }
    // A data pack, a metadata pack and their trailers, an index delta, a snapshot.
    assert!(headers >= 6, "{headers} headers");
    // Every frame still opens and matches its id.
    f.snap(Some("pw"))
        .args(["check", "--read-data"])
        .assert()
        .success();
}
