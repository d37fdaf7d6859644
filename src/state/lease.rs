//! Per-spec leases: several `qsync serve` instances and manual runs share one spec folder,
//! and a spec runs only where its lease is held.
//!
//! Owns what a lease is ([`Lease`]), the operations a store must offer ([`Leases`]) and the
//! rules about owners: who a manual run is ([`run_owner`]) and when a holder is known dead
//! without waiting for the lease to expire. The store's `take` must be atomic (two owners
//! never both see a lease free) and judge expiry by one clock shared by every instance
//! (the MySQL store uses the server's `NOW(6)`); holding a lease over a run is
//! [`hold_lease`](super::hold_lease).

use std::future::Future;
use std::time::Duration;

use chrono::NaiveDateTime;

/// Who holds a spec and until when (the store's clock: server time for MySQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub spec: String,
    pub owner: String,
    pub expires_at: NaiveDateTime,
}

/// Where leases live: take, renew, release and read one spec's lease. Implemented by the
/// sink that owns the lease table (`sink::StateStore` for MySQL).
pub trait Leases: Clone + Send + Sync + 'static {
    /// The store's failure; shown to the operator as it is.
    type Error: std::fmt::Display + Send + 'static;

    /// Takes `spec` for `owner` for `ttl`: succeeds when the lease is free, expired or
    /// already `owner`'s (then it is extended). Returns whether `owner` now holds it.
    fn take(
        &self,
        spec: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Extends `owner`'s live lease by `ttl` from now; false when it expired or was taken
    /// over: the owner must stop working on the spec.
    fn renew(
        &self,
        spec: &str,
        owner: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Gives up `owner`'s lease; returns whether it was held.
    fn release(
        &self,
        spec: &str,
        owner: &str,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// The live lease on `spec`, if any.
    fn holder(&self, spec: &str)
        -> impl Future<Output = Result<Option<Lease>, Self::Error>> + Send;
}

/// This machine's name: `HOSTNAME`, else `/etc/hostname`, else `qsync`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "qsync".to_owned())
}

/// The lease owner of a manual run in this process: `run-<host>-<pid>`.
pub fn run_owner() -> String {
    format!("run-{}-{}", host_name(), std::process::id())
}

/// Whether `owner` is a manual run of this host whose process no longer exists.
pub(super) fn is_dead_local_run(owner: &str, host: &str) -> bool {
    let Some(pid) = owner
        .strip_prefix("run-")
        .and_then(|rest| rest.strip_prefix(host))
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dead_runs_of_this_host_are_taken_over() {
        let me = std::process::id();
        // A pid no process has: above the kernel's pid_max (at most 2^22).
        let gone = 5_000_000;
        assert!(is_dead_local_run(&format!("run-box-{gone}"), "box"));
        assert!(
            !is_dead_local_run(&format!("run-box-{me}"), "box"),
            "this process"
        );
        assert!(
            !is_dead_local_run(&format!("run-other-{gone}"), "box"),
            "another host"
        );
        assert!(
            !is_dead_local_run(&format!("box-{gone}"), "box"),
            "a serve instance"
        );
        assert!(!is_dead_local_run("run-box-x", "box"));
        assert!(!is_dead_local_run(&format!("run-box-a-{gone}"), "box"));
    }
}
