//! `snap forget`: which snapshots a retention policy keeps, and removing
//! the others.
//!
//! The policy follows restic's `forget`. Snapshots are grouped (by default
//! by host and paths) and each group is walked newest first:
//!
//! - `last N` keeps the N newest snapshots;
//! - `hourly`/`daily`/`weekly`/`monthly`/`yearly N` keep, for each of the N
//!   newest hours (days, ISO weeks, months, years) that hold a snapshot, the
//!   newest snapshot in it. Buckets are taken in local time (a time zone is
//!   passed in), so a day is a calendar day where the user lives, also on
//!   the days daylight saving time starts or ends;
//! - `within D` keeps every snapshot taken less than D (a
//!   [`crate::duration`] span: calendar years and months, then weeks, days,
//!   hours, minutes, seconds) before the group's newest snapshot (snapshots
//!   dated in the future do not count as the newest);
//! - `tags` keeps every snapshot that has all tags of any one of the lists.
//!
//! Every kept snapshot carries the reasons it was kept. Unlike restic since
//! 0.16, the oldest snapshot is not kept just because a bucket count was not
//! used up: a snapshot kept for a bucket is always the newest in it.
//!
//! [`apply_policy`] is a pure function of (id, time, tags) and a time zone,
//! so it is tested against tables of times; [`forget`] removes the files.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use rayon::prelude::*;

use crate::backend::FileKind;
use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::progress::Progress;
use crate::repo::Repository;
pub use crate::retention::{GroupBy, KeepPolicy, UNLIMITED};

/// What the policy looks at in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: Timestamp,
    /// Its host.
    pub host: String,
    /// Its source paths.
    pub paths: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
}

