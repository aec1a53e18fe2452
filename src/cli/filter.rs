//! The snapshot filter flags (`--tag`, `--host`, `--path`) that `snapshots`,
//! `forget`, `copy` and `tag` share.

use snap::select::Filter;

/// Which snapshots a command looks at.
#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only snapshots with these tags (comma-separated: all of them; repeatable: any).
    #[arg(long = "tag", value_name = "T[,T...]")]
    tags: Vec<String>,
    /// Only snapshots of this host.
    #[arg(long)]
    host: Option<String>,
    /// Only snapshots with this source path.
    #[arg(long)]
    path: Option<String>,
}

impl FilterArgs {
    /// The library's filter; an empty tag in a list is a usage error.
    pub fn filter(self) -> snap::Result<Filter> {
        Ok(Filter {
            tags: snap::ops::tag::tag_lists(&self.tags)?,
            host: self.host,
            path: self.path,
        })
    }
}
