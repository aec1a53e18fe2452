//! `snap restore`

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use snap::ops::browse::{components, find_node, root_node};
use snap::ops::paths::inside;
use snap::ops::restore::{
    PRE_RESTORE_TAG, PlanAction, RestorePlan, check_source_names, prepare, refuse_conflicts,
    restore_plan,
};
use snap::select::{Filter, parse_snap_path, resolve};
use snap::{Error, ErrorKind, Overwrite, RestoreOptions};

use super::output;
use super::{Global, exit};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OverwriteArg {
    /// Keep existing entries, restore the rest.
    Never,
    /// Replace files whose size or modification time differ.
    IfChanged,
    /// Replace everything in the way.
    Always,
}

/// Restore a snapshot, or one path of it, into a folder.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// SNAP[:PATH], e.g. latest, latest~3:lyra/notes/beach.md, @2026-02-01:lyra
    /// (PATH may be a path of this machine starting with /, ./ or ../).
    target_snapshot: std::ffi::OsString,
    /// Folder to restore into (created when missing).
    #[arg(long, short = 't')]
    target: PathBuf,
    /// Only paths matching this glob (as `snap ls` prints them; repeatable).
    #[arg(long = "include")]
    includes: Vec<String>,
    /// Leave out paths matching this glob (repeatable).
    #[arg(long = "exclude")]
    excludes: Vec<String>,
    /// What to do with entries that already exist (default: refuse to start).
    #[arg(long, value_enum)]
    overwrite: Option<OverwriteArg>,
    /// Remove entries of the target (below the restored path) that are not in the snapshot.
    #[arg(long)]
    delete: bool,
    /// Print what would be created, overwritten, deleted and left unchanged; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace or delete existing data without first taking a `pre-restore` snapshot of it.
    #[arg(long)]
    no_safety_snapshot: bool,
    /// Replace or delete existing data without asking (needed without a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Restore only these top-level entries of the snapshot (sources; comma-separated, repeatable).
    #[arg(long, value_delimiter = ',', value_name = "SOURCE")]
    only: Vec<String>,
    /// Leave out these top-level entries of the snapshot (comma-separated, repeatable).
    #[arg(long, value_delimiter = ',', value_name = "SOURCE")]
    skip: Vec<String>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    // A dry run changes nothing, so it stops and starts no services either.
    if args.dry_run {
        return run_restore(global, args);
    }
    let env = vec![(
        "SNAP_RESTORE_TARGET".to_string(),
        args.target.display().to_string(),
    )];
    super::hooks::around(global, super::hooks::Hooked::Restore, env, |_| {
        run_restore(global, args)
    })
}

