//! Writes many snapshots cheaply, for benchmarks (`benches/scripts/bench-prune.sh`):
//! copies of the repository's latest snapshot, one an hour going back from
//! it, so that `snap forget` has years of history to sort into buckets.
//!
//! Usage: `cargo run --release --example make_snapshots -- REPO COUNT`
//! (unencrypted repositories only).

use std::process::ExitCode;

use rayon::prelude::*;
use snap::{LocalBackend, NoProgress, Repository};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(repo), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse::<i64>().ok()))
    else {
        eprintln!("usage: make_snapshots REPO COUNT");
        return ExitCode::from(2);
    };
    match run(repo, count) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("make_snapshots: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(repo: &str, count: i64) -> snap::Result<()> {
    let repo = Repository::open(Box::new(LocalBackend::new(repo)), &NoProgress)?;
    let Some((_, template)) = repo.snapshots()?.pop() else {
        return Err(snap::Error::usage("the repository has no snapshot to copy"));
    };
    let newest = template.timestamp();
    (1..=count).into_par_iter().try_for_each(|i| {
        let mut copy = template.clone();
        let time = newest - jiff::SignedDuration::from_hours(i);
        copy.time = time.to_string();
        repo.write_snapshot(&copy).map(|_| ())
    })
}
