//! `snap check`

use snap::ops::check::{
    CheckOptions, CheckReport, ReadData, check, critical_source_warnings, select_packs,
};

use snap::ops::drill::{DrillRecord, DrillStatus, drill_status};

use super::output::{self, CliProgress};
use super::{Global, exit};

/// Paths listed per snapshot and problem before "and N more".
const PATHS_SHOWN: usize = 10;

/// Verify that every snapshot can be restored; report what damage costs.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Also read every pack in full and verify every blob (hash, decompression, decryption).
    #[arg(long)]
    read_data: bool,
    /// Read only a subset of the packs: N/M (slice N of M; M runs with N = 1..M
    /// cover every pack once) or P% (a random P percent of the packs).
    #[arg(long, value_name = "N/M|P%", conflicts_with = "read_data")]
    read_data_subset: Option<String>,
    /// Also run SQLite's integrity_check on every database in a snapshot
    /// (default: the latest), each restored to a temporary file.
    #[arg(long, value_name = "SNAP", num_args = 0..=1, default_missing_value = "latest")]
    sqlite: Option<String>,
    /// Warn (exit 3) when no restore drill passed within this many days
    /// (default: the profile's `drill-max-age`; without either, never).
    #[arg(long, value_name = "DAYS")]
    drill_max_age: Option<u32>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(subset), _) => subset.parse::<ReadData>()?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let mut progress = global.progress();
    let repo = global.open(&progress)?;
    let report = run_check(&repo, &read_data, &mut progress)?;
    let critical: Vec<&str> = global
        .profile
        .iter()
        .flat_map(|p| p.critical_sources())
        .collect();
    // A repository too damaged to list its snapshots is reported by the check itself.
    let mut warnings = critical_source_warnings(&repo, &critical).unwrap_or_default();
    let max_age = args
        .drill_max_age
        .or_else(|| global.profile.as_ref().and_then(|p| p.drill_max_age));
    let drills = drill_status(&repo, max_age, jiff::Timestamp::now())?;
    warnings.extend(drills.warning.clone());
    let databases = match &args.sqlite {
        Some(selector) => Some(check_databases(&repo, selector, &progress)?),
        None => None,
    };
    let bad_databases = databases.iter().flatten().filter(|d| !d.ok).count();
    if global.json {
        let mut value = serde_json::to_value(&report)?;
        value["warnings"] = warnings.clone().into();
        if let Some(databases) = &databases {
            value["sqlite"] = serde_json::to_value(databases)?;
        }
        value["drill"] = serde_json::json!({
            "last": drills.last.as_ref().map(drill_json),
            "last_passed": drills.last_passed.as_ref().map(drill_json),
            "max_age_days": max_age,
        });
        output::print_json(&value)?;
    } else {
        print_report(&report, global.quiet);
        if !global.quiet {
            print_drills(&drills);
        }
        for warning in &warnings {
            println!("warning: {warning}");
        }
        for db in databases.iter().flatten() {
            if db.ok && global.quiet {
                continue;
            }
            let verdict = if db.ok { "ok" } else { "FAILED" };
            println!(
                "sqlite {verdict}: {} ({})",
                db.path,
                output::count(db.size, "byte", "bytes")
            );
            if !db.ok {
                println!(
                    "  {}",
                    db.message.lines().take(10).collect::<Vec<_>>().join("\n  ")
                );
            }
        }
        if let Some(databases) = &databases
            && !(global.quiet && bad_databases == 0)
        {
            println!(
                "integrity_check: {} of {} ok",
                databases.len() - bad_databases,
                output::count(databases.len(), "database", "databases")
            );
        }
    }
    Ok(if !report.ok || bad_databases > 0 {
        exit::DAMAGED
    } else if !warnings.is_empty() {
        exit::WARNINGS
    } else {
        exit::OK
    })
}

/// integrity_check of every database of the snapshot `selector` picks.
fn check_databases(
    repo: &snap::Repository,
    selector: &str,
    progress: &CliProgress,
) -> anyhow::Result<Vec<snap::ops::sqlite::DatabaseCheck>> {
    let selector = snap::select::parse_selector(selector)?;
    let (_, snapshot) = snap::select::resolve(repo, &selector, &snap::select::Filter::default())?;
    let scratch = std::env::temp_dir();
    Ok(snap::ops::sqlite::check_databases(
        repo,
        snapshot.tree,
        &scratch,
        progress,
    )?)
}

