//! `snap prune` (and the pruning half of `snap forget --prune`)

use snap::duration::{BareM, Span};
use snap::ops::prune::{PlanTotals, PlannedPack, PruneOptions, PruneReport, prune, prune_plan};

use super::output::{self, CliProgress};
use super::{Global, exit};

/// Options `prune` shares with `forget --prune`.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneArgs {
    /// Repack a pack when more than this share of it is unused ("5%"; "unlimited" never repacks).
    #[arg(long, value_name = "P%", default_value = "5%", value_parser = parse_max_unused)]
    max_unused: f64,
    /// Delete unused packs in this run instead of after the grace period
    /// (a restore running at the same time may then fail; backups stay safe).
    #[arg(long)]
    instant_delete: bool,
    /// How long packs marked obsolete stay before a later prune deletes them
    /// (like 1h, 30min, 2d; a bare `m` means minutes here).
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    grace_period: String,
}

impl PruneArgs {
    /// The library's options, and the grace period as given.
    pub fn options(&self, dry_run: bool) -> snap::Result<Prepared> {
        let grace = output::duration_arg(&self.grace_period, "--grace-period", BareM::Minutes)?;
        Ok(Prepared {
            options: PruneOptions {
                max_unused: self.max_unused,
                instant_delete: self.instant_delete,
                grace: grace.to_std(),
                dry_run,
            },
            grace,
        })
    }
}

/// Parsed prune options.
pub struct Prepared {
    /// For the library.
    pub options: PruneOptions,
    /// The grace period as the user wrote it (a dry run prints it in words).
    pub grace: Span,
}

/// Give back the space of data no snapshot uses.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    prune: PruneArgs,
    /// Print the plan: packs to delete and to repack, bytes freed. Change nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_max_unused(text: &str) -> Result<f64, String> {
    if text == "unlimited" {
        return Ok(f64::INFINITY);
    }
    let number = text.strip_suffix('%').unwrap_or(text).trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(format!(
            "`{text}` is not a share: use a percentage from 0% to 100%, or unlimited"
        )),
    }
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let outcome = execute(global, &args.prune.options(args.dry_run)?, &progress)?;
    if global.json {
        output::print_json(&outcome.json())?;
    } else {
        outcome.print(&progress, global.quiet);
    }
    Ok(exit::OK)
}

/// What a prune planned and did, ready to print.
pub struct Outcome {
    dry_run: bool,
    grace: Span,
    snapshots: usize,
    live_blobs: u64,
    totals: PlanTotals,
    packs: Vec<(PlannedPack, Option<i64>)>,
    orphans: Vec<(snap::PackId, u64)>,
    report: Option<PruneReport>,
}

/// Plans a prune and, unless `options.dry_run`, executes it.
pub fn execute(
    global: &Global,
    prepared: &Prepared,
    progress: &CliProgress,
) -> anyhow::Result<Outcome> {
    let options = &prepared.options;
    let repo = super::with_warnings(snap::ops::prune::open(
        global.backend()?,
        &global.credentials(),
        progress,
    )?);
    let plan = prune_plan(&repo, options, progress)?;
    let packs = plan
        .packs
        .iter()
        .filter(|p| p.fate.copy || p.fate.mark || p.fate.delete || p.usage.marked_at.is_some())
        .map(|p| (p.clone(), plan.deletable_after(p)))
        .collect();
    let mut outcome = Outcome {
        dry_run: options.dry_run,
        grace: prepared.grace,
        snapshots: plan.snapshots,
        live_blobs: plan.live_blobs,
        totals: plan.totals(),
        packs,
        orphans: plan.orphans.clone(),
        report: None,
    };
    if !options.dry_run {
        // The bar covers the repacking only, not the planning before it.
        let mut repacking = global.progress();
        repacking.start("prune");
        let report = prune(&repo, plan, &repacking);
        repacking.finish(report.is_ok());
        outcome.report = Some(report?);
    }
    Ok(outcome)
}

fn time(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds).map_or_else(
        |_| seconds.to_string(),
        |t| output::local_time(&t.to_string()),
    )
}

