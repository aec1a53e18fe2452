//! `snap backup`

use std::io::IsTerminal;
use std::path::PathBuf;

use snap::profile::ProfileInput;
use snap::select::{Filter, parse_selector, parse_time, resolve};
use snap::{
    BackupOptions, FileStatus, InitOptions, LocalBackend, NamedSource, Phase, Progress, Repository,
    SourceInput,
};

use super::hooks::{self, Hooked};
use super::output::{self, CliProgress};
use super::{Global, exit};

/// Take a snapshot of files and folders.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and folders to back up; each appears at the snapshot root under
    /// its name (default: the profile's sources).
    paths: Vec<PathBuf>,
    /// Tag the snapshot (comma-separated tags; repeatable).
    #[arg(long = "tag", value_name = "T[,T...]")]
    tags: Vec<String>,
    /// Host name to record instead of this machine's.
    #[arg(long)]
    host: Option<String>,
    /// Snapshot time instead of now (RFC 3339 or a date).
    #[arg(long)]
    time: Option<String>,
    /// Parent snapshot for change detection (default: the latest with the same host and paths).
    #[arg(long)]
    parent: Option<String>,
    /// Leave out paths matching this glob (repeatable; matched against names and full paths).
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// Read exclude globs from a file, one per line (# starts a comment).
    #[arg(long = "exclude-file")]
    exclude_files: Vec<PathBuf>,
    // Selection options (exclude-if-present .. files-from-verbatim).
    /// Leave out a folder holding a file of this name (repeatable).
    #[arg(long = "exclude-if-present", value_name = "NAME")]
    exclude_if_present: Vec<String>,
    /// Leave out folders holding a valid CACHEDIR.TAG file.
    #[arg(long)]
    exclude_caches: bool,
    /// Leave out files larger than SIZE (e.g. 500K, 100M, 1G).
    #[arg(long, value_name = "SIZE")]
    exclude_larger_than: Option<String>,
    /// Like --exclude, ignoring case (repeatable).
    #[arg(long = "iexclude", value_name = "PATTERN")]
    iexcludes: Vec<String>,
    /// Back up the paths listed in FILE, one a line (# starts a comment; repeatable).
    #[arg(long = "files-from", value_name = "FILE")]
    files_from: Vec<PathBuf>,
    /// Back up the paths listed in FILE, every line a path as written (repeatable).
    #[arg(long = "files-from-verbatim", value_name = "FILE")]
    files_from_verbatim: Vec<PathBuf>,
    /// Do not cross into other filesystems below the given paths.
    #[arg(long)]
    one_file_system: bool,
    /// Read every file, even those unchanged since the parent snapshot.
    #[arg(long)]
    force: bool,
    /// Capture files matching this glob as SQLite databases (repeatable;
    /// databases are also recognised by their header).
    #[arg(long = "sqlite")]
    sqlite: Vec<String>,
    /// How long to wait for an app that holds a SQLite database exclusively
    /// before storing a plain copy of it instead (with a warning): a duration
    /// like 30s or 2min, or a number of seconds.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    sqlite_lock_timeout: String,
    /// Store standard input as a file (named by --stdin-name).
    #[arg(long, conflicts_with = "stdin_from_command")]
    stdin: bool,
    /// Run this shell command and store its standard output as a file (named
    /// by --stdin-name); if the command fails, no snapshot is written.
    #[arg(long, value_name = "CMD")]
    stdin_from_command: Option<String>,
    /// Name of the --stdin file in the snapshot, e.g. postgres/mydb.dump (default: stdin).
    #[arg(long, value_name = "NAME")]
    stdin_name: Option<String>,

    // Dry run and file listing.
    /// Read, chunk and hash as usual but write nothing to the repository;
    /// print what would be added (no hooks run).
    #[arg(long)]
    dry_run: bool,
    /// List new and changed files on stderr as they are stored; -vv lists
    /// every file with its status (new, changed, unchanged).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Progress that also lists files as `-v` asks: `new  PATH`, `changed
