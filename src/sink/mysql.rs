//! MySQL writes: the connection pool ([`MysqlSink`]), error classification, and the window
//! writer's transaction layout.
//!
//! Owns how rows reach a table fast and exactly once:
//! - Values are never spliced into SQL: rows travel as `LOAD DATA LOCAL INFILE` streams
//!   (tab-separated, escaped) or as bound parameters of multi-row statements. The only
//!   unparameterized text is a column's `sql("...")` expression and the custom head
//!   template, both written by the spec author.
//! - [`WindowWriter`] spreads a window's rows over several connections ("lanes", each a
//!   `lane::LaneWorker`). In `replace`/`upsert` each row goes to the lane picked by a hash
//!   of its key, so two versions of one record are always written in order on the same
//!   connection; in `insert` each batch goes whole to the lane with the most room, a key
//!   already written to its lane. Tables whose loads take a table lock get one lane
//!   (`MysqlSink::serialized_loads`). With `LOAD DATA` a lane streams batches into
//!   one open load while they arrive (the server ingests one batch while the next is
//!   encoded); a chunk of up to 100k rows is one transaction. `upsert` chunks load into a
//!   temporary staging table and are merged by one statement (`Staging`). The statement
//!   method buffers 20k rows per transaction.
//! - [`WindowWriter::commit`] flushes every other lane, then writes lane 0's last chunk and
//!   the caller's state statements in **one transaction** (design guarantee 3): a crash
//!   before that commit leaves the cursor where it was, and re-reading the window rewrites
//!   rows idempotently. `insert` mode is not idempotent, so each lane keeps one
//!   transaction for the whole window, and lanes other than 0 commit by two-phase commit
//!   on lane 0's decision (`sink::xa`); a server that refuses XA gets one lane.
//!
//! `LOAD DATA LOCAL` turns errors into warnings, so every load checks its warning count and
//! rolls back on anything but the duplicates `ignore` mode expects. When the server refuses
//! local infile, the writer falls back to multi-row statements for good.
//!
//! Files: this one holds the sink (pool, errors, plain transactions); `dialect` what the
//! server is (MariaDB or MySQL, read once per sink) and the upsert form it takes; `sql` the
//! statement text and [`TableSpec`]; `encode` the cells as `LOAD DATA` text and bound values;
//! `writer` the [`WindowWriter`] and its routing of rows to lanes; `lane` one lane's
//! connection; `key_lanes` and `text_buffers` the writer's two memory-saving tables.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, Pool, Value as SqlValue};

use super::connect::{Endpoint, Transport};
use crate::transform::Cell;

mod collation;
mod dialect;
mod encode;
mod key_lanes;
mod lane;
mod sql;
mod store;
mod text_buffers;
mod writer;

pub use self::collation::{KeyCompare, BINARY_KEY_COLLATION};
pub use self::dialect::{Flavor, ServerVersion, UpsertSyntax};
pub(in crate::sink) use self::encode::{encode_row, to_sql_value};
pub use self::sql::{
    add_column_sql, column_sql, create_table_sql, load_statements, quote_identifier, statement_sql,
    TableSpec,
};
pub(in crate::sink) use self::sql::{load_data_sql, statement_head, statement_tail};
pub use self::store::{StateStore, CURSOR_SQL, STATE_TABLES_SQL};
pub use self::writer::{CommittedRows, WindowWriter, WriteMethod, WriteStats, WriterOptions};
/// Whether an error is worth retrying, the data's fault, or needs a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Connection lost or killed, deadlock, lock wait timeout, server shutting down: the
    /// transaction was rolled back; re-read the window and write it again.
    Retriable,
    /// The rows do not fit the table (data too long, out of range, duplicate key in
    /// `insert` mode): retrying cannot help; the table or the spec must change.
    Data,
    /// Access denied, unknown database or table, bad URL, bad spec: stop.
    Fatal,
}

