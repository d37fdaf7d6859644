//! Coordination through each spec's target database: leases, the cursor, run history.
//!
//! Owns the [`Coordinator`] seam and its MySQL implementation over [`StateStore`], which
//! owns the SQL (`_qsync_leases`, `_qsync_state`, `_qsync_runs`), and [`CoordinatedLeases`],
//! one database's leases seen as `state::Leases`, so that a run of the daemon holds its lease
//! with `state::hold_lease` like `qsync run` and `replay` (one renewal loop, in `state`). Several `qsync serve`
//! instances on one folder agree on who runs a spec through the lease row; a crashed
//! instance's lease simply expires. Connections are opened lazily and retried on the next
//! run when the server is down, so an unreachable MySQL fails runs, never the daemon.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use futures::future::BoxFuture;

use crate::sink::{MysqlSink, SinkError, StateStore};
use crate::state::{Lease, Leases, RunRecord};

/// Leases and bookkeeping keyed by the target database URL of a spec.
pub trait Coordinator: Send + Sync + 'static {
    /// Takes (or extends) the lease on `spec` for `owner`; false when another owner holds it.
    fn take<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, String>>;
    /// Extends `owner`'s lease; false when it was lost (expired and taken over).
    fn renew<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, String>>;
    /// Gives the lease up; returns whether it was held.
    fn release<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>>;
    /// The live lease on `spec`, if any.
    fn holder<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
    ) -> BoxFuture<'a, Result<Option<Lease>, String>>;
    /// The spec's committed high-water mark, for the lag before the first run.
    fn high_water<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
    ) -> BoxFuture<'a, Result<Option<NaiveDateTime>, String>>;
    /// When the spec's last recorded run started (profile zone), for missed slots.
    fn last_started<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
    ) -> BoxFuture<'a, Result<Option<NaiveDateTime>, String>>;
    /// Appends a run to the history table.
    fn record_run<'a>(
        &'a self,
        url: &'a str,
        run: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// [`Coordinator`] over the state tables of each target database.
#[derive(Debug, Default)]
pub struct MysqlCoordinator {
    stores: Mutex<HashMap<String, StateStore>>,
}

impl MysqlCoordinator {
    pub fn new() -> MysqlCoordinator {
        MysqlCoordinator::default()
    }

    async fn store(&self, url: &str) -> Result<StateStore, String> {
        let cached = self
            .stores
            .lock()
            .map_err(|_| "lease store lock poisoned".to_owned())?
            .get(url)
            .cloned();
        if let Some(store) = cached {
            return Ok(store);
        }
        let sink = MysqlSink::connect(url).await.map_err(|e| e.to_string())?;
        let store = StateStore::open(&sink).await.map_err(|e| e.to_string())?;
        if let Ok(mut stores) = self.stores.lock() {
            stores.insert(url.to_owned(), store.clone());
        }
        Ok(store)
    }
}

impl MysqlCoordinator {
    /// Runs `work` on the state store of `url`; its failure becomes the operator's text.
    fn with_store<'a, T, F, Fut>(
        &'a self,
        url: &'a str,
        work: F,
    ) -> BoxFuture<'a, Result<T, String>>
    where
        T: Send + 'a,
        F: FnOnce(StateStore) -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, SinkError>> + Send + 'a,
    {
        Box::pin(async move {
            let store = self.store(url).await?;
            work(store).await.map_err(|e| e.to_string())
        })
    }
}

impl Coordinator for MysqlCoordinator {
    fn take<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, String>> {
        self.with_store(url, move |store| async move {
            store.take_lease(spec, owner, ttl).await
        })
    }

    fn renew<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
        owner: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, String>> {
        self.with_store(url, move |store| async move {
            store.renew_lease(spec, owner, ttl).await
        })
    }

    fn release<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<bool, String>> {
        self.with_store(url, move |store| async move {
            store.release_lease(spec, owner).await
        })
    }

    fn holder<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
    ) -> BoxFuture<'a, Result<Option<Lease>, String>> {
        self.with_store(url, move |store| async move { store.lease(spec).await })
    }

    fn high_water<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
    ) -> BoxFuture<'a, Result<Option<NaiveDateTime>, String>> {
        self.with_store(url, move |store| async move {
            Ok(store.cursor(spec).await?.map(|c| c.high_water))
        })
    }

    fn last_started<'a>(
        &'a self,
        url: &'a str,
        spec: &'a str,
    ) -> BoxFuture<'a, Result<Option<NaiveDateTime>, String>> {
        self.with_store(url, move |store| async move {
            Ok(store.runs(spec, 1).await?.first().map(|r| r.started_at))
        })
    }

    fn record_run<'a>(
        &'a self,
        url: &'a str,
        run: &'a RunRecord,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.with_store(url, move |store| async move {
            store.record_run(run).await.map(|_| ())
        })
    }
}

/// The leases of one target database, through a [`Coordinator`]: what `state::hold_lease`
/// takes, renews and releases for a run of the daemon.
#[derive(Clone)]
pub struct CoordinatedLeases {
    coordinator: Arc<dyn Coordinator>,
    url: String,
}

impl CoordinatedLeases {
    pub fn new(coordinator: Arc<dyn Coordinator>, url: &str) -> CoordinatedLeases {
        CoordinatedLeases {
            coordinator,
            url: url.to_owned(),
        }
    }
}

impl std::fmt::Debug for CoordinatedLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: not printed.
        f.debug_struct("CoordinatedLeases").finish_non_exhaustive()
    }
}

impl Leases for CoordinatedLeases {
    type Error = String;

    async fn take(&self, spec: &str, owner: &str, ttl: Duration) -> Result<bool, String> {
        self.coordinator.take(&self.url, spec, owner, ttl).await
    }

    async fn renew(&self, spec: &str, owner: &str, ttl: Duration) -> Result<bool, String> {
        self.coordinator.renew(&self.url, spec, owner, ttl).await
    }

    async fn release(&self, spec: &str, owner: &str) -> Result<bool, String> {
        self.coordinator.release(&self.url, spec, owner).await
    }

    async fn holder(&self, spec: &str) -> Result<Option<Lease>, String> {
        self.coordinator.holder(&self.url, spec).await
    }
}