impl Outcome {
    /// The JSON shape documented in docs/CLI.md.
    pub fn json(&self) -> serde_json::Value {
        let pack = |p: &PlannedPack| {
            serde_json::json!({
                "id": p.usage.id.to_hex(),
                "size": p.usage.size,
                "live_bytes": p.usage.live_bytes,
                "dead_bytes": p.usage.dead_bytes,
            })
        };
        let list = |keep: &dyn Fn(&PlannedPack) -> bool| -> Vec<serde_json::Value> {
            self.packs
                .iter()
                .filter(|(p, _)| keep(p))
                .map(|(p, _)| pack(p))
                .collect()
        };
        let mut delete = list(&|p| p.fate.delete);
        delete.extend(self.orphans.iter().map(
            |(id, size)| serde_json::json!({"id": id.to_hex(), "size": size, "orphan": true}),
        ));
        let waiting: Vec<_> =
            self.packs
                .iter()
                .filter_map(|(p, after)| {
                    after.map(|after| serde_json::json!({
                    "id": p.usage.id.to_hex(), "size": p.usage.size, "deletable_after": after,
                }))
                })
                .collect();
        serde_json::json!({
            "dry_run": self.dry_run,
            "grace_period_s": self.grace.to_std().as_secs(),
            "snapshots": self.snapshots,
            "live_blobs": self.live_blobs,
            "totals": self.totals,
            "delete": delete,
            "repack": list(&|p| p.fate.copy && p.usage.marked_at.is_none()),
            "rescue": list(&|p| p.fate.copy && p.usage.marked_at.is_some()),
            "mark": list(&|p| p.fate.mark),
            "waiting": waiting,
            "bytes_freed": self.totals.bytes_freed,
            "report": self.report,
        })
    }

    /// The plan (every pack in a dry run) and what was done, for people;
    /// with `quiet` only a dry run's plan and the warnings.
    pub fn print(&self, progress: &CliProgress, quiet: bool) {
        if quiet && !self.dry_run {
            if let Some(reason) = self.report.as_ref().and_then(|r| r.deferred.as_ref()) {
                snap::Progress::warn(progress, reason);
            }
            return;
        }
        let t = &self.totals;
        println!(
            "{} {} {}; packs: keep {} ({}), copy live data out of {} ({}), mark {} obsolete ({})",
            output::count(self.snapshots, "snapshot", "snapshots"),
            output::noun(self.snapshots, "uses", "use"),
            output::count(self.live_blobs, "blob", "blobs"),
            t.keep_packs,
            output::bytes(t.keep_bytes),
            t.copy_packs,
            output::bytes(t.copy_bytes),
            t.mark_packs,
            output::bytes(t.mark_bytes),
        );
        if self.dry_run {
            println!(
                "grace period: {} (a later prune deletes packs marked longer ago)",
                self.grace.words()
            );
            for (p, after) in &self.packs {
                let what = match (p.fate.copy, p.fate.delete, p.usage.marked_at.is_some()) {
                    (true, _, false) => "repack",
                    (true, _, true) => "rescue",
                    (false, true, _) => "delete",
                    (false, false, _) => "wait",
                };
                let when = match (p.fate.delete, after) {
                    (true, _) => "deleted now".to_string(),
                    (false, Some(after)) => format!("deletable after {}", time(*after)),
                    (false, None) => String::new(),
                };
                println!(
                    "  {what:<7} {}  {:>10}  {:>5.1}% unused  {when}",
                    p.usage.id.short(),
                    output::bytes(p.usage.size),
                    p.usage.dead_share() * 100.0,
                );
            }
            for (id, size) in &self.orphans {
                println!(
                    "  delete  {}  {:>10}  in no index (left by an interrupted run)",
                    id.short(),
                    output::bytes(*size)
                );
            }
            println!(
                "would delete {} ({}) and free {}; nothing was changed (dry run)",
                output::count(t.delete_packs, "pack", "packs"),
                output::bytes(t.delete_bytes),
                output::bytes(t.bytes_freed)
            );
        }
        if let Some(r) = &self.report {
            println!(
                "copied {} into {} ({}); marked {} obsolete",
                output::count(r.blobs_copied, "blob", "blobs"),
                output::count(r.packs_written, "new pack", "new packs"),
                output::bytes(r.bytes_written),
                output::count(r.packs_marked, "pack", "packs")
            );
            println!(
                "deleted {} ({}); index: {} written, {} removed",
                output::count(r.packs_deleted, "pack", "packs"),
                output::bytes(r.bytes_deleted),
                output::count(r.deltas_written, "delta", "deltas"),
                r.deltas_deleted
            );
            if let Some(reason) = &r.deferred {
                snap::Progress::warn(progress, reason);
            }
            if r.packs_kept_for_new_snapshots > 0 {
                println!(
                    "{} kept back: snapshots written during the prune use {}",
                    output::count(r.packs_kept_for_new_snapshots, "pack", "packs"),
                    output::noun(r.packs_kept_for_new_snapshots, "it", "them")
                );
            }
        }
        let waiting: Vec<i64> = self.packs.iter().filter_map(|(_, after)| *after).collect();
        if let Some(last) = waiting.iter().max() {
            println!(
                "{} ({}) {} marked obsolete and can be deleted by a prune after {} (or now with --instant-delete)",
                output::count(t.waiting_packs, "pack", "packs"),
                output::bytes(t.waiting_bytes),
                output::noun(t.waiting_packs, "is", "are"),
                time(*last)
            );
        }
    }
}