/// A failure of the sink. Messages name the host and database, never the password.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// `connection bi` with `mysql://root@127.0.0.1:1/test`.
    #[error("cannot connect to MySQL at `{host}` (database `{database}`): {reason}")]
    Connect {
        host: String,
        database: String,
        reason: String,
        class: ErrorClass,
    },
    /// `mysql://root@127.0.0.1:3306/test?bogus=1`.
    #[error("invalid MySQL URL: {reason}")]
    Url { reason: String },
    /// `mysql://db/bi?ssl-mode=verify_ca&ssl-ca=/missing.pem`: TLS settings that cannot work.
    #[error("MySQL TLS settings: {reason}")]
    Tls { reason: String },
    /// `target mysql "a`b"`.
    #[error("invalid identifier `{name}`: {reason}")]
    Identifier { name: String, reason: &'static str },
    /// `key id` where `id` is a `text` column.
    #[error("invalid target `{table}`: {reason}")]
    Spec { table: String, reason: String },
    /// `sql "{{ table"` (a custom head that does not render).
    #[error("cannot render the statement template of `{table}`: {reason}")]
    Template { table: String, reason: String },
    /// Any server or connection failure while writing or reading.
    #[error("MySQL error on `{table}` at `{host}`: {message}")]
    Query {
        table: String,
        host: String,
        /// Server error code, 0 for connection errors.
        code: u16,
        message: String,
        class: ErrorClass,
    },
    /// A `LOAD DATA` that the server accepted with warnings, i.e. changed the data.
    #[error("rows rejected by `{table}`: {message}")]
    Rejected {
        table: String,
        code: u16,
        message: String,
    },
    /// A statement longer than the server accepts (its `max_allowed_packet`): sent, it
    /// would make the server drop the connection ("Broken pipe").
    #[error(
        "a statement of {bytes} bytes for `{table}` exceeds the server's max_allowed_packet \
         ({max} bytes); raise max_allowed_packet on the server"
    )]
    TooLarge { table: String, bytes: u64, max: u64 },
    /// The window writer's connection task ended without reporting.
    #[error("window writer for `{table}` stopped unexpectedly")]
    WriterGone { table: String },
}

impl SinkError {
    /// How the executor should react.
    pub fn class(&self) -> ErrorClass {
        match self {
            SinkError::Connect { class, .. } | SinkError::Query { class, .. } => *class,
            SinkError::Rejected { .. } | SinkError::TooLarge { .. } => ErrorClass::Data,
            SinkError::WriterGone { .. } => ErrorClass::Retriable,
            SinkError::Url { .. }
            | SinkError::Tls { .. }
            | SinkError::Identifier { .. }
            | SinkError::Spec { .. }
            | SinkError::Template { .. } => ErrorClass::Fatal,
        }
    }

    /// Shorthand for `class() == Retriable`.
    pub fn is_retriable(&self) -> bool {
        self.class() == ErrorClass::Retriable
    }
}

/// Classifies a server error code.
pub(crate) fn classify_code(code: u16) -> ErrorClass {
    match code {
        // lock wait timeout, deadlock, query interrupted/killed, server shutdown,
        // gone away / lost connection, too many connections, read-only failover
        1205 | 1213 | 1317 | 1053 | 1927 | 2006 | 2013 | 1040 | 1290 | 1836 => {
            ErrorClass::Retriable
        }
        // duplicate key, data too long, out of range, incorrect value, null in not-null,
        // truncated, bad JSON, invalid character string, NULL into NOT NULL (LOAD DATA)
        1062 | 1406 | 1264 | 1366 | 1292 | 1048 | 1265 | 3140 | 4025 | 1300 | 1367 | 1263 => {
            ErrorClass::Data
        }
        _ => ErrorClass::Fatal,
    }
}

fn class_of(error: &mysql_async::Error) -> (u16, ErrorClass) {
    match error {
        mysql_async::Error::Server(server) => (server.code, classify_code(server.code)),
        // A dropped socket or a driver-detected closed connection: the server rolled back.
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => (0, ErrorClass::Retriable),
        mysql_async::Error::Other(_) | mysql_async::Error::Url(_) => (0, ErrorClass::Fatal),
    }
}

/// A statement with bound parameters, such as the state statements of a window's last
/// transaction ([`store`]).
#[derive(Debug, Clone, PartialEq)]
pub(in crate::sink) struct SqlStatement {
    pub(in crate::sink) sql: String,
    pub(in crate::sink) params: Vec<Cell>,
}

impl SqlStatement {
    pub(in crate::sink) fn new(sql: impl Into<String>, params: Vec<Cell>) -> SqlStatement {
        SqlStatement {
            sql: sql.into(),
            params,
        }
    }

    /// About how many bytes the statement takes on the wire: its text and its values.
    pub(in crate::sink) fn size(&self) -> u64 {
        let values: usize = self
            .params
            .iter()
            .map(|cell| match cell {
                Cell::Text(s) | Cell::Json(s) => s.len() + 9,
                _ => 9,
            })
            .sum();
        (self.sql.len() + values) as u64
    }
}
/// A connection to the target database.
#[derive(Debug, Clone)]
pub struct MysqlSink {
    inner: Arc<SinkInner>,
}

