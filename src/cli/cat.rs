//! `snap cat`

use std::io::Write;

use snap::ops::browse::{cat, find_node};
use snap::ops::paths::inside;
use snap::select::{Filter, parse_snap_path, resolve};

use super::{Global, exit};

/// Write a file from a snapshot to standard output.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SNAP:PATH, e.g. latest:lyra/identity.md (PATH may be a path of this
    /// machine starting with /, ./ or ../).
    target: std::ffi::OsString,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let (selector, path) = parse_snap_path(&super::os_arg(&args.target))?;
    let Some(path) = path else {
        return Err(
            snap::Error::usage("`snap cat` needs SNAP:PATH, e.g. latest:notes/todo.md").into(),
        );
    };
    let (_, snapshot) = resolve(&repo, &selector, &Filter::default())?;
    let path = inside(&[&snapshot], Some(&path))?;
    let node = find_node(&repo, snapshot.tree, &path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let written = cat(&repo, &node, &mut out);
    super::parity::note_rebuilt(&repo);
    written?;
    out.flush()?;
    Ok(exit::OK)
}
