//! Hooks: shell commands a profile runs around `snap backup` and `snap
//! restore` (docs/PROFILE.md).
//!
//! A hook runs as `sh -c COMMAND` in the profile's folder, with standard
//! input closed and its own process group, so that a timeout stops the hook
//! and everything it started. Its output goes to snap's standard error, each
//! line prefixed with `[hook NAME]`, never to standard output (which belongs
//! to `--json`). Like every command snap starts, it does not see the
//! variables snap reads passwords from ([`SECRET_VARIABLES`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::error::{Error, ErrorKind, Result};

/// How long a hook gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// How often the relays of a finished hook are polled.
const POLL: Duration = Duration::from_millis(20);

/// The variables snap reads a password from. They are removed from the
/// environment of every command snap starts (hooks, `command =` sources,
/// `--stdin-from-command`, password commands): a command has no business
/// with the repository's password. The user's other variables stay.
pub const SECRET_VARIABLES: [&str; 4] = [
    "SNAP_PASSWORD",
    "SNAP_NEW_PASSWORD",
    "SNAP_TO_PASSWORD",
    "SNAP_FROM_PASSWORD",
];

/// `sh -c COMMAND` without [`SECRET_VARIABLES`] in its environment.
pub fn shell(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    for name in SECRET_VARIABLES {
        cmd.env_remove(name);
    }
    cmd
}

/// One hook to run.
#[derive(Debug, Clone)]
pub struct Hook<'a> {
    /// Its name, e.g. `before-backup` (shown in output, given as `SNAP_HOOK`).
    pub name: &'a str,
    /// The shell command.
    pub command: &'a str,
    /// Working folder.
    pub dir: &'a Path,
    /// Longest run time.
    pub timeout: Duration,
    /// Environment variables telling the hook what happens.
    pub env: &'a [(String, String)],
}

/// Copies the lines of `from` to standard error with a prefix.
fn relay(from: impl Read + Send + 'static, prefix: String) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{prefix} {}", text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    })
}

fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

/// Runs a hook to its end; an error when it cannot start, fails or times out.
pub fn run(hook: &Hook<'_>) -> Result<()> {
    let prefix = format!("[hook {}]", hook.name);
    let mut child = shell(hook.command)
        .current_dir(hook.dir)
        .envs(hook.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("SNAP_HOOK", hook.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "cannot run the {} hook in {}: {e}",
                    hook.name,
                    hook.dir.display()
                ),
            )
        })?;
    let relays: Vec<_> = [
        child.stdout.take().map(|o| relay(o, prefix.clone())),
        child.stderr.take().map(|e| relay(e, prefix.clone())),
    ]
    .into_iter()
    .flatten()
    .collect();
    let status: ExitStatus = match child.wait_timeout(hook.timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            signal_group(child.id(), nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait_timeout(TERM_GRACE);
            // Whether or not the shell is gone, what it started may not be.
            signal_group(child.id(), nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            // The relays end when the last process holding the pipes is gone;
            // they are not waited for, in case something escaped the group.
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the {} hook did not finish within {}s and was stopped (hook-timeout in the profile)",
                    hook.name,
                    hook.timeout.as_secs()
                ),
            ));
        }
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Io,
                format!("cannot wait for the {} hook: {e}", hook.name),
            ));
        }
    };
    // The hook is done; processes it left running in the background may
    // still hold its output open: stop waiting for them after a moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    for relay in relays {
        while !relay.is_finished() && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        if relay.is_finished() {
            let _ = relay.join();
        }
    }
    if status.success() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Io,
            format!("the {} hook failed ({status})", hook.name),
        ))
    }
}
