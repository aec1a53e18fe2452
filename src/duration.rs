//! The one duration grammar of every flag and profile key that takes a
//! duration (`--keep-within`, `--grace-period`, `--sqlite-lock-timeout`,
//! `hook-timeout`), as `docs/CLI.md` ("Durations") defines it.
//!
//! A duration is one or more parts `<number><unit>`, each unit at most once,
//! optionally separated by blanks: `1y2mo`, `30d`, `1h 30min`, `90s`. The
//! units are `y` (years), `mo` (months), `w` (weeks), `d` (days), `h`
//! (hours), `min` (minutes) and `s` (seconds). A bare `m` is ambiguous; it
//! keeps the meaning it had in each place before this grammar (months in
//! `--keep-within`, as in restic; minutes everywhere else), and the parse
//! returns a warning that suggests `mo` or `min`.
//!
//! Years and months are calendar units: [`Span::before`] steps back through
//! the calendar (one month before March 31 is February 28 or 29), and
//! [`Span::to_std`] measures them from now.

use std::fmt;

use jiff::{Timestamp, Zoned};

use crate::error::{Error, Result};

/// What a bare `m` means where a duration is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareM {
    /// Months (`--keep-within`, as in restic).
    Months,
    /// Minutes (timeouts and the grace period).
    Minutes,
}

/// A span of calendar and clock units, as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Weeks.
    pub weeks: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
    /// Minutes.
    pub minutes: u32,
    /// Seconds.
    pub seconds: u32,
}

/// A parsed duration and, when it used a bare `m`, a warning for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The span.
    pub span: Span,
    /// One line telling what a bare `m` was taken for and what to write.
    pub warning: Option<String>,
}

/// The units, longest spelling first where one is a prefix of another.
const UNITS: [(&str, Unit); 8] = [
    ("min", Unit::Minutes),
    ("mo", Unit::Months),
    ("m", Unit::BareM),
    ("y", Unit::Years),
    ("w", Unit::Weeks),
    ("d", Unit::Days),
    ("h", Unit::Hours),
    ("s", Unit::Seconds),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Years,
    Months,
    Weeks,
    Days,
    Hours,
    Minutes,
    Seconds,
    BareM,
}

/// Parses `text` for the flag or key `what` (named in errors and warnings).
pub fn parse(text: &str, what: &str, bare_m: BareM) -> Result<Parsed> {
    let bad = |why: &str| {
        Error::usage(format!(
            "{what}: `{text}` is not a duration ({why}): use numbers with the units y, mo, w, d, h, min, s, for example 30d, 1y2mo, 1h30min or 90s"
        ))
    };
    let mut span = Span::default();
    let mut seen: Vec<Unit> = Vec::new();
    let mut used_bare_m = false;
    let mut rest = text.trim_start();
    if rest.is_empty() {
        return Err(bad("it is empty"));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("each part starts with a whole number"));
        }
        let number: u32 = rest[..digits]
            .parse()
            .map_err(|_| bad("a number is too large"))?;
        rest = &rest[digits..];
        let Some(&(spelling, unit)) = UNITS.iter().find(|(s, _)| rest.starts_with(s)) else {
            return Err(bad("every number needs a unit"));
        };
        rest = rest[spelling.len()..].trim_start();
        let unit = match (unit, bare_m) {
            (Unit::BareM, BareM::Months) => {
                used_bare_m = true;
                Unit::Months
            }
            (Unit::BareM, BareM::Minutes) => {
                used_bare_m = true;
                Unit::Minutes
            }
            (unit, _) => unit,
        };
        if seen.contains(&unit) {
            return Err(bad("a unit is given twice"));
        }
        seen.push(unit);
        let slot = match unit {
            Unit::Years => &mut span.years,
            Unit::Months => &mut span.months,
            Unit::Weeks => &mut span.weeks,
            Unit::Days => &mut span.days,
            Unit::Hours => &mut span.hours,
            Unit::Minutes | Unit::BareM => &mut span.minutes,
            Unit::Seconds => &mut span.seconds,
        };
        *slot = number;
    }
    let warning = used_bare_m.then(|| {
        let (meant, unit, other, other_unit) = match bare_m {
            BareM::Months => ("months", "mo", "minutes", "min"),
            BareM::Minutes => ("minutes", "min", "months", "mo"),
        };
        format!(
            "{what} `{text}`: `m` is taken as {meant} here ({}); write `{unit}` for {meant} or `{other_unit}` for {other}",
            span.words(),
        )
    });
    Ok(Parsed { span, warning })
}

impl Span {
    /// Whether every part is zero.
    pub fn is_zero(&self) -> bool {
        *self == Self::default()
    }

    fn jiff(&self) -> std::result::Result<jiff::Span, jiff::Error> {
        jiff::Span::new()
            .try_years(i64::from(self.years))?
            .try_months(i64::from(self.months))?
            .try_weeks(i64::from(self.weeks))?
            .try_days(i64::from(self.days))?
            .try_hours(i64::from(self.hours))?
            .try_minutes(i64::from(self.minutes))?
            .try_seconds(i64::from(self.seconds))
    }

    /// The time this span before `end`: calendar arithmetic in the zone of
    /// `end` (one month before March 31 is February 28 or 29). A span too
    /// long for the calendar reaches back to the earliest time.
    pub fn before(&self, end: &Zoned) -> Timestamp {
        self.jiff()
            .and_then(|span| end.checked_sub(span))
            .map_or(Timestamp::MIN, |z| z.timestamp())
    }

