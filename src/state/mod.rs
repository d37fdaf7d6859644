//! qsync's own bookkeeping in the target database: cursors (`_qsync_state`), the window
//! ledger (`_qsync_windows`), run history (`_qsync_runs`), rejected records
//! (`_qsync_rejects`) and per-spec leases (`_qsync_leases`).
//!
//! Owns the DDL of these tables and typed access to them through [`StateStore`]. Writes that
//! must commit together with a window's last rows (the cursor, the window's ledger row, its
//! rejects) are built as [`SqlStatement`]s by [`cursor_statement`], [`window_statement`] and
//! [`rejects_statement`] and handed to [`crate::sink::WindowWriter::commit`]; the same
//! statements run standalone through [`StateStore`]. It does not decide *when* a cursor
//! advances; that is `exec`'s job.
//!
//! Times: window bounds and high-water marks are local datetimes in the profile zone, as the
//! vendor APIs take them; bookkeeping times (`updated_at`, lease expiry) are the server's
//! `NOW(6)`, so instances with skewed clocks still agree on who holds a lease.

mod hold;
mod lease;
mod ledger;

use chrono::NaiveDateTime;
use mysql_async::prelude::Queryable;

pub use self::hold::{host_name, run_owner, HeldLease, Holding};
pub use self::lease::Lease;
pub use self::ledger::{Reject, RunOutcome, RunRecord, WindowRecord, WindowStatus};
pub use crate::sink::SqlStatement;
use crate::sink::{MysqlSink, SinkError};
use crate::transform::Cell;

/// The DDL of every state table, in creation order.
pub const STATE_TABLES_SQL: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS `_qsync_state` (
  `spec` VARCHAR(191) NOT NULL,
  `high_water` DATETIME(6) NOT NULL,
  `spec_hash` VARCHAR(64) NOT NULL DEFAULT '',
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`spec`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE IF NOT EXISTS `_qsync_windows` (
  `spec` VARCHAR(191) NOT NULL,
  `window_start` DATETIME(6) NOT NULL,
  `window_end` DATETIME(6) NOT NULL,
  `pages` BIGINT NOT NULL DEFAULT 0,
  `reported_total` BIGINT NULL,
  `fetched` BIGINT NOT NULL DEFAULT 0,
  `written` BIGINT NOT NULL DEFAULT 0,
  `rejects` BIGINT NOT NULL DEFAULT 0,
  `status` VARCHAR(16) NOT NULL,
  `attempts` INT NOT NULL DEFAULT 0,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`spec`, `window_start`, `window_end`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE IF NOT EXISTS `_qsync_runs` (
  `id` BIGINT NOT NULL AUTO_INCREMENT,
  `spec` VARCHAR(191) NOT NULL,
  `range_start` DATETIME(6) NULL,
  `range_end` DATETIME(6) NULL,
  `pages` BIGINT NOT NULL DEFAULT 0,
  `records` BIGINT NOT NULL DEFAULT 0,
  `rows_written` BIGINT NOT NULL DEFAULT 0,
  `rejects` BIGINT NOT NULL DEFAULT 0,
  `retries` BIGINT NOT NULL DEFAULT 0,
  `duration_ms` BIGINT NOT NULL DEFAULT 0,
  `outcome` VARCHAR(16) NOT NULL,
  `error` TEXT NULL,
  `started_at` DATETIME(6) NOT NULL,
  `finished_at` DATETIME(6) NULL,
  PRIMARY KEY (`id`),
  KEY `spec_started` (`spec`, `started_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE IF NOT EXISTS `_qsync_rejects` (
  `id` BIGINT NOT NULL AUTO_INCREMENT,
  `spec` VARCHAR(191) NOT NULL,
  `window_start` DATETIME(6) NULL,
  `window_end` DATETIME(6) NULL,
  `raw` LONGTEXT NOT NULL,
  `reason` TEXT NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `spec_created` (`spec`, `created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE IF NOT EXISTS `_qsync_leases` (
  `spec` VARCHAR(191) NOT NULL,
  `owner` VARCHAR(191) NOT NULL,
  `expires_at` DATETIME(6) NOT NULL,
  `acquired_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`spec`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
];

/// A spec's cursor: how far its data is known to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub spec: String,
    /// The end of the last committed window.
    pub high_water: NaiveDateTime,
    /// Hash of the spec that wrote it, to notice a changed spec.
    pub spec_hash: String,
    pub updated_at: NaiveDateTime,
}

/// Moves `spec`'s cursor to `high_water`. Meant for the window's last transaction.
pub fn cursor_statement(spec: &str, high_water: NaiveDateTime, spec_hash: &str) -> SqlStatement {
    SqlStatement::new(
        "INSERT INTO `_qsync_state` (`spec`, `high_water`, `spec_hash`, `updated_at`) \
         VALUES (?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE `high_water` = VALUES(`high_water`), \
         `spec_hash` = VALUES(`spec_hash`), `updated_at` = VALUES(`updated_at`)",
        vec![
            Cell::Text(spec.into()),
            Cell::DateTime(high_water),
            Cell::Text(spec_hash.into()),
        ],
    )
}

pub use self::ledger::{rejects_statement, window_statement};

/// Typed access to the state tables of one target database.
#[derive(Debug, Clone)]
pub struct StateStore {
    sink: MysqlSink,
}

impl StateStore {
    /// Creates the state tables when missing.
    pub async fn open(sink: &MysqlSink) -> Result<StateStore, SinkError> {
        let statements: Vec<SqlStatement> = STATE_TABLES_SQL
            .iter()
            .map(|sql| SqlStatement::new(*sql, Vec::new()))
            .collect();
        sink.execute(&statements).await?;
        Ok(StateStore { sink: sink.clone() })
    }

    /// A store over existing state tables, creating nothing (for read-only callers such
    /// as `qsync plan --stored`); `None` when this database has no `_qsync_state` yet.
    pub async fn existing(sink: &MysqlSink) -> Result<Option<StateStore>, SinkError> {
        let found = sink.describe(&["_qsync_state".to_owned()]).await?;
        Ok(found.map(|_| StateStore { sink: sink.clone() }))
    }

    /// The sink this store writes through.
    pub fn sink(&self) -> &MysqlSink {
        &self.sink
    }

    /// `spec`'s cursor, if it ever committed a window.
    pub async fn cursor(&self, spec: &str) -> Result<Option<Cursor>, SinkError> {
        let mut conn = self.sink.connection().await?;
        let row: Option<(String, NaiveDateTime, String, NaiveDateTime)> = conn
            .exec_first(
                "SELECT `spec`, `high_water`, `spec_hash`, `updated_at` FROM `_qsync_state` \
                 WHERE `spec` = ?",
                (spec,),
            )
            .await
            .map_err(|error| self.sink.query_error("_qsync_state", &error))?;
        Ok(row.map(|(spec, high_water, spec_hash, updated_at)| Cursor {
            spec,
            high_water,
            spec_hash,
            updated_at,
        }))
    }

    /// Sets `spec`'s cursor outside a window (e.g. `qsync run --from`).
    pub async fn set_cursor(
        &self,
        spec: &str,
        high_water: NaiveDateTime,
        spec_hash: &str,
    ) -> Result<(), SinkError> {
        self.sink
            .execute(&[cursor_statement(spec, high_water, spec_hash)])
            .await
    }
}

#[cfg(test)]
mod tests;
