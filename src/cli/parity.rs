//! `snap parity enable` and `snap parity status`

use snap::ParityLevel;
use snap::ops::parity::ParityStatus;

use super::output;
use super::{Global, exit};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Turn parity on (or change its level) for the packs written from now on.
    Enable {
        /// Parity as a percentage: 10% adds one parity shard per group of 10
        /// packs (any one lost pack of the group is rebuilt), 20% two.
        #[arg(value_name = "PERCENT")]
        level: ParityLevel,
    },
    /// Show the parity level and how many packs and bytes parity groups protect.
    Status,
}

pub fn run(global: &Global, command: Command) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open(&progress)?;
    match command {
        Command::Enable { level } => {
            repo.enable_parity(level)?;
            if global.json {
                output::print_json(&serde_json::json!({ "percent": level.percent() }))?;
            } else if !global.quiet {
                println!(
                    "parity {}% is on for new packs: {} per group of {} packs rebuild{} any {} lost pack{} of the group; `snap repair packs` adds groups for the packs stored before",
                    level.percent(),
                    output::count(usize::from(level.parity), "parity shard", "parity shards"),
                    level.data,
                    if level.parity == 1 { "s" } else { "" },
                    level.parity,
                    if level.parity == 1 { "" } else { "s" },
                );
            }
        }
        Command::Status => {
            let status = snap::ops::parity::status(&repo)?;
            if global.json {
                output::print_json(&status)?;
            } else {
                print_status(&status);
            }
        }
    }
    Ok(exit::OK)
}

/// The status as a few lines.
pub fn print_status(status: &ParityStatus) {
    match status.percent {
        Some(percent) => println!("parity: {percent}% for new packs"),
        None => println!("parity: off for new packs"),
    }
    print_protection(status);
    for (name, gone) in &status.orphans {
        let gone: Vec<String> = gone.iter().map(|id| id.to_hex()).collect();
        println!(
            "orphan parity object {name}: it names packs that are gone ({}); `snap repair packs` re-forms its group",
            gone.join(", ")
        );
    }
    for (name, why) in &status.damaged {
        println!("damaged parity object {name}: {why}; `snap repair packs` replaces it");
    }
}

/// One line: how much parity protects.
pub fn print_protection(status: &ParityStatus) {
    println!(
        "parity protects {} of {} ({} of {}) with {} ({})",
        output::count(status.protected_packs as usize, "pack", "packs"),
        status.packs,
        output::bytes(status.protected_bytes),
        output::bytes(status.pack_bytes),
        output::count(status.groups as usize, "parity group", "parity groups"),
        output::bytes(status.parity_bytes)
    );
}

/// A note on standard error for every pack a reader rebuilt from parity:
/// nothing was lost, but the repository wants `snap repair packs`.
pub fn note_rebuilt(repo: &snap::Repository) {
    for id in repo.rebuilt_packs() {
        output::print_err(&format!(
            "snap: note: pack {id} is missing or damaged and was rebuilt from its parity group; `snap repair packs` writes it back"
        ));
    }
}
