//! `snap drill`

use snap::ops::drill::{DrillHook, DrillOptions, DrillReport, drill};
use snap::select::{Filter, parse_selector, resolve};

use super::output;
use super::{Global, exit};

/// Differences and damaged paths listed before "and N more".
const PATHS_SHOWN: usize = 20;

/// Rehearse a restore: restore into a scratch folder, verify it, record the result.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The snapshot to drill (default: latest).
    #[arg(default_value = "latest")]
    snapshot: String,
    /// Drill only this percentage of the files, chosen from a seed the report prints (e.g. 10%).
    #[arg(long, value_name = "N%")]
    sample: Option<String>,
    /// The seed that chooses the sample (repeat a drill with the seed it printed).
    #[arg(long, requires = "sample")]
    seed: Option<u64>,
    /// Make the scratch folder in this folder (default: the system's temporary folder).
    #[arg(long, value_name = "DIR")]
    scratch: Option<std::path::PathBuf>,
}

/// `10%`, `10` or `2.5%` as a percentage.
fn parse_percent(text: &str) -> snap::Result<f64> {
    text.trim()
        .trim_end_matches('%')
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| {
            snap::Error::usage(format!(
                "--sample takes a percentage more than 0% and at most 100%, like 10%, not `{text}`"
            ))
        })
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let sample_percent = args.sample.as_deref().map(parse_percent).transpose()?;
    if let Some(dir) = &args.scratch
        && !dir.is_dir()
    {
        return Err(
            snap::Error::usage(format!("--scratch {} is not a folder", dir.display())).into(),
        );
    }
    let mut progress = global.progress();
    // A drill writes its record: it opens the repository as writers do.
    let repo = global.open(&progress)?;
    let (id, snapshot) = resolve(&repo, &parse_selector(&args.snapshot)?, &Filter::default())?;
    let options = DrillOptions {
        scratch: args.scratch.clone().unwrap_or_default(),
        sample_percent,
        seed: args.seed,
        hook: global.profile.as_ref().and_then(|p| {
            p.hooks.drill.as_ref().map(|command| DrillHook {
                command: command.clone(),
                dir: p.dir.clone(),
                timeout: p.hook_timeout,
            })
        }),
    };
    // The restore inside the drill reports its plan's totals.
    progress.start("drill");
    let result = drill(&repo, id, &snapshot, &options, &progress);
    progress.finish(result.is_ok());
    let report = result?;
    if global.json {
        print_json(&report)?;
    } else {
        print_text(&report, global.quiet);
    }
    let mut failed: Vec<String> = report.damaged.clone();
    failed.extend(report.differences.iter().map(|d| d.path.clone()));
    failed.extend(
        report
            .databases
            .iter()
            .filter(|d| !d.ok)
            .map(|d| d.path.clone()),
    );
    if !failed.is_empty() {
        failed.sort();
        failed.dedup();
        output::print_err(&format!(
            "snap: the drill of snapshot {} failed: {} not restored as the snapshot holds {}: {}; run `snap check`",
            report.snapshot.short(),
            output::count(failed.len(), "path", "paths"),
            output::noun(failed.len(), "it", "them"),
            shown(&failed)
        ));
    }
    Ok(if !failed.is_empty() {
        exit::DAMAGED
    } else if report.hook.as_ref().is_some_and(|h| !h.ok) {
        exit::ERROR
    } else if report.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

fn print_json(report: &DrillReport) -> anyhow::Result<()> {
    output::print_json(&serde_json::json!({
        "ok": report.ok(),
        "snapshot": report.snapshot.to_hex(),
        "tree": report.tree.to_hex(),
        "snapshot_time": report.snapshot_time,
        "time": report.time,
        "sample_percent": report.sample_percent,
        "seed": report.sample_percent.map(|_| report.seed),
        "files": report.files,
        "dirs": report.dirs,
        "others": report.others,
        "bytes": report.bytes,
        "damaged": report.damaged,
        "differences": report.differences,
        "databases": report.databases,
        "hook": report.hook,
        "warnings": report.warnings,
        "restore_s": report.restore_s,
        "verify_s": report.verify_s,
        "hook_s": report.hook_s,
        "duration_s": report.duration_s,
        "record": report.record,
    }))
}

/// `paths` joined, at most [`PATHS_SHOWN`] of them.
fn shown(paths: &[String]) -> String {
    let mut text = paths
        .iter()
        .take(PATHS_SHOWN)
        .map(|p| output::terminal_safe(p).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > PATHS_SHOWN {
        text.push_str(&format!(" and {} more", paths.len() - PATHS_SHOWN));
    }
    text
}

fn print_text(report: &DrillReport, quiet: bool) {
    for difference in report.differences.iter().take(PATHS_SHOWN) {
        println!(
            "differs: {}: {}",
            output::terminal_safe(&difference.path),
            difference.what
        );
    }
    if report.differences.len() > PATHS_SHOWN {
        println!(
            "differs: and {} more",
            report.differences.len() - PATHS_SHOWN
        );
    }
    if !report.damaged.is_empty() {
        println!("damaged: {}", shown(&report.damaged));
    }
    for db in &report.databases {
        if db.ok && quiet {
            continue;
        }
        let verdict = if db.ok { "ok" } else { "FAILED" };
        println!(
            "sqlite {verdict}: {}{}",
            output::terminal_safe(&db.path),
            if db.ok {
                String::new()
            } else {
                format!(": {}", db.message.lines().next().unwrap_or_default())
            }
        );
    }
    if let Some(hook) = &report.hook
        && !hook.ok
    {
        println!("drill hook FAILED: {}", hook.message);
    }
    if quiet && report.ok() {
        return;
    }
    let sample = match report.sample_percent {
        Some(p) => format!(" (sample {p}% of the files, seed {})", report.seed),
        None => String::new(),
    };
    println!(
        "drilled snapshot {}{sample}: restored and verified {}, {}, {} ({}) in {:.1}s (restore {:.1}s, verify {:.1}s{})",
        report.snapshot.short(),
        output::count(report.files, "file", "files"),
        output::count(report.dirs, "dir", "dirs"),
        output::count(report.others, "other entry", "other entries"),
        output::bytes(report.bytes),
        report.duration_s,
        report.restore_s,
        report.verify_s,
        if report.hook.is_some() {
            format!(", hook {:.1}s", report.hook_s)
        } else {
            String::new()
        }
    );
    if !report.databases.is_empty() {
        println!(
            "integrity_check: {} of {} ok",
            report.databases.iter().filter(|d| d.ok).count(),
            output::count(report.databases.len(), "database", "databases")
        );
    }
    if report.ok() {
        println!("the drill passed; recorded in the repository");
    } else {
        println!("the drill FAILED; recorded in the repository");
    }
}
