//! `snap forget`

use super::filter::FilterArgs;
use std::collections::HashMap;

use snap::duration::BareM;
use snap::ops::forget::{
    Candidate, ForgetPlan, GroupBy, KeepPolicy, Selection, UNLIMITED, forget, forget_plan,
};
use snap::select::{parse_selector, select};
use snap::{Error, Snapshot, SnapshotId};

use super::output;
use super::prune::{self, PruneArgs};
use super::{Global, exit};

/// Remove snapshots by a retention policy (or by id); `--prune` then frees their data.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to forget (ids, latest~N, @TIME) instead of a policy.
    snapshots: Vec<String>,
    /// Keep the N newest snapshots ("unlimited" or -1: all).
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest days that have one (local time).
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest months that have one.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the N newest years that have one.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_yearly: Option<u32>,
    /// Keep every snapshot taken within DURATION (like 30d, 1y2mo, 12h) of the newest one
    /// (a bare `m` means months here, as in restic).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot that has these tags (comma-separated: all of them; repeatable: any).
    #[arg(long = "keep-tag", value_name = "T[,T...]")]
    keep_tags: Vec<String>,
    /// Apply the policy separately to each group of snapshots with the same of these.
    #[arg(long, value_name = "host,paths,tags", default_value = "host,paths")]
    group_by: GroupBy,
    #[command(flatten)]
    filter: FilterArgs,
    /// Show what would be kept and removed, and why; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Run `snap prune` afterwards (with the options below).
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_options: PruneArgs,
}

fn parse_count(text: &str) -> Result<u32, String> {
    match text {
        "unlimited" | "-1" => Ok(UNLIMITED),
        _ => text
            .parse::<u32>()
            .ok()
            .filter(|&n| n != UNLIMITED)
            .ok_or_else(|| format!("`{text}` is not a count: use a number, or unlimited")),
    }
}

impl Args {
    fn policy(&self) -> snap::Result<KeepPolicy> {
        let within = self
            .keep_within
            .as_deref()
            .map(|text| output::duration_arg(text, "--keep-within", BareM::Months))
            .transpose()?;
        if within.is_some_and(|w| w.is_zero()) {
            return Err(Error::usage(
                "--keep-within 0 keeps nothing: give a longer duration, like 30d",
            ));
        }
        Ok(KeepPolicy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within,
            tags: snap::ops::tag::tag_lists(&self.keep_tags)?,
        })
    }
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let mut policy = args.policy()?;
    // A bad prune option fails before any snapshot is forgotten.
    let prune_options = args
        .prune
        .then(|| args.prune_options.options(args.dry_run))
        .transpose()?;
    let mut group_by = args.group_by;
    // No policy and no snapshots on the command line: the profile's [retention].
    if policy.is_empty()
        && args.snapshots.is_empty()
        && let Some(retention) = global.profile.as_ref().and_then(|p| p.retention.as_ref())
    {
        policy = retention.policy.clone();
        group_by = retention.group_by.unwrap_or(group_by);
    }
    let repo = global.open(&progress)?;
    // Before the snapshots are read, which a write-only key cannot do.
    repo.require_full_access("forget snapshots")?;
    let filter = args.filter.clone().filter()?;
    let snapshots: Vec<(SnapshotId, Snapshot)> = repo.snapshots()?;
    let mut ids = Vec::new();
    for text in &args.snapshots {
        let (id, _) = select(&snapshots, &parse_selector(text)?, &filter)?;
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    if !ids.is_empty() && !policy.is_empty() {
        return Err(Error::usage(
            "give either the snapshots to forget or a --keep-* policy, not both",
        )
        .into());
    }
    let selection = if ids.is_empty() {
        Selection::Policy(&policy, group_by)
    } else {
        Selection::Ids(&ids)
    };
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .filter(|(_, s)| filter.matches(s))
        .map(|(id, s)| Candidate::of(*id, s))
        .collect();
    let plan = forget_plan(
        &candidates,
        selection,
        &jiff::tz::TimeZone::system(),
        jiff::Timestamp::now(),
    )?;
    let drill_records_removed = if args.dry_run {
        0
    } else {
        forget(&repo, &plan, &progress)?.drill_records_removed
    };
    // The prune opens the repository with a cache of its own.
    drop(repo);
    let pruned = prune_options
        .map(|options| prune::execute(global, &options, &progress))
        .transpose()?;
    let by_id: HashMap<SnapshotId, &Snapshot> = snapshots.iter().map(|(id, s)| (*id, s)).collect();
    if global.json {
        let mut value = plan_json(&plan, &by_id, args.dry_run);
        value["drill_records_removed"] = drill_records_removed.into();
        if let Some(pruned) = &pruned {
            value["prune"] = pruned.json();
        }
        output::print_json(&value)?;
    } else {
        // With -q only a dry run prints: its plan is what was asked for.
        if args.dry_run || !global.quiet {
            print_plan(
                &plan,
                &by_id,
                args.dry_run,
                !ids.is_empty(),
                drill_records_removed,
            );
        }
        if let Some(pruned) = &pruned {
            pruned.print(&progress, global.quiet);
        }
    }
    Ok(exit::OK)
}

