//! `snap copy`

use super::filter::FilterArgs;
use std::path::PathBuf;

use snap::keys::Credentials;
use snap::ops::copy;
use snap::select::{parse_selector, resolve};

use super::output::{self, bytes as human_bytes};
use super::{Global, exit};

/// Copy snapshots into another repository, storing only what it lacks.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository to copy into: a local path or s3://bucket/prefix.
    #[arg(long, env = "SNAP_TO_REPO")]
    to: PathBuf,
    /// Snapshots to copy (id prefix, latest, latest~N, @TIME); default: all
    /// that the filters let through.
    snapshots: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Read the target's password from the first line of this file.
    #[arg(long, env = "SNAP_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    /// Run this shell command for the target's password.
    #[arg(long)]
    to_password_command: Option<String>,
    /// Key file of the target (for example a write-only key).
    #[arg(long, env = "SNAP_TO_KEY_FILE")]
    to_key_file: Option<PathBuf>,
    /// age identity file of a recipient-encrypted target.
    #[arg(long = "to-identity-file", env = "SNAP_TO_IDENTITY_FILE")]
    to_identity_files: Vec<PathBuf>,
}

/// Credentials of a second repository, from its own flags.
pub fn other_credentials(
    password_file: Option<PathBuf>,
    password_env: &'static str,
    password_command: Option<String>,
    key_file: Option<PathBuf>,
    identity_files: Vec<PathBuf>,
    what: &'static str,
) -> Credentials {
    Credentials {
        key_file,
        identity_files,
        password: Some(Box::new(move || {
            super::password::read_other(
                password_file.as_deref(),
                password_env,
                password_command.as_deref(),
                what,
            )
        })),
    }
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let filter = args.filter.filter()?;
    let mut progress = global.progress();
    let source = global.open_reader(&progress)?;
    let credentials = other_credentials(
        args.to_password_file,
        "SNAP_TO_PASSWORD",
        args.to_password_command,
        args.to_key_file,
        args.to_identity_files,
        "target repository",
    );
    let target = copy::open_other(&args.to, global.limits, &source, &credentials, &progress)?;
    let selected = if args.snapshots.is_empty() {
        let mut all = source.snapshots()?;
        all.retain(|(_, s)| filter.matches(s));
        all
    } else {
        let mut selected = Vec::new();
        for text in &args.snapshots {
            let found = resolve(&source, &parse_selector(text)?, &filter)?;
            if !selected.iter().any(|(id, _)| *id == found.0) {
                selected.push(found);
            }
        }
        selected.sort_by_key(|(id, s): &(snap::id::SnapshotId, _)| (s.timestamp(), *id));
        selected
    };
    progress.start("copy");
    let report = copy::copy(&source, &target, &selected, &progress);
    progress.finish(report.is_ok());
    let report = report?;
    if global.json {
        output::print_json(&serde_json::json!({
            "target": target.backend().location(),
            "copied": report.copied.iter().map(|(from, to)| serde_json::json!({
                "source": from.to_hex(),
                "target": to.to_hex(),
            })).collect::<Vec<_>>(),
            "skipped": report.skipped.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "same_ids": report.same_ids,
            "blobs_read": report.blobs_read,
            "bytes_added": report.bytes_added,
            "bytes_added_packed": report.bytes_added_packed,
        }))?;
        return Ok(exit::OK);
    }
    if !global.quiet {
        for (from, to) in &report.copied {
            println!("copied snapshot {} as {}", from.short(), to.short());
        }
        for id in &report.skipped {
            println!("skipped snapshot {} (already in the target)", id.short());
        }
        println!(
            "{} copied, {} already there; added {} ({} stored) to {}",
            report.copied.len(),
            report.skipped.len(),
            human_bytes(report.bytes_added),
            human_bytes(report.bytes_added_packed),
            target.backend().location(),
        );
    }
    Ok(exit::OK)
}
