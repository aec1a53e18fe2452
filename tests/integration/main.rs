//! The integration tests, linked as one test binary: every file here is a
//! module of it, and `common` holds the helpers they share. One binary
//! links once instead of once per file, and a filter such as
//! `cargo test --test integration cli_faults::` still runs one file's tests.
//!
//! The modules share one process: a test must not change process-wide
//! state (environment variables, the current folder, signal handlers, the
//! umask). It sets such things on the `snap` child processes it starts.

mod common;

mod architecture;
mod backend_suite;
mod browser_ui;
mod cli_backup_dry_run;
mod cli_backup_restore;
mod cli_backup_select;
mod cli_backup_source;
mod cli_check_repair;
mod cli_diff_log_find;
mod cli_drill;
mod cli_dump;
mod cli_encryption;
mod cli_faults;
mod cli_forget_prune;
mod cli_format;
mod cli_help;
mod cli_hostile_repo;
mod cli_limits;
mod cli_many_files;
mod cli_messages;
mod cli_mount;
mod cli_names_tags;
mod cli_output;
mod cli_parity;
mod cli_paths;
mod cli_postgres;
mod cli_profile;
mod cli_progress;
mod cli_redundancy;
mod cli_restore_safety;
mod cli_s3_copy;
mod cli_s3_errors;
mod cli_small_files;
mod cli_sqlite;
mod cli_sqlite_scratch;
mod cli_trust_access;
mod cli_ui;
mod decode_fuzz;
mod lib_faults;
mod lib_saver;