#[derive(Debug)]
struct SinkInner {
    opts: Opts,
    pool: Pool,
    endpoint: Endpoint,
    /// How the probe connection travelled; every connection uses the same options.
    transport: Transport,
    /// What the probe connection's `SELECT VERSION()` said: the SQL dialect of every
    /// statement (`dialect`).
    server: ServerVersion,
    /// Cleared for good once the server refuses `LOAD DATA LOCAL`.
    infile: AtomicBool,
    /// Whether `insert` windows may use XA over several connections; probed once.
    xa: tokio::sync::OnceCell<bool>,
    /// The warning that XA is refused was logged.
    xa_refusal_told: AtomicBool,
    /// Per table, why its loads take turns (`serialized_loads`), asked once per sink: a
    /// sink serves one run, and every window of it opens a writer.
    serialized: std::sync::Mutex<HashMap<Vec<String>, Option<String>>>,
    /// The server's exact key collation (`collation`), asked once.
    binary_collation: tokio::sync::OnceCell<String>,
    /// Per table, how its live key columns compare text (`collation`), asked once.
    key_compare: std::sync::Mutex<HashMap<Vec<String>, KeyCompare>>,
    /// The server's `max_allowed_packet`, asked once.
    max_packet: tokio::sync::OnceCell<u64>,
}

