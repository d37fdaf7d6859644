//! The window ledger, run history and rejects in `_qsync_windows`, `_qsync_runs` and
//! `_qsync_rejects`: the statements that write them (usable inside a window transaction)
//! and their reads.

use std::time::Duration;

use chrono::NaiveDateTime;
use mysql_async::prelude::Queryable;
use mysql_async::Row;

use super::StateStore;
use crate::plan::Window;
use crate::sink::mysql::{exec_statement, SinkError, SqlStatement, UpsertSyntax};
use crate::state::{Reject, RunOutcome, RunRecord, WindowRecord, WindowStatus};
use crate::transform::Cell;

fn count(n: u64) -> Cell {
    Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Inserts or updates a window's ledger row (unique on spec, start, end), the update in
/// `upsert`'s form.
pub(super) fn window_statement(window: &WindowRecord, upsert: UpsertSyntax) -> SqlStatement {
    let updated = [
        "`pages`",
        "`reported_total`",
        "`fetched`",
        "`written`",
        "`rejects`",
        "`status`",
        "`attempts`",
        "`updated_at`",
    ];
    SqlStatement::new(
        format!(
            "INSERT INTO `_qsync_windows` (`spec`, `window_start`, `window_end`, `pages`, \
             `reported_total`, `fetched`, `written`, `rejects`, `status`, `attempts`, \
             `updated_at`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6)){}",
            upsert.update_clause(&updated)
        ),
        vec![
            Cell::Text(window.spec.as_str().into()),
            Cell::DateTime(window.start),
            Cell::DateTime(window.end),
            count(window.pages),
            window.reported_total.map_or(Cell::Null, count),
            count(window.fetched),
            count(window.written),
            count(window.rejects),
            Cell::Text(window.status.as_str().into()),
            Cell::Int(i64::from(window.attempts)),
        ],
    )
}

/// Rejects per insert statement (7 bound values each, well under the placeholder limit).
const REJECTS_PER_STATEMENT: usize = 1000;

/// Bytes of bound text per reject statement. A reject is at most ~72 KiB (its bounded raw
/// and reason), so a statement stays far below any server's `max_allowed_packet` (4 MiB on
/// MySQL 5.7, 16 MiB on MariaDB, 64 MiB on MySQL 8 by default).
const REJECT_BYTES_PER_STATEMENT: usize = 1 << 20;

/// The rejects of a window as insert statements, each under [`REJECTS_PER_STATEMENT`] rows
/// and about [`REJECT_BYTES_PER_STATEMENT`] bytes.
pub(super) fn rejects_statements(rejects: &[Reject]) -> Vec<SqlStatement> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, reject) in rejects.iter().enumerate() {
        let size = reject.raw.len() + reject.reason.len() + reject.spec.len() + 128;
        if i > start
            && (i - start >= REJECTS_PER_STATEMENT || bytes + size > REJECT_BYTES_PER_STATEMENT)
        {
            statements.extend(rejects_statement(&rejects[start..i]));
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    statements.extend(rejects_statement(&rejects[start..]));
    statements
}

/// Inserts rejects in one statement; `None` when there are none.
pub(super) fn rejects_statement(rejects: &[Reject]) -> Option<SqlStatement> {
    if rejects.is_empty() {
        return None;
    }
    let mut sql = String::from(
        "INSERT INTO `_qsync_rejects` (`spec`, `window_start`, `window_end`, `raw`, \
         `raw_length`, `raw_sha256`, `reason`, `created_at`) VALUES ",
    );
    let mut params = Vec::with_capacity(rejects.len() * 7);
    for (i, reject) in rejects.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str("(?, ?, ?, ?, ?, ?, ?, NOW(6))");
        params.extend([
            Cell::Text(reject.spec.as_str().into()),
            reject.window_start.map_or(Cell::Null, Cell::DateTime),
            reject.window_end.map_or(Cell::Null, Cell::DateTime),
            Cell::Text(reject.raw.as_str().into()),
            count(reject.raw_length),
            Cell::Text(reject.raw_sha256.as_str().into()),
            Cell::Text(reject.reason.as_str().into()),
        ]);
    }
    Some(SqlStatement::new(sql, params))
}

/// `_qsync_rejects` columns as read back.
type RejectRow = (
    String,
    Option<NaiveDateTime>,
    Option<NaiveDateTime>,
    String,
    Option<i64>,
    Option<String>,
    String,
);

