//! `snap mount`

use std::path::PathBuf;
use std::sync::Arc;

use snap::Progress;
use snap::ops::mount::{MountOptions, mount};

use super::{Global, exit};

/// Show the snapshots as a read-only folder tree (FUSE) until Ctrl-C or
/// `fusermount3 -u MOUNTPOINT`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An existing folder to mount on.
    mountpoint: PathBuf,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = Arc::new(global.progress());
    // A private index cache: backups made while mounted never wait for it.
    let repo = super::with_warnings(snap::Repository::open_long_reader(
        global.backend()?,
        &global.credentials(),
        progress.as_ref(),
    )?);
    let stop = super::stop_on_signals();
    let shown = args.mountpoint.display().to_string();
    mount(
        repo,
        &args.mountpoint,
        &MountOptions::default(),
        progress.clone(),
        &stop,
        &|| {
            progress.message(&format!(
                "snapshots mounted at {shown}; Ctrl-C or `fusermount3 -u {shown}` unmounts"
            ));
        },
    )?;
    Ok(exit::OK)
}
