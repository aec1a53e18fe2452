//! Snapshot selectors (`latest`, `latest~N`, an id prefix, `@TIME`), the
//! `SNAP:PATH` syntax and tag lists, as `docs/CLI.md` defines them.
//!
//! Tags are split at commas wherever they are given (`--tag a,b` is two
//! tags, on the command line and in the profile); blanks around a tag are
//! dropped, and an empty tag is an error.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

use crate::error::{Error, Result};
use crate::format::snapshot::Snapshot;
use crate::id::SnapshotId;
use crate::repo::Repository;

/// Which snapshot a selector names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `latest` (0) or `latest~N`.
    Latest(usize),
    /// A full id or a unique prefix of at least 4 hex digits.
    Prefix(String),
    /// `@TIME`: the latest snapshot at or before TIME.
    At(Timestamp),
}

/// Narrows `latest` and `@TIME` to snapshots with these properties.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Tag lists: the snapshot has every tag of at least one of them
    /// (`--tag a,b --tag c`: a and b, or c). No lists: any tags.
    pub tags: Vec<Vec<String>>,
    /// The snapshot's host.
    pub host: Option<String>,
    /// One of the snapshot's source paths.
    pub path: Option<String>,
}

impl Filter {
    /// Whether `snapshot` passes the filter.
    pub fn matches(&self, snapshot: &Snapshot) -> bool {
        (self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|list| list.iter().all(|t| snapshot.tags.contains(t))))
            && self.host.as_ref().is_none_or(|h| &snapshot.host == h)
            && self
                .path
                .as_ref()
                .is_none_or(|p| snapshot.paths.iter().any(|sp| sp == p))
    }
}

/// The tags of one comma-separated list (`a,b`): blanks around each tag
/// trimmed; an empty or blank tag is an error naming the list.
pub fn split_tags(list: &str) -> Result<Vec<String>> {
    list.split(',')
        .map(str::trim)
        .map(|tag| {
            if tag.is_empty() {
                Err(Error::usage(format!(
                    "`{list}` holds an empty tag: give tags like daily or daily,session-end"
                )))
            } else {
                Ok(tag.to_string())
            }
        })
        .collect()
}

/// The tags of several lists (`--tag a,b --tag c`), each once, in order.
pub fn tags_of(lists: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for list in lists {
        for tag in split_tags(list)? {
            if !out.contains(&tag) {
                out.push(tag);
            }
        }
    }
    Ok(out)
}

/// A filter's tag lists (`--tag a,b --tag c`): a snapshot matches when it
/// has every tag of at least one list.
pub fn tag_lists(lists: &[String]) -> Result<Vec<Vec<String>>> {
    lists.iter().map(|list| split_tags(list)).collect()
}

/// Checks tags given to the library: none empty, blank, or holding a comma
/// (a comma separates tags wherever they are read).
pub fn validate_tags(tags: &[String]) -> Result<()> {
    match tags
        .iter()
        .find(|t| t.trim().is_empty() || t.contains(',') || t.trim() != t.as_str())
    {
        Some(bad) => Err(Error::usage(format!(
            "`{bad}` cannot be a tag: tags are not empty, hold no comma and no blanks at either end"
        ))),
        None => Ok(()),
    }
}

/// Parses a time as CLI.md allows: RFC 3339, a local date-time, or a date
/// (meaning the end of that day, local time).
pub fn parse_time(text: &str) -> Result<Timestamp> {
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let local = |dt: DateTime| {
        dt.to_zoned(TimeZone::system())
            .map(|z| z.timestamp())
            .map_err(|e| Error::usage(format!("`{text}` is not a valid local time: {e}")))
    };
    if let Ok(dt) = text.parse::<DateTime>()
        && text.contains(['T', ' '])
    {
        return local(dt);
    }
    if let Ok(date) = text.parse::<Date>() {
        return local(date.at(23, 59, 59, 999_999_999));
    }
    Err(Error::usage(format!(
        "`{text}` is not a time: use RFC 3339 (2026-02-01T12:00:00Z) or a date (2026-02-01)"
    )))
}

/// Parses a selector without a path.
pub fn parse_selector(text: &str) -> Result<Selector> {
    if text == "latest" {
        return Ok(Selector::Latest(0));
    }
    if let Some(n) = text.strip_prefix("latest~") {
        return n
            .parse()
            .map(Selector::Latest)
            .map_err(|_| Error::usage(format!("`{text}`: expected latest~N with a number N")));
    }
    if let Some(time) = text.strip_prefix('@') {
        return parse_time(time).map(Selector::At);
    }
    if text.len() >= 4 && text.len() <= 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Selector::Prefix(text.to_ascii_lowercase()));
    }
    Err(Error::usage(format!(
        "`{text}` is not a snapshot: use latest, latest~N, an id (at least 4 hex digits) or @TIME"
    )))
}

/// Splits `SNAP[:PATH]`. A time's own colons belong to the time.
pub fn parse_snap_path(text: &str) -> Result<(Selector, Option<String>)> {
    if let Some(rest) = text.strip_prefix('@') {
        // The longest prefix that is a time is the time; the path follows its colon.
        let mut ends: Vec<usize> = rest.match_indices(':').map(|(i, _)| i).collect();
        ends.push(rest.len());
        for &end in ends.iter().rev() {
            if let Ok(ts) = parse_time(&rest[..end]) {
                let path = rest
                    .get(end + 1..)
                    .filter(|p| !p.is_empty())
                    .map(str::to_string);
                return Ok((Selector::At(ts), path));
            }
        }
        return parse_time(rest).map(|ts| (Selector::At(ts), None));
    }
    match text.split_once(':') {
        Some((snap, path)) => Ok((
            parse_selector(snap)?,
            Some(path.to_string()).filter(|p| !p.is_empty()),
        )),
        None => Ok((parse_selector(text)?, None)),
    }
}