fn run_restore(global: &Global, args: Args) -> anyhow::Result<u8> {
    let mut progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let (selector, path) = parse_snap_path(&super::os_arg(&args.target_snapshot))?;
    let (id, snapshot) = resolve(&repo, &selector, &Filter::default())?;
    let path = inside(&[&snapshot], path.as_deref())?;
    let node = find_node(&repo, snapshot.tree, &path)?;
    let rel = components(&path).join("/");
    let options = RestoreOptions {
        target: args.target.clone(),
        overwrite: match args.overwrite {
            None => Overwrite::Refuse,
            Some(OverwriteArg::Never) => Overwrite::Never,
            Some(OverwriteArg::IfChanged) => Overwrite::IfChanged,
            Some(OverwriteArg::Always) => Overwrite::Always,
        },
        includes: args.includes.clone(),
        excludes: args.excludes.clone(),
        delete: args.delete,
        only: args.only.clone(),
        skip: args.skip.clone(),
        safety_snapshot: !args.no_safety_snapshot,
    };
    check_source_names(&repo, &root_node(snapshot.tree), &rel, &options)?;
    if args.dry_run {
        let plan = restore_plan(&repo, &node, &rel, &options, true)?;
        if options.overwrite == Overwrite::Refuse {
            refuse_conflicts(&plan)?;
        }
        print_plan(global, &args.target, &id.to_hex(), &plan)?;
        return Ok(exit::OK);
    }
    let mut prepared = prepare(&repo, &node, &rel, &options)?;
    if let Some(plan) = prepared.plan().filter(|p| p.in_place()) {
        confirm(&args, plan)?;
    }
    // Taken before the bar starts, so its reading is not counted as restoring.
    if let Some(safety) = prepared.take_safety_snapshot(&progress)?
        && let Some(plan) = prepared.plan()
        && !global.quiet
        && !global.json
    {
        eprintln!(
            "snap: safety snapshot {} (tag {PRE_RESTORE_TAG}) holds the {} about to be replaced or deleted; undo with `{}`",
            safety.short(),
            output::count(plan.overwrite + plan.delete, "entry", "entries"),
            undo_command(global, &safety.short(), &args.target)
        );
    }
    progress.start("restore");
    let result = prepared.run(&progress);
    progress.finish(result.is_ok());
    super::parity::note_rebuilt(&repo);
    let report = result?;
    if global.json {
        output::print_json(&serde_json::json!({
            "snapshot": id.to_hex(),
            "target": args.target.display().to_string(),
            "files": report.files,
            "dirs": report.dirs,
            "others": report.others,
            "bytes": report.bytes,
            "skipped": report.skipped,
            "deleted": report.deleted,
            "safety_snapshot": report.safety_snapshot.map(|s| s.to_hex()),
            "damaged": report.damaged,
            "warnings": report.warnings,
        }))?;
    } else if !global.quiet {
        println!(
            "restored {}, {}, {} ({}) from snapshot {} into {}{}{}",
            output::count(report.files, "file", "files"),
            output::count(report.dirs, "dir", "dirs"),
            output::count(report.others, "other entry", "other entries"),
            output::bytes(report.bytes),
            id.short(),
            args.target.display(),
            if report.skipped > 0 {
                format!(
                    "; kept {}",
                    output::count(report.skipped, "existing entry", "existing entries")
                )
            } else {
                String::new()
            },
            if report.deleted > 0 {
                format!(
                    "; deleted {} not in the snapshot",
                    output::count(report.deleted, "entry", "entries")
                )
            } else {
                String::new()
            }
        );
    }
    if !report.damaged.is_empty() {
        eprintln!(
            "snap: {} could not be restored because repository data is damaged: {}; run `snap check`",
            output::count(report.damaged.len(), "file", "files"),
            report.damaged.join(", ")
        );
        return Ok(exit::DAMAGED);
    }
    Ok(if report.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

/// The command that puts back what a restore into `target` replaced, as a
/// shell runs it: the repository when it is not the default one, the target
/// quoted, and `--yes`, since the undo replaces entries in place too.
fn undo_command(global: &Global, safety: &str, target: &Path) -> String {
    let quote = |text: String| match shlex::try_quote(&text) {
        Ok(quoted) => quoted.into_owned(),
        Err(_) => text,
    };
    let repo = if global.is_default_location() {
        String::new()
    } else {
        format!(
            "-r {} ",
            quote(global.location().to_string_lossy().into_owned())
        )
    };
    format!(
        "snap {repo}restore {safety} --target {} --overwrite always --yes",
        quote(target.to_string_lossy().into_owned())
    )
}

fn plan_summary(target: &Path, plan: &RestorePlan) -> String {
    format!(
        "restoring into {} replaces {} and deletes {} existing entries ({} to write, {} to delete)",
        target.display(),
        plan.overwrite,
        plan.delete,
        output::bytes(plan.bytes_to_write),
        output::bytes(plan.bytes_to_delete)
    )
}

/// Asks before replacing existing data: on a terminal a yes/no question,
/// without one a refusal unless `--yes` was given.
fn confirm(args: &Args, plan: &RestorePlan) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    let summary = plan_summary(&args.target, plan);
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::usage(format!(
            "{summary}; nothing was changed. Without a terminal to confirm on, pass --yes (see the plan with --dry-run)"
        ))
        .into());
    }
    let safety = if args.no_safety_snapshot {
        "without a safety snapshot"
    } else {
        "after a safety snapshot of them"
    };
    if ask(
        &mut std::io::stdin().lock(),
        &format!("{summary}, {safety}. Proceed? [y/N] "),
    )? {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Conflict,
            "restore cancelled; nothing was changed",
        )
        .into())
    }
}

/// Prints `question` on stderr and reads the answer: yes only for `y` or `yes`.
fn ask(input: &mut dyn BufRead, question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn print_plan(
    global: &Global,
    target: &Path,
    snapshot: &str,
    plan: &RestorePlan,
) -> anyhow::Result<()> {
    let shown = |path: &Path| {
        path.strip_prefix(target)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    if global.json {
        let entries: Vec<_> = plan
            .entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "path": shown(&e.path),
                    "action": e.action.as_str(),
                    "type": e.kind.as_str(),
                    "size": e.size,
                })
            })
            .collect();
        return output::print_json(&serde_json::json!({
            "dry_run": true,
            "snapshot": snapshot,
            "target": target.display().to_string(),
            "create": plan.create,
            "overwrite": plan.overwrite,
            "delete": plan.delete,
            "unchanged": plan.unchanged,
            "keep": plan.keep,
            "bytes": plan.bytes_to_write,
            "bytes_unchanged": plan.bytes_unchanged,
            "bytes_deleted": plan.bytes_to_delete,
            "in_place": plan.in_place(),
            "entries": entries,
        }));
    }
    if !global.quiet {
        for entry in &plan.entries {
            let slash = if entry.kind == snap::NodeKind::Dir {
                "/"
            } else {
                ""
            };
            let size = if entry.kind == snap::NodeKind::File && entry.action != PlanAction::Keep {
                format!(" ({})", output::bytes(entry.size))
            } else {
                String::new()
            };
            println!(
                "{:<9} {}{slash}{size}",
                entry.action.as_str(),
                shown(&entry.path)
            );
        }
    }
    println!(
        "would create {}, overwrite {}, delete {}, keep {} entries, leave {} unchanged; {} to write, {} unchanged, {} to delete{}",
        plan.create,
        plan.overwrite,
        plan.delete,
        plan.keep,
        plan.unchanged,
        output::bytes(plan.bytes_to_write),
        output::bytes(plan.bytes_unchanged),
        output::bytes(plan.bytes_to_delete),
        if plan.in_place() {
            "; existing data would be replaced: a safety snapshot is taken first unless --no-safety-snapshot"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ask;

    #[test]
    fn only_y_or_yes_confirms() {
        for (answer, expected) in [
            ("y\n", true),
            ("YES\n", true),
            (" yes \n", true),
            ("n\n", false),
            ("\n", false),
            ("", false),
            ("yep\n", false),
        ] {
            let mut input = std::io::Cursor::new(answer.as_bytes());
            assert_eq!(ask(&mut input, "? ").unwrap(), expected, "{answer:?}");
        }
    }
}