/// PATH`, and with `-vv` `unchanged  PATH`, on stderr.
struct Listing<'a> {
    inner: &'a CliProgress,
    level: u8,
}

impl Progress for Listing<'_> {
    fn message(&self, text: &str) {
        self.inner.message(text);
    }

    fn warn(&self, text: &str) {
        self.inner.warn(text);
    }

    fn add_bytes(&self, bytes: u64) {
        self.inner.add_bytes(bytes);
    }

    fn add_files(&self, files: u64) {
        self.inner.add_files(files);
    }

    fn phase(&self, phase: Phase) {
        self.inner.phase(phase);
    }

    fn found(&self, files: u64, bytes: u64) {
        self.inner.found(files, bytes);
    }

    fn current(&self, name: &str) {
        self.inner.current(name);
    }

    fn shows_totals(&self) -> bool {
        self.inner.shows_totals()
    }

    fn file(&self, status: FileStatus, path: &std::path::Path) {
        if self.level >= 2 || (self.level == 1 && status != FileStatus::Unchanged) {
            self.inner.print(&format!(
                "{:<9}  {}",
                status.as_str(),
                snap::escape_path(path)
            ));
        }
    }
}

/// `--sqlite-lock-timeout`: a duration, or (as before durations had one
/// grammar) a plain number of seconds.
fn lock_timeout(text: &str) -> snap::Result<std::time::Duration> {
    if let Ok(seconds) = text.parse::<f64>() {
        return std::time::Duration::try_from_secs_f64(seconds).map_err(|_| {
            snap::Error::usage(format!(
                "--sqlite-lock-timeout: `{text}` is not a duration: use for example 30s, 2min or 90"
            ))
        });
    }
    output::duration_arg(
        text,
        "--sqlite-lock-timeout",
        snap::duration::BareM::Minutes,
    )
    .map(|span| span.to_std())
}

/// The named sources of this run: standard input or a command's output when
/// asked for, else the profile's sources unless paths were given.
fn named_sources(global: &Global, args: &Args) -> anyhow::Result<Vec<NamedSource>> {
    let stream = if args.stdin {
        if std::io::stdin().is_terminal() {
            return Err(snap::Error::usage(
                "--stdin reads standard input, which is a terminal: pipe the data in, e.g. `pg_dump db | snap backup --stdin --stdin-name db.dump`",
            )
            .into());
        }
        Some(SourceInput::Stdin)
    } else {
        args.stdin_from_command
            .as_ref()
            .map(|command| SourceInput::Command {
                command: command.clone(),
                dir: None,
            })
    };
    if let Some(input) = stream {
        return Ok(vec![NamedSource {
            name: args.stdin_name.clone().unwrap_or_else(|| "stdin".into()),
            input,
            excludes: Vec::new(),
        }]);
    }
    if args.stdin_name.is_some() {
        return Err(
            snap::Error::usage("--stdin-name needs --stdin or --stdin-from-command").into(),
        );
    }
    if !args.paths.is_empty() {
        return Ok(Vec::new());
    }
    let Some(profile) = global.profile.as_ref().filter(|p| !p.sources.is_empty()) else {
        return Err(snap::Error::usage(
            "nothing to back up: give paths, --stdin, --stdin-from-command, or a profile (snap.toml) with [[source]] entries (see docs/PROFILE.md)",
        )
        .into());
    };
    Ok(profile
        .sources
        .iter()
        .map(|source| NamedSource {
            name: source.name.clone(),
            input: match &source.input {
                ProfileInput::Path(path) => SourceInput::Path(path.clone()),
                ProfileInput::Command(command) => SourceInput::Command {
                    command: command.clone(),
                    dir: Some(profile.dir.clone()),
                },
            },
            excludes: source.excludes.clone(),
        })
        .collect())
}

/// `--exclude-larger-than`, else the profile's `exclude-larger-than`.
fn size_limit(global: &Global, args: &Args) -> snap::Result<Option<u64>> {
    match &args.exclude_larger_than {
        Some(text) => snap::profile::parse_size(text)
            .map(Some)
            .map_err(|e| snap::Error::usage(format!("--exclude-larger-than: {}", e.message()))),
        None => Ok(global.profile.as_ref().and_then(|p| p.exclude_larger_than)),
    }
}