impl Candidate {
    /// The candidate for a stored snapshot.
    pub fn of(id: SnapshotId, snapshot: &Snapshot) -> Self {
        Self {
            id,
            time: snapshot.timestamp(),
            host: snapshot.host.clone(),
            paths: snapshot.paths.clone(),
            tags: snapshot.tags.clone(),
        }
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken.
    pub time: Timestamp,
    /// Whether it stays.
    pub keep: bool,
    /// Why it stays ("daily snapshot", "within 30d", ...); empty when removed.
    pub reasons: Vec<String>,
}

/// The bucket a snapshot falls in, per kind of count.
type Bucketer = fn(&Zoned, usize) -> i64;

const BUCKETS: [(&str, Bucketer); 6] = [
    ("last snapshot", |_, nr| nr as i64),
    ("hourly snapshot", |z, _| {
        i64::from(z.year()) * 1_000_000
            + i64::from(z.month()) * 10_000
            + i64::from(z.day()) * 100
            + i64::from(z.hour())
    }),
    ("daily snapshot", |z, _| {
        i64::from(z.year()) * 10_000 + i64::from(z.month()) * 100 + i64::from(z.day())
    }),
    ("weekly snapshot", |z, _| {
        let week = z.date().iso_week_date();
        i64::from(week.year()) * 100 + i64::from(week.week())
    }),
    ("monthly snapshot", |z, _| {
        i64::from(z.year()) * 100 + i64::from(z.month())
    }),
    ("yearly snapshot", |z, _| i64::from(z.year())),
];

/// Applies `policy` to the snapshots of one group, in the time zone `tz`;
/// `now` only decides which snapshots are in the future. Returns a verdict
/// for every snapshot, newest first.
pub fn apply_policy(
    group: &[Candidate],
    policy: &KeepPolicy,
    tz: &TimeZone,
    now: Timestamp,
) -> Vec<Verdict> {
    let mut sorted: Vec<&Candidate> = group.iter().collect();
    sorted.sort_by_key(|s| std::cmp::Reverse((s.time, s.id)));
    let newest = sorted
        .iter()
        .map(|c| c.time)
        .find(|t| *t <= now)
        .or_else(|| sorted.first().map(|c| c.time));
    let cutoff = match (&policy.within, newest) {
        (Some(within), Some(newest)) => Some(within.before(&newest.to_zoned(tz.clone()))),
        _ => None,
    };
    let mut left = [
        policy.last,
        policy.hourly,
        policy.daily,
        policy.weekly,
        policy.monthly,
        policy.yearly,
    ];
    let mut last_bucket: [Option<i64>; 6] = [None; 6];
    let mut verdicts = Vec::with_capacity(sorted.len());
    for (nr, candidate) in sorted.into_iter().enumerate() {
        let mut reasons = Vec::new();
        for list in &policy.tags {
            if list.iter().all(|t| candidate.tags.contains(t)) {
                reasons.push(format!("has tags {}", list.join(",")));
            }
        }
        if let (Some(cutoff), Some(within)) = (cutoff, &policy.within)
            && candidate.time > cutoff
        {
            reasons.push(format!("within {}", within.words()));
        }
        let local = candidate.time.to_zoned(tz.clone());
        for (i, (reason, bucketer)) in BUCKETS.iter().enumerate() {
            if left[i] == 0 {
                continue;
            }
            // Newest first, so the first snapshot met in a bucket is its newest.
            let bucket = bucketer(&local, nr);
            if last_bucket[i] != Some(bucket) {
                last_bucket[i] = Some(bucket);
                if left[i] != UNLIMITED {
                    left[i] -= 1;
                }
                reasons.push((*reason).to_string());
            }
        }
        verdicts.push(Verdict {
            id: candidate.id,
            time: candidate.time,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    verdicts
}

/// What a group has in common (fields not grouped by are `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKey {
    /// The host, when grouping by host.
    pub host: Option<String>,
    /// The sorted source paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// The sorted tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
}

impl GroupKey {
    fn of(candidate: &Candidate, by: GroupBy) -> Self {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        Self {
            host: by.host.then(|| candidate.host.clone()),
            paths: by.paths.then(|| sorted(&candidate.paths)),
            tags: by.tags.then(|| sorted(&candidate.tags)),
        }
    }
}

/// The verdicts of one group, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPlan {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// One per snapshot of the group, newest first.
    pub verdicts: Vec<Verdict>,
}

/// Which snapshots `forget` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Exactly these snapshots.
    Ids(&'a [SnapshotId]),
    /// Those the policy does not keep, group by group.
    Policy(&'a KeepPolicy, GroupBy),
}

/// What `forget` will do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetPlan {
    /// Groups in key order (one group without key for explicit ids).
    pub groups: Vec<GroupPlan>,
}

impl ForgetPlan {
    /// The snapshots to remove.
    pub fn to_remove(&self) -> Vec<SnapshotId> {
        self.verdicts().filter(|v| !v.keep).map(|v| v.id).collect()
    }

    /// Every verdict.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.groups.iter().flat_map(|g| g.verdicts.iter())
    }
}

/// Plans which of `candidates` to remove. An empty policy is a usage error:
/// forgetting never means "everything".
pub fn forget_plan(
    candidates: &[Candidate],
    selection: Selection<'_>,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<ForgetPlan> {
    match selection {
        Selection::Ids(ids) => {
            let verdicts = candidates
                .iter()
                .filter(|c| ids.contains(&c.id))
                .map(|c| Verdict {
                    id: c.id,
                    time: c.time,
                    keep: false,
                    reasons: Vec::new(),
                })
                .collect();
            Ok(ForgetPlan {
                groups: vec![GroupPlan {
                    key: GroupKey::default(),
                    verdicts,
                }],
            })
        }
        Selection::Policy(policy, _) if policy.is_empty() => Err(Error::usage(
            "no retention policy: give --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly, --keep-within or --keep-tag, or the snapshots to forget",
        )),
        Selection::Policy(policy, by) => {
            let mut groups: BTreeMap<GroupKey, Vec<Candidate>> = BTreeMap::new();
            for candidate in candidates {
                groups
                    .entry(GroupKey::of(candidate, by))
                    .or_default()
                    .push(candidate.clone());
            }
            Ok(ForgetPlan {
                groups: groups
                    .into_iter()
                    .map(|(key, group)| GroupPlan {
                        verdicts: apply_policy(&group, policy, tz, now),
                        key,
                    })
                    .collect(),
            })
        }
    }
}

/// What `forget` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// The snapshots removed.
    pub removed: Vec<SnapshotId>,
    /// Drill records removed with them (records of snapshots that are gone).
    pub drill_records_removed: usize,
}

