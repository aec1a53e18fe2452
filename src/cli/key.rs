//! `snap key`: the ways into an encrypted repository.

use std::path::PathBuf;

use snap::keys::{self, Access, Lock, NewLock};

use super::output;
use super::password::read_new_key_password;
use super::{Global, exit};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// List key files; the one in use is marked with *.
    List,
    /// Add a way in: a passphrase, recipients, or an exported key file.
    Add(AddArgs),
    /// Remove a key file (never the last one, nor the one in use).
    Remove {
        /// Key id (or a unique prefix).
        id: String,
    },
    /// Change the passphrase of the key in use.
    Passwd {
        /// Read the new password from this file.
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Print the repository's age identities (secret!) for recovery with the `age` CLI.
    ExportIdentity,
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// Seal the new key to this age or SSH public key (repeatable) instead of a passphrase.
    #[arg(long = "recipient")]
    recipients: Vec<String>,
    /// Read recipients from a file, one per line.
    #[arg(long)]
    recipients_file: Option<PathBuf>,
    /// A key that can add snapshots but not read, restore or delete anything.
    #[arg(long)]
    write_only: bool,
    /// Write the key to this file (for --key-file) instead of into the repository.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Read the new password from this file.
    #[arg(long)]
    new_password_file: Option<PathBuf>,
}

/// The access a new key gets from `--write-only`.
fn access(write_only: bool) -> Access {
    if write_only {
        Access::WriteOnly
    } else {
        Access::Full
    }
}

pub fn run(global: &Global, command: Command) -> anyhow::Result<u8> {
    let progress = global.progress();
    let repo = global.open(&progress)?;
    let repo_keys = keys::required(repo.keys())?;
    let backend = repo.backend();
    match command {
        Command::List => {
            let list = keys::list(backend)?;
            if global.json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|(id, k)| {
                        serde_json::json!({
                            "id": id, "current": Some(id.as_str()) == repo.key_id(),
                            "lock": k.lock, "access": k.access, "created": k.created, "host": k.host,
                        })
                    })
                    .collect();
                output::print_json(&rows)?;
            } else {
                for (id, k) in &list {
                    let current = if Some(id.as_str()) == repo.key_id() {
                        "*"
                    } else {
                        " "
                    };
                    let lock = match k.lock {
                        Lock::Passphrase => "passphrase",
                        Lock::Recipients => "recipients",
                    };
                    let access = match k.access {
                        Access::Full => "full",
                        Access::WriteOnly => "write-only",
                    };
                    println!(
                        "{current}{}  {lock:<10}  {access:<10}  {}  {}",
                        &id[..8],
                        output::local_time(&k.created),
                        k.host
                    );
                }
            }
        }
        Command::Add(args) => {
            let access = access(args.write_only);
            if let Some(path) = &args.output {
                keys::export(path, &repo.config().id, repo_keys, access)?;
                if !global.quiet {
                    println!(
                        "wrote a {} key to {} (keep it secret; use it with --key-file)",
                        if args.write_only {
                            "write-only"
                        } else {
                            "full"
                        },
                        path.display()
                    );
                }
                return Ok(exit::OK);
            }
            let id = keys::add(backend, repo_keys, access, || new_lock(args))?;
            if global.json {
                output::print_json(&serde_json::json!({ "id": id }))?;
            } else if !global.quiet {
                println!("added key {}", &id[..8]);
            }
        }
        Command::Remove { id } => {
            let id = keys::remove(backend, repo_keys, repo.key_id(), &id)?;
            if !global.quiet {
                println!("removed key {}", &id[..8]);
            }
        }
        Command::Passwd { new_password_file } => {
            let id = keys::change_passphrase(backend, repo_keys, repo.key_id(), || {
                read_new_key_password(new_password_file.as_ref())
            })?;
            if !global.quiet {
                let current = repo.key_id().unwrap_or_default();
                println!(
                    "password changed (key {} replaced by {})",
                    &current[..8.min(current.len())],
                    &id[..8]
                );
            }
        }
        Command::ExportIdentity => {
            eprintln!(
                "snap: these identities decrypt everything in the repository: keep them secret"
            );
            print!("{}", repo_keys.identity_file_text()?);
        }
    }
    Ok(exit::OK)
}

/// What `key add` seals the new key to: the recipients given, else a new
/// passphrase (asked for).
fn new_lock(args: AddArgs) -> snap::Result<NewLock> {
    let mut recipients = args.recipients;
    if let Some(file) = &args.recipients_file {
        recipients.extend(keys::read_recipients_file(file)?);
    }
    Ok(if recipients.is_empty() {
        NewLock::Passphrase(read_new_key_password(args.new_password_file.as_ref())?)
    } else {
        NewLock::Recipients(recipients)
    })
}
