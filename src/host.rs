//! Who and where: the host and user names that snapshots, keys and locks
//! record. One helper for every layer, so they always agree.

/// This machine's host name.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// The user running snap: `$USER`, else the name of the real user id.
pub fn username() -> String {
    std::env::var("USER")
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_default()
}
