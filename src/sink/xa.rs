//! Two-phase commit for `insert` windows written on several connections.
//!
//! `insert` is not idempotent: a window's rows and its state row must commit together or
//! not at all, or a re-read duplicates rows. One connection does that with one transaction;
//! several connections (the server ingests `LOAD DATA` on each in parallel) need XA:
//!
//! 1. Lane 0 opens an ordinary transaction whose first statement inserts the window's
//!    decision row (`_qsync_xa`: token, `commit`). Until lane 0 ends, it holds that row's
//!    lock.
//! 2. Lanes 1..n write inside `XA START <xid>` and finish with `XA END`, `XA PREPARE`:
//!    their rows are durable but invisible, and survive a crash of qsync.
//! 3. Lane 0 writes its rows, the caller's state statements and commits. **That commit is
//!    the decision.** Then each prepared lane runs `XA COMMIT` and the decision row goes.
//!
//! A crash between 3 and the last `XA COMMIT` leaves prepared transactions behind;
//! [`MysqlSink::resolve_prepared`] (run before every sync) settles them by the decision
//! row: `commit` commits, no row rolls back. To decide "no row" it first inserts a
//! `rollback` row, which waits on the lock of step 1 while the window's writer is alive,
//! so a live window is never settled from outside; and a late lane 0 can never commit
//! over a `rollback` row (duplicate key). Xids carry a hash of the database name, so
//! settling never touches other databases on the same server, and a prepared transaction
//! still attached to a live session cannot be finished from another one (`XAER_NOTA`).

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::Conn;

use super::mysql::{MysqlSink, SinkError, SqlStatement};
use crate::transform::Cell;

/// The decision table, in the target database.
const XA_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS `_qsync_xa` (
  `token` CHAR(16) NOT NULL PRIMARY KEY,
  `outcome` ENUM('commit', 'rollback') NOT NULL,
  `created` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=ascii";

/// Decision rows older than this are deleted while settling: no window's writer lives
/// that long, and until then a `rollback` row keeps a late lane 0 from committing.
const DECISION_KEEP_DAYS: u32 = 7;

/// How long settling waits for a decision row's lock before it leaves the transaction to
/// its (live) writer.
const SETTLE_LOCK_WAIT_SECS: u32 = 1;

/// How long a writer whose lane 0 failed waits for that session to end before it reads
/// the decision.
const SESSION_END_WAIT: Duration = Duration::from_secs(10);

/// XA error "unknown XID": the transaction is attached to a live session or already ended.
const XAER_NOTA: u16 = 1397;

/// The identity of one window's parallel transaction: its token and the database tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WindowXa {
    tag: String,
    token: String,
}

impl WindowXa {
    /// A fresh token for a window written into `database`.
    pub(crate) fn new(database: &str) -> WindowXa {
        WindowXa {
            tag: database_tag(database),
            token: format!("{:016x}", rand::random::<u64>()),
        }
    }

    /// The xid of `lane` (1..n; lane 0 commits ordinarily).
    pub(crate) fn xid(&self, lane: usize) -> String {
        format!("qsync-{}-{}-{lane}", self.tag, self.token)
    }

    /// Lane 0's first statement: the decision row, locked until lane 0 ends.
    pub(in crate::sink) fn decision(&self) -> SqlStatement {
        SqlStatement::new(
            "INSERT INTO `_qsync_xa` (`token`, `outcome`) VALUES (?, 'commit')",
            vec![Cell::Text(self.token.as_str().into())],
        )
    }
}

/// 8 hex digits naming a database (FNV-1a: stable across builds, unlike `DefaultHasher`).
pub(crate) fn database_tag(database: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in database.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// The token of an xid of this database's windows, or `None` for anybody else's.
fn token_of<'a>(xid: &'a str, tag: &str) -> Option<&'a str> {
    let rest = xid
        .strip_prefix("qsync-")?
        .strip_prefix(tag)?
        .strip_prefix('-')?;
    let (token, lane) = rest.split_once('-')?;
    let hex = token.len() == 16 && token.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && lane.parse::<usize>().is_ok()).then_some(token)
}

/// The prepared transactions of qsync windows in `database`, as (xid, token).
pub(crate) async fn prepared_xids(
    conn: &mut Conn,
    database: &str,
) -> Result<Vec<(String, String)>, mysql_async::Error> {
    let listed: Vec<(i64, i64, i64, Vec<u8>)> = conn.query("XA RECOVER").await?;
    let tag = database_tag(database);
    Ok(listed
        .into_iter()
        .filter_map(|(_, _, _, data)| {
            let xid = String::from_utf8_lossy(&data).into_owned();
            let token = token_of(&xid, &tag)?.to_owned();
            Some((xid, token))
        })
        .collect())
}

/// A lane that prepared its transaction, waiting for the decision.
pub(crate) struct Prepared {
    pub(crate) conn: Conn,
    pub(crate) xid: String,
}

/// What settling found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Settled {
    /// Prepared transactions committed because their window's decision was `commit`.
    pub committed: usize,
    /// Prepared transactions rolled back because their window never decided.
    pub rolled_back: usize,
    /// Prepared transactions left to a live writer.
    pub live: usize,
}

impl MysqlSink {
    /// Whether this server and account can run parallel `insert` windows: creates the
    /// decision table and lists prepared transactions (MySQL 8 wants `XA_RECOVER_ADMIN`).
    /// Asked once per sink; a refusal means one connection per `insert` window.
    pub(crate) async fn supports_xa(&self) -> bool {
        *self
            .xa_support()
            .get_or_init(|| async {
                let probe = async {
                    let mut conn = self.connection().await.ok()?;
                    conn.query_drop(XA_TABLE_SQL).await.ok()?;
                    conn.query_drop("XA RECOVER").await.ok()
                };
                let supported = probe.await.is_some();
                if !supported {
                    // Only `insert` windows care; they say so when they open.
                    tracing::debug!(host = %self.host(), database = %self.database(),
                        "the server refuses XA or the decision table");
                }
                supported
            })
            .await
    }

