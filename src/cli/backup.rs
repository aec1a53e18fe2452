//! `snap backup`

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use snap::select::{Filter, parse_selector, parse_time, resolve};
use snap::{BackupOptions, InitOptions, LocalBackend, Progress, Repository};

use super::output::{self, CliProgress};
use super::{Global, exit};

/// Take a snapshot of files and folders.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and folders to back up; each appears at the snapshot root under its name.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable).
    #[arg(long = "tag")]
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
}

fn read_exclude_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| snap::Error::io("cannot read exclude file", path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
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

/// Counts the bytes below `paths` in the background, so the bar has a total.
fn scan_totals(paths: Vec<PathBuf>, bar: indicatif::ProgressBar) {
    std::thread::spawn(move || {
        let mut total = 0u64;
        let mut stack = paths;
        while let Some(path) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            } else if meta.is_file() {
                total += meta.len();
            }
        }
        bar.set_length(total);
    });
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let mut progress = global.progress();
    let repo = open_or_create(global, &progress)?;
    let mut excludes = args.excludes;
    for file in &args.exclude_files {
        excludes.extend(read_exclude_file(file)?);
    }
    let parent = match &args.parent {
        Some(text) => Some(resolve(&repo, &parse_selector(text)?, &Filter::default())?.0),
        None => None,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    // First Ctrl-C: stop cleanly (store what was read, write no snapshot). Second: exit now.
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(i32::from(exit::INTERRUPTED));
        }
    });
    let options = BackupOptions {
        paths: args.paths.clone(),
        tags: args.tags,
        host: args.host,
        time: args.time.as_deref().map(parse_time).transpose()?,
        parent,
        force: args.force,
        excludes,
        one_file_system: args.one_file_system,
        sqlite: args.sqlite,
        cancel: Some(cancel),
    };
    progress.start_bar("backup");
    if let Some(bar) = progress.bar() {
        scan_totals(args.paths, bar);
    }
    let result = snap::backup(&repo, &options, &progress);
    progress.finish();
    let report = result?;
    let s = &report.snapshot.summary;
    if global.json {
        output::print_json(&serde_json::json!({
            "id": report.id.to_hex(),
            "short_id": report.id.short(),
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
            "warnings": report.warnings,
        }))?;
    } else if !global.quiet {
        println!(
            "snapshot {} saved: {} files ({} new, {} changed, {} unchanged), {} dirs, {}",
            report.id.short(),
            s.files,
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.dirs,
            output::bytes(s.bytes)
        );
        println!(
            "read {}, added {} ({} stored) in {:.2}s",
            output::bytes(s.bytes_read),
            output::bytes(s.bytes_added),
            output::bytes(s.bytes_added_packed),
            s.duration_s
        );
        if !report.warnings.is_empty() {
            println!(
                "{} entries could not be read and were skipped (see warnings above)",
                report.warnings.len()
            );
        }
    }
    Ok(if report.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
