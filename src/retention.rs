//! What a retention policy is: the counts and spans of snapshots to keep
//! (`--keep-*`, `keep-*` in the profile) and how snapshots are grouped
//! before it applies (`--group-by`). The `forget` command (`ops::forget`)
//! applies it to a repository; the profile reads it too, so it lives below
//! the commands.

use std::str::FromStr;

use crate::duration::Span;
use crate::error::{Error, Result};

/// A bucket count meaning "every bucket".
pub const UNLIMITED: u32 = u32::MAX;

/// Which snapshots to keep. Counts of 0 are off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// The N newest snapshots.
    pub last: u32,
    /// The newest snapshot of each of the N newest hours with snapshots.
    pub hourly: u32,
    /// The same per day.
    pub daily: u32,
    /// The same per ISO week.
    pub weekly: u32,
    /// The same per month.
    pub monthly: u32,
    /// The same per year.
    pub yearly: u32,
    /// Every snapshot within this span of the group's newest snapshot.
    pub within: Option<Span>,
    /// Every snapshot that has all tags of any one of these lists.
    pub tags: Vec<Vec<String>>,
}

impl KeepPolicy {
    /// Whether the policy keeps nothing at all (and so must not be applied).
    pub fn is_empty(&self) -> bool {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
        .iter()
        .all(|&n| n == 0)
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// Which snapshot properties separate groups (`--group-by host,paths,tags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    /// By host name.
    pub host: bool,
    /// By the set of source paths.
    pub paths: bool,
    /// By the set of tags.
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl FromStr for GroupBy {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let mut out = Self {
            host: false,
            paths: false,
            tags: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => out.host = true,
                "paths" | "path" => out.paths = true,
                "tags" | "tag" => out.tags = true,
                _ => {
                    return Err(Error::usage(format!(
                        "cannot group by `{part}`: use host, paths and tags, separated by commas (or nothing)"
                    )));
                }
            }
        }
        Ok(out)
    }
}
