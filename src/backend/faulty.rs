//! A wrapper that makes chosen backend calls fail, for tests of what a full
//! disk, an I/O error or a torn write does to each command.
//!
//! [`super::open`] wraps every backend it opens in [`Faulty`] when the
//! environment variable `SNAP_FAULTS` is set (docs/TESTING.md); otherwise
//! nothing changes. A fault is `OP:KIND:N:ERROR`, several separated by
//! commas:
//!
//! - `OP`: `read` (also range reads), `write` (also moved-in files),
//!   `remove` or `list`;
//! - `KIND`: `config`, `key`, `pack`, `index`, `snapshot`, `lock`, `drill`,
//!   `parity` or `any`;
//! - `N`: the N-th such call (counting from 1) fails, and with `N+` every
//!   call from the N-th on;
//! - `ERROR`: `enospc` (no space left, nothing written), `eio` (I/O error,
//!   nothing written), `short` (a torn write: part of the data reaches a
//!   temporary file that is left behind, then the write fails with ENOSPC),
//!   or `lost` (the write or removal happens, then an I/O error is reported
//!   anyway, as when an acknowledgement is lost).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, FileKind};
use crate::error::{Error, ErrorKind, Result};

/// The environment variable that turns fault injection on.
pub const ENV: &str = "SNAP_FAULTS";

/// Backend calls a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `read` and `read_range`.
    Read,
    /// `write` and `write_file`.
    Write,
    /// `remove`.
    Remove,
    /// `list`.
    List,
}

/// What a hit call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// ENOSPC before anything is written.
    NoSpace,
    /// EIO before anything is written.
    Io,
    /// Part of the data is written to a temporary file, then ENOSPC.
    Short,
    /// The call succeeds, then EIO is reported.
    Lost,
}

/// One fault: the `nth` call of `op` on `kind` (all kinds when `None`)
/// fails, and every later one too when `onwards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The call.
    pub op: Op,
    /// The file kind, or every kind.
    pub kind: Option<FileKind>,
    /// Which matching call fails first, from 1.
    pub nth: u64,
    /// Whether every later matching call fails too.
    pub onwards: bool,
    /// What the failing call does.
    pub failure: Failure,
}

impl Fault {
    /// Parses `OP:KIND:N[+]:ERROR`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::usage(format!("{ENV}: bad fault `{text}`: {why}"));
        let parts: Vec<&str> = text.trim().split(':').collect();
        let [op, kind, nth, failure] = parts[..] else {
            return Err(bad("expected OP:KIND:N:ERROR"));
        };
        let op = match op {
            "read" => Op::Read,
            "write" => Op::Write,
            "remove" => Op::Remove,
            "list" => Op::List,
            _ => return Err(bad("OP is read, write, remove or list")),
        };
        let kind = match kind {
            "any" => None,
            "config" => Some(FileKind::Config),
            "key" => Some(FileKind::Key),
            "pack" => Some(FileKind::Pack),
            "index" => Some(FileKind::Index),
            "snapshot" => Some(FileKind::Snapshot),
            "lock" => Some(FileKind::Lock),
            "drill" => Some(FileKind::Drill),
            "parity" => Some(FileKind::Parity),
            _ => {
                return Err(bad(
                    "KIND is config, key, pack, index, snapshot, lock, drill or any",
                ));
            }
        };
        let (nth, onwards) = match nth.strip_suffix('+') {
            Some(n) => (n, true),
            None => (nth, false),
        };
        let nth: u64 = nth
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad("N is a number from 1"))?;
        let failure = match failure {
            "enospc" => Failure::NoSpace,
            "eio" => Failure::Io,
            "short" => Failure::Short,
            "lost" => Failure::Lost,
            _ => return Err(bad("ERROR is enospc, eio, short or lost")),
        };
        Ok(Self {
            op,
            kind,
            nth,
            onwards,
            failure,
        })
    }

    fn matches(&self, op: Op, kind: FileKind) -> bool {
        self.op == op && self.kind.is_none_or(|k| k == kind)
    }
}

/// A backend that fails the calls its faults name and passes the rest on.
pub struct Faulty {
    inner: Box<dyn Backend>,
    faults: Vec<(Fault, AtomicU64)>,
}

impl Faulty {
    /// Wraps `inner` with `faults`.
    pub fn new(inner: Box<dyn Backend>, faults: Vec<Fault>) -> Self {
        Self {
            inner,
            faults: faults.into_iter().map(|f| (f, AtomicU64::new(0))).collect(),
        }
    }

