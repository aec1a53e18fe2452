//! Counts in the library's messages (errors, warnings, problems) with the
//! noun in the right number: `1 blob`, `2 blobs`, `0 snapshots`, as the
//! CLI's printers write them (docs/CLI.md, "Output for people").

/// `n` and `one` for exactly 1, else `n` and `many`.
pub fn count(n: impl TryInto<u64> + Copy + std::fmt::Display, one: &str, many: &str) -> String {
    let noun = if n.try_into().ok() == Some(1) {
        one
    } else {
        many
    };
    format!("{n} {noun}")
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(1u64, "blob", "blobs"), "1 blob");
        assert_eq!(count(0usize, "blob", "blobs"), "0 blobs");
        assert_eq!(count(2u32, "entry", "entries"), "2 entries");
        assert_eq!(count(-1i64, "byte", "bytes"), "-1 bytes");
    }
}
