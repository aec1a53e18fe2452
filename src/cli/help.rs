//! The layout of `--help`, shared by parsing, shell completions and man
//! pages: the options every command shares under their own heading, and
//! each command's help ending with examples.

use clap::CommandFactory;

use super::Cli;

/// The heading of the options that every command shares.
pub const GLOBAL_HEADING: &str = "Global options";

/// The full command line definition: what `snap` parses, and what
/// `snap completions` and `snap man` describe.
pub fn command() -> clap::Command {
    let cmd = Cli::command().mut_args(|arg| {
        if arg.is_global_set() {
            arg.help_heading(GLOBAL_HEADING)
        } else {
            arg
        }
    });
    with_examples(cmd, "")
}

/// Gives every subcommand below `cmd` (named by its `path`, such as
/// `key add`) its examples.
fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(name, |sub| {
            let sub = with_examples(sub, &sub_path);
            match examples(&sub_path) {
                Some(text) => sub.after_help(format!("Examples:\n{text}")),
                None => sub,
            }
        });
    }
    cmd
}

/// Two or three examples of a command, each a comment and a command line
/// that runs as printed (`snap` at the start of the line).
fn examples(path: &str) -> Option<&'static str> {
    Some(match path {
        "init" => {
            "  # A repository in the default location, unencrypted
  snap init
  # An encrypted repository on a USB disk (the passphrase is asked for)
  snap -r /media/usb/snap init --encrypt
  # Encrypted to an SSH public key instead of a passphrase
  snap -r /srv/backup/snap init --recipient \"$(cat ~/.ssh/id_ed25519.pub)\"
  # With Reed-Solomon parity: any one lost pack of 10 is rebuilt
  snap init --parity 10%"
        }
        "backup" => {
            "  # Back up two folders into one snapshot, tagged
  snap backup --tag daily ~/Documents ~/Pictures
  # Leave out build output and caches
  snap backup --exclude 'target/' --exclude '*.tmp' ~/src
  # Store a database dump streamed from a command
  snap backup --stdin-from-command 'pg_dump mydb' --stdin-name mydb.sql
  # See what a backup would store, file by file, without writing anything
  snap backup --dry-run -v ~/src"
        }
        "snapshots" => {
            "  # Every snapshot, oldest first
  snap snapshots
  # Only this machine's snapshots tagged daily
  snap snapshots --host \"$(hostname)\" --tag daily
  # As JSON, for scripts
  snap snapshots --json"
        }
        "ls" => {
            "  # The top-level entries of the latest snapshot
  snap ls latest
  # Everything below a folder, with sizes and times
  snap ls -R -l latest:Documents
  # A folder in the snapshot before the latest one
  snap ls latest~1:Documents"
        }
        "cat" => {
            "  # Print a file of the latest snapshot
  snap cat latest:Documents/notes.txt
  # Save a file as it was at a given time
  snap cat @2026-01-31:Documents/notes.txt > notes-january.txt"
        }
        "dump" => {
            "  # A folder of the latest snapshot as a tar archive
  snap dump latest:Documents > documents.tar
  # The whole snapshot as a zip file, written atomically
  snap dump --archive zip --output snapshot.zip latest
  # Unpack a folder somewhere else without a restore target
  snap dump latest:Documents | tar -x -C /tmp/old-documents"
        }
        "diff" => {
            "  # What changed between the last two snapshots
  snap diff latest~1 latest
  # Only below one folder, with a count per kind of change
  snap diff --stat latest~1 latest Documents
  # The changed lines of text files
  snap diff --content latest~1 latest Documents/notes.txt"
        }
        "log" => {
            "  # Every version of a file, newest first
  snap log Documents/notes.txt
  # As JSON, for scripts
  snap log --json Documents/notes.txt"
        }
        "find" => {
            "  # Which snapshots hold a file of this name
  snap find notes.txt
  # Every Markdown file below Documents
  snap find 'Documents/**/*.md'"
        }
        "restore" => {
            "  # Restore the latest snapshot into an empty folder
  snap restore latest --target /tmp/restored
  # See what restoring one folder over the original (~/Documents) would change
  snap restore latest:Documents --target ~ --overwrite always --dry-run
  # Put back the files that changed since, without asking
  snap restore latest:Documents --target ~ --overwrite if-changed --yes"
        }
        "stats" => {
            "  # What the repository holds: snapshots, files, stored bytes
  snap stats
  # One snapshot's size
  snap stats latest"
        }
        "check" => {
            "  # Every snapshot can be restored (reads the index and trees)
  snap check
  # Read back a tenth of the stored data (rotate with 2/10 .. 10/10)
  snap check --read-data-subset 1/10
  # Read every stored byte and check SQLite databases of the latest snapshot
  snap check --read-data --sqlite"
        }
        "repair" => {
            "  # Rebuild the index from the packs
  snap repair index
  # Write snapshots without the files that cannot be restored
  snap repair snapshots --dry-run
  # Rebuild lost or damaged packs from their parity groups
  snap repair packs"
        }
        "repair index" => {
            "  # See what a rebuilt index would change
  snap repair index --dry-run
  # Rebuild the index from the packs
  snap repair index"
        }
        "repair snapshots" => {
            "  # Which snapshots have damaged files, and which files
  snap repair snapshots --dry-run
  # Write repaired copies of those snapshots
  snap repair snapshots"
        }
        "forget" => {
            "  # See what a policy would remove
  snap forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
  # Apply it and free the data of the removed snapshots
  snap forget --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --prune
  # Remove one snapshot by id prefix
  snap forget 3f2a9c"
        }
        "prune" => {
            "  # See what would be deleted and repacked
  snap prune --dry-run
  # Delete unused data, repacking packs that are more than 10% unused
  snap prune --max-unused 10%"
        }
        "copy" => {
            "  # Copy every snapshot into a second repository
  snap copy --to /media/usb/snap
  # Copy the latest snapshot to object storage, sending at most 1 MiB/s
  snap copy --to s3://my-bucket/snap --limit-upload 1024 latest
  # Copy the daily snapshots into an encrypted repository
  snap copy --to /media/usb/snap --to-password-file ~/.config/snap/usb-password --tag daily"
        }
        "key" => {
            "  # Which keys open the repository
  snap key list
  # Add a second passphrase
  snap key add
  # A write-only key for a machine that only backs up
  snap key add --write-only --output backup-only.key"
        }
        "key list" => {
            "  # Which keys open the repository (* marks the one in use)
  snap key list
  # As JSON, for scripts
  snap key list --json"
        }
        "key add" => {
            "  # Add a second passphrase (asked for twice)
  snap key add
  # Let an SSH key open the repository
  snap key add --recipient \"$(cat ~/.ssh/id_ed25519.pub)\"
  # A write-only key for a machine that only backs up
  snap key add --write-only --output backup-only.key"
        }
        "key remove" => {
            "  # Find the key's id, then remove it
  snap key list
  snap key remove 5d1e"
        }
        "key passwd" => {
            "  # Change the passphrase (asked for twice)
  snap key passwd
  # Take the new passphrase from a file
  snap key passwd --new-password-file ~/.config/snap/new-password"
        }
        "key export-identity" => {
            "  # Save the identities for recovery with the age CLI (keep it secret)
  snap key export-identity > snap-identity.txt
  # Those of another repository, to paste into a password manager
  snap -r /media/usb/snap key export-identity"
        }
        "tag" => {
            "  # Tag the latest snapshot
  snap tag --add keep latest
  # Rename a tag on every snapshot that has it
  snap tag --tag old --add new --remove old
  # Replace all tags of this machine's snapshots
  snap tag --host \"$(hostname)\" --set laptop"
        }
        "completions" => {
            "  # Bash: complete snap in every new shell
  snap completions bash > ~/.local/share/bash-completion/completions/snap
  # Zsh: write to a folder on $fpath
  snap completions zsh > ~/.zfunc/_snap
  # Fish
  snap completions fish > ~/.config/fish/completions/snap.fish"
        }
        "man" => {
            "  # Install the pages for the current user (the folder must exist)
  snap man ~/.local/share/man/man1
  # Read one without installing
  snap man /tmp && man -l /tmp/snap-backup.1"
        }
        "mount" => {
            "  # Browse every snapshot as folders until Ctrl-C (the folder must exist)
  snap mount ~/snap-mnt
  # A repository on S3, in the background; then query an old database
  snap -r s3://bucket/laptop mount ~/snap-mnt &
  sqlite3 ~/snap-mnt/latest/home/me/app.db 'select count(*) from items'
  # Unmount from another shell
  fusermount3 -u ~/snap-mnt"
        }
        "drill" => {
            "  # Rehearse restoring the latest snapshot and record how it went
  snap drill
  # A quick drill of a tenth of the files, in a folder with room for them
  snap drill --sample 10% --scratch /var/tmp
  # Repeat a sampled drill of an older snapshot with the seed it printed
  snap drill latest~1 --sample 10% --seed 1234"
        }
        "parity" => {
            "  # Protect new packs with one parity shard per 10 packs
  snap parity enable 10%
  # How much of the repository parity protects
  snap parity status"
        }
        "parity enable" => {
            "  # One parity shard per group of 10 packs (any one lost pack is rebuilt)
  snap parity enable 10%
  # Two, for any two lost packs of a group
  snap parity enable 20%"
        }
        "parity status" => {
            "  # Packs and bytes in parity groups
  snap parity status
  # As JSON, for scripts
  snap parity status --json"
        }
        "repair packs" => {
            "  # Which packs parity would rebuild
  snap repair packs --dry-run
  # Rebuild them and write them back
  snap repair packs"
        }
        "ui" => {
            "  # Browse the history in the browser (the address is printed first)
  snap ui --open
  # Allow restoring files from the pages
  snap ui --allow-restore
  # A fixed port, e.g. for an SSH tunnel (ssh -L 8080:127.0.0.1:8080 host)
  snap ui --listen 127.0.0.1:8080"
        }
        _ => return None,
    })
}
