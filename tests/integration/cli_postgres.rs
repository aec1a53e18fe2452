//! A real PostgreSQL server, started by the test on 127.0.0.1: `pg_dump`
//! through `snap backup --stdin-from-command`, then `snap cat | pg_restore`
//! into a fresh database, and the rows compared.
//!
//! The server binaries come from the Debian `postgresql` package (.ci/run
//! installs it). Outside CI, a machine without them skips the test with one
//! line saying so; under CI their absence fails it (`common::tools`).

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{Env, assert_code, is_root, stderr_text};

/// The folder holding initdb, pg_ctl, pg_dump and friends.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    found.sort();
    if let Some(newest) = found.pop() {
        return Some(newest);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// `runuser` (util-linux), which root uses to start the server as another
/// user: on `PATH`, or where Debian keeps it (`/usr/sbin`, often not on a
/// user's `PATH`).
fn runuser() -> Option<PathBuf> {
    common::tools::find_program("runuser").or_else(|| {
        ["/usr/sbin/runuser", "/sbin/runuser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    })
}

/// The OS user the server runs as: the current one, or, for root (initdb
/// refuses root), `postgres` if it exists, else `nobody`.
fn server_user() -> Option<nix::unistd::User> {
    if !is_root() {
        return None;
    }
    ["postgres", "nobody"]
        .iter()
        .find_map(|name| nix::unistd::User::from_name(name).ok().flatten())
}

/// A PostgreSQL server in a temporary folder, stopped on drop.
struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    user: Option<nix::unistd::User>,
    port: u16,
}

const SUPERUSER: &str = "snaptest";

impl Server {
    fn start(bin: PathBuf) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("snap-pg-")
            .tempdir()
            .unwrap();
        let user = server_user();
        if let Some(user) = &user {
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server {
            bin,
            dir,
            user,
            port,
        };
        let data = server.dir.path().join("data");
        let out = server.as_server_user(&[
            server.bin.join("initdb").as_os_str(),
            "-D".as_ref(),
            data.as_os_str(),
            "-U".as_ref(),
            SUPERUSER.as_ref(),
            "--auth=trust".as_ref(),
            "--no-sync".as_ref(),
        ]);
        assert!(out.status.success(), "initdb: {}", stderr_text(&out));
        let options = format!(
            "-k {} -h 127.0.0.1 -p {port} -c fsync=off",
            server.dir.path().display()
        );
        let log = server.dir.path().join("server.log");
        let out = server.as_server_user(&[
            server.bin.join("pg_ctl").as_os_str(),
            "-D".as_ref(),
            data.as_os_str(),
            "-o".as_ref(),
            options.as_ref(),
            "-l".as_ref(),
            log.as_os_str(),
            "-w".as_ref(),
            "-t".as_ref(),
            "120".as_ref(),
            "start".as_ref(),
        ]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            stderr_text(&out),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        server
    }

    /// Runs a program as the server's user.
    fn as_server_user(&self, args: &[&std::ffi::OsStr]) -> Output {
        let mut cmd = match &self.user {
            Some(user) => {
                let mut cmd = Command::new(runuser().expect("runuser, checked before the start"));
                cmd.arg("-u").arg(&user.name).arg("--");
                cmd.args(args);
                cmd
            }
            None => {
                let mut cmd = Command::new(args[0]);
                cmd.args(&args[1..]);
                cmd
            }
        };
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// A client program with the connection options.
    fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
        ]);
        cmd
    }

    /// The connection options as shell words, for a command snap runs.
    fn shell_client(&self, program: &str) -> String {
        format!(
            "{} -h 127.0.0.1 -p {} -U {SUPERUSER}",
            self.bin.join(program).display(),
            self.port
        )
    }

    #[track_caller]
    fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .client("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "psql {sql}: {}", stderr_text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    #[track_caller]
    fn createdb(&self, db: &str) {
        let out = self.client("createdb").arg(db).output().unwrap();
        assert!(out.status.success(), "createdb: {}", stderr_text(&out));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self.as_server_user(&[
            self.bin.join("pg_ctl").as_os_str(),
            "-D".as_ref(),
            data.as_os_str(),
            "-m".as_ref(),
            "immediate".as_ref(),
            "-w".as_ref(),
            "stop".as_ref(),
        ]);
    }
}

fn server_or_skip() -> Option<Server> {
    let bin = common::tools::require(
        postgres_bin(),
        "PostgreSQL's initdb and pg_ctl",
        "apt-get install postgresql",
    )?;
    // initdb refuses root: root runs the server as another user.
    if is_root() {
        common::tools::require(runuser(), "runuser", "apt-get install util-linux")?;
    }
    Some(Server::start(bin))
}

const ROWS_QUERY: &str = "SELECT id, name, md5(payload) FROM memories ORDER BY id";

#[test]
fn pg_dump_through_snap_restores_with_pg_restore() {
    let Some(server) = server_or_skip() else {
        return;
    };
    server.createdb("lyra");
    server.psql(
        "lyra",
        "CREATE TABLE memories (id int PRIMARY KEY, name text, payload text);
         INSERT INTO memories
           SELECT i, 'memory ' || i,
                  (SELECT string_agg(md5(i || '-' || j), '') FROM generate_series(1, 40) AS j)
           FROM generate_series(1, 10000) AS i;",
    );
    let rows = server.psql("lyra", ROWS_QUERY);
    assert_eq!(rows.lines().count(), 10000);

    let env = Env::new();
    // Uncompressed (-Z0), so unchanged table data gives identical chunks.
    let dump = format!("{} -Fc -Z0 lyra", server.shell_client("pg_dump"));
    let first = env.json([
        "backup",
        "--stdin-from-command",
        &dump,
        "--stdin-name",
        "postgres/lyra.dump",
    ]);
    assert!(first["bytes"].as_u64().unwrap() > 10_000, "{first}");

    // Dumping the unchanged database again adds little: the stream is deduplicated.
    let second = env.json([
        "backup",
        "--stdin-from-command",
        &dump,
        "--stdin-name",
        "postgres/lyra.dump",
    ]);
    let size = second["bytes"].as_u64().unwrap();
    let added = second["bytes_added"].as_u64().unwrap();
    eprintln!("second dump of {size} bytes added {added} bytes");
    assert!(
        added < size / 4,
        "second dump of {size} bytes added {added}"
    );

    // snap cat | pg_restore into a fresh database.
    server.createdb("restored");
    let mut cat = std::process::Command::new(common::snap_bin())
        .arg("-r")
        .arg(&env.repo)
        .args(["cat", "latest:postgres/lyra.dump"])
        .env_remove("SNAP_CONFIG")
        .env("XDG_CACHE_HOME", env.cache_home())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let restore = server
        .client("pg_restore")
        .args(["-d", "restored", "--no-owner"])
        .stdin(cat.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(cat.wait().unwrap().success());
    assert!(
        restore.status.success(),
        "pg_restore: {}",
        stderr_text(&restore)
    );
    assert_eq!(server.psql("restored", ROWS_QUERY), rows);
}

#[test]
fn a_failing_pg_dump_saves_no_snapshot() {
    let Some(server) = server_or_skip() else {
        return;
    };
    let env = Env::new();
    let out = env.run([
        "backup",
        "--stdin-from-command",
        &format!("{} -Fc no_such_database", server.shell_client("pg_dump")),
        "--stdin-name",
        "postgres/missing.dump",
    ]);
    assert_code(&out, 1);
    assert!(stderr_text(&out).contains("no snapshot was written"));
    assert!(env.snapshots().is_empty());
    // Partial output before a failure is not saved either.
    let out = env.run([
        "backup",
        "--stdin-from-command",
        "sh -c 'echo partial; exit 3'",
        "--stdin-name",
        "postgres/partial.dump",
    ]);
    assert_code(&out, 1);
    assert!(env.snapshots().is_empty());
    assert_code(&env.run(["check"]), 0);
}
