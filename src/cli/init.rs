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
    #[arg(long, default_value_t = snap::SQLITE_CHUNK)]
    sqlite_chunk_size: u32,
    /// Reed-Solomon parity for every pack: 10% (one parity shard per group of
    /// 10 packs) rebuilds any one lost pack of a group, 20% any two.
    #[arg(long, value_name = "PERCENT")]
    parity: Option<snap::ParityLevel>,
    /// Encrypt with a passphrase (asked for, or from the password options).
    #[arg(long)]
    encrypt: bool,
    /// Encrypt to this age (age1...) or SSH public key instead of a passphrase (repeatable).
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// Read recipients from a file, one per line.
    #[arg(long)]
    recipients_file: Option<std::path::PathBuf>,
    /// Chunk like this existing repository (local path or s3://), so that
    /// `snap copy` between the two keeps deduplicating (see docs/S3.md).
    #[arg(long, value_name = "REPO")]
    copy_chunker_params_from: Option<std::path::PathBuf>,
    /// Password file of the --copy-chunker-params-from repository.
    #[arg(long, env = "SNAP_FROM_PASSWORD_FILE")]
    from_password_file: Option<std::path::PathBuf>,
    /// Password command of the --copy-chunker-params-from repository.
    #[arg(long)]
    from_password_command: Option<String>,
    /// Key file of the --copy-chunker-params-from repository.
    #[arg(long, env = "SNAP_FROM_KEY_FILE")]
    from_key_file: Option<std::path::PathBuf>,
    /// age identity file of the --copy-chunker-params-from repository.
    #[arg(long = "from-identity-file", env = "SNAP_FROM_IDENTITY_FILE")]
    from_identity_files: Vec<std::path::PathBuf>,
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
    let mut options = InitOptions {
        compression: args.compression,
        sqlite_chunk: args.sqlite_chunk_size,
        encryption,
        parity: args.parity,
        ..InitOptions::default()
    };
    if let Some(from) = &args.copy_chunker_params_from {
        let credentials = super::copy::other_credentials(
            args.from_password_file,
            "SNAP_FROM_PASSWORD",
            args.from_password_command,
            args.from_key_file,
            args.from_identity_files,
            "source repository",
        );
        let source = Repository::open_with(
            snap::backend::open(from, global.limits)?,
            &credentials,
            &progress,
        )?;
        // Chunk sizes and the SQLite page-run size decide where chunks cut.
        // The gear seed of an unencrypted repository is in its config; an
        // encrypted one derives it (and its blob-id key) from its secret, so
        // an encrypted copy of an encrypted repository shares its keys
        // (sealed to the new password or recipients). An unencrypted copy of
        // an encrypted repository never learns the secret seed.
        options.chunker = source.config().chunker;
        options.sqlite_chunk = source.config().sqlite_chunk;
        if options.encryption.is_some() {
            options.shared_keys = source.keys().cloned();
        }
    }
    let repo = Repository::init(global.backend()?, &options, &progress)?;
    if global.json {
        super::output::print_json(&serde_json::json!({
            "repository": location.display().to_string(),
            "id": repo.config().id.to_hex(),
        }))?;
    } else if !global.quiet {
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
