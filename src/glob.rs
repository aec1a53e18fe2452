//! Glob patterns (backup excludes, restore includes and excludes) compiled
//! into one matcher.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// Compiles `patterns` into one set. `what` names them in errors
/// ("exclude pattern" gives "bad exclude pattern `[`: ...").
pub(crate) fn glob_set(patterns: &[String], what: &str) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob =
            Glob::new(pattern).map_err(|e| Error::usage(format!("bad {what} `{pattern}`: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::usage(format!("bad {what}s: {e}")))
}