impl MysqlSink {
    /// Connects once, so a wrong URL, a refused account or a TLS problem fails here with a
    /// clear message instead of on the first batch, and settles how every later connection
    /// travels (see `connect::Endpoint::connect`).
    ///
    /// `url` is a MySQL URL with the driver's parameters and qsync's `ssl-mode`, `ssl-ca`,
    /// `ssl-cert` and `ssl-key`.
    ///
    /// # Errors
    /// [`SinkError::Url`] for a URL or TLS settings that cannot work, [`SinkError::Connect`]
    /// when the server cannot be reached, refuses the account, or TLS fails.
    pub async fn connect(url: &str) -> Result<MysqlSink, SinkError> {
        let endpoint = Endpoint::parse(url).await?;
        // Strict mode makes bad values errors instead of silent truncation; the statement
        // fallback relies on it.
        let init = [
            "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')"
                .to_owned(),
            "SET NAMES utf8mb4".to_owned(),
        ];
        let mut opened = endpoint.connect(&init).await?;
        let version: Option<String> = opened
            .conn
            .query_first("SELECT VERSION()")
            .await
            .map_err(|error| endpoint.failure(&error))?;
        let server = ServerVersion::parse(version.as_deref().unwrap_or_default());
        tracing::debug!(host = %endpoint.host, server = %server, upsert = ?server.upsert_syntax(),
            "connected to {}", server.text);
        let _ = opened.conn.disconnect().await;
        let pool = Pool::new(opened.opts.clone());
        Ok(MysqlSink {
            inner: Arc::new(SinkInner {
                opts: opened.opts,
                pool,
                endpoint,
                transport: opened.transport,
                server,
                infile: AtomicBool::new(true),
                xa: tokio::sync::OnceCell::new(),
                xa_refusal_told: AtomicBool::new(false),
                serialized: std::sync::Mutex::default(),
                binary_collation: tokio::sync::OnceCell::new(),
                key_compare: std::sync::Mutex::default(),
                max_packet: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// Whether the connections are encrypted, and how (TLS version and cipher).
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The server's family and version, read once on connecting.
    pub fn server(&self) -> &ServerVersion {
        &self.inner.server
    }

    /// Whether `table`'s windows must be written on one connection because its loads take
    /// a table lock; asked of the server once per sink and warned about then.
    async fn loads_take_turns(&self, table: &TableSpec) -> Result<bool, SinkError> {
        let known = self
            .inner
            .serialized
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&table.name)
            .map(Option::is_some);
        if let Some(known) = known {
            return Ok(known);
        }
        let reason = self.serialized_loads(&table.name).await?;
        if let Some(reason) = &reason {
            let name = &table.display;
            tracing::warn!(table = %name,
                "`{name}` {reason}: LOAD DATA from several connections would take turns, so its windows are written on one connection");
        }
        let serial = reason.is_some();
        self.inner
            .serialized
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(table.name.clone(), reason);
        Ok(serial)
    }

    /// Notes that the server refused `LOAD DATA LOCAL`: every later window writes statements,
    /// and the operator is told once, since statements are the slower path.
    pub(in crate::sink) fn refuse_infile(&self, table: &str) {
        if self.inner.infile.swap(false, Ordering::Relaxed) {
            tracing::warn!(table = %table, host = %self.inner.endpoint.host,
                "the server refuses LOAD DATA LOCAL INFILE (`local_infile` is OFF, MySQL 8's default): qsync writes multi-row statements instead, which is slower; `SET GLOBAL local_infile = 1` on the server lets it load");
        }
    }

    /// `host:port` of the server.
    pub fn host(&self) -> &str {
        &self.inner.endpoint.host
    }

    /// The database named in the URL.
    pub fn database(&self) -> &str {
        &self.inner.endpoint.database
    }

    fn connect_error(&self, error: &mysql_async::Error) -> SinkError {
        self.inner.endpoint.failure(error)
    }

    pub(in crate::sink) fn query_error(
        &self,
        table: &str,
        error: &mysql_async::Error,
    ) -> SinkError {
        let (code, class) = class_of(error);
        let message = match error {
            mysql_async::Error::Server(server) => server.message.clone(),
            other => other.to_string(),
        };
        SinkError::Query {
            table: table.to_owned(),
            host: self.inner.endpoint.host.clone(),
            code,
            message,
            class,
        }
    }

    pub(in crate::sink) fn xa_support(&self) -> &tokio::sync::OnceCell<bool> {
        &self.inner.xa
    }

    /// A pooled connection (state reads and short transactions).
    pub(in crate::sink) async fn connection(&self) -> Result<Conn, SinkError> {
        self.inner
            .pool
            .get_conn()
            .await
            .map_err(|error| self.connect_error(&error))
    }

    /// A connection of its own, closed (and its transaction rolled back by the server) when
    /// dropped, so an abandoned window can never leak an open transaction into the pool.
    pub(in crate::sink) async fn dedicated_connection(&self) -> Result<Conn, SinkError> {
        Conn::new(self.inner.opts.clone())
            .await
            .map_err(|error| self.connect_error(&error))
    }

    /// Creates the table when the target says `create`, else checks it exists.
    pub async fn ensure_table(&self, table: &TableSpec, create: bool) -> Result<(), SinkError> {
        let mut conn = self.connection().await?;
        let sql = if create {
            create_table_sql(table, &self.binary_collation().await?)
        } else {
            format!("SELECT 1 FROM {} LIMIT 0", table.quoted)
        };
        conn.query_drop(sql)
            .await
            .map_err(|error| self.query_error(&table.display, &error))
    }

    /// The server's `max_allowed_packet` in bytes, asked once per sink.
    ///
    /// # Errors
    /// [`SinkError::Query`] when the variable cannot be read.
    pub async fn max_allowed_packet(&self) -> Result<u64, SinkError> {
        self.inner
            .max_packet
            .get_or_try_init(|| async {
                let mut conn = self.connection().await?;
                let max: Option<u64> = conn
                    .query_first("SELECT @@max_allowed_packet")
                    .await
                    .map_err(|e| self.query_error("max_allowed_packet", &e))?;
                Ok(max.unwrap_or(u64::MAX))
            })
            .await
            .copied()
    }

    /// Refuses `statement` for `table` when the server would refuse it (and drop the
    /// connection, which reads as an unrelated "Broken pipe").
    pub(in crate::sink) async fn expect_fits(
        &self,
        table: &str,
        statement: &SqlStatement,
    ) -> Result<(), SinkError> {
        let max = self.max_allowed_packet().await?;
        let bytes = statement.size();
        // The packet carries a little framing besides the statement.
        if bytes + 1024 > max {
            return Err(SinkError::TooLarge {
                table: table.to_owned(),
                bytes,
                max,
            });
        }
        Ok(())
    }

    /// Runs statements in one transaction on a pooled connection.
    pub(in crate::sink) async fn execute(
        &self,
        statements: &[SqlStatement],
    ) -> Result<(), SinkError> {
        for statement in statements {
            self.expect_fits("state", statement).await?;
        }
        let mut conn = self.connection().await?;
        let result = async {
            conn.query_drop("BEGIN").await?;
            for statement in statements {
                exec_statement(&mut conn, statement).await?;
            }
            conn.query_drop("COMMIT").await
        }
        .await;
        if let Err(error) = result {
            // Best effort: a broken connection is discarded by the pool anyway.
            let _ = conn.query_drop("ROLLBACK").await;
            return Err(self.query_error("state", &error));
        }
        Ok(())
    }

    /// Starts writing one window into `table`.
    pub async fn window(
        &self,
        table: &TableSpec,
        options: WriterOptions,
    ) -> Result<WindowWriter, SinkError> {
        WindowWriter::open(self.clone(), table, options).await
    }

    /// Closes the pool's idle connections.
    pub async fn disconnect(self) {
        // Other clones may still use the pool; only the last one disconnects it.
        if let Ok(inner) = Arc::try_unwrap(self.inner) {
            let _ = inner.pool.disconnect().await;
        }
    }
}

pub(in crate::sink) async fn exec_statement(
    conn: &mut Conn,
    statement: &SqlStatement,
) -> Result<(), mysql_async::Error> {
    if statement.params.is_empty() {
        conn.query_drop(&statement.sql).await
    } else {
        let params: Vec<SqlValue> = statement.params.iter().map(to_sql_value).collect();
        conn.exec_drop(&statement.sql, Params::Positional(params))
            .await
    }
}

#[cfg(test)]
use self::lane::{decode_chunk, STREAM_CHUNK_ROWS};
#[cfg(test)]
use self::writer::{hash_cell, key_hasher};

#[cfg(test)]
mod tests;