/// Checks the repository, reading the packs `read_data` selects, with a
/// progress bar over the bytes read (shared by `check` and `repair snapshots`).
pub fn run_check(
    repo: &snap::Repository,
    read_data: &ReadData,
    progress: &mut CliProgress,
) -> snap::Result<CheckReport> {
    let read_packs = select_packs(repo, read_data)?;
    if !read_packs.is_empty() {
        progress.start("read data");
    }
    let options = CheckOptions {
        read_packs: read_packs.into_iter().map(|(id, _)| id).collect(),
    };
    let result = check(repo, &options, progress);
    progress.finish(result.is_ok());
    result
}

fn print_report(report: &CheckReport, quiet: bool) {
    for problem in &report.errors {
        println!("error: {}: {}", problem.object, problem.message);
        for affected in &problem.affected {
            let shown: Vec<&str> = affected
                .paths
                .iter()
                .take(PATHS_SHOWN)
                .map(String::as_str)
                .collect();
            let more = affected.paths.len().saturating_sub(PATHS_SHOWN);
            println!(
                "  snapshot {} loses: {}{}",
                affected.snapshot.short(),
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
    if quiet && report.ok {
        return;
    }
    if !quiet {
        for item in &report.cleanup {
            let size = if item.bytes > 0 {
                format!(" ({})", output::bytes(item.bytes))
            } else {
                String::new()
            };
            println!("cleanup: {}{size}: {}", item.object, item.message);
        }
    }
    let read = if report.packs_read > 0 {
        format!(
            ", read {} ({})",
            output::count(report.packs_read, "pack", "packs"),
            output::bytes(report.bytes_read)
        )
    } else {
        String::new()
    };
    println!(
        "checked {}, {}, {}, {}, {}{read}",
        output::count(report.snapshots, "snapshot", "snapshots"),
        output::count(report.trees, "tree", "trees"),
        output::count(report.blobs, "blob", "blobs"),
        output::count(report.packs, "pack", "packs"),
        output::count(report.index_files, "index file", "index files"),
    );
    if let Some(parity) = &report.parity {
        super::parity::print_protection(parity);
    }
    if report.ok {
        println!("no errors were found");
    } else {
        let lost: usize = report.damaged.values().map(|entries| entries.len()).sum();
        println!(
            "the repository is damaged: {}; {} cannot be read, {} {} {}",
            output::count(report.errors.len(), "error", "errors"),
            output::count(report.damaged_snapshots.len(), "snapshot", "snapshots"),
            report.damaged.len(),
            output::noun(report.damaged.len(), "loses", "lose"),
            output::count(lost, "path", "paths")
        );
    }
}

fn drill_json(record: &DrillRecord) -> serde_json::Value {
    serde_json::json!({
        "time": record.time,
        "ok": record.ok,
        "snapshot": record.snapshot.to_hex(),
        "tree": record.tree.to_hex(),
        "snapshot_time": record.snapshot_time,
        "sample_percent": record.sample_percent,
        "files": record.files,
        "bytes": record.bytes,
        "databases": record.databases,
        "databases_failed": record.databases_failed,
        "hook_ok": record.hook_ok,
        "duration_s": record.duration_s,
        "failed_paths": record.failed_paths,
    })
}

/// One line on the last restore drill (none when there never was one),
/// and one on the last that passed when that is another.
fn print_drills(drills: &DrillStatus) {
    let describe = |d: &DrillRecord| {
        format!(
            "{} of snapshot {}, {}{}",
            output::local_time(&d.time),
            &d.snapshot.to_hex()[..8],
            output::count(d.files, "file", "files"),
            d.sample_percent
                .map(|p| format!(" (sample {p}%)"))
                .unwrap_or_default()
        )
    };
    let Some(last) = &drills.last else {
        return;
    };
    println!(
        "last restore drill: {} {}",
        if last.ok { "passed" } else { "FAILED" },
        describe(last)
    );
    if !last.ok
        && let Some(passed) = &drills.last_passed
    {
        println!("last passed restore drill: {}", describe(passed));
    }
}
