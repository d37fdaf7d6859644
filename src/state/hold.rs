//! Holding a spec's lease for the length of a `qsync run` or `replay`, as `serve` does for
//! its runs: taken before the run, renewed in the background, released after. Two runs of
//! one spec never overlap, whoever starts them; for `insert` specs an overlap would
//! duplicate rows or fail on duplicate keys.
//!
//! A lease that is lost (it expired while the database was unreachable and somebody else
//! took it) raises the run's stop signal: the run stops after its current window, as on
//! Ctrl-C. A manual run's owner is `run-<host>-<pid>`; when such an owner's process is gone
//! from this host (`kill -9`, a crash), its lease is taken over at once rather than after
//! the TTL, so the run after a crash does not have to wait.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Lease, StateStore};
use crate::sink::SinkError;

/// This machine's name: `HOSTNAME`, else `/etc/hostname`, else `qsync`.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "qsync".to_owned())
}

/// The lease owner of a manual run in this process.
pub fn run_owner() -> String {
    format!("run-{}-{}", host_name(), std::process::id())
}

/// Whether `owner` is a manual run of this host whose process no longer exists.
fn is_dead_local_run(owner: &str, host: &str) -> bool {
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

/// A lease held by this process; [`release`](HeldLease::release) it when done.
#[derive(Debug)]
pub struct HeldLease {
    store: StateStore,
    spec: String,
    owner: String,
    renewer: JoinHandle<()>,
    stop: watch::Receiver<bool>,
}

/// The outcome of [`StateStore::hold_lease`].
#[derive(Debug)]
pub enum Holding {
    Held(HeldLease),
    /// Somebody else runs the spec.
    Busy(Lease),
}

impl StateStore {
    /// Takes `spec`'s lease for `owner` and keeps renewing it every third of `ttl`. The
    /// held lease's stop signal rises when `shutdown` does or when the lease is lost.
    pub async fn hold_lease(
        &self,
        spec: &str,
        owner: &str,
        ttl: Duration,
        shutdown: Option<watch::Receiver<bool>>,
    ) -> Result<Holding, SinkError> {
        if !self.take_lease(spec, owner, ttl).await? {
            let holder = self.lease(spec).await?;
            let dead = holder
                .as_ref()
                .is_some_and(|lease| is_dead_local_run(&lease.owner, &host_name()));
            if let (true, Some(lease)) = (dead, &holder) {
                tracing::warn!(spec, owner = %lease.owner,
                    "taking over the lease of a run whose process is gone");
                self.release_lease(spec, &lease.owner).await?;
            }
            if !self.take_lease(spec, owner, ttl).await? {
                // Re-read: the holder may have changed between the two attempts.
                if let Some(lease) = self.lease(spec).await? {
                    return Ok(Holding::Busy(lease));
                }
                // Freed in between: one more try, then report whoever won.
                if !self.take_lease(spec, owner, ttl).await? {
                    let lease = self.lease(spec).await?.unwrap_or(Lease {
                        spec: spec.to_owned(),
                        owner: "(unknown)".to_owned(),
                        expires_at: chrono::NaiveDateTime::default(),
                    });
                    return Ok(Holding::Busy(lease));
                }
            }
        }
        let (raise, stop) = watch::channel(false);
        let renewer = tokio::spawn(renew(
            self.clone(),
            spec.to_owned(),
            owner.to_owned(),
            ttl,
            raise,
            shutdown,
        ));
        Ok(Holding::Held(HeldLease {
            store: self.clone(),
            spec: spec.to_owned(),
            owner: owner.to_owned(),
            renewer,
            stop,
        }))
    }
}

/// Renews until the lease is lost or given up; forwards the caller's shutdown.
async fn renew(
    store: StateStore,
    spec: String,
    owner: String,
    ttl: Duration,
    raise: watch::Sender<bool>,
    mut shutdown: Option<watch::Receiver<bool>>,
) {
    let mut last_renewed = tokio::time::Instant::now();
    loop {
        let asked = async {
            match shutdown.as_mut() {
                Some(rx) => rx.wait_for(|stop| *stop).await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep(ttl / 3) => {}
            forwarded = asked => {
                if forwarded {
                    let _ = raise.send(true);
                }
                // The caller's signal is spent (raised or dropped): renew only.
                shutdown = None;
                continue;
            }
        }
        match store.renew_lease(&spec, &owner, ttl).await {
            Ok(true) => last_renewed = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(spec = %spec, "the run's lease was lost; stopping after this window");
                let _ = raise.send(true);
                return;
            }
            Err(error) => {
                tracing::warn!(spec = %spec, "cannot renew the run's lease: {error}");
                if last_renewed.elapsed() >= ttl * 2 / 3 {
                    tracing::error!(spec = %spec, "the run's lease is about to expire; stopping after this window");
                    let _ = raise.send(true);
                    return;
                }
            }
        }
    }
}

impl HeldLease {
    /// Raised when the caller's shutdown was or the lease was lost.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Stops renewing and frees the lease (best effort: it expires anyway).
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(error) = self.store.release_lease(&self.spec, &self.owner).await {
            tracing::warn!(spec = %self.spec, "cannot release the run's lease (it will expire): {error}");
        }
    }
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
