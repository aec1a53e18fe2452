//! `snap log`

use serde_json::json;
use snap::ops::log::log;
use snap::ops::paths::{PathArg, nearest_in};

use super::output;
use super::{Global, exit};

/// List every distinct version of a path across all snapshots, newest first.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A path inside the snapshots as `snap ls` prints it, e.g. lyra/identity.md,
    /// or a path of this machine starting with /, ./ or ../ (e.g. ./identity.md).
    path: std::ffi::OsString,
}

/// An mtime in nanoseconds as RFC 3339 (UTC), as `snap ls --json` prints it.
pub fn mtime_text(mtime_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(mtime_ns))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open_reader(&progress)?;
    let path = PathArg::parse(&super::os_arg(&args.path))?;
    let snapshots = repo.snapshots()?;
    let versions = log(&repo, &snapshots, &path)?;
    if global.json {
        let rows: Vec<_> = versions
            .iter()
            .map(|v| {
                json!({
                    "snapshot": v.snapshot.to_hex(),
                    "time": v.time,
                    "type": v.node.kind.as_str(),
                    "size": v.node.size,
                    "content_id": v.content_id.to_hex(),
                    "mtime": mtime_text(v.node.mtime_ns),
                })
            })
            .collect();
        output::print_json(&rows)?;
    } else if !versions.is_empty() {
        println!(
            "{:<8}  {:<19}  {:<7}  {:>10}  {:<16}  mtime",
            "snapshot", "time", "type", "size", "content"
        );
        for v in &versions {
            println!(
                "{:<8}  {:<19}  {:<7}  {:>10}  {:<16}  {}",
                v.snapshot.short(),
                output::local_time(&v.time),
                v.node.kind.as_str(),
                output::bytes(v.node.size),
                &v.content_id.to_hex()[..16],
                output::local_time(&mtime_text(v.node.mtime_ns)),
            );
        }
    }
    if versions.is_empty() {
        if !global.json {
            let hint = nearest_in(&repo, &snapshots, &path)?
                .map(|near| format!("; {}", near.hint()))
                .unwrap_or_default();
            eprintln!("snap: `{}` is in no snapshot{hint}", path.printable());
        }
        return Ok(exit::NOT_FOUND);
    }
    Ok(exit::OK)
}