fn take<T: mysql_async::prelude::FromValue>(
    row: &mut Row,
    index: usize,
    table: &str,
) -> Result<T, SinkError> {
    match row.take_opt::<T, usize>(index) {
        Some(Ok(value)) => Ok(value),
        _ => Err(SinkError::Spec {
            table: table.to_owned(),
            reason: format!("unexpected value in column {index}"),
        }),
    }
}

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl StateStore {
    /// Writes a window's ledger row.
    pub async fn record_window(&self, window: &WindowRecord) -> Result<(), SinkError> {
        self.sink
            .execute(&[window_statement(window, self.sink.server().upsert_syntax())])
            .await
    }

    /// The ledger of `spec`, oldest window first.
    pub async fn windows(&self, spec: &str) -> Result<Vec<WindowRecord>, SinkError> {
        const TABLE: &str = "_qsync_windows";
        let mut conn = self.sink.connection().await?;
        let rows: Vec<Row> = conn
            .exec(
                "SELECT `spec`, `window_start`, `window_end`, `pages`, `reported_total`, \
                 `fetched`, `written`, `rejects`, `status`, `attempts` FROM `_qsync_windows` \
                 WHERE `spec` = ? ORDER BY `window_start`, `window_end`",
                (spec,),
            )
            .await
            .map_err(|error| self.sink.query_error(TABLE, &error))?;
        rows.into_iter()
            .map(|mut row| {
                Ok(WindowRecord {
                    spec: take(&mut row, 0, TABLE)?,
                    start: take(&mut row, 1, TABLE)?,
                    end: take(&mut row, 2, TABLE)?,
                    pages: unsigned(take(&mut row, 3, TABLE)?),
                    reported_total: take::<Option<i64>>(&mut row, 4, TABLE)?.map(unsigned),
                    fetched: unsigned(take(&mut row, 5, TABLE)?),
                    written: unsigned(take(&mut row, 6, TABLE)?),
                    rejects: unsigned(take(&mut row, 7, TABLE)?),
                    status: WindowStatus::parse(&take::<String>(&mut row, 8, TABLE)?),
                    attempts: u32::try_from(take::<i64>(&mut row, 9, TABLE)?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Appends a run to the history and returns its id.
    pub async fn record_run(&self, run: &RunRecord) -> Result<u64, SinkError> {
        let millis = u64::try_from(run.duration.as_millis()).unwrap_or(u64::MAX);
        let params = vec![
            Cell::Text(run.spec.as_str().into()),
            run.range
                .map_or(Cell::Null, |range| Cell::DateTime(range.start)),
            run.range
                .map_or(Cell::Null, |range| Cell::DateTime(range.end)),
            count(run.pages),
            count(run.records),
            count(run.rows_written),
            count(run.rejects),
            count(run.retries),
            count(millis),
            Cell::Text(run.outcome.as_str().into()),
            run.error
                .as_deref()
                .map_or(Cell::Null, |error| Cell::Text(error.into())),
            Cell::DateTime(run.started_at),
            run.finished_at.map_or(Cell::Null, Cell::DateTime),
        ];
        let statement = SqlStatement::new(
            "INSERT INTO `_qsync_runs` (`spec`, `range_start`, `range_end`, `pages`, `records`, \
             `rows_written`, `rejects`, `retries`, `duration_ms`, `outcome`, `error`, \
             `started_at`, `finished_at`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params,
        );
        let mut conn = self.sink.connection().await?;
        exec_statement(&mut conn, &statement)
            .await
            .map_err(|error| self.sink.query_error("_qsync_runs", &error))?;
        Ok(conn.last_insert_id().unwrap_or(0))
    }

    /// The latest `limit` runs of `spec`, newest first.
    pub async fn runs(&self, spec: &str, limit: u32) -> Result<Vec<RunRecord>, SinkError> {
        const TABLE: &str = "_qsync_runs";
        let mut conn = self.sink.connection().await?;
        let rows: Vec<Row> = conn
            .exec(
                "SELECT `spec`, `range_start`, `range_end`, `pages`, `records`, `rows_written`, \
                 `rejects`, `retries`, `duration_ms`, `outcome`, `error`, `started_at`, \
                 `finished_at` FROM `_qsync_runs` WHERE `spec` = ? ORDER BY `id` DESC LIMIT ?",
                (spec, limit),
            )
            .await
            .map_err(|error| self.sink.query_error(TABLE, &error))?;
        rows.into_iter()
            .map(|mut row| {
                let start: Option<NaiveDateTime> = take(&mut row, 1, TABLE)?;
                let end: Option<NaiveDateTime> = take(&mut row, 2, TABLE)?;
                Ok(RunRecord {
                    spec: take(&mut row, 0, TABLE)?,
                    // Written together; a row with one bound only is not a range.
                    range: start.zip(end).map(|(start, end)| Window { start, end }),
                    pages: unsigned(take(&mut row, 3, TABLE)?),
                    records: unsigned(take(&mut row, 4, TABLE)?),
                    rows_written: unsigned(take(&mut row, 5, TABLE)?),
                    rejects: unsigned(take(&mut row, 6, TABLE)?),
                    retries: unsigned(take(&mut row, 7, TABLE)?),
                    duration: Duration::from_millis(unsigned(take(&mut row, 8, TABLE)?)),
                    outcome: RunOutcome::parse(&take::<String>(&mut row, 9, TABLE)?),
                    error: take(&mut row, 10, TABLE)?,
                    started_at: take(&mut row, 11, TABLE)?,
                    finished_at: take(&mut row, 12, TABLE)?,
                })
            })
            .collect()
    }

    /// Stores rejects outside a window transaction.
    pub async fn add_rejects(&self, rejects: &[Reject]) -> Result<(), SinkError> {
        self.sink.execute(&rejects_statements(rejects)).await
    }

    /// The latest `limit` rejects of `spec`, newest first.
    pub async fn rejects(&self, spec: &str, limit: u32) -> Result<Vec<Reject>, SinkError> {
        let mut conn = self.sink.connection().await?;
        let rows: Vec<RejectRow> = conn
            .exec(
                "SELECT `spec`, `window_start`, `window_end`, `raw`, `raw_length`, `raw_sha256`, \
                 `reason` FROM `_qsync_rejects` WHERE `spec` = ? ORDER BY `id` DESC LIMIT ?",
                (spec, limit),
            )
            .await
            .map_err(|error| self.sink.query_error("_qsync_rejects", &error))?;
        Ok(rows
            .into_iter()
            .map(
                |(spec, window_start, window_end, raw, length, sha256, reason)| {
                    // Rows from before lengths and hashes were kept hold whole records.
                    let whole = Reject::new(&spec, None, &raw, "");
                    Reject {
                        spec,
                        window_start,
                        window_end,
                        raw_length: length.map_or(whole.raw_length, unsigned),
                        raw_sha256: sha256.unwrap_or(whole.raw_sha256),
                        raw,
                        reason,
                    }
                },
            )
            .collect())
    }
}
