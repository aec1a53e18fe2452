//! `snap init`

use snap::{InitOptions, LocalBackend, Repository};

use super::{Global, exit};

/// Create a new repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// zstd compression level (1-22; 3 is fast and small).
    #[arg(long, default_value_t = 3)]
    compression: i32,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let location = global.location();
    let options = InitOptions {
        compression: args.compression,
        ..InitOptions::default()
    };
    let repo = Repository::init(Box::new(LocalBackend::new(&location)), &options, &progress)?;
    if global.json {
        super::output::print_json(&serde_json::json!({
            "repository": location.display().to_string(),
            "id": repo.config().id.to_hex(),
        }))?;
    } else {
        println!(
            "created snap repository {} at {}",
            repo.config().id.short(),
            location.display()
        );
    }
    Ok(exit::OK)
}
