//! Per-spec leases in `_qsync_leases` ([`crate::state::Leases`] for MySQL).
//!
//! Owns the statements of take / renew / release. A lease is taken in a transaction that locks the spec's row
//! (`SELECT ... FOR UPDATE`), so two owners can never both see it free; the row is created
//! beforehand with `INSERT IGNORE` so the lock is a row lock, not a gap lock two takers could
//! deadlock on. Expiry is judged by the server's clock (`NOW(6)`), never an instance's.

use std::time::Duration;

use chrono::NaiveDateTime;
use mysql_async::prelude::Queryable;

use super::StateStore;
use crate::sink::SinkError;
use crate::state::{Lease, Leases};

const TABLE: &str = "_qsync_leases";

fn micros(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX)
}

impl StateStore {
    /// Takes `spec` for `owner` for `ttl`: succeeds when the lease is free, expired or
    /// already `owner`'s (then it is extended). Returns whether `owner` now holds it.
    pub async fn take_lease(
        &self,
        spec: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, SinkError> {
        if owner.is_empty() {
            // The empty owner marks a free lease.
            return Err(SinkError::Spec {
                table: TABLE.to_owned(),
                reason: "a lease owner cannot be empty".into(),
            });
        }
        let fail = |error: mysql_async::Error| self.sink.query_error(TABLE, &error);
        let mut conn = self.sink.connection().await?;
        // An expired placeholder row, so the lock below always has a row to lock.
        conn.exec_drop(
            "INSERT IGNORE INTO `_qsync_leases` (`spec`, `owner`, `expires_at`, `acquired_at`) \
             VALUES (?, '', '1970-01-02 00:00:00', NOW(6))",
            (spec,),
        )
        .await
        .map_err(fail)?;
        let result = async {
            conn.query_drop("BEGIN").await?;
            let current: Option<(String, bool)> = conn
                .exec_first(
                    "SELECT `owner`, `expires_at` > NOW(6) FROM `_qsync_leases` \
                     WHERE `spec` = ? FOR UPDATE",
                    (spec,),
                )
                .await?;
            let free = match &current {
                Some((holder, live)) => !live || holder == owner,
                None => true,
            };
            if free {
                conn.exec_drop(
                    // `acquired_at` first: MySQL assigns left to right, and it must compare
                    // against the previous owner.
                    "UPDATE `_qsync_leases` SET `acquired_at` = IF(`owner` = ?, `acquired_at`, \
                     NOW(6)), `owner` = ?, `expires_at` = NOW(6) + INTERVAL ? MICROSECOND \
                     WHERE `spec` = ?",
                    (owner, owner, micros(ttl), spec),
                )
                .await?;
            }
            conn.query_drop("COMMIT").await?;
            Ok::<bool, mysql_async::Error>(free)
        }
        .await;
        match result {
            Ok(taken) => Ok(taken),
            Err(error) => {
                let _ = conn.query_drop("ROLLBACK").await;
                Err(fail(error))
            }
        }
    }

    /// Extends `owner`'s live lease on `spec` by `ttl` from now. Returns false when the lease
    /// expired or was taken over: the owner must stop working on the spec.
    pub async fn renew_lease(
        &self,
        spec: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, SinkError> {
        let mut conn = self.sink.connection().await?;
        conn.exec_drop(
            "UPDATE `_qsync_leases` SET `expires_at` = NOW(6) + INTERVAL ? MICROSECOND \
             WHERE `spec` = ? AND `owner` = ? AND `expires_at` > NOW(6)",
            (micros(ttl), spec, owner),
        )
        .await
        .map_err(|error| self.sink.query_error(TABLE, &error))?;
        Ok(conn.affected_rows() == 1)
    }

    /// Gives up `owner`'s lease on `spec`; returns whether it was held.
    pub async fn release_lease(&self, spec: &str, owner: &str) -> Result<bool, SinkError> {
        let mut conn = self.sink.connection().await?;
        conn.exec_drop(
            "UPDATE `_qsync_leases` SET `owner` = '', `expires_at` = '1970-01-02 00:00:00' \
             WHERE `spec` = ? AND `owner` = ? AND `expires_at` > NOW(6)",
            (spec, owner),
        )
        .await
        .map_err(|error| self.sink.query_error(TABLE, &error))?;
        Ok(conn.affected_rows() == 1)
    }

    /// The live lease on `spec`, if any.
    pub async fn lease(&self, spec: &str) -> Result<Option<Lease>, SinkError> {
        let mut conn = self.sink.connection().await?;
        let row: Option<(String, String, NaiveDateTime)> = conn
            .exec_first(
                "SELECT `spec`, `owner`, `expires_at` FROM `_qsync_leases` \
                 WHERE `spec` = ? AND `expires_at` > NOW(6) AND `owner` <> ''",
                (spec,),
            )
            .await
            .map_err(|error| self.sink.query_error(TABLE, &error))?;
        Ok(row.map(|(spec, owner, expires_at)| Lease {
            spec,
            owner,
            expires_at,
        }))
    }
}

impl Leases for StateStore {
    type Error = SinkError;

    async fn take(&self, spec: &str, owner: &str, ttl: Duration) -> Result<bool, SinkError> {
        self.take_lease(spec, owner, ttl).await
    }

    async fn renew(&self, spec: &str, owner: &str, ttl: Duration) -> Result<bool, SinkError> {
        self.renew_lease(spec, owner, ttl).await
    }

    async fn release(&self, spec: &str, owner: &str) -> Result<bool, SinkError> {
        self.release_lease(spec, owner).await
    }

    async fn holder(&self, spec: &str) -> Result<Option<Lease>, SinkError> {
        self.lease(spec).await
    }
}
