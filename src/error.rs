//! The library's error type.
//!
//! Rules every error follows:
//! - it names what failed (a path, an object id, a snapshot selector) and, where
//!   there is one, what the user can do next;
//! - it carries an [`ErrorKind`] that the command line maps to a documented exit
//!   code (see `docs/CLI.md`), so scripts can tell "wrong password" from
//!   "repository damaged" without parsing text;
//! - it never contains a secret (passphrase, key material).

use std::fmt;
use std::path::Path;

/// What kind of failure an [`Error`] is; decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing a file or the repository failed.
    Io,
    /// The caller asked for something malformed (bad selector, bad flag value).
    Usage,
    /// An unknown snapshot, a path not in a snapshot: nothing matched.
    NotFound,
    /// The location is not a snap repository.
    NotARepository,
    /// The repository (or an object in it) has a format version this build cannot read.
    UnsupportedVersion,
    /// The repository uses a required feature this build does not know.
    UnsupportedFeature,
    /// An object failed to decode or its hash does not match: the repository is damaged.
    Corrupt,
    /// Wrong passphrase, identity or key file, or a key that may not do this.
    Key,
    /// The operation was interrupted (Ctrl-C); nothing half-done is visible.
    Interrupted,
    /// The restore target holds files the restore would overwrite.
    Conflict,
}

/// The library's error: a kind, a message for people, and an optional cause.
///
/// Derived with `thiserror`: it displays as the message alone (the command
/// line appends the causes it does not already contain) and reports `source`
/// as the cause, without hand-written `Display` and `Error` impls.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether the error means damage to the repository's data (a corrupt or
    /// missing object: report it and go on with the rest) rather than a
    /// failure to go on at all (a full disk, a missing key).
    pub fn is_damage(&self) -> bool {
        matches!(self.kind, ErrorKind::Corrupt | ErrorKind::NotFound)
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An I/O error on a path: "{what} {path}: {cause}", and for a full
    /// disk or a refused permission what to do about it.
    pub fn io(what: &str, path: &Path, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        let hint = match err.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                "; free space on that file system (the cache folder moves with XDG_CACHE_HOME)"
            }
            std::io::ErrorKind::PermissionDenied => {
                "; check the owner and mode of that path and of the folders above it"
            }
            _ => "",
        };
        Self::new(kind, format!("{what} {}: {err}{hint}", path.display())).with_source(err)
    }

    /// An object that could not be decoded or failed verification.
    pub fn corrupt(object: impl fmt::Display, detail: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Corrupt,
            format!("{object} is damaged: {detail}; run `snap check` to see what is affected"),
        )
    }

    /// Nothing matched a selector or path.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Malformed input from the caller.
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_the_message_alone_and_keeps_the_cause() {
        let cause = std::io::Error::other("disk on fire");
        let e = Error::io("cannot read", Path::new("/x"), cause);
        assert_eq!(e.to_string(), "cannot read /x: disk on fire");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk on fire"));
        let bare = Error::usage("bad flag");
        assert_eq!(bare.to_string(), "bad flag");
        assert!(std::error::Error::source(&bare).is_none());
    }
}