fn snapshot_json(id: &SnapshotId, s: Option<&&Snapshot>) -> serde_json::Value {
    let mut value = serde_json::json!({"id": id.to_hex(), "short_id": id.short()});
    if let Some(s) = s {
        value["time"] = s.time.clone().into();
        value["host"] = s.host.clone().into();
        value["paths"] = s.paths.clone().into();
        value["tags"] = s.tags.clone().into();
    }
    value
}

fn plan_json(
    plan: &ForgetPlan,
    by_id: &HashMap<SnapshotId, &Snapshot>,
    dry_run: bool,
) -> serde_json::Value {
    let mut keep = Vec::new();
    let mut remove = Vec::new();
    let mut groups = Vec::new();
    for group in &plan.groups {
        let mut group_keep = Vec::new();
        let mut group_remove = Vec::new();
        for v in &group.verdicts {
            let mut value = snapshot_json(&v.id, by_id.get(&v.id));
            if v.keep {
                value["reasons"] = v.reasons.clone().into();
                group_keep.push(v.id.to_hex());
                keep.push(value);
            } else {
                group_remove.push(v.id.to_hex());
                remove.push(value);
            }
        }
        groups.push(serde_json::json!({
            "host": group.key.host,
            "paths": group.key.paths,
            "tags": group.key.tags,
            "keep": group_keep,
            "remove": group_remove,
        }));
    }
    serde_json::json!({
        "dry_run": dry_run,
        "keep": keep,
        "remove": remove,
        "groups": groups,
    })
}

fn print_plan(
    plan: &ForgetPlan,
    by_id: &HashMap<SnapshotId, &Snapshot>,
    dry_run: bool,
    explicit: bool,
    drill_records_removed: usize,
) {
    let (mut kept, mut removed) = (0, 0);
    for group in &plan.groups {
        if !explicit {
            let mut title = Vec::new();
            if let Some(host) = &group.key.host {
                title.push(format!("host {host}"));
            }
            if let Some(paths) = &group.key.paths {
                title.push(format!("paths {}", paths.join(" ")));
            }
            if let Some(tags) = &group.key.tags {
                title.push(format!("tags {}", tags.join(",")));
            }
            if title.is_empty() {
                title.push("all snapshots".into());
            }
            println!("{}:", output::terminal_safe(&title.join(", ")));
        }
        for v in &group.verdicts {
            let time = by_id
                .get(&v.id)
                .map_or_else(String::new, |s| output::local_time(&s.time));
            let action = if v.keep { "keep" } else { "remove" };
            println!(
                "  {action:<7} {}  {time:<19}  {}",
                v.id.short(),
                v.reasons.join(", ")
            );
            if v.keep {
                kept += 1;
            } else {
                removed += 1;
            }
        }
    }
    if dry_run {
        println!(
            "would keep {kept} and remove {}; nothing was changed (dry run)",
            output::count(removed, "snapshot", "snapshots")
        );
    } else {
        // Records of snapshots gone (by this forget or an earlier one
        // that stopped before removing them).
        let records = if drill_records_removed > 0 {
            format!(
                " and {}",
                output::count(drill_records_removed, "drill record", "drill records")
            )
        } else {
            String::new()
        };
        println!(
            "kept {kept}, removed {}{records}",
            output::count(removed, "snapshot", "snapshots")
        );
    }
}
