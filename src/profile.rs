//! Profiles: a `snap.toml` file naming the repository, the password source,
//! excludes, retention, hooks and the sources of a backup (docs/PROFILE.md).
//!
//! Lookup order: an explicit path (`--config`, `SNAP_CONFIG`), then
//! `./snap.toml`, then `$XDG_CONFIG_HOME/snap/snap.toml` (the user's config
//! folder). Relative paths in a profile are relative to the profile's folder,
//! and `~/` is the home folder. Unknown keys are errors (with the line), so a
//! typo never silently drops an exclude or a source.

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backend::throttle::{Limits, parse_limit};
use crate::duration::{self, BareM};
use crate::error::{Error, ErrorKind, Result};
use crate::retention::{GroupBy, KeepPolicy, UNLIMITED};

/// The profile file name looked for in the current folder and the config folder.
pub const FILE_NAME: &str = "snap.toml";

/// How long a hook may run when the profile does not say.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// A loaded profile, with every path made absolute.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The profile file.
    pub file: PathBuf,
    /// The folder relative paths and commands start from.
    pub dir: PathBuf,
    /// Repository location (a path made absolute, or a URL as written).
    pub repository: Option<PathBuf>,
    /// Password file.
    pub password_file: Option<PathBuf>,
    /// Password command (run with `sh -c`).
    pub password_command: Option<String>,
    /// age identity files.
    pub identity_files: Vec<PathBuf>,
    /// Key file.
    pub key_file: Option<PathBuf>,
    /// Excludes for every source.
    pub excludes: Vec<String>,
    /// Case-insensitive excludes for every source.
    pub iexcludes: Vec<String>,
    /// Names of files that leave out the folder holding them.
    pub exclude_if_present: Vec<String>,
    /// Leave out folders holding a valid `CACHEDIR.TAG`.
    pub exclude_caches: bool,
    /// Leave out regular files larger than this many bytes.
    pub exclude_larger_than: Option<u64>,
    /// Files listing paths to back up (`#` comments and blank lines ignored).
    pub files_from: Vec<PathBuf>,
    /// Files listing paths to back up, every line a path.
    pub files_from_verbatim: Vec<PathBuf>,
    /// Sources of `snap backup` without paths.
    pub sources: Vec<ProfileSource>,
    /// Retention of `snap forget` without a policy.
    pub retention: Option<Retention>,
    /// Hook commands.
    pub hooks: Hooks,
    /// Longest time a hook may run.
    pub hook_timeout: Duration,
    /// Upload and download limits for the repository (KiB/s).
    pub limits: Limits,
    /// `snap check` warns when no drill passed within this many days.
    pub drill_max_age: Option<u32>,
    /// Warnings about what was read (a duration with a bare `m`), one line each.
    pub warnings: Vec<String>,
}

/// One source of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSource {
    /// Name at the snapshot root.
    pub name: String,
    /// A path (absolute) or a command whose output is stored.
    pub input: ProfileInput,
    /// Whether `snap check` warns when it is missing or empty.
    pub critical: bool,
    /// Excludes for this source only.
    pub excludes: Vec<String>,
}

/// What a source reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileInput {
    /// A file or folder.
    Path(PathBuf),
    /// A shell command; its standard output becomes a file.
    Command(String),
}

/// Retention from `[retention]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// What to keep.
    pub policy: KeepPolicy,
    /// How to group snapshots (default: host, paths).
    pub group_by: Option<GroupBy>,
}

