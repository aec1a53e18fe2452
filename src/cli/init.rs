//! `snap init`

use snap::{InitOptions, Repository};

use super::{Global, exit};

/// Create a new repository.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// zstd compression level (1-22; 3 is fast and small).
    #[arg(long, default_value_t = 3)]
    compression: i32,
    /// Fixed chunk size for SQLite database images, in bytes (advanced; see docs/SQLITE.md).
    #[arg(long, default_value_t = snap::format::config::SQLITE_CHUNK)]
    sqlite_chunk_size: u32,
    /// Encrypt with a passphrase (asked for, or from the password options).
    #[arg(long)]
    encrypt: bool,
    /// Encrypt to this age (age1...) or SSH public key instead of a passphrase (repeatable).
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// Read recipients from a file, one per line.
    #[arg(long)]
    recipients_file: Option<std::path::PathBuf>,
}

pub fn run(global: &Global, args: Args) -> anyhow::Result<u8> {
    let progress = global.progress();
    let location = global.location();
    let mut recipients = args.recipients;
    if let Some(file) = &args.recipients_file {
        recipients.extend(snap::keys::read_recipients_file(file)?);
    }
    let encryption = if !recipients.is_empty() {
        Some(snap::keys::NewLock::Recipients(recipients))
    } else if args.encrypt {
        Some(snap::keys::NewLock::Passphrase(global.password.read_new()?))
    } else {
        None
    };
    let options = InitOptions {
        compression: args.compression,
        sqlite_chunk: args.sqlite_chunk_size,
        encryption,
        ..InitOptions::default()
    };
    let repo = Repository::init(global.backend()?, &options, &progress)?;
    if global.json {
        super::output::print_json(&serde_json::json!({
            "repository": location.display().to_string(),
            "id": repo.config().id.to_hex(),
        }))?;
    } else {
        println!(
            "created {}snap repository {} at {}",
            if repo.keys().is_some() {
                "encrypted "
            } else {
                ""
            },
            repo.config().id.short(),
            location.display()
        );
    }
    Ok(exit::OK)
}
