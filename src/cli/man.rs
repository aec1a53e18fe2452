//! `snap man`

use std::path::{Path, PathBuf};

use super::{Global, exit, help, output};

/// Write man pages into a folder.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// An existing folder, e.g. ~/.local/share/man/man1.
    dir: PathBuf,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    if !args.dir.is_dir() {
        return Err(snap::Error::usage(format!(
            "{} is not an existing folder: create it first",
            args.dir.display()
        ))
        .into());
    }
    let mut command = help::command().disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    write_pages(command, &args.dir, &mut pages)?;
    if global.json {
        output::print_json(&serde_json::json!({ "dir": args.dir, "pages": pages }))?;
    } else if !global.quiet {
        println!("wrote {} man pages to {}", pages.len(), args.dir.display());
    }
    Ok(exit::OK)
}

/// Writes the page of `command` (named after its path: snap-key-add.1) and
/// of each of its subcommands, and collects their file names.
fn write_pages(command: clap::Command, dir: &Path, pages: &mut Vec<String>) -> snap::Result<()> {
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub.clone(), dir, pages)?;
    }
    let page = clap_mangen::Man::new(command)
        .source(concat!("snap ", env!("CARGO_PKG_VERSION")))
        .manual("snap manual");
    let path = dir.join(page.get_filename());
    page.generate_to(dir)
        .map_err(|e| snap::Error::io("cannot write man page", &path, e))?;
    pages.push(page.get_filename());
    Ok(())
}