/// Hook commands from `[hooks]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Hooks {
    /// Before `snap backup`.
    pub before_backup: Option<String>,
    /// After `snap backup`, whether it succeeded or not.
    pub after_backup: Option<String>,
    /// Before `snap restore`.
    pub before_restore: Option<String>,
    /// After `snap restore`, whether it succeeded or not.
    pub after_restore: Option<String>,
    /// When a hooked command fails.
    pub on_failure: Option<String>,
    /// During `snap drill`, against the restored copy (`SNAP_DRILL_DIR`).
    pub drill: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawProfile {
    repository: Option<String>,
    password_file: Option<String>,
    password_command: Option<String>,
    #[serde(default)]
    identity_files: Vec<String>,
    identity_file: Option<String>,
    key_file: Option<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    iexclude: Vec<String>,
    #[serde(default)]
    exclude_if_present: Vec<String>,
    #[serde(default)]
    exclude_caches: bool,
    exclude_larger_than: Option<SizeValue>,
    #[serde(default)]
    files_from: Vec<String>,
    #[serde(default)]
    files_from_verbatim: Vec<String>,
    hook_timeout: Option<DurationValue>,
    limit_upload: Option<RateValue>,
    limit_download: Option<RateValue>,
    drill_max_age: Option<u32>,
    #[serde(default)]
    source: Vec<RawSource>,
    retention: Option<RawRetention>,
    #[serde(default)]
    hooks: Hooks,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawSource {
    name: String,
    path: Option<String>,
    command: Option<String>,
    #[serde(default)]
    critical: bool,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRetention {
    keep_last: Option<Count>,
    keep_hourly: Option<Count>,
    keep_daily: Option<Count>,
    keep_weekly: Option<Count>,
    keep_monthly: Option<Count>,
    keep_yearly: Option<Count>,
    keep_within: Option<String>,
    #[serde(default)]
    keep_tag: Vec<String>,
    group_by: Option<String>,
}

/// A count: a number, or "unlimited" / -1.
#[derive(Deserialize)]
#[serde(untagged)]
enum Count {
    Number(i64),
    Text(String),
}

/// A duration: seconds, or text in the duration grammar ("10min", "1h 30min", "90s").
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationValue {
    Seconds(u64),
    Text(String),
}

/// A size: bytes, or text like "100M" or "1G".
#[derive(Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Bytes(u64),
    Text(String),
}

/// A rate in KiB/s: a number, or the same as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum RateValue {
    Number(i64),
    Text(String),
}

impl RateValue {
    fn value(&self, key: &str, file: &Path) -> Result<NonZeroU32> {
        let text = match self {
            RateValue::Number(n) => n.to_string(),
            RateValue::Text(t) => t.clone(),
        };
        parse_limit(&text, key).map_err(|e| bad(file, e.message()))
    }
}

/// Parses a size: a number of bytes with an optional suffix `K`, `M`, `G`
/// or `T` (powers of 1024; `KiB`, `MB`, ... and lower case also accepted).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::usage(format!(
            "`{text}` is not a size: use for example 500K, 100M or 1G"
        ))
    };
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let number: u64 = trimmed[..digits].parse().map_err(|_| bad())?;
    let shift = match trimmed[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1 << shift).ok_or_else(bad)
}

fn bad(file: &Path, message: impl std::fmt::Display) -> Error {
    Error::usage(format!("profile {}: {message}", file.display()))
}

impl Count {
    fn value(&self, key: &str, file: &Path) -> Result<u32> {
        match self {
            Count::Number(-1) => Ok(UNLIMITED),
            Count::Text(t) if t == "unlimited" => Ok(UNLIMITED),
            Count::Number(n) => u32::try_from(*n)
                .ok()
                .filter(|&n| n != UNLIMITED)
                .ok_or_else(|| bad(file, format!("{key} = {n} is not a count"))),
            Count::Text(t) => Err(bad(
                file,
                format!("{key} = \"{t}\" is not a count: use a number, or \"unlimited\""),
            )),
        }
    }
}

