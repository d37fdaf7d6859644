//! The state tables in the target database: `_qsync_state` (cursors), `_qsync_windows` (the
//! window ledger), `_qsync_runs` (run history), `_qsync_rejects` and `_qsync_leases`.
//!
//! Owns their DDL and every statement that reads or writes them, behind [`StateStore`],
//! which speaks `state`'s types. What commits with a window's last rows
//! ([`crate::state::WindowClose`]) becomes statements here ([`closing_statements`]) and
//! runs in the window's transaction ([`super::WindowWriter::commit_window`]); the same
//! statements run standalone through [`StateStore`]. `_qsync_xa` belongs to the writer's
//! two-phase commit (`sink::xa`), not here.

mod leases;
mod ledger;

use chrono::NaiveDateTime;
use mysql_async::prelude::Queryable;

use self::ledger::{rejects_statements, window_statement};
use super::{MysqlSink, SinkError, SqlStatement, UpsertSyntax};
use crate::state::{Cursor, WindowClose};
use crate::transform::Cell;

/// The DDL of every state table, in creation order. Spec names compare exactly
/// (`utf8mb4_bin`): `Orders` and `orders` are two specs with two cursors and two leases.
pub const STATE_TABLES_SQL: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS `_qsync_state` (
  `spec` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `high_water` DATETIME(6) NOT NULL,
  `spec_hash` VARCHAR(64) NOT NULL DEFAULT '',
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`spec`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE IF NOT EXISTS `_qsync_windows` (
  `spec` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
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
  `spec` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
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
  `spec` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `window_start` DATETIME(6) NULL,
  `window_end` DATETIME(6) NULL,
  `raw` LONGTEXT NOT NULL,
  `raw_length` BIGINT NULL,
  `raw_sha256` CHAR(64) NULL,
  `reason` TEXT NOT NULL,
  `created_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `spec_created` (`spec`, `created_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    "CREATE TABLE IF NOT EXISTS `_qsync_leases` (
  `spec` VARCHAR(191) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  `owner` VARCHAR(191) NOT NULL,
  `expires_at` DATETIME(6) NOT NULL,
  `acquired_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`spec`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
];

/// Moves a spec's cursor (binds spec, high-water mark, spec hash); `qsync plan` prints it.
/// On MySQL 8.0.19 and later the sink runs [`cursor_sql`]'s row-alias form instead.
pub const CURSOR_SQL: &str = "INSERT INTO `_qsync_state` (`spec`, `high_water`, `spec_hash`, \
     `updated_at`) VALUES (?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE `high_water` = \
     VALUES(`high_water`), `spec_hash` = VALUES(`spec_hash`), `updated_at` = VALUES(`updated_at`)";

/// The cursor statement in `upsert`'s form ([`CURSOR_SQL`] for `VALUES()`).
fn cursor_sql(upsert: UpsertSyntax) -> String {
    format!(
        "INSERT INTO `_qsync_state` (`spec`, `high_water`, `spec_hash`, `updated_at`) \
         VALUES (?, ?, ?, NOW(6)){}",
        upsert.update_clause(&["`high_water`", "`spec_hash`", "`updated_at`"])
    )
}

/// Moves `spec`'s cursor to `high_water`.
fn cursor_statement(
    spec: &str,
    high_water: NaiveDateTime,
    spec_hash: &str,
    upsert: UpsertSyntax,
) -> SqlStatement {
    SqlStatement::new(
        cursor_sql(upsert),
        vec![
            Cell::Text(spec.into()),
            Cell::DateTime(high_water),
            Cell::Text(spec_hash.into()),
        ],
    )
}

/// The statements that close a window, in the order they run: its rejects, its ledger
/// row, then the cursor, the upserts in the server's `upsert` form.
pub(in crate::sink) fn closing_statements(
    close: &WindowClose,
    upsert: UpsertSyntax,
) -> Vec<SqlStatement> {
    let mut statements = rejects_statements(&close.rejects);
    statements.push(window_statement(&close.ledger, upsert));
    if let Some(high_water) = close.high_water {
        statements.push(cursor_statement(
            &close.ledger.spec,
            high_water,
            &close.spec_hash,
            upsert,
        ));
    }
    statements
}

/// Typed access to the state tables of one target database.
#[derive(Debug, Clone)]
pub struct StateStore {
    sink: MysqlSink,
}

impl StateStore {
    /// Creates the state tables when missing.
    ///
    /// # Errors
    /// [`SinkError::Query`] when the server refuses the DDL (e.g. no `CREATE` privilege).
    pub async fn open(sink: &MysqlSink) -> Result<StateStore, SinkError> {
        let statements: Vec<SqlStatement> = STATE_TABLES_SQL
            .iter()
            .map(|sql| SqlStatement::new(*sql, Vec::new()))
            .collect();
        sink.execute(&statements).await?;
        let store = StateStore { sink: sink.clone() };
        store.exact_spec_names().await?;
        store.bounded_rejects().await?;
        Ok(store)
    }

    /// State tables created before spec names compared exactly (`utf8mb4_unicode_ci`) get
    /// a binary `spec` column; each is altered once, the first time a newer qsync opens it.
    async fn exact_spec_names(&self) -> Result<(), SinkError> {
        let mut conn = self.sink.connection().await?;
        let tables: Vec<String> = conn
            .exec(
                "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND COLUMN_NAME = 'spec' AND TABLE_NAME IN ('_qsync_state', \
                 '_qsync_windows', '_qsync_runs', '_qsync_rejects', '_qsync_leases') \
                 AND COLLATION_NAME NOT LIKE '%\\_bin'",
                (self.sink.database(),),
            )
            .await
            .map_err(|error| self.sink.query_error("information_schema.COLUMNS", &error))?;
        for table in tables {
            tracing::info!(table = %table, "state table: spec names now compare exactly");
            conn.query_drop(format!(
                "ALTER TABLE `{table}` MODIFY `spec` VARCHAR(191) CHARACTER SET utf8mb4 \
                 COLLATE utf8mb4_bin NOT NULL"
            ))
            .await
            .map_err(|error| self.sink.query_error(&table, &error))?;
        }
        Ok(())
    }

    /// `_qsync_rejects` made before rejects were bounded gets the columns for a cut
    /// record's full length and hash, once.
    async fn bounded_rejects(&self) -> Result<(), SinkError> {
        let mut conn = self.sink.connection().await?;
        let found: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = '_qsync_rejects' AND COLUMN_NAME = 'raw_length'",
                (self.sink.database(),),
            )
            .await
            .map_err(|error| self.sink.query_error("information_schema.COLUMNS", &error))?;
        if found == Some(0) {
            conn.query_drop(
                "ALTER TABLE `_qsync_rejects` ADD COLUMN `raw_length` BIGINT NULL AFTER `raw`, \
                 ADD COLUMN `raw_sha256` CHAR(64) NULL AFTER `raw_length`",
            )
            .await
            .map_err(|error| self.sink.query_error("_qsync_rejects", &error))?;
        }
        Ok(())
    }

    /// A store over existing state tables, creating nothing (for read-only callers such
    /// as `qsync plan --stored`); `None` when this database has no `_qsync_state` yet.
    ///
    /// # Errors
    /// [`SinkError::Query`] when the table cannot be looked up.
    pub async fn existing(sink: &MysqlSink) -> Result<Option<StateStore>, SinkError> {
        let found = sink.describe(&["_qsync_state".to_owned()]).await?;
        Ok(found.map(|_| StateStore { sink: sink.clone() }))
    }

    /// Connects to `url`, reads `spec`'s stored high-water mark without creating anything,
    /// and disconnects: for `qsync plan --stored`. `None` when the database has no state
    /// tables or the spec never committed a window.
    ///
    /// # Errors
    /// [`SinkError::Connect`] when the server cannot be reached, [`SinkError::Query`] when
    /// the state table cannot be read.
    pub async fn stored_high_water(
        url: &str,
        spec: &str,
    ) -> Result<Option<NaiveDateTime>, SinkError> {
        let sink = MysqlSink::connect(url).await?;
        let mark = async {
            Ok(match StateStore::existing(&sink).await? {
                Some(store) => store.cursor(spec).await?.map(|c| c.high_water),
                None => None,
            })
        }
        .await;
        sink.disconnect().await;
        mark
    }

    /// The sink this store writes through.
    pub fn sink(&self) -> &MysqlSink {
        &self.sink
    }

    /// `spec`'s cursor, if it ever committed a window.
    ///
    /// # Errors
    /// [`SinkError::Query`] or [`SinkError::Connect`] from the server.
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
    ///
    /// # Errors
    /// [`SinkError::Query`] or [`SinkError::Connect`] from the server.
    pub async fn set_cursor(
        &self,
        spec: &str,
        high_water: NaiveDateTime,
        spec_hash: &str,
    ) -> Result<(), SinkError> {
        self.sink
            .execute(&[cursor_statement(
                spec,
                high_water,
                spec_hash,
                self.sink.server().upsert_syntax(),
            )])
            .await
    }
}

#[cfg(test)]
mod tests;
