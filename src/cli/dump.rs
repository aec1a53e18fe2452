//! `snap dump`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use snap::ops::browse::find_node;
use snap::ops::dump::{Archive, DumpOptions, dump, dump_to_file};
use snap::select::{Filter, parse_snap_path, resolve};

use super::output;
use super::{Global, exit};

/// Write a file from a snapshot as it is, or a folder as a tar or zip archive.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SNAP[:PATH], e.g. latest:Documents (a folder) or latest:notes/todo.md (a file).
    target: std::ffi::OsString,
    /// Archive format (default: a file as it is, anything else as tar; given, a file too goes into an archive).
    #[arg(long, value_enum, value_name = "FORMAT")]
    archive: Option<ArchiveArg>,
    /// Write to this file (atomically: complete or not at all) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ArchiveArg {
    /// POSIX tar (GNU long names, PAX mtimes and xattrs; hard links kept).
    Tar,
    /// zip with deflate (hard links as copies; no fifos or devices).
    Zip,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let mut progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let (selector, path) = parse_snap_path(&super::os_arg(&args.target))?;
    let path = path.unwrap_or_default();
    let (_, snapshot) = resolve(&repo, &selector, &Filter::default())?;
    let node = find_node(&repo, snapshot.tree, &path)?;
    let archive = args.archive.map(|a| match a {
        ArchiveArg::Tar => Archive::Tar,
        ArchiveArg::Zip => Archive::Zip,
    });
    let mut options = DumpOptions::for_snapshot(archive, &snapshot);
    // First Ctrl-C, SIGTERM or SIGHUP: stop at the next write, leaving
    // --output as it was. Second: exit now.
    options.cancel = Some(super::stop_on_signals());
    progress.start("dump");
    let result = match &args.output {
        Some(dest) => dump_to_file(&repo, &node, &path, &options, dest, &progress),
        None => {
            let stdout = std::io::stdout();
            if let Some(format) = options.archive_for(&node)
                && stdout.is_terminal()
            {
                return Err(snap::Error::usage(format!(
                    "not writing a {} archive to a terminal; redirect it (`> files.{}`) or give --output FILE",
                    format_name(format),
                    format_name(format)
                ))
                .into());
            }
            let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            dump(&repo, &node, &path, &options, &mut out, &progress).and_then(|report| {
                out.flush().map_err(|e| {
                    snap::Error::io("cannot write", std::path::Path::new("standard output"), e)
                })?;
                Ok(report)
            })
        }
    };
    progress.finish(result.is_ok());
    super::parity::note_rebuilt(&repo);
    let report = result?;
    for skipped in &report.skipped {
        output::print_err(&format!(
            "snap: warning: left out {}",
            output::terminal_safe(skipped)
        ));
    }
    Ok(if report.skipped.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

fn format_name(archive: Archive) -> &'static str {
    match archive {
        Archive::Tar => "tar",
        Archive::Zip => "zip",
    }
}
