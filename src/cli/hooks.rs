//! Runs a command between the profile's hooks: `before-X`, the command,
//! `after-X` (always, even when the command failed), then `on-failure` when
//! anything failed (docs/PROFILE.md).

use snap::hooks::{self, Hook};
use snap::profile::Profile;

use super::{Global, exit};

/// Which hooked command runs.
#[derive(Clone, Copy)]
pub enum Hooked {
    /// `snap backup`.
    Backup,
    /// `snap restore`.
    Restore,
}

impl Hooked {
    fn name(self) -> &'static str {
        match self {
            Hooked::Backup => "backup",
            Hooked::Restore => "restore",
        }
    }

    fn commands(self, profile: &Profile) -> (Option<&str>, Option<&str>) {
        let h = &profile.hooks;
        match self {
            Hooked::Backup => (h.before_backup.as_deref(), h.after_backup.as_deref()),
            Hooked::Restore => (h.before_restore.as_deref(), h.after_restore.as_deref()),
        }
    }
}

fn run_hook(
    profile: &Profile,
    name: &str,
    command: &str,
    env: &[(String, String)],
) -> snap::Result<()> {
    hooks::run(&Hook {
        name,
        command,
        dir: &profile.dir,
        timeout: profile.hook_timeout,
        env,
    })
}

/// Whether an exit code means the command did its work (warnings included).
fn succeeded(code: u8) -> bool {
    code == exit::OK || code == exit::WARNINGS
}

/// Runs `body` between the hooks of `command`. `body` may add variables
/// (like `SNAP_SNAPSHOT_ID`) that the after-hook and on-failure hook see.
pub fn around(
    global: &Global,
    command: Hooked,
    env: Vec<(String, String)>,
    body: impl FnOnce(&mut Vec<(String, String)>) -> anyhow::Result<u8>,
) -> anyhow::Result<u8> {
    around_in(
        global.profile.as_ref(),
        &global.location(),
        command,
        env,
        body,
    )
}

/// [`around`] with the profile and the repository location given apart,
/// for `snap ui`, which restores long after the command line was read.
pub fn around_in(
    profile: Option<&Profile>,
    location: &std::path::Path,
    command: Hooked,
    mut env: Vec<(String, String)>,
    body: impl FnOnce(&mut Vec<(String, String)>) -> anyhow::Result<u8>,
) -> anyhow::Result<u8> {
    let Some(profile) = profile else {
        return body(&mut env);
    };
    let (before, after) = command.commands(profile);
    if before.is_none() && after.is_none() && profile.hooks.on_failure.is_none() {
        return body(&mut env);
    }
    env.push(("SNAP_COMMAND".into(), command.name().into()));
    env.push(("SNAP_PROFILE".into(), profile.file.display().to_string()));
    env.push(("SNAP_REPOSITORY".into(), location.display().to_string()));
    let before_name = format!("before-{}", command.name());
    let result = match before.map(|cmd| run_hook(profile, &before_name, cmd, &env)) {
        Some(Err(e)) => Err(anyhow::Error::from(e).context(format!(
            "{} was not started (the {before_name} hook must succeed first)",
            command.name()
        ))),
        _ => body(&mut env),
    };
    let mut result = result;
    let after_name = format!("after-{}", command.name());
    if let Some(cmd) = after {
        let mut after_env = env.clone();
        push_outcome(&mut after_env, &result);
        if let Err(e) = run_hook(profile, &after_name, cmd, &after_env) {
            match &result {
                Ok(code) if succeeded(*code) => {
                    result = Err(anyhow::Error::from(e).context(format!(
                        "{} finished, but its after-hook failed",
                        command.name()
                    )));
                }
                _ => eprintln!("snap: {}", e.message()),
            }
        }
    }
    let failed = !matches!(&result, Ok(code) if succeeded(*code));
    if failed && let Some(cmd) = profile.hooks.on_failure.as_deref() {
        push_outcome(&mut env, &result);
        if let Err(e) = run_hook(profile, "on-failure", cmd, &env) {
            eprintln!("snap: {}", e.message());
        }
    }
    result
}

/// `SNAP_EXIT_CODE` (the code snap exits with) and, on an error, `SNAP_ERROR`.
fn push_outcome(env: &mut Vec<(String, String)>, result: &anyhow::Result<u8>) {
    match result {
        Ok(code) => env.push(("SNAP_EXIT_CODE".into(), code.to_string())),
        Err(e) => {
            env.push(("SNAP_EXIT_CODE".into(), super::exit_code(e).to_string()));
            env.push(("SNAP_ERROR".into(), super::error_text(e)));
        }
    }
}