impl DurationValue {
    fn value(&self, key: &str, file: &Path, warnings: &mut Vec<String>) -> Result<Duration> {
        match self {
            DurationValue::Seconds(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => {
                let parsed =
                    duration::parse(t, key, BareM::Minutes).map_err(|e| bad(file, e.message()))?;
                warnings.extend(parsed.warning);
                Ok(parsed.span.to_std())
            }
        }
    }
}

/// Expands `~/` and makes a relative path relative to `dir`.
fn resolve_path(text: &str, dir: &Path) -> PathBuf {
    let expanded = match text.strip_prefix("~/") {
        Some(rest) => match dirs::home_dir() {
            Some(home) => home.join(rest),
            None => PathBuf::from(text),
        },
        None if text == "~" => dirs::home_dir().unwrap_or_else(|| PathBuf::from(text)),
        None => PathBuf::from(text),
    };
    if expanded.is_absolute() {
        expanded
    } else {
        dir.join(expanded)
    }
}

/// Reads a file of one entry a line (`--exclude-file`, `--recipients-file`):
/// blanks around an entry dropped, blank lines and `#` comments ignored.
/// `what` names the file in the error ("exclude file").
pub fn read_list_file(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(&format!("cannot read {what}"), path, e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// Reads a `--files-from-verbatim` file: every line is a path, byte for
/// byte (names need not be UTF-8), nothing trimmed or skipped; an empty
/// line is an error, as an empty path cannot be backed up.
pub fn read_verbatim_list_file(path: &Path) -> Result<Vec<std::path::PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::fs::read(path)
        .map_err(|e| Error::io("cannot read files-from-verbatim file", path, e))?;
    let text = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(n, line)| {
            if line.is_empty() {
                return Err(Error::usage(format!(
                    "files-from-verbatim file {}: line {} is empty (every line must be a path)",
                    path.display(),
                    n + 1
                )));
            }
            Ok(std::ffi::OsStr::from_bytes(line).into())
        })
        .collect()
}

/// Checks a source name: one or more `/`-separated components, none empty,
/// `.` or `..`.
pub fn check_source_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && !name.contains('\0')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if valid {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "`{name}` cannot name an entry of a snapshot: use names like `postgres` or `postgres/db.dump` (no empty, `.` or `..` parts)"
        )))
    }
}

impl Profile {
    /// Finds the profile: `explicit` (`--config` or `SNAP_CONFIG`), else
    /// `./snap.toml`, else `snap/snap.toml` in the user's config folder.
    /// `None` when there is none; an explicit path that does not exist is an error.
    pub fn find(explicit: Option<&Path>) -> Result<Option<Profile>> {
        if let Some(path) = explicit {
            return Self::load(path).map(Some);
        }
        let local = PathBuf::from(FILE_NAME);
        if local.is_file() {
            return Self::load(&local).map(Some);
        }
        if let Some(config) = dirs::config_dir() {
            let user = config.join("snap").join(FILE_NAME);
            if user.is_file() {
                return Self::load(&user).map(Some);
            }
        }
        Ok(None)
    }

