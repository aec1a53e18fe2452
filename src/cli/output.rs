//! Output helpers: byte and time formatting, tables, JSON (progress lives
//! in `progress.rs`).

pub use super::progress::CliProgress;

/// Writes a line to stderr, ignoring failure: after SIGHUP the terminal may
/// be gone, and `eprintln!` would panic mid-backup instead of letting it stop
/// cleanly.
pub fn print_err(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A count with its noun in the right number: `1 file`, `2 files`,
/// `0 entries`. Every printer that shows a count goes through here.
pub fn count<N>(n: N, one: &str, many: &str) -> String
where
    N: Copy + std::fmt::Display + TryInto<u64>,
{
    format!("{n} {}", noun(n, one, many))
}

/// The noun (or verb) alone for a count: `one` for exactly 1, else `many`.
pub fn noun<'a, N: Copy + TryInto<u64>>(n: N, one: &'a str, many: &'a str) -> &'a str {
    if n.try_into().ok() == Some(1) {
        one
    } else {
        many
    }
}

/// `text` cut to `width` characters, the last one an ellipsis when it
/// was longer.
pub fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Rows laid out in columns as wide as their widest cell (two blanks
/// apart), numbers (`right`) aligned right; the last column is not padded.
pub fn table<const N: usize>(rows: &[[String; N]], right: &[bool; N]) -> Vec<String> {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - cell.chars().count());
                if right[i] {
                    line.push_str(&pad);
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < N {
                        line.push_str(&pad);
                    }
                }
            }
            line
        })
        .collect()
}

/// Bytes for people: 1.5 MiB. Not indicatif's `HumanBytes`: it prints two
/// decimals (`1.50 MiB`) where docs/CLI.md shows one.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A snapshot time in the local time zone, to the second.
pub fn local_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(ts) => ts
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// Prints a value as JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Parses a duration flag (docs/CLI.md, "Durations"); a bare `m` gets a
/// warning on standard error.
pub fn duration_arg(
    text: &str,
    flag: &str,
    bare_m: snap::duration::BareM,
) -> snap::Result<snap::duration::Span> {
    let parsed = snap::duration::parse(text, flag, bare_m)?;
    if let Some(warning) = parsed.warning {
        eprintln!("snap: warning: {warning}");
    }
    Ok(parsed.span)
}

/// A message line with its control characters as `\xNN`, so that text
/// from outside (a file name inside an error, a hook's output) cannot move
/// or recolour the terminal. Names inside messages are already escaped
/// (docs/CLI.md, "Names"); this is the net under everything else.
pub fn terminal_safe(line: &str) -> std::borrow::Cow<'_, str> {
    if !line.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if c.is_control() {
            out.push_str(&snap::escape_name(c.encode_utf8(&mut [0; 4]).as_bytes()));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}
