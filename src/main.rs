//! The `snap` command: parses the command line, calls the library, maps
//! errors to the exit codes documented in docs/CLI.md.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