    /// Reads and checks the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::NotFound {
                ErrorKind::Usage
            } else {
                ErrorKind::Io
            };
            Error::new(kind, format!("cannot read profile {}: {e}", path.display()))
        })?;
        let file = std::path::absolute(path)
            .map_err(|e| Error::io("cannot resolve profile path", path, e))?;
        Self::parse(&text, &file)
    }

    /// Parses profile text; `file` is the profile's absolute path.
    pub fn parse(text: &str, file: &Path) -> Result<Profile> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| bad(file, e))?;
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut names = BTreeSet::new();
        let mut sources = Vec::new();
        for source in raw.source {
            check_source_name(&source.name).map_err(|e| bad(file, e.message()))?;
            if !names.insert(source.name.clone()) {
                return Err(bad(
                    file,
                    format!("two sources are named `{}`", source.name),
                ));
            }
            let input = match (source.path, source.command) {
                (Some(path), None) => ProfileInput::Path(resolve_path(&path, &dir)),
                (None, Some(command)) => ProfileInput::Command(command),
                _ => {
                    return Err(bad(
                        file,
                        format!(
                            "source `{}` needs exactly one of `path` and `command`",
                            source.name
                        ),
                    ));
                }
            };
            sources.push(ProfileSource {
                name: source.name,
                input,
                critical: source.critical,
                excludes: source.exclude,
            });
        }
        for name in &names {
            // `a` and `a/b` cannot both be sources: one would hide the other.
            if names
                .iter()
                .any(|other| other.starts_with(&format!("{name}/")))
            {
                return Err(bad(
                    file,
                    format!("source `{name}` contains another source below it"),
                ));
            }
        }
        let mut warnings = Vec::new();
        let retention = raw
            .retention
            .map(|r| r.into_retention(file, &mut warnings))
            .transpose()?;
        let mut identity_files: Vec<PathBuf> = raw
            .identity_files
            .iter()
            .map(|p| resolve_path(p, &dir))
            .collect();
        identity_files.extend(raw.identity_file.iter().map(|p| resolve_path(p, &dir)));
        if raw.password_file.is_some() && raw.password_command.is_some() {
            return Err(bad(
                file,
                "give password-file or password-command, not both",
            ));
        }
        Ok(Profile {
            repository: raw.repository.map(|r| {
                if r.contains("://") {
                    PathBuf::from(r)
                } else {
                    resolve_path(&r, &dir)
                }
            }),
            password_file: raw.password_file.map(|p| resolve_path(&p, &dir)),
            password_command: raw.password_command,
            identity_files,
            key_file: raw.key_file.map(|p| resolve_path(&p, &dir)),
            excludes: raw.exclude,
            iexcludes: raw.iexclude,
            exclude_if_present: raw.exclude_if_present,
            exclude_caches: raw.exclude_caches,
            exclude_larger_than: match raw.exclude_larger_than {
                None => None,
                Some(SizeValue::Bytes(n)) => Some(n),
                Some(SizeValue::Text(t)) => Some(
                    parse_size(&t)
                        .map_err(|e| bad(file, format!("exclude-larger-than: {}", e.message())))?,
                ),
            },
            files_from: raw
                .files_from
                .iter()
                .map(|p| resolve_path(p, &dir))
                .collect(),
            files_from_verbatim: raw
                .files_from_verbatim
                .iter()
                .map(|p| resolve_path(p, &dir))
                .collect(),
            sources,
            retention,
            hooks: raw.hooks,
            hook_timeout: raw
                .hook_timeout
                .map(|t| t.value("hook-timeout", file, &mut warnings))
                .transpose()?
                .unwrap_or(DEFAULT_HOOK_TIMEOUT),
            limits: Limits {
                upload: raw
                    .limit_upload
                    .map(|r| r.value("limit-upload", file))
                    .transpose()?,
                download: raw
                    .limit_download
                    .map(|r| r.value("limit-download", file))
                    .transpose()?,
            },
            drill_max_age: raw.drill_max_age,
            warnings,
            file: file.to_path_buf(),
            dir,
        })
    }

    /// The names of the critical sources.
    pub fn critical_sources(&self) -> impl Iterator<Item = &str> {
        self.sources
            .iter()
            .filter(|s| s.critical)
            .map(|s| s.name.as_str())
    }
}

