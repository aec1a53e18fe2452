//! `snap repair index` and `snap repair snapshots`

use snap::ops::check::ReadData;
use snap::ops::repair::{
    IndexPlan, SnapshotPlan, plan_index, plan_snapshots, repair_index, repair_snapshots,
};

use super::output;
use super::{Global, exit};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Rebuild the index (and its cache) from the pack trailers.
    Index {
        /// Only show what would be written and removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write copies of damaged snapshots without the files that cannot be restored.
    Snapshots {
        /// Only show which snapshots would be repaired and what they would lose.
        #[arg(long)]
        dry_run: bool,
        /// Judge damage by the index and pack structure only, without reading
        /// every pack (faster; misses damage inside blobs).
        #[arg(long)]
        no_read_data: bool,
    },
    /// Rebuild missing or damaged packs from their parity groups and write them back.
    Packs {
        /// Only show which packs would be rebuilt and which groups re-formed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(global: &Global, command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Index { dry_run } => index(global, dry_run),
        Command::Snapshots {
            dry_run,
            no_read_data,
        } => snapshots(global, dry_run, no_read_data),
        Command::Packs { dry_run } => packs(global, dry_run),
    }
}

fn packs(global: &Global, dry_run: bool) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open(&progress)?;
    let report = snap::ops::parity::repair_packs(&repo, dry_run, &progress)?;
    if global.json {
        output::print_json(&serde_json::json!({
            "dry_run": dry_run,
            "rebuilt": report.rebuilt.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "lost": report.lost.iter().map(|(id, why)| serde_json::json!({"pack": id.to_hex(), "reason": why})).collect::<Vec<_>>(),
            "reformed": report.reformed,
            "new_groups": report.new_groups,
            "newly_protected": report.newly_protected,
        }))?;
    } else {
        for (id, why) in &report.lost {
            println!("pack {id} is lost: {why}");
        }
        if !global.quiet {
            let verb = if dry_run { "would rebuild" } else { "rebuilt" };
            for id in &report.rebuilt {
                println!("{verb} pack {id} from its parity group");
            }
            for name in &report.reformed {
                println!(
                    "{} parity object {name} (it named packs that are gone, or is damaged)",
                    if dry_run { "would replace" } else { "replaced" }
                );
            }
            if report.new_groups > 0 {
                println!(
                    "{} {} over {} that had none",
                    if dry_run { "would write" } else { "wrote" },
                    output::count(report.new_groups as usize, "parity group", "parity groups"),
                    output::count(report.newly_protected as usize, "pack", "packs")
                );
            }
            if report.rebuilt.is_empty()
                && report.lost.is_empty()
                && report.reformed.is_empty()
                && report.new_groups == 0
            {
                println!("every pack in a parity group is sound; nothing to repair");
            }
        }
    }
    Ok(if report.lost.is_empty() {
        exit::OK
    } else {
        exit::DAMAGED
    })
}

fn index(global: &Global, dry_run: bool) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open(&progress)?;
    let plan = plan_index(&repo, &progress)?;
    let report = if dry_run {
        None
    } else {
        Some(repair_index(&repo, &plan, &progress)?)
    };
    if global.json {
        output::print_json(&serde_json::json!({
            "dry_run": dry_run,
            "packs": plan.packs.len(),
            "blobs": plan.blobs(),
            "salvaged": plan.salvaged.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "left_out": plan.left_out,
            "damaged_index_files": plan.damaged_deltas.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            "index_files_written": report.as_ref().map_or(plan.new_delta_count(), |r| r.written.len()),
            "index_files_removed": report.as_ref().map_or(plan.old_deltas.len() as u64, |r| r.removed),
        }))?;
    } else {
        print_index_plan(&plan, dry_run, global.quiet);
        if let Some(report) = report.as_ref().filter(|_| !global.quiet) {
            println!(
                "wrote {}, removed {} old {}; the index cache is rebuilt",
                output::count(report.written.len(), "index file", "index files"),
                report.removed,
                output::noun(report.removed, "one", "ones")
            );
        }
    }
    Ok(exit::OK)
}