    /// Settles the prepared transactions a crashed writer left in this database: commits
    /// those whose window decided `commit`, rolls back the rest, leaves live ones alone.
    pub async fn resolve_prepared(&self) -> Result<Settled, SinkError> {
        let mut settled = Settled::default();
        if !self.supports_xa().await {
            return Ok(settled);
        }
        let fail = |error: &mysql_async::Error| self.query_error("_qsync_xa", error);
        // A connection of its own: the short lock wait must not leak into the pool.
        let mut conn = self.dedicated_connection().await?;
        conn.query_drop(format!(
            "SET SESSION innodb_lock_wait_timeout = {SETTLE_LOCK_WAIT_SECS}"
        ))
        .await
        .map_err(|e| fail(&e))?;
        let listed = prepared_xids(&mut conn, self.database())
            .await
            .map_err(|e| fail(&e))?;
        for (xid, token) in listed {
            let outcome = match decide(&mut conn, &token).await {
                Ok(outcome) => outcome,
                // The decision row is locked: its writer is alive and will finish.
                Err(mysql_async::Error::Server(e)) if e.code == 1205 => {
                    settled.live += 1;
                    continue;
                }
                Err(e) => return Err(fail(&e)),
            };
            let verb = if outcome == "commit" {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            match conn.query_drop(format!("XA {verb} '{xid}'")).await {
                Ok(()) if verb == "COMMIT" => settled.committed += 1,
                Ok(()) => settled.rolled_back += 1,
                Err(mysql_async::Error::Server(e)) if e.code == XAER_NOTA => settled.live += 1,
                Err(e) => return Err(fail(&e)),
            }
            tracing::warn!(database = %self.database(), xid = %xid, outcome = %outcome,
                "settled a window's prepared transaction left by an interrupted run");
        }
        // Best effort: a live window's locked decision row can make the scan time out;
        // the next settling purges.
        let _ = conn
            .query_drop(format!(
                "DELETE FROM `_qsync_xa` WHERE `created` < NOW() - INTERVAL {DECISION_KEEP_DAYS} DAY"
            ))
            .await;
        let _ = conn.disconnect().await;
        Ok(settled)
    }

    /// After lane 0 committed: commits every prepared lane and drops the decision row.
    /// A lane whose `XA COMMIT` fails (connection lost) stays prepared with a `commit`
    /// decision, so the next settling commits it; the window is decided either way.
    pub(crate) async fn commit_prepared(&self, window: &WindowXa, prepared: Vec<Prepared>) {
        let mut all = true;
        for mut lane in prepared {
            if let Err(error) = lane
                .conn
                .query_drop(format!("XA COMMIT '{}'", lane.xid))
                .await
            {
                all = false;
                tracing::warn!(xid = %lane.xid, "cannot commit a prepared lane now ({error}); the next run commits it");
            }
        }
        if all {
            let delete = SqlStatement::new(
                "DELETE FROM `_qsync_xa` WHERE `token` = ?",
                vec![Cell::Text(window.token.as_str().into())],
            );
            // Best effort: a leftover row is only purged later.
            let _ = self.execute(&[delete]).await;
        }
    }

    /// After lane 0 failed undecided: rolls back every prepared lane.
    pub(crate) async fn rollback_prepared(prepared: Vec<Prepared>) {
        for mut lane in prepared {
            // A lane that cannot roll back now is rolled back by the next settling.
            let _ = lane
                .conn
                .query_drop(format!("XA ROLLBACK '{}'", lane.xid))
                .await;
        }
    }

    /// After lane 0's commit failed: whether it committed after all. Waits (bounded) for
    /// lane 0's session `session` to end, so its transaction is decided, then reads the
    /// decision row. `None` when the session outlives the wait.
    pub(crate) async fn decided_commit(
        &self,
        window: &WindowXa,
        session: u32,
    ) -> Result<Option<bool>, SinkError> {
        let fail = |error: &mysql_async::Error| self.query_error("_qsync_xa", error);
        let mut conn = self.connection().await?;
        let deadline = tokio::time::Instant::now() + SESSION_END_WAIT;
        loop {
            let alive: Option<u64> = conn
                .exec_first(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = ?",
                    (session,),
                )
                .await
                .map_err(|e| fail(&e))?;
            if alive.is_none() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let outcome: Option<String> = conn
            .exec_first(
                "SELECT `outcome` FROM `_qsync_xa` WHERE `token` = ?",
                (window.token.as_str(),),
            )
            .await
            .map_err(|e| fail(&e))?;
        Ok(Some(outcome.as_deref() == Some("commit")))
    }
}

/// The outcome of `token`'s window: its decision row, or a `rollback` row written now.
async fn decide(conn: &mut Conn, token: &str) -> Result<String, mysql_async::Error> {
    conn.exec_drop(
        "INSERT IGNORE INTO `_qsync_xa` (`token`, `outcome`) VALUES (?, 'rollback')",
        (token,),
    )
    .await?;
    let outcome: Option<String> = conn
        .exec_first(
            "SELECT `outcome` FROM `_qsync_xa` WHERE `token` = ?",
            (token,),
        )
        .await?;
    Ok(outcome.unwrap_or_else(|| "rollback".to_owned()))
}

#[cfg(test)]
mod tests;
