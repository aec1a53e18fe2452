//! Command-line interface: one file per command (arguments and `run`), plus
//! shared output helpers. No repository logic lives here.

mod backup;
mod cat;
mod check;
mod completions;
mod copy;
mod diff;
mod drill;
mod dump;
mod filter;
mod find;
mod forget;
mod help;
mod hooks;
mod init;
mod key;
mod log;
mod ls;
mod man;
mod mount;
mod output;
mod parity;
mod password;
mod progress;
mod prune;
mod repair;
mod restore;
mod snapshots;
mod stats;
mod tag;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::{FromArgMatches, Parser, Subcommand};
use snap::backend::Backend;
use snap::keys::Credentials;
use snap::profile::Profile;
use snap::{Error, ErrorKind, Repository};

use output::CliProgress;

/// Exit codes (docs/CLI.md).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// An error.
    pub const ERROR: u8 = 1;
    /// Bad usage.
    pub const USAGE: u8 = 2;
    /// Finished, but some files were skipped.
    pub const WARNINGS: u8 = 3;
    /// The repository is damaged.
    pub const DAMAGED: u8 = 4;
    /// Wrong password or key.
    pub const KEY: u8 = 5;
    /// Nothing matched.
    pub const NOT_FOUND: u8 = 10;
    /// Interrupted (Ctrl-C, SIGINT).
    pub const INTERRUPTED: u8 = 130;
    /// Stopped by SIGHUP (the terminal went away).
    pub const HANGUP: u8 = 129;
    /// Stopped by SIGTERM (a service manager, `kill`).
    pub const TERMINATED: u8 = 143;
}

/// The signal that asked a command to stop (0: none yet).
static STOP_SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Makes SIGINT, SIGTERM and SIGHUP stop a long command cleanly: the first
/// sets the returned flag (the command stores what it has, releases its
/// lock and fails with an `Interrupted` error, exit code 128 + the signal),
/// a second exits at once with that code.
///
/// signal-hook rather than the `ctrlc` crate: ctrlc catches SIGTERM and
/// SIGHUP too, but does not tell which signal arrived, and the exit code
/// has to.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Registered first, so it sees the flag as it was before this
        // signal: only a second signal exits at once.
        let _ =
            signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, stop.clone());
        let _ =
            signal_hook::flag::register_usize(signal, &STOP_SIGNAL, signal.unsigned_abs() as usize);
        let _ = signal_hook::flag::register(signal, stop.clone());
    }
    stop
}

/// The exit code of a command stopped by a signal: 128 + its number, as a
/// shell reports a process the signal killed.
fn interrupted_code() -> u8 {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    match i32::try_from(STOP_SIGNAL.load(Ordering::SeqCst)) {
        Ok(SIGHUP) => exit::HANGUP,
        Ok(SIGTERM) => exit::TERMINATED,
        _ => exit::INTERRUPTED,
    }
}

/// snap: deduplicating, verifiable snapshots of files, folders and SQLite databases.
#[derive(Parser, Debug)]
#[command(name = "snap", version, about, max_term_width = 100)]
pub struct Cli {
    /// Repository: a local path or s3://bucket/prefix (default: the user's data folder, e.g. ~/.local/share/snap/repo).
    #[arg(short = 'r', long, global = true, env = "SNAP_REPO")]
    repo: Option<PathBuf>,

    /// Read the repository password from the first line of this file.
    #[arg(long, global = true, env = "SNAP_PASSWORD_FILE")]
    password_file: Option<PathBuf>,

    /// Run this shell command and use the first line it prints as the password.
    #[arg(long, global = true)]
    password_command: Option<String>,

    /// age identity file (age keys or SSH private keys) for recipient-encrypted repositories.
    #[arg(long = "identity-file", global = true, env = "SNAP_IDENTITY_FILE")]
    identity_files: Vec<PathBuf>,

    /// Key file made by `snap key add --output` (for example a write-only key).
    #[arg(long, global = true, env = "SNAP_KEY_FILE")]
    key_file: Option<PathBuf>,

    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,

    /// No progress, only errors.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Profile file (default: ./snap.toml, else snap/snap.toml in the user's config folder).
    #[arg(long, global = true, env = "SNAP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Send at most KIB KiB/s to the repository (s3:// or a local folder).
    #[arg(long, global = true, value_name = "KIB", allow_negative_numbers = true)]
    limit_upload: Option<String>,

    /// Read at most KIB KiB/s from the repository (s3:// or a local folder).
    #[arg(long, global = true, value_name = "KIB", allow_negative_numbers = true)]
    limit_download: Option<String>,