impl RawRetention {
    fn into_retention(self, file: &Path, warnings: &mut Vec<String>) -> Result<Retention> {
        let count = |value: &Option<Count>, key: &str| -> Result<u32> {
            value.as_ref().map_or(Ok(0), |c| c.value(key, file))
        };
        let policy = KeepPolicy {
            last: count(&self.keep_last, "keep-last")?,
            hourly: count(&self.keep_hourly, "keep-hourly")?,
            daily: count(&self.keep_daily, "keep-daily")?,
            weekly: count(&self.keep_weekly, "keep-weekly")?,
            monthly: count(&self.keep_monthly, "keep-monthly")?,
            yearly: count(&self.keep_yearly, "keep-yearly")?,
            within: self
                .keep_within
                .as_deref()
                .map(|text| {
                    let parsed = duration::parse(text, "keep-within", BareM::Months)
                        .map_err(|e| bad(file, e.message()))?;
                    warnings.extend(parsed.warning);
                    Ok::<_, Error>(parsed.span)
                })
                .transpose()?,
            tags: crate::select::tag_lists(&self.keep_tag)
                .map_err(|e| bad(file, format!("keep-tag: {}", e.message())))?,
        };
        if policy.is_empty() {
            return Err(bad(
                file,
                "[retention] keeps nothing: give keep-last, keep-daily, ... (a policy that keeps nothing would forget every snapshot)",
            ));
        }
        let group_by = self
            .group_by
            .as_deref()
            .map(str::parse::<GroupBy>)
            .transpose()
            .map_err(|e| bad(file, format!("group-by: {}", e.message())))?;
        Ok(Retention { policy, group_by })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Profile> {
        Profile::parse(text, Path::new("/etc/snap/snap.toml"))
    }

    #[test]
    fn example_profile_resolves_paths_against_its_folder() {
        let profile = parse(
            r#"
repository = "/backups/lyra"
password-file = "lyra.pass"
exclude = ["*.log"]
hook-timeout = "2m"
[[source]]
name = "word_photos"
path = "entities/lyra/memories/word_photos"
critical = true
[[source]]
name = "postgres"
command = "pg_dump -Fc pgbruce"
[retention]
keep-daily = 7
keep-weekly = 4
keep-yearly = "unlimited"
[hooks]
before-backup = "true"
"#,
        )
        .unwrap();
        assert_eq!(profile.repository, Some(PathBuf::from("/backups/lyra")));
        assert_eq!(
            profile.password_file,
            Some(PathBuf::from("/etc/snap/lyra.pass"))
        );
        assert_eq!(
            profile.sources[0].input,
            ProfileInput::Path("/etc/snap/entities/lyra/memories/word_photos".into())
        );
        assert!(profile.sources[0].critical);
        assert_eq!(
            profile.sources[1].input,
            ProfileInput::Command("pg_dump -Fc pgbruce".into())
        );
        assert_eq!(profile.hook_timeout, Duration::from_secs(120));
        assert!(
            profile.warnings[0].contains("2 minutes"),
            "{:?}",
            profile.warnings
        );
        let retention = profile.retention.unwrap();
        assert_eq!(retention.policy.daily, 7);
        assert_eq!(retention.policy.yearly, UNLIMITED);
        assert_eq!(profile.hooks.before_backup.as_deref(), Some("true"));
    }

    #[test]
    fn unknown_keys_are_errors_with_their_line() {
        let e = parse(
            "repository = \"/r\"\n[[source]]\nname = \"a\"\npath = \"x\"\nexclud = [\"*.log\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.message().contains("exclud"), "{}", e.message());
        assert!(e.message().contains("line 5"), "{}", e.message());
    }

    #[test]
    fn sources_need_one_input_and_distinct_valid_names() {
        assert!(parse("[[source]]\nname = \"a\"\n").is_err());
        assert!(parse("[[source]]\nname = \"a\"\npath = \"x\"\ncommand = \"y\"\n").is_err());
        assert!(parse("[[source]]\nname = \"../a\"\npath = \"x\"\n").is_err());
        assert!(
            parse(
                "[[source]]\nname = \"a\"\npath = \"x\"\n[[source]]\nname = \"a\"\npath = \"y\"\n"
            )
            .is_err()
        );
        assert!(
            parse("[[source]]\nname = \"a\"\npath = \"x\"\n[[source]]\nname = \"a/b\"\ncommand = \"y\"\n")
                .is_err()
        );
        assert!(parse("[retention]\nkeep-daily = 0\n").is_err());
        assert!(parse("[retention]\nkeep-daily = \"many\"\n").is_err());
    }
}
