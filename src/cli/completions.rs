//! `snap completions`

use std::io::Write;

use super::{exit, help};

/// Print a shell completion script.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    // Generated into memory first: clap_complete panics on a failed write
    // (a closed pipe), an error here exits like any other command's.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut help::command(), "snap", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(exit::OK)
}