/// The plan; with `quiet` (and not a dry run) only the packs whose data is
/// lost.
fn print_index_plan(plan: &IndexPlan, dry_run: bool, quiet: bool) {
    let quiet = quiet && !dry_run;
    if !quiet {
        for id in &plan.damaged_deltas {
            println!("damaged index file {id} (will be replaced)");
        }
        for id in &plan.salvaged {
            println!("pack {id}: trailer unreadable; its entries are kept from the old index");
        }
    }
    for left in &plan.left_out {
        println!(
            "pack {}: left out of the index, its blobs are lost: {}",
            left.pack, left.reason
        );
    }
    if quiet {
        return;
    }
    println!(
        "{} {} with {} in {}, {} {} old {}",
        if dry_run { "would index" } else { "indexing" },
        output::count(plan.packs.len(), "pack", "packs"),
        output::count(plan.blobs(), "blob", "blobs"),
        output::count(plan.new_delta_count(), "index file", "index files"),
        if dry_run { "would remove" } else { "removing" },
        plan.old_deltas.len(),
        output::noun(plan.old_deltas.len(), "index file", "index files")
    );
    if !plan.left_out.is_empty() {
        println!(
            "run `snap repair snapshots` to write snapshots without the files the left-out packs held"
        );
    }
}

fn snapshots(global: &Global, dry_run: bool, no_read_data: bool) -> anyhow::Result<u8> {
    let mut progress = global.progress();
    let repo = global.open(&progress)?;
    // Before the check, which would refuse a write-only key in its own words.
    repo.require_full_access("repair snapshots")?;
    let read_data = if no_read_data {
        ReadData::None
    } else {
        ReadData::All
    };
    let report = super::check::run_check(&repo, &read_data, &mut progress)?;
    let plan = plan_snapshots(&report);
    let repaired = if dry_run {
        Vec::new()
    } else {
        repair_snapshots(&repo, &plan, &progress)?
    };
    if global.json {
        let rows: Vec<_> = plan
            .repairs
            .iter()
            .map(|r| {
                serde_json::json!({
                    "snapshot": r.snapshot.to_hex(),
                    "repaired": repaired.iter().find(|d| d.original == r.snapshot).map(|d| d.repaired.to_hex()),
                    "dropped": r.dropped,
                    "emptied": r.emptied,
                })
            })
            .collect();
        output::print_json(&serde_json::json!({
            "dry_run": dry_run,
            "snapshots": rows,
            "unreadable": plan.unreadable.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
        }))?;
    } else {
        print_snapshot_plan(&plan, dry_run, global.quiet);
        for done in repaired.iter().filter(|_| !global.quiet) {
            println!(
                "snapshot {} repaired as {} (tag `repaired`); forget the original when you no longer need it",
                done.original.short(),
                done.repaired.short()
            );
        }
    }
    Ok(exit::OK)
}

/// The plan; with `quiet` (and not a dry run) only the snapshots that
/// cannot be repaired.
fn print_snapshot_plan(plan: &SnapshotPlan, dry_run: bool, quiet: bool) {
    for id in &plan.unreadable {
        println!("snapshot {id} is unreadable and cannot be repaired; forget it");
    }
    if quiet && !dry_run {
        return;
    }
    for repair in &plan.repairs {
        println!(
            "snapshot {} {} {} and empty {}:",
            repair.snapshot.short(),
            if dry_run { "would drop" } else { "drops" },
            output::count(repair.dropped.len(), "file", "files"),
            output::count(repair.emptied.len(), "folder", "folders")
        );
        for path in &repair.dropped {
            println!("  dropped {path}");
        }
        for path in &repair.emptied {
            println!("  emptied {path}/");
        }
    }
    if plan.repairs.is_empty() && plan.unreadable.is_empty() {
        println!("no snapshot loses data; nothing to repair");
    }
}
