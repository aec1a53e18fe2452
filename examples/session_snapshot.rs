//! An application that snapshots its data folder at the end of each session.
//!
//! Run: `cargo run --example session_snapshot -- /path/to/repo /path/to/data`

use std::path::PathBuf;

use snap::{BackupOptions, InitOptions, LocalBackend, NoProgress, Repository};

fn main() -> Result<(), snap::Error> {
    let mut args = std::env::args().skip(1);
    let (Some(repo_path), Some(data)) = (args.next(), args.next()) else {
        eprintln!("usage: session_snapshot REPO DATA_FOLDER");
        std::process::exit(2);
    };
    // Open the repository, creating it on first use.
    let backend = Box::new(LocalBackend::new(&repo_path));
    let repo = if LocalBackend::is_repository(repo_path.as_ref()) {
        Repository::open(backend, &NoProgress)?
    } else {
        Repository::init(backend, &InitOptions::default(), &NoProgress)?
    };
    let mut options = BackupOptions::new(vec![PathBuf::from(data)]);
    options.tags.push("session".to_string());
    let report = snap::backup(&repo, &options, &NoProgress)?;
    let summary = &report.snapshot.summary;
    println!(
        "snapshot {}: {} files, {} bytes added",
        report.id.short(),
        summary.files,
        summary.bytes_added
    );
    Ok(())
}