/// A profile's list followed by the one given on the command line.
fn profile_list(
    global: &Global,
    of: impl Fn(&snap::profile::Profile) -> &Vec<String>,
    given: Vec<String>,
) -> Vec<String> {
    let mut list = global.profile.as_ref().map(of).cloned().unwrap_or_default();
    list.extend(given);
    list
}

/// Opens the repository; on the default location, creates it on first use.
fn open_or_create(global: &Global, progress: &CliProgress) -> snap::Result<Repository> {
    let location = global.location();
    if global.is_default_location() && !LocalBackend::is_repository(&location) {
        let repo = Repository::init(global.backend()?, &InitOptions::default(), progress)?;
        progress.message(&format!(
            "created a new repository at {}",
            location.display()
        ));
        return Ok(repo);
    }
    global.open(progress)
}

/// The paths listed by --files-from and --files-from-verbatim (and the
/// profile's `files-from` keys when no path was given).
fn listed_paths(global: &Global, args: &Args) -> snap::Result<Vec<PathBuf>> {
    let profile = global.profile.as_ref().filter(|_| args.paths.is_empty());
    let mut paths = Vec::new();
    let lists = profile.iter().flat_map(|p| &p.files_from);
    for file in lists.chain(&args.files_from) {
        paths.extend(
            snap::profile::read_list_file(file, "files-from file")?
                .into_iter()
                .map(PathBuf::from),
        );
    }
    let verbatim = profile.iter().flat_map(|p| &p.files_from_verbatim);
    for file in verbatim.chain(&args.files_from_verbatim) {
        paths.extend(snap::profile::read_verbatim_list_file(file)?);
    }
    Ok(paths)
}

pub fn run(global: &Global, mut args: Args) -> anyhow::Result<u8> {
    // Bad usage is reported before any hook stops or starts anything.
    size_limit(global, &args)?;
    let listed = listed_paths(global, &args)?;
    args.paths.extend(listed);
    let sources = named_sources(global, &args)?;
    if args.dry_run {
        // Hooks prepare or announce a real snapshot; a dry run takes none.
        return run_backup(global, args, sources).map(|(code, _)| code);
    }
    hooks::around(global, Hooked::Backup, Vec::new(), |env| {
        let (code, id) = run_backup(global, args, sources)?;
        env.push(("SNAP_SNAPSHOT_ID".into(), id.to_hex()));
        Ok(code)
    })
}