    /// How to show progress: a bar on a terminal (auto), a bar, JSON status lines on stderr, or none.
    #[arg(long, global = true, value_enum, default_value_t = progress::ProgressMode::Auto, value_name = "MODE")]
    progress: progress::ProgressMode,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository.
    Init(init::Args),
    /// Take a snapshot of files and folders.
    Backup(backup::Args),
    /// List snapshots, oldest first.
    Snapshots(snapshots::Args),
    /// List the entries of a snapshot or of a folder in it.
    Ls(ls::Args),
    /// Write a file from a snapshot to standard output.
    Cat(cat::Args),
    /// Write a file as it is, or a folder as a tar or zip archive, to standard output or a file.
    Dump(dump::Args),
    /// Show what changed between two snapshots (optionally below a path).
    Diff(diff::Args),
    /// List every distinct version of a path across all snapshots, newest first.
    Log(log::Args),
    /// List the snapshots that hold paths matching a glob.
    Find(find::Args),
    /// Restore a snapshot, or one path of it, into a folder.
    Restore(restore::Args),
    /// Show what the repository holds.
    Stats(stats::Args),
    /// Verify that every snapshot can be restored; with --read-data, every stored byte.
    Check(check::Args),
    /// Rebuild the index from the packs, or write snapshots without damaged files.
    #[command(subcommand)]
    Repair(repair::Command),
    /// Remove snapshots by a retention policy (or by id); --prune then frees their data.
    Forget(forget::Args),
    /// Delete data no snapshot uses; repack partly used packs.
    Prune(prune::Args),
    /// Copy snapshots into another repository (local or s3://), storing only what it lacks.
    Copy(copy::Args),
    /// Manage the keys of an encrypted repository.
    #[command(subcommand)]
    Key(key::Command),
    /// Add, remove or set tags of existing snapshots.
    Tag(tag::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Write a man page for snap and for each of its commands into a folder.
    Man(man::Args),
    /// Show the snapshots as a read-only folder tree (FUSE), until Ctrl-C or `fusermount3 -u`.
    Mount(mount::Args),
    /// Rehearse a restore: restore into a scratch folder, verify every byte, record the result.
    Drill(drill::Args),
    /// Turn Reed-Solomon parity on for new packs, or show what it protects.
    #[command(subcommand)]
    Parity(parity::Command),
    /// Show the repository's history in a browser: a local web server, until Ctrl-C.
    Ui(ui::Args),
}

/// Options every command shares.
pub struct Global {
    /// The repository location, if given.
    pub repo: Option<PathBuf>,
    /// JSON output.
    pub json: bool,
    /// No progress.
    pub quiet: bool,
    /// Where the password comes from.
    pub password: password::Source,
    /// age identity files.
    pub identity_files: Vec<PathBuf>,
    /// Exported key file.
    pub key_file: Option<PathBuf>,
    /// The profile (snap.toml), when one was given or found.
    pub profile: Option<Profile>,
    /// Upload and download limits for the repositories the command opens.
    pub limits: snap::backend::Limits,
    /// How progress is shown (`--progress`).
    pub progress: progress::ProgressMode,
}

impl Global {
    /// Where the repository is: the flag, `SNAP_REPO`, or the default location.
    pub fn location(&self) -> PathBuf {
        self.repo
            .clone()
            .unwrap_or_else(snap::repo::default_location)
    }

    /// Whether the user left the repository at its default location.
    pub fn is_default_location(&self) -> bool {
        self.repo.is_none()
    }

    /// Progress reporting suited to the terminal and flags.
    pub fn progress(&self) -> CliProgress {
        CliProgress::new(self.quiet, self.progress)
    }

    /// How to unlock an encrypted repository; the password is asked for lazily.
    pub fn credentials(&self) -> Credentials {
        let source = self.password.clone();
        Credentials {
            key_file: self.key_file.clone(),
            identity_files: self.identity_files.clone(),
            password: Some(Box::new(move || source.read())),
        }
    }

    /// The storage of the repository: a local folder or `s3://bucket/prefix`
    /// (with the faults `SNAP_FAULTS` asks for, in tests).
    pub fn backend(&self) -> snap::Result<Box<dyn Backend>> {
        snap::backend::open(&self.location(), self.limits)
    }

    /// Opens the repository.
    pub fn open(&self, progress: &CliProgress) -> snap::Result<Repository> {
        Repository::open_with(self.backend()?, &self.credentials(), progress).map(with_warnings)
    }

    /// Opens the repository for a command that only reads: it never waits
    /// for another snap process (see `Repository::open_reader`).
    pub fn open_reader(&self, progress: &CliProgress) -> snap::Result<Repository> {
        Repository::open_reader(self.backend()?, &self.credentials(), progress).map(with_warnings)
    }
}

/// `repo`, printing the library's warnings (a tree read from its second
/// copy) to stderr.
pub fn with_warnings(repo: Repository) -> Repository {
    repo.set_warnings(Box::new(|text| {
        output::print_err(&format!("snap: warning: {}", output::terminal_safe(text)));
    }));
    repo
}

/// Stack of the threads that walk trees (the library's, for its own pools too).
const STACK_SIZE: usize = snap::ops::WORKER_STACK;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    std::thread::Builder::new()
        .stack_size(STACK_SIZE)
        .spawn(run_main)
        .expect("starting the main thread")
        .join()
        .unwrap_or(ExitCode::from(exit::ERROR))
}