/// Picks the snapshot `selector` names from `snapshots` (oldest first).
pub fn select<'a>(
    snapshots: &'a [(SnapshotId, Snapshot)],
    selector: &Selector,
    filter: &Filter,
) -> Result<&'a (SnapshotId, Snapshot)> {
    // A restore's safety snapshot holds only what it replaced: it is not a
    // point in the timeline, so `latest` and `@TIME` pass over it unless
    // asked for by tag (its id always names it).
    let timeline = |s: &Snapshot| {
        !s.tags
            .iter()
            .any(|t| t == crate::format::snapshot::PRE_RESTORE_TAG)
            || filter
                .tags
                .iter()
                .flatten()
                .any(|t| t == crate::format::snapshot::PRE_RESTORE_TAG)
    };
    let filtered = || {
        snapshots
            .iter()
            .filter(move |(_, s)| filter.matches(s) && timeline(s))
    };
    match selector {
        Selector::Latest(n) => {
            let matching: Vec<_> = filtered().collect();
            matching
                .len()
                .checked_sub(n + 1)
                .map(|i| matching[i])
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "no snapshot `latest~{n}`: {}",
                        crate::plural::count(matching.len(), "snapshot matches", "snapshots match")
                    ))
                })
        }
        Selector::At(ts) => filtered()
            .filter(|(_, s)| s.timestamp() <= *ts)
            .max_by_key(|(_, s)| s.timestamp())
            .ok_or_else(|| Error::not_found(format!("no snapshot at or before {ts}"))),
        Selector::Prefix(prefix) => {
            let found: Vec<_> = snapshots
                .iter()
                .filter(|(id, _)| id.to_hex().starts_with(prefix))
                .collect();
            match found.as_slice() {
                [one] => Ok(one),
                [] => Err(Error::not_found(format!(
                    "no snapshot with id {prefix}; see `snap snapshots`"
                ))),
                many => Err(Error::usage(format!(
                    "snapshot id prefix {prefix} is ambiguous ({} snapshots); give more digits",
                    many.len()
                ))),
            }
        }
    }
}

/// Resolves a selector against the repository's snapshots.
pub fn resolve(
    repo: &Repository,
    selector: &Selector,
    filter: &Filter,
) -> Result<(SnapshotId, Snapshot)> {
    let (snapshots, damaged) = repo.snapshots_and_damage()?;
    // A damaged snapshot fails only the selectors it could be the answer to:
    // an id prefix it matches, or any time-based one (its time is unknown).
    let in_the_way = damaged.into_iter().find(|(id, _)| match selector {
        Selector::Prefix(prefix) => id.to_hex().starts_with(prefix.as_str()),
        _ => true,
    });
    if let Some((_, e)) = in_the_way {
        return Err(e);
    }
    select(&snapshots, selector, filter).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings<const N: usize>(list: [&str; N]) -> Vec<String> {
        list.map(str::to_string).to_vec()
    }

    #[test]
    fn tags_split_at_commas_and_blanks_are_refused() {
        assert_eq!(
            split_tags("session-end,daily").unwrap(),
            ["session-end", "daily"]
        );
        assert_eq!(split_tags(" a , b ").unwrap(), ["a", "b"]);
        for bad in ["", " ", "a,,b", "a,", ",a", "a, ,b"] {
            assert!(split_tags(bad).is_err(), "{bad:?}");
        }
        assert_eq!(tags_of(&strings(["a,b", "b,c"])).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            tag_lists(&strings(["a,b", "c"])).unwrap(),
            [strings(["a", "b"]), strings(["c"])]
        );
    }

    #[test]
    fn selectors_parse() {
        assert_eq!(parse_selector("latest").unwrap(), Selector::Latest(0));
        assert_eq!(parse_selector("latest~3").unwrap(), Selector::Latest(3));
        assert_eq!(
            parse_selector("ABCD").unwrap(),
            Selector::Prefix("abcd".into())
        );
        assert!(parse_selector("abc").is_err());
        assert!(parse_selector("latest~x").is_err());
        assert!(matches!(
            parse_selector("@2026-02-01T12:00:00Z").unwrap(),
            Selector::At(_)
        ));
    }

    #[test]
    fn snap_paths_split_after_the_time() {
        let (sel, path) = parse_snap_path("@2026-02-01T09:00:00Z:lyra/identity.md").unwrap();
        assert_eq!(sel, Selector::At("2026-02-01T09:00:00Z".parse().unwrap()));
        assert_eq!(path.as_deref(), Some("lyra/identity.md"));
        let (sel, path) = parse_snap_path("@2026-02-01T09:00:00+02:00:a:b").unwrap();
        assert_eq!(sel, Selector::At("2026-02-01T07:00:00Z".parse().unwrap()));
        assert_eq!(path.as_deref(), Some("a:b"));
        let (_, path) = parse_snap_path("@2026-02-01:entity/crystals").unwrap();
        assert_eq!(path.as_deref(), Some("entity/crystals"));
        let (sel, path) = parse_snap_path("latest~2:x/y").unwrap();
        assert_eq!((sel, path.as_deref()), (Selector::Latest(2), Some("x/y")));
        assert_eq!(parse_snap_path("latest").unwrap().1, None);
    }

    #[test]
    fn date_means_end_of_day() {
        let ts = parse_time("2026-02-01").unwrap();
        let start = parse_time("2026-02-01T00:00:00").unwrap();
        assert!(ts > start);
        assert!(
            ts.as_second() - start.as_second() == 86_399
                || ts.as_second() - start.as_second() > 80_000
        );
    }
}