fn run_backup(
    global: &Global,
    args: Args,
    sources: Vec<NamedSource>,
) -> anyhow::Result<(u8, snap::SnapshotId)> {
    let mut progress = global.progress();
    let mut repo = if args.dry_run {
        global.open(&progress)?
    } else {
        open_or_create(global, &progress)?
    };
    let exclude_larger_than = size_limit(global, &args)?;
    let mut excludes = global
        .profile
        .as_ref()
        .map(|p| p.excludes.clone())
        .unwrap_or_default();
    excludes.extend(args.excludes);
    for file in &args.exclude_files {
        excludes.extend(snap::profile::read_list_file(file, "exclude file")?);
    }
    let parent = match &args.parent {
        Some(text) => Some(resolve(&repo, &parse_selector(text)?, &Filter::default())?.0),
        None => None,
    };
    // First Ctrl-C, SIGTERM or SIGHUP: stop cleanly (store what was read,
    // write no snapshot). Second: exit now.
    let cancel = super::stop_on_signals();
    let options = BackupOptions {
        paths: args.paths.clone(),
        tags: snap::ops::tag::tags_of(&args.tags)?,
        host: args.host,
        time: args.time.as_deref().map(parse_time).transpose()?,
        parent,
        force: args.force,
        excludes,
        iexcludes: profile_list(global, |p| &p.iexcludes, args.iexcludes),
        exclude_if_present: profile_list(
            global,
            |p| &p.exclude_if_present,
            args.exclude_if_present,
        ),
        exclude_caches: args.exclude_caches
            || global.profile.as_ref().is_some_and(|p| p.exclude_caches),
        exclude_larger_than,
        one_file_system: args.one_file_system,
        sqlite: args.sqlite,
        sqlite_lock_timeout: Some(lock_timeout(&args.sqlite_lock_timeout)?),
        cancel: Some(cancel),
        sources,
        dry_run: args.dry_run,
    };
    progress.start("backup");
    let listing = Listing {
        inner: &progress,
        level: args.verbose,
    };
    let result = snap::backup(&repo, &options, &listing);
    progress.finish(result.is_ok());
    let report = result?;
    // A backup of many small files leaves the index cache mostly free
    // pages; the snapshot is written, so a failure here only warns.
    if let Err(e) = repo.compact_cache_if_sparse() {
        progress.warn(&format!("{e}"));
    }
    let s = &report.snapshot.summary;
    let mut tally = format!(
        "{} ({} new, {} changed, {} unchanged), {}, {}",
        output::count(s.files, "file", "files"),
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        output::count(s.dirs, "dir", "dirs"),
        output::bytes(s.bytes)
    );
    if report.excluded > 0 {
        tally.push_str(&format!(
            ", {} excluded",
            output::count(report.excluded, "entry", "entries")
        ));
    }
    if global.json {
        let id = (!report.dry_run).then_some(report.id);
        output::print_json(&serde_json::json!({
            "dry_run": report.dry_run,
            "id": id.map(|id| id.to_hex()),
            "short_id": id.map(|id| id.short()),
            "time": report.snapshot.time,
            "parent": report.snapshot.parent.map(|p| p.to_hex()),
            "files_new": s.files_new,
            "files_changed": s.files_changed,
            "files_unchanged": s.files_unchanged,
            "dirs": s.dirs,
            "files": s.files,
            "bytes": s.bytes,
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "bytes_added_packed": s.bytes_added_packed,
            "duration_s": s.duration_s,
            "excluded": report.excluded,
            "warnings": report.warnings,
            "plain_copies": report.plain_copies.iter().map(|p| snap::escape_path(p)).collect::<Vec<_>>(),
            "changed_while_read": report.changed_while_read.iter().map(|p| snap::escape_path(p)).collect::<Vec<_>>(),
        }))?;
    } else if report.dry_run {
        // The plan is what was asked for: printed even with -q.
        println!("dry run, nothing written: {tally}");
        println!(
            "read {}, would add {} to the repository ({} stored)",
            output::bytes(s.bytes_read),
            output::bytes(s.bytes_added),
            output::bytes(s.bytes_added_packed),
        );
    } else if !global.quiet {
        println!("snapshot {} saved: {tally}", report.id.short());
        println!(
            "read {}, added {} ({} stored) in {:.2}s",
            output::bytes(s.bytes_read),
            output::bytes(s.bytes_added),
            output::bytes(s.bytes_added_packed),
            s.duration_s
        );
        let copies = report.plain_copies.len();
        if copies > 0 {
            println!(
                "{} could not be captured as such and {} stored as a plain file copy (see warnings above)",
                output::count(copies, "SQLite database", "SQLite databases"),
                output::noun(copies, "was", "were"),
            );
        }
        let changed = report.changed_while_read.len();
        if changed > 0 {
            println!(
                "{} changed while {} read and {} stored as read (see warnings above)",
                output::count(changed, "file", "files"),
                output::noun(changed, "it was", "they were"),
                output::noun(changed, "was", "were"),
            );
        }
        let skipped = report.warnings.len().saturating_sub(copies + changed);
        if skipped > 0 {
            println!(
                "{} could not be read and {} skipped (see warnings above)",
                output::count(skipped, "entry", "entries"),
                output::noun(skipped, "was", "were"),
            );
        }
    }
    let code = if report.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    };
    Ok((code, report.id))
}