fn run_main() -> ExitCode {
    let cli = match help::command()
        .try_get_matches()
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // File reads block; twice as many workers as cores keeps the cores busy
    // while some wait for the disk (a backup walks on pools of its own,
    // ops/backup/walk.rs). RAYON_NUM_THREADS, rayon's own setting,
    // overrides it (for measuring).
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or((2 * cores).max(4));
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(STACK_SIZE)
        .build_global();
    let profile = match Profile::find(cli.config.as_deref()) {
        Ok(profile) => profile,
        Err(e) => {
            let e = anyhow::Error::from(e);
            output::print_err(&format!("snap: {}", output::terminal_safe(&error_text(&e))));
            return ExitCode::from(exit_code(&e));
        }
    };
    for warning in profile.iter().flat_map(|p| &p.warnings) {
        eprintln!("snap: warning: {warning}");
    }
    let limits = match limits(
        cli.limit_upload.as_deref(),
        cli.limit_download.as_deref(),
        profile.as_ref(),
    ) {
        Ok(limits) => limits,
        Err(e) => {
            let e = anyhow::Error::from(e);
            output::print_err(&format!("snap: {}", output::terminal_safe(&error_text(&e))));
            return ExitCode::from(exit_code(&e));
        }
    };
    let global = with_profile(
        Global {
            repo: cli.repo,
            json: cli.json,
            quiet: cli.quiet,
            password: password::Source {
                file: cli.password_file,
                command: cli.password_command,
                dir: None,
            },
            identity_files: cli.identity_files,
            key_file: cli.key_file,
            profile: None,
            limits,
            progress: cli.progress,
        },
        profile,
    );
    let result = match cli.command {
        Command::Init(args) => init::run(&global, args),
        Command::Backup(args) => backup::run(&global, args),
        Command::Snapshots(args) => snapshots::run(&global, args),
        Command::Ls(args) => ls::run(&global, args),
        Command::Cat(args) => cat::run(&global, args),
        Command::Dump(args) => dump::run(&global, args),
        Command::Diff(args) => diff::run(&global, args),
        Command::Log(args) => log::run(&global, args),
        Command::Find(args) => find::run(&global, args),
        Command::Restore(args) => restore::run(&global, args),
        Command::Stats(args) => stats::run(&global, args),
        Command::Check(args) => check::run(&global, args),
        Command::Repair(command) => repair::run(&global, command),
        Command::Forget(args) => forget::run(&global, args),
        Command::Prune(args) => prune::run(&global, args),
        Command::Key(command) => key::run(&global, command),
        Command::Copy(args) => copy::run(&global, args),
        Command::Tag(args) => tag::run(&global, args),
        Command::Completions(args) => completions::run(args),
        Command::Man(args) => man::run(&global, args),
        Command::Mount(args) => mount::run(&global, args),
        Command::Drill(args) => drill::run(&global, args),
        Command::Parity(command) => parity::run(&global, command),
        Command::Ui(args) => ui::run(&global, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::print_err(&format!("snap: {}", output::terminal_safe(&error_text(&e))));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// `--limit-upload` and `--limit-download`, each else the profile's key.
fn limits(
    upload: Option<&str>,
    download: Option<&str>,
    profile: Option<&Profile>,
) -> snap::Result<snap::backend::Limits> {
    use snap::backend::throttle::parse_limit;
    let from_profile = profile.map(|p| p.limits).unwrap_or_default();
    Ok(snap::backend::Limits {
        upload: match upload {
            Some(text) => Some(parse_limit(text, "--limit-upload")?),
            None => from_profile.upload,
        },
        download: match download {
            Some(text) => Some(parse_limit(text, "--limit-download")?),
            None => from_profile.download,
        },
    })
}

/// Fills in what the command line and environment left open from the
/// profile: flags and `SNAP_*` variables win over the profile.
fn with_profile(mut global: Global, profile: Option<Profile>) -> Global {
    let Some(profile) = profile else {
        return global;
    };
    if global.repo.is_none() {
        global.repo.clone_from(&profile.repository);
    }
    let password_given = global.password.file.is_some()
        || global.password.command.is_some()
        || std::env::var_os("SNAP_PASSWORD").is_some();
    if !password_given {
        global.password.file.clone_from(&profile.password_file);
        global
            .password
            .command
            .clone_from(&profile.password_command);
        global.password.dir = Some(profile.dir.clone());
    }
    if global.identity_files.is_empty() {
        global.identity_files.clone_from(&profile.identity_files);
    }
    if global.key_file.is_none() {
        global.key_file.clone_from(&profile.key_file);
    }
    global.profile = Some(profile);
    global
}

/// A `SNAP:PATH` argument as text: it is already written the way snap
/// prints names (escapes and all); only bytes that are not UTF-8 are turned
/// into the `\xNN` escapes that stand for them.
pub fn os_arg(arg: &std::ffi::OsStr) -> String {
    use std::fmt::Write;
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for chunk in arg.as_bytes().utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

/// The exit code for an error, by its kind.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>().map(Error::kind) {
        Some(ErrorKind::Usage) => exit::USAGE,
        Some(ErrorKind::NotFound) => exit::NOT_FOUND,
        Some(ErrorKind::Corrupt) => exit::DAMAGED,
        Some(ErrorKind::Key) => exit::KEY,
        Some(ErrorKind::Interrupted) => interrupted_code(),
        _ => exit::ERROR,
    }
}
