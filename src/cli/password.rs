//! Where passwords come from: a file, the environment, a command, or a
//! prompt on the terminal. Passwords never come from the command line itself
//! (they would show in the process list).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::Stdio;

use age::secrecy::{ExposeSecret, SecretString};
use snap::{Error, ErrorKind};

/// The configured password sources, tried in order: file, `SNAP_PASSWORD`,
/// command, terminal prompt.
#[derive(Clone, Default)]
pub struct Source {
    /// `--password-file` / `SNAP_PASSWORD_FILE`.
    pub file: Option<PathBuf>,
    /// `--password-command`.
    pub command: Option<String>,
    /// Where the command runs (a profile's folder; default: the current folder).
    pub dir: Option<PathBuf>,
}

fn first_line(text: &str) -> SecretString {
    SecretString::from(text.lines().next().unwrap_or_default().to_string())
}

/// The first line of a password file. A file that group or others may read
/// gets a warning: the password is only as safe as the file.
fn read_password_file(path: &std::path::Path) -> snap::Result<SecretString> {
    use std::os::unix::fs::PermissionsExt;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io("cannot read password file", path, e))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o044 != 0
    {
        eprintln!(
            "snap: warning: password file {} can be read by group or others; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(first_line(&text))
}

fn key_error(message: String) -> Error {
    Error::new(ErrorKind::Key, message)
}

/// Runs a password command; its first output line is the password.
fn run_command(command: &str, dir: Option<&std::path::Path>) -> snap::Result<SecretString> {
    let mut cmd = snap::hooks::shell(command);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let output = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| key_error(format!("cannot run the password command: {e}")))?;
    if !output.status.success() {
        return Err(key_error(format!(
            "the password command failed ({})",
            output.status
        )));
    }
    Ok(first_line(&String::from_utf8_lossy(&output.stdout)))
}

impl Source {
    /// The password of an existing repository.
    pub fn read(&self) -> snap::Result<SecretString> {
        if let Some(path) = &self.file {
            return read_password_file(path);
        }
        if let Ok(text) = std::env::var("SNAP_PASSWORD") {
            return Ok(SecretString::from(text));
        }
        if let Some(command) = &self.command {
            return run_command(command, self.dir.as_deref());
        }
        if std::io::stdin().is_terminal() {
            let text = rpassword::prompt_password("repository password: ")
                .map_err(|e| key_error(format!("cannot read the password: {e}")))?;
            return Ok(SecretString::from(text));
        }
        Err(key_error(
            "this repository is encrypted and no password was given: use --password-file, SNAP_PASSWORD_FILE, SNAP_PASSWORD or --password-command".to_string(),
        ))
    }

    /// A new password (init, key add, key passwd): from the sources, or asked
    /// twice on a terminal.
    pub fn read_new(&self) -> snap::Result<SecretString> {
        if self.file.is_some()
            || std::env::var_os("SNAP_PASSWORD").is_some()
            || self.command.is_some()
        {
            return self.read();
        }
        if !std::io::stdin().is_terminal() {
            return self.read();
        }
        let first = rpassword::prompt_password("new repository password: ")
            .map_err(|e| key_error(format!("cannot read the password: {e}")))?;
        let again = rpassword::prompt_password("repeat the password: ")
            .map_err(|e| key_error(format!("cannot read the password: {e}")))?;
        if first != again {
            return Err(Error::usage("the passwords do not match"));
        }
        let secret = SecretString::from(first);
        if secret.expose_secret().is_empty() {
            return Err(Error::usage("an empty password is not allowed"));
        }
        Ok(secret)
    }
}

/// A new password for `key add` / `key passwd`: `--new-password-file`,
/// `SNAP_NEW_PASSWORD`, or asked twice on a terminal.
pub fn read_new_key_password(file: Option<&PathBuf>) -> snap::Result<SecretString> {
    if let Some(path) = file {
        return read_password_file(path);
    }
    if let Ok(text) = std::env::var("SNAP_NEW_PASSWORD") {
        return Ok(SecretString::from(text));
    }
    if !std::io::stdin().is_terminal() {
        return Err(key_error(
            "no new password: use --new-password-file or SNAP_NEW_PASSWORD".to_string(),
        ));
    }
    Source::default().read_new()
}

/// The password of a second repository (the target of `snap copy`, the
/// source of `snap init --copy-chunker-params-from`): the first line of
/// `file`, the variable `env`, `command`, or a prompt naming `what`.
pub fn read_other(
    file: Option<&std::path::Path>,
    env: &str,
    command: Option<&str>,
    what: &str,
) -> snap::Result<SecretString> {
    if let Some(path) = file {
        return read_password_file(path);
    }
    if let Ok(text) = std::env::var(env) {
        return Ok(SecretString::from(text));
    }
    if let Some(command) = command {
        return run_command(command, None);
    }
    if std::io::stdin().is_terminal() {
        let text = rpassword::prompt_password(format!("{what} password: "))
            .map_err(|e| key_error(format!("cannot read the password: {e}")))?;
        return Ok(SecretString::from(text));
    }
    Err(key_error(format!(
        "the {what} is encrypted and no password was given for it"
    )))
}