/// Removes the snapshots `plan` does not keep. Their data stays until
/// `prune`. Removing is idempotent: a snapshot already gone is no error.
pub fn forget(
    repo: &Repository,
    plan: &ForgetPlan,
    _progress: &dyn Progress,
) -> Result<ForgetReport> {
    repo.require_full_access("forget snapshots")?;
    let removed = plan.to_remove();
    removed
        .par_iter()
        .try_for_each(|id| repo.backend().remove(FileKind::Snapshot, &id.to_hex()))?;
    // Snapshots first, then their records: a crash in between leaves
    // records of missing snapshots, which the next forget removes.
    let drill_records_removed = crate::ops::drill::forget_records(repo)?;
    Ok(ForgetReport {
        removed,
        drill_records_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::Span;

    fn within(text: &str) -> Span {
        crate::duration::parse(text, "--keep-within", crate::duration::BareM::Months)
            .unwrap()
            .span
    }

    /// Central European time with its daylight saving rules, given
    /// explicitly so the tests do not depend on the machine's zone or tzdb.
    fn berlin() -> TimeZone {
        TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap()
    }

    fn candidates(times: &[&str]) -> Vec<Candidate> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Candidate {
                id: SnapshotId([u8::try_from(i + 1).unwrap(); 32]),
                time: t.parse().unwrap(),
                host: "h".into(),
                paths: vec!["/p".into()],
                tags: Vec::new(),
            })
            .collect()
    }

    /// The times kept, oldest first, with their reasons.
    fn kept(times: &[&str], policy: &KeepPolicy, tz: &TimeZone) -> Vec<(String, Vec<String>)> {
        let now: Timestamp = "2100-01-01T00:00:00Z".parse().unwrap();
        let mut out: Vec<_> = apply_policy(&candidates(times), policy, tz, now)
            .into_iter()
            .filter(|v| v.keep)
            .map(|v| (v.time.to_string(), v.reasons))
            .collect();
        out.reverse();
        out
    }

    fn kept_times(times: &[&str], policy: &KeepPolicy, tz: &TimeZone) -> Vec<String> {
        kept(times, policy, tz)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn keep_last_keeps_the_newest_whatever_the_input_order() {
        let times = [
            "2026-01-03T00:00:00Z",
            "2026-01-01T00:00:00Z",
            "2026-01-05T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-04T00:00:00Z",
        ];
        let policy = KeepPolicy {
            last: 2,
            ..KeepPolicy::default()
        };
        let kept = kept(&times, &policy, &TimeZone::UTC);
        assert_eq!(
            kept,
            [
                (
                    "2026-01-04T00:00:00Z".to_string(),
                    vec!["last snapshot".to_string()]
                ),
                (
                    "2026-01-05T00:00:00Z".to_string(),
                    vec!["last snapshot".to_string()]
                ),
            ]
        );
    }

    #[test]
    fn daily_keeps_the_newest_of_each_local_day() {
        // 23:30 UTC on Jan 1 is already Jan 2 in Berlin (UTC+1).
        let times = [
            "2026-01-01T08:00:00Z",
            "2026-01-01T20:00:00Z",
            "2026-01-01T23:30:00Z",
            "2026-01-02T10:00:00Z",
        ];
        let daily = KeepPolicy {
            daily: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &daily, &TimeZone::UTC),
            ["2026-01-01T23:30:00Z", "2026-01-02T10:00:00Z"]
        );
        assert_eq!(
            kept_times(&times, &daily, &berlin()),
            ["2026-01-01T20:00:00Z", "2026-01-02T10:00:00Z"]
        );
        // A count limits the days, newest first; older days are removed
        // (the oldest snapshot is not kept on top).
        let two = KeepPolicy {
            daily: 1,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &two, &berlin()),
            ["2026-01-02T10:00:00Z"]
        );
    }

    #[test]
    fn days_and_hours_across_daylight_saving_changes() {
        // Spring forward in Berlin on 2026-03-29: 02:00 CET -> 03:00 CEST.
        // The local day has 23 hours; snapshots before and after the jump
        // share it.
        let spring = [
            "2026-03-28T22:30:00Z", // 23:30 CET, Mar 28
            "2026-03-29T00:30:00Z", // 01:30 CET, Mar 29
            "2026-03-29T01:30:00Z", // 03:30 CEST, Mar 29
            "2026-03-29T21:30:00Z", // 23:30 CEST, Mar 29
            "2026-03-29T22:30:00Z", // 00:30 CEST, Mar 30
        ];
        let daily = KeepPolicy {
            daily: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&spring, &daily, &berlin()),
            [
                "2026-03-28T22:30:00Z",
                "2026-03-29T21:30:00Z",
                "2026-03-29T22:30:00Z"
            ]
        );
        let hourly = KeepPolicy {
            hourly: 100,
            ..KeepPolicy::default()
        };
        assert_eq!(kept_times(&spring, &hourly, &berlin()).len(), 5);

        // Fall back on 2026-10-25: 03:00 CEST -> 02:00 CET, so the local
        // hour 02:00-03:00 happens twice; it is one hourly bucket.
        let fall = [
            "2026-10-25T00:10:00Z", // 02:10 CEST
            "2026-10-25T00:50:00Z", // 02:50 CEST
            "2026-10-25T01:10:00Z", // 02:10 CET
            "2026-10-25T02:10:00Z", // 03:10 CET
        ];
        assert_eq!(
            kept_times(&fall, &hourly, &berlin()),
            ["2026-10-25T01:10:00Z", "2026-10-25T02:10:00Z"]
        );
        // In UTC the same snapshots fall in three hours.
        assert_eq!(kept_times(&fall, &hourly, &TimeZone::UTC).len(), 3);
    }

    #[test]
    fn weeks_months_and_years_at_year_boundaries() {
        let times = [
            "2025-12-28T12:00:00Z", // Sunday: ISO week 2025-W52
            "2025-12-29T12:00:00Z", // Monday: ISO week 2026-W01
            "2025-12-31T12:00:00Z", // Wednesday: 2026-W01
            "2026-01-01T12:00:00Z", // Thursday: 2026-W01
            "2026-01-05T12:00:00Z", // Monday: 2026-W02
        ];
        let weekly = KeepPolicy {
            weekly: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &weekly, &TimeZone::UTC),
            [
                "2025-12-28T12:00:00Z",
                "2026-01-01T12:00:00Z",
                "2026-01-05T12:00:00Z"
            ]
        );
        let monthly = KeepPolicy {
            monthly: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &monthly, &TimeZone::UTC),
            ["2025-12-31T12:00:00Z", "2026-01-05T12:00:00Z"]
        );
        let yearly = KeepPolicy {
            yearly: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &yearly, &TimeZone::UTC),
            ["2025-12-31T12:00:00Z", "2026-01-05T12:00:00Z"]
        );
        // New Year's Eve 23:30 UTC is already next year in Berlin.
        let eve = ["2025-12-31T22:00:00Z", "2025-12-31T23:30:00Z"];
        assert_eq!(kept_times(&eve, &yearly, &TimeZone::UTC).len(), 1);
        assert_eq!(kept_times(&eve, &yearly, &berlin()).len(), 2);
        // 2027-01-01 is a Friday in ISO week 2026-W53.
        let w53 = ["2026-12-28T12:00:00Z", "2027-01-01T12:00:00Z"];
        assert_eq!(kept_times(&w53, &weekly, &TimeZone::UTC).len(), 1);
    }

    #[test]
    fn leap_days() {
        let times = [
            "2024-02-28T12:00:00Z",
            "2024-02-29T12:00:00Z",
            "2024-03-01T12:00:00Z",
            "2025-02-28T12:00:00Z",
        ];
        let daily = KeepPolicy {
            daily: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(kept_times(&times, &daily, &TimeZone::UTC).len(), 4);
        let monthly = KeepPolicy {
            monthly: 10,
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &monthly, &TimeZone::UTC),
            [
                "2024-02-29T12:00:00Z",
                "2024-03-01T12:00:00Z",
                "2025-02-28T12:00:00Z"
            ]
        );
        // One year before 2025-02-28 12:00 is 2024-02-28 12:00: the
        // snapshot exactly at the cutoff is not "within".
        let year = KeepPolicy {
            within: Some(within("1y")),
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &year, &TimeZone::UTC),
            [
                "2024-02-29T12:00:00Z",
                "2024-03-01T12:00:00Z",
                "2025-02-28T12:00:00Z"
            ]
        );
        // From a leap day, one year back clamps to February 28.
        let from_leap = [
            "2023-02-28T11:00:00Z",
            "2023-02-28T13:00:00Z",
            "2024-02-29T12:00:00Z",
        ];
        assert_eq!(
            kept_times(&from_leap, &year, &TimeZone::UTC),
            ["2023-02-28T13:00:00Z", "2024-02-29T12:00:00Z"]
        );
    }

    #[test]
    fn within_uses_calendar_spans_from_the_newest_snapshot() {
        let times = [
            "2025-10-31T12:00:00Z",
            "2025-11-01T12:00:00Z",
            "2026-01-30T12:00:00Z",
            "2026-03-30T12:00:00Z",
            "2026-03-31T01:00:00Z",
            "2026-03-31T12:00:00Z",
        ];
        let policy = |w: &str| KeepPolicy {
            within: Some(within(w)),
            ..KeepPolicy::default()
        };
        assert_eq!(
            kept_times(&times, &policy("12h"), &TimeZone::UTC),
            ["2026-03-31T01:00:00Z", "2026-03-31T12:00:00Z"]
        );
        assert_eq!(kept_times(&times, &policy("1d"), &TimeZone::UTC).len(), 2);
        // Two months before March 31 is January 31.
        assert_eq!(kept_times(&times, &policy("2mo"), &TimeZone::UTC).len(), 3);
        // 5 months before March 31 is October 31; 12:00 exactly is out.
        assert_eq!(
            kept_times(&times, &policy("5mo"), &TimeZone::UTC)[0],
            "2025-11-01T12:00:00Z"
        );
        let reasons = &kept(&times, &policy("1y2mo"), &TimeZone::UTC)[0].1;
        assert_eq!(reasons, &["within 1 year 2 months".to_string()]);
        // A snapshot dated in the future is not "the newest".
        let future = [
            "2026-01-01T00:00:00Z",
            "2026-01-01T10:00:00Z",
            "2099-01-01T00:00:00Z",
        ];
        let now: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let verdicts = apply_policy(&candidates(&future), &policy("5h"), &TimeZone::UTC, now);
        let kept: Vec<_> = verdicts
            .iter()
            .filter(|v| v.keep)
            .map(|v| v.time.to_string())
            .collect();
        assert_eq!(kept, ["2099-01-01T00:00:00Z", "2026-01-01T10:00:00Z"]);
    }

    #[test]
    fn reasons_accumulate_and_tags_keep_regardless_of_counts() {
        let mut group = candidates(&[
            "2026-01-01T10:00:00Z",
            "2026-01-02T10:00:00Z",
            "2026-01-03T10:00:00Z",
        ]);
        group[0].tags = vec!["release".into(), "v1".into()];
        let policy = KeepPolicy {
            last: 1,
            daily: 2,
            monthly: 1,
            tags: vec![vec!["release".into()], vec!["nightly".into(), "v1".into()]],
            ..KeepPolicy::default()
        };
        let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let verdicts = apply_policy(&group, &policy, &TimeZone::UTC, now);
        let reasons: Vec<Vec<&str>> = verdicts
            .iter()
            .map(|v| v.reasons.iter().map(String::as_str).collect())
            .collect();
        assert_eq!(
            reasons,
            [
                vec!["last snapshot", "daily snapshot", "monthly snapshot"],
                vec!["daily snapshot"],
                vec!["has tags release"],
            ]
        );
        assert!(verdicts.iter().all(|v| v.keep));
    }

    #[test]
    fn unlimited_counts_keep_every_bucket() {
        let times: Vec<String> = (1..=28)
            .map(|d| format!("2026-02-{d:02}T12:00:00Z"))
            .collect();
        let times: Vec<&str> = times.iter().map(String::as_str).collect();
        let policy = KeepPolicy {
            daily: UNLIMITED,
            ..KeepPolicy::default()
        };
        assert_eq!(kept_times(&times, &policy, &TimeZone::UTC).len(), 28);
    }

    #[test]
    fn groups_and_empty_policy() {
        let mut all = candidates(&[
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-03T00:00:00Z",
        ]);
        all[0].host = "other".into();
        let policy = KeepPolicy {
            last: 1,
            ..KeepPolicy::default()
        };
        let now = Timestamp::now();
        let plan = forget_plan(
            &all,
            Selection::Policy(&policy, GroupBy::default()),
            &TimeZone::UTC,
            now,
        )
        .unwrap();
        assert_eq!(plan.groups.len(), 2);
        assert_eq!(plan.to_remove(), [all[1].id]);
        let flat = forget_plan(
            &all,
            Selection::Policy(&policy, "".parse().unwrap()),
            &TimeZone::UTC,
            now,
        )
        .unwrap();
        assert_eq!(flat.groups.len(), 1);
        assert_eq!(flat.to_remove().len(), 2);
        let err = forget_plan(
            &all,
            Selection::Policy(&KeepPolicy::default(), GroupBy::default()),
            &TimeZone::UTC,
            now,
        )
        .unwrap_err();
        assert_eq!(err.kind(), crate::error::ErrorKind::Usage);
        let ids = forget_plan(&all, Selection::Ids(&[all[2].id]), &TimeZone::UTC, now).unwrap();
        assert_eq!(ids.to_remove(), [all[2].id]);
    }

    #[test]
    fn group_by_parses() {
        let g: GroupBy = "host,tags".parse().unwrap();
        assert!(g.host && g.tags && !g.paths);
        assert!("hostname".parse::<GroupBy>().is_err());
    }
}
