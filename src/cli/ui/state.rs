//! What the server keeps between requests: the open repository, the
//! secrets of this run and the snapshot list, brought up to date when the
//! repository's `snapshots/` folder changes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use snap::profile::Profile;
use snap::{ErrorKind, Repository, Snapshot, SnapshotId};

/// The server's state, shared by every request.
pub struct App {
    /// The repository, opened with a private index cache.
    pub repo: Repository,
    /// The profile the command was started with (its retention policy,
    /// its restore hooks).
    pub profile: Option<Profile>,
    /// Where the repository is, as given (for the hooks' environment).
    pub location: std::path::PathBuf,
    /// Whether the pages may restore files.
    pub allow_restore: bool,
    /// Host header values requests may carry.
    pub hosts: Vec<String>,
    token: String,
    csrf: String,
    snapshots: Mutex<Arc<Snapshots>>,
}

/// The repository's readable snapshots, oldest first, as last listed.
#[derive(Default)]
pub struct Snapshots {
    /// The snapshots, oldest first (by time, then id).
    pub list: Vec<(SnapshotId, Snapshot)>,
    /// Every id listed, readable or not.
    listed: HashSet<SnapshotId>,
}

impl App {
    /// The state for a server listening on `local`; `listen_given` when the
    /// user chose the address (then it is an accepted Host as well).
    pub fn new(
        repo: Repository,
        profile: Option<Profile>,
        location: std::path::PathBuf,
        local: SocketAddr,
        listen_given: bool,
        allow_restore: bool,
    ) -> snap::Result<Self> {
        let port = local.port();
        let mut hosts = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}")];
        if listen_given || !local.ip().is_loopback() {
            hosts.push(super::security::url_host(local));
        }
        if local.ip().is_ipv6() && local.ip().is_loopback() {
            hosts.push(format!("[::1]:{port}"));
        }
        let app = Self {
            repo,
            profile,
            location,
            allow_restore,
            hosts,
            token: random_hex()?,
            csrf: random_hex()?,
            snapshots: Mutex::new(Arc::default()),
        };
        app.snapshots()?;
        Ok(app)
    }

    /// The secret every request must carry.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The secret every form that changes something must carry.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The snapshots as they are now. Lists `snapshots/` (one listing);
    /// only when that changed are the new snapshot files read and the index
    /// cache brought up to date (a backup writes its index deltas before its
    /// snapshot), so a page shows a backup as soon as it is committed.
    pub fn snapshots(&self) -> snap::Result<Arc<Snapshots>> {
        let ids: HashSet<SnapshotId> = self.repo.snapshot_ids()?.into_iter().collect();
        // A panic while the list was swapped leaves the old, whole list.
        let mut current = self
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.listed == ids {
            return Ok(current.clone());
        }
        self.repo.sync_cache(&snap::NoProgress)?;
        let mut known: HashMap<SnapshotId, Snapshot> = current
            .list
            .iter()
            .filter(|(id, _)| ids.contains(id))
            .cloned()
            .collect();
        for id in &ids {
            if known.contains_key(id) || current.listed.contains(id) {
                continue;
            }
            match self.repo.read_snapshot(id) {
                Ok(snapshot) => {
                    known.insert(*id, snapshot);
                }
                // Damaged (check reports it) or forgotten since the listing.
                Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let mut list: Vec<_> = known.into_iter().collect();
        list.sort_by_key(|(id, s)| (s.timestamp(), *id));
        *current = Arc::new(Snapshots { list, listed: ids });
        Ok(current.clone())
    }
}

/// 32 random bytes from the operating system, as hex.
fn random_hex() -> snap::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        snap::Error::new(
            ErrorKind::Io,
            format!("cannot get random bytes for the access token: {e}"),
        )
    })?;
    Ok(hex::encode(bytes))
}
