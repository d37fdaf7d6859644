//! Holding a spec's lease for the length of a run: taken before it, renewed in the
//! background every third of its TTL, released after. Two runs of one spec never overlap,
//! whoever starts them; for `insert` specs an overlap would duplicate rows or fail on
//! duplicate keys.
//!
//! A lease that is lost (it expired while the store was unreachable and somebody else took
//! it) raises the run's stop signal: the run stops after its current window, as on Ctrl-C.
//! A manual run's owner is `run-<host>-<pid>`; when such an owner's process is gone from
//! this host (`kill -9`, a crash), a manual run takes its lease over at once rather than
//! after the TTL, so the run after a crash does not have to wait.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lease::{host_name, is_dead_local_run, Lease, Leases};

/// How to hold a lease.
#[derive(Debug, Clone)]
pub struct HoldOptions {
    /// How long the lease lasts without renewal; renewed every third of it.
    pub ttl: Duration,
    /// The caller's own stop signal, forwarded into the held lease's.
    pub shutdown: Option<watch::Receiver<bool>>,
    /// Take over at once the lease of a manual run of this host whose process is gone
    /// (`qsync run`, `replay`); otherwise wait for it to expire.
    pub take_over_dead_runs: bool,
}

/// A lease held by this process; [`release`](HeldLease::release) it when done.
#[derive(Debug)]
pub struct HeldLease<L: Leases> {
    leases: L,
    spec: String,
    owner: String,
    renewer: JoinHandle<()>,
    stop: watch::Receiver<bool>,
}

/// The outcome of [`hold_lease`].
#[derive(Debug)]
pub enum Holding<L: Leases> {
    Held(HeldLease<L>),
    /// Somebody else runs the spec.
    Busy(Lease),
}

/// Takes `spec`'s lease for `owner` and keeps renewing it. The held lease's stop signal
/// rises when `options.shutdown` does or when the lease is lost.
///
/// # Errors
/// The store's error when it cannot take or read the lease.
pub async fn hold_lease<L: Leases>(
    leases: &L,
    spec: &str,
    owner: &str,
    options: HoldOptions,
) -> Result<Holding<L>, L::Error> {
    let HoldOptions {
        ttl,
        shutdown,
        take_over_dead_runs,
    } = options;
    if !leases.take(spec, owner, ttl).await? {
        match leases.holder(spec).await? {
            Some(lease) if take_over_dead_runs && is_dead_local_run(&lease.owner, &host_name()) => {
                tracing::warn!(spec, owner = %lease.owner,
                    "taking over the lease of a run whose process is gone");
                leases.release(spec, &lease.owner).await?;
            }
            Some(lease) => return Ok(Holding::Busy(lease)),
            // Freed (released or expired) since: one more try.
            None => {}
        }
        if !leases.take(spec, owner, ttl).await? {
            // Report whoever won.
            let lease = leases.holder(spec).await?.unwrap_or(Lease {
                spec: spec.to_owned(),
                owner: "(unknown)".to_owned(),
                expires_at: chrono::NaiveDateTime::default(),
            });
            return Ok(Holding::Busy(lease));
        }
    }
    let (raise, stop) = watch::channel(false);
    let renewer = tokio::spawn(renew(
        leases.clone(),
        spec.to_owned(),
        owner.to_owned(),
        ttl,
        raise,
        shutdown,
    ));
    Ok(Holding::Held(HeldLease {
        leases: leases.clone(),
        spec: spec.to_owned(),
        owner: owner.to_owned(),
        renewer,
        stop,
    }))
}

/// Renews until the lease is lost or given up; forwards the caller's shutdown. A renewal
/// that takes longer than a third of the TTL counts as failed, so a store that hangs
/// cannot keep a run going past its lease.
async fn renew<L: Leases>(
    leases: L,
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
        let renewed = tokio::time::timeout(ttl / 3, leases.renew(&spec, &owner, ttl)).await;
        let failure = match renewed {
            Ok(Ok(true)) => {
                last_renewed = tokio::time::Instant::now();
                continue;
            }
            Ok(Ok(false)) => {
                tracing::error!(spec = %spec,
                    "the lease was lost to another owner; the run stops after its current window");
                let _ = raise.send(true);
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "the database did not answer".to_owned(),
        };
        tracing::warn!(spec = %spec, "cannot renew the lease: {failure}");
        if last_renewed.elapsed() >= ttl * 2 / 3 {
            tracing::error!(spec = %spec,
                "the lease is about to expire; the run stops after its current window");
            let _ = raise.send(true);
            return;
        }
    }
}

impl<L: Leases> HeldLease<L> {
    /// Raised when the caller's shutdown was or the lease was lost.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Stops renewing and frees the lease; returns whether it was still held.
    ///
    /// # Errors
    /// The store's error; the lease then expires after its TTL.
    pub async fn release(self) -> Result<bool, L::Error> {
        self.renewer.abort();
        self.leases.release(&self.spec, &self.owner).await
    }
}

impl<L: Leases> Drop for HeldLease<L> {
    fn drop(&mut self) {
        // A lease dropped without `release` (a panicking caller) stops being renewed and
        // expires after its TTL.
        self.renewer.abort();
    }
}