    /// The length of the span from now (years and months are calendar
    /// units, so their length depends on the date). A span too long for the
    /// calendar is as long as a `Duration` can be.
    pub fn to_std(&self) -> std::time::Duration {
        // In UTC a day is always 24 hours.
        let now = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC);
        self.jiff()
            .and_then(|span| now.checked_add(span))
            .and_then(|later| std::time::Duration::try_from(now.duration_until(&later)))
            .unwrap_or(std::time::Duration::MAX)
    }

    /// The span in words: `1 year 2 months`, `30 minutes`, `0 seconds`.
    pub fn words(&self) -> String {
        let parts: Vec<String> = self
            .parts()
            .filter(|(n, _, _)| *n > 0)
            .map(|(n, _, word)| format!("{n} {word}{}", if n == 1 { "" } else { "s" }))
            .collect();
        if parts.is_empty() {
            "0 seconds".to_string()
        } else {
            parts.join(" ")
        }
    }

    fn parts(&self) -> impl Iterator<Item = (u32, &'static str, &'static str)> {
        [
            (self.years, "y", "year"),
            (self.months, "mo", "month"),
            (self.weeks, "w", "week"),
            (self.days, "d", "day"),
            (self.hours, "h", "hour"),
            (self.minutes, "min", "minute"),
            (self.seconds, "s", "second"),
        ]
        .into_iter()
    }
}

/// The span in the grammar's unambiguous units: `1y2mo`, `90min`, `0s`.
impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0s");
        }
        for (n, unit, _) in self.parts().filter(|(n, _, _)| *n > 0) {
            write!(f, "{n}{unit}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn span(text: &str, bare_m: BareM) -> Span {
        parse(text, "--test", bare_m).unwrap().span
    }

    #[test]
    fn every_unit_parses() {
        assert_eq!(
            span("1y2mo3w4d5h6min7s", BareM::Minutes),
            Span {
                years: 1,
                months: 2,
                weeks: 3,
                days: 4,
                hours: 5,
                minutes: 6,
                seconds: 7
            }
        );
        assert_eq!(span("1h 30min", BareM::Minutes).minutes, 30);
        assert_eq!(span("0s", BareM::Minutes), Span::default());
    }

    #[test]
    fn bare_m_keeps_its_meaning_per_place_and_warns() {
        let months = parse("30m", "--keep-within", BareM::Months).unwrap();
        assert_eq!(months.span.months, 30);
        let warning = months.warning.unwrap();
        assert!(
            warning.contains("30 months") && warning.contains("`mo`") && warning.contains("`min`"),
            "{warning}"
        );
        let minutes = parse("2m", "hook-timeout", BareM::Minutes).unwrap();
        assert_eq!(minutes.span.minutes, 2);
        assert!(minutes.warning.unwrap().contains("2 minutes"));
        assert_eq!(parse("30mo", "x", BareM::Minutes).unwrap().warning, None);
        assert_eq!(parse("30min", "x", BareM::Months).unwrap().warning, None);
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            " ",
            "30",
            "d",
            "1x",
            "1d1d",
            "1mo1m",
            "-1d",
            "1.5d",
            "1 d x",
            "99999999999s",
        ] {
            let e = parse(bad, "--test", BareM::Months).unwrap_err();
            assert!(e.message().contains("--test"), "{bad}: {e}");
        }
    }

    #[test]
    fn words_and_display() {
        let s = span("1y2mo", BareM::Minutes);
        assert_eq!(s.words(), "1 year 2 months");
        assert_eq!(s.to_string(), "1y2mo");
        assert_eq!(span("1min", BareM::Minutes).words(), "1 minute");
        assert_eq!(Span::default().words(), "0 seconds");
    }

    #[test]
    fn clock_units_have_fixed_lengths() {
        assert_eq!(span("1h30min", BareM::Minutes).to_std().as_secs(), 5400);
        assert_eq!(span("2w1d", BareM::Minutes).to_std().as_secs(), 15 * 86_400);
        assert_eq!(span("0s", BareM::Minutes).to_std().as_secs(), 0);
    }

    #[test]
    fn months_step_back_through_the_calendar() {
        let end: Zoned = "2026-03-31T12:00:00+00:00[UTC]".parse().unwrap();
        assert_eq!(
            span("1mo", BareM::Minutes).before(&end).to_string(),
            "2026-02-28T12:00:00Z"
        );
    }

    proptest! {
        #[test]
        fn display_parses_back(years in 0u32..50, months in 0u32..30, weeks in 0u32..60, days in 0u32..400, hours in 0u32..100, minutes in 0u32..100, seconds in 0u32..100_000) {
            let s = Span { years, months, weeks, days, hours, minutes, seconds };
            for bare_m in [BareM::Months, BareM::Minutes] {
                let back = parse(&s.to_string(), "--test", bare_m).unwrap();
                prop_assert_eq!(back.span, s);
                prop_assert_eq!(back.warning, None);
            }
        }

        #[test]
        fn any_text_parses_or_errors_without_panic(text in "\\PC{0,20}") {
            let _ = parse(&text, "--test", BareM::Months);
        }
    }
}