    /// Wraps `inner` when `SNAP_FAULTS` asks for faults; returns it unchanged otherwise.
    pub fn from_env(inner: Box<dyn Backend>) -> Result<Box<dyn Backend>> {
        let Some(spec) = std::env::var_os(ENV) else {
            return Ok(inner);
        };
        let spec = spec
            .into_string()
            .map_err(|_| Error::usage(format!("{ENV} is not UTF-8")))?;
        let faults = spec
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Fault::parse)
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Self::new(inner, faults)))
    }

    /// The failure this call meets, if any (counting it for every matching fault).
    fn hit(&self, op: Op, kind: FileKind) -> Option<Failure> {
        let mut hit = None;
        for (fault, count) in &self.faults {
            if !fault.matches(op, kind) {
                continue;
            }
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            if n == fault.nth || (fault.onwards && n > fault.nth) {
                hit = hit.or(Some(fault.failure));
            }
        }
        hit
    }

    fn error(failure: Failure, what: &str, kind: FileKind, name: &str) -> Error {
        let errno = match failure {
            Failure::NoSpace | Failure::Short => libc::ENOSPC,
            Failure::Io | Failure::Lost => libc::EIO,
        };
        Error::new(
            ErrorKind::Io,
            format!(
                "cannot {what} {} {name}: {} (injected by {ENV})",
                kind.noun(),
                std::io::Error::from_raw_os_error(errno)
            ),
        )
    }

    /// Leaves part of `data` in a temporary file, as a write cut short by a
    /// full disk does.
    fn tear(&self, data: &[u8]) {
        if let Ok(mut file) = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(self.inner.temp_dir())
            .and_then(|f| f.keep().map_err(|e| e.error))
            .map(|(file, _)| file)
        {
            let _ = file.write_all(&data[..data.len() / 2]);
        }
    }

    /// Runs a mutating call under the failure, if any.
    fn mutate(
        &self,
        op: Op,
        kind: FileKind,
        name: &str,
        torn: impl FnOnce() -> Vec<u8>,
        call: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let what = if op == Op::Remove { "remove" } else { "write" };
        match self.hit(op, kind) {
            None => call(),
            Some(Failure::Lost) => {
                call()?;
                Err(Self::error(Failure::Lost, what, kind, name))
            }
            Some(Failure::Short) => {
                if op == Op::Write {
                    self.tear(&torn());
                }
                Err(Self::error(Failure::Short, what, kind, name))
            }
            Some(failure) => Err(Self::error(failure, what, kind, name)),
        }
    }

    fn read_fault(&self, kind: FileKind, name: &str) -> Result<()> {
        match self.hit(Op::Read, kind) {
            None => Ok(()),
            Some(failure) => Err(Self::error(failure, "read", kind, name)),
        }
    }
}

impl Backend for Faulty {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn exists(&self) -> Result<bool> {
        self.inner.exists()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        self.read_fault(kind, name)?;
        self.inner.read(kind, name)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u32) -> Result<Vec<u8>> {
        self.read_fault(kind, name)?;
        self.inner.read_range(kind, name, offset, length)
    }

    fn write(&self, kind: FileKind, name: &str, data: &[u8]) -> Result<()> {
        self.mutate(
            Op::Write,
            kind,
            name,
            || data.to_vec(),
            || self.inner.write(kind, name, data),
        )
    }

    fn write_file(&self, kind: FileKind, name: &str, path: &Path) -> Result<()> {
        let torn = || std::fs::read(path).unwrap_or_default();
        self.mutate(Op::Write, kind, name, torn, || {
            self.inner.write_file(kind, name, path)
        })
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        match self.hit(Op::List, kind) {
            None => self.inner.list(kind),
            Some(failure) => Err(Self::error(failure, "list", kind, "folder")),
        }
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<()> {
        self.mutate(Op::Remove, kind, name, Vec::new, || {
            self.inner.remove(kind, name)
        })
    }

    fn legacy_cache_dir(&self) -> Option<PathBuf> {
        self.inner.legacy_cache_dir()
    }

    fn ensure_empty(&self) -> Result<()> {
        self.inner.ensure_empty()
    }

    fn temp_dir(&self) -> &Path {
        self.inner.temp_dir()
    }

    fn cache_dir(&self) -> Option<PathBuf> {
        self.inner.cache_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_faults_and_rejects_nonsense() {
        assert_eq!(
            Fault::parse("write:pack:3+:short").unwrap(),
            Fault {
                op: Op::Write,
                kind: Some(FileKind::Pack),
                nth: 3,
                onwards: true,
                failure: Failure::Short,
            }
        );
        assert_eq!(Fault::parse("remove:any:1:lost").unwrap().kind, None);
        for bad in [
            "write:pack:0:eio",
            "write:pack:x:eio",
            "poke:pack:1:eio",
            "write:pack:1",
        ] {
            let e = Fault::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Usage, "{bad}");
        }
    }
}
