//! Glob patterns (backup excludes, restore includes and excludes) compiled
//! into one matcher.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Compiles `patterns` into one set. `what` names them in errors
/// ("exclude pattern" gives "bad exclude pattern `[`: ...").
pub(crate) fn glob_set(patterns: &[String], what: &str) -> Result<GlobSet> {
    glob_set_case(patterns, what, false)
}

/// Like [`glob_set`]; with `case_insensitive`, `*.JPG` also matches `a.jpg`.
pub(crate) fn glob_set_case(
    patterns: &[String],
    what: &str,
    case_insensitive: bool,
) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .case_insensitive(case_insensitive)
            .build()
            .map_err(|e| Error::usage(format!("bad {what} `{pattern}`: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::usage(format!("bad {what}s: {e}")))
}
