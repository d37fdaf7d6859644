//! MySQL writes: identifier checks, DDL, statement text and the window writer.
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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher as _, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, Value as SqlValue};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::xa::{Prepared, WindowXa};
use crate::plan::{ColumnPlan, ColumnType, Expr, TargetPlan, WriteMode};
use crate::transform::Cell;

/// Longest identifier MySQL accepts.
const MAX_IDENTIFIER: usize = 64;
/// Most placeholders one prepared statement may carry.
const MAX_PLACEHOLDERS: usize = 65_535;
/// Rows per multi-row statement.
const STATEMENT_ROWS: usize = 1000;
/// A statement-method lane flushes (one transaction) once it buffers this many rows.
const CHUNK_ROWS: usize = 20_000;
/// Batches waiting for a lane. Lanes are fed in turn, so one lane pausing (ending a load,
/// committing) stalls the others once its queue is full. With 2, 2-lane `insert` ran at
/// 0.78x of 2-connection LOAD DATA in the write benchmark; with 8, 0.89x (one run each).
const LANE_BATCHES: usize = 8;
/// Deadlocks and lock-wait timeouts of a chunk are retried this many times in place.
const LOCK_RETRIES: usize = 3;

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
    /// The window writer's connection task ended without reporting.
    #[error("window writer for `{table}` stopped unexpectedly")]
    WriterGone { table: String },
}

impl SinkError {
    /// How the executor should react.
    pub fn class(&self) -> ErrorClass {
        match self {
            SinkError::Connect { class, .. } | SinkError::Query { class, .. } => *class,
            SinkError::Rejected { .. } => ErrorClass::Data,
            SinkError::WriterGone { .. } => ErrorClass::Retriable,
            SinkError::Url { .. }
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
        // truncated, bad JSON, invalid character string
        1062 | 1406 | 1264 | 1366 | 1292 | 1048 | 1265 | 3140 | 4025 | 1300 | 1367 => {
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

/// A statement with bound parameters, as `state` builds them for the window transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlStatement {
    pub sql: String,
    pub params: Vec<Cell>,
}

impl SqlStatement {
    pub fn new(sql: impl Into<String>, params: Vec<Cell>) -> SqlStatement {
        SqlStatement {
            sql: sql.into(),
            params,
        }
    }
}

/// Checks an identifier part and returns it backtick-quoted.
pub fn quote_identifier(name: &str) -> Result<String, SinkError> {
    let bad = |reason| SinkError::Identifier {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.chars().count() > MAX_IDENTIFIER {
        return Err(bad("longer than 64 characters"));
    }
    if name.contains('`') {
        return Err(bad("contains a backtick"));
    }
    if name.contains('\0') {
        return Err(bad("contains a NUL character"));
    }
    if name.ends_with(' ') {
        return Err(bad("ends with a space"));
    }
    Ok(format!("`{name}`"))
}

/// One column of the target table.
#[derive(Debug, Clone)]
struct SinkColumn {
    name: String,
    quoted: String,
    ty: ColumnType,
    /// `sql("...")`: written into the statement, no cell in the row.
    raw: Option<String>,
    key: bool,
}

/// The validated target: table, columns, key and write mode.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// `[table]` or `[schema, table]` as written.
    name: Vec<String>,
    /// `schema.table` as written, for messages.
    display: String,
    /// Quoted, dotted name.
    quoted: String,
    columns: Vec<SinkColumn>,
    mode: WriteMode,
    /// The custom statement head template.
    head: Option<String>,
}

impl TableSpec {
    /// Validates the target and its columns (identifiers, key columns).
    pub fn new(target: &TargetPlan, columns: &[ColumnPlan]) -> Result<TableSpec, SinkError> {
        let display = target.table.join(".");
        if target.table.is_empty() || target.table.len() > 2 {
            return Err(SinkError::Spec {
                table: display,
                reason: "expected `table` or `schema.table`".into(),
            });
        }
        let quoted = target
            .table
            .iter()
            .map(|part| quote_identifier(part))
            .collect::<Result<Vec<_>, _>>()?
            .join(".");
        let spec_error = |reason: String| SinkError::Spec {
            table: display.clone(),
            reason,
        };
        let mut sink_columns = Vec::with_capacity(columns.len());
        for column in columns {
            if sink_columns
                .iter()
                .any(|c: &SinkColumn| c.name == column.name)
            {
                return Err(spec_error(format!(
                    "column `{}` is mapped twice",
                    column.name
                )));
            }
            let key = target.key.contains(&column.name);
            if key && matches!(column.ty, ColumnType::Text | ColumnType::Json) {
                return Err(spec_error(format!(
                    "key column `{}` cannot be {}; use string(n)",
                    column.name, column.ty
                )));
            }
            sink_columns.push(SinkColumn {
                quoted: quote_identifier(&column.name)?,
                name: column.name.clone(),
                ty: column.ty,
                raw: match &column.expr {
                    Expr::Sql(sql) => Some(sql.clone()),
                    _ => None,
                },
                key,
            });
        }
        if let Some(missing) = target
            .key
            .iter()
            .find(|k| !sink_columns.iter().any(|c| &c.name == *k))
        {
            return Err(spec_error(format!(
                "key `{missing}` is not a mapped column"
            )));
        }
        if sink_columns.iter().all(|c| c.raw.is_some()) {
            return Err(spec_error("no bound column to write".into()));
        }
        Ok(TableSpec {
            name: target.table.clone(),
            display,
            quoted,
            columns: sink_columns,
            mode: target.mode,
            head: target.sql.clone(),
        })
    }

    /// The table as written in the spec.
    pub fn name(&self) -> &str {
        &self.display
    }

    /// Number of cells per row (bound columns).
    pub fn bound_columns(&self) -> usize {
        self.columns.iter().filter(|c| c.raw.is_none()).count()
    }

    /// Positions of the key columns among the bound cells.
    fn key_cells(&self) -> Vec<usize> {
        self.columns
            .iter()
            .filter(|c| c.raw.is_none())
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect()
    }

    fn has_key(&self) -> bool {
        self.columns.iter().any(|c| c.key)
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the spec's columns: utf8mb4, primary key on `key`.
pub fn create_table_sql(table: &TableSpec) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (\n", table.quoted);
    for column in &table.columns {
        let null = if column.key { "NOT NULL" } else { "NULL" };
        let _ = writeln!(sql, "  {} {} {null},", column.quoted, column.ty.sql());
    }
    let key: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| c.key)
        .map(|c| c.quoted.as_str())
        .collect();
    if key.is_empty() {
        // No trailing comma before the closing parenthesis.
        sql.truncate(sql.len() - 2);
        sql.push('\n');
    } else {
        let _ = writeln!(sql, "  PRIMARY KEY ({})", key.join(", "));
    }
    sql.push_str(") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci");
    sql
}

/// The statement head: `REPLACE INTO t (cols) VALUES`, or the rendered custom template.
pub(crate) fn statement_head(table: &TableSpec) -> Result<String, SinkError> {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.quoted.as_str()).collect();
    let columns = columns.join(", ");
    if let Some(template) = &table.head {
        let env = minijinja::Environment::new();
        let context = minijinja::context! { table => table.quoted, columns => columns };
        return env
            .render_str(template, context)
            .map(|head| head.trim_end().to_owned())
            .map_err(|error| SinkError::Template {
                table: table.display.clone(),
                reason: error.to_string(),
            });
    }
    let verb = match table.mode {
        WriteMode::Insert | WriteMode::Upsert => "INSERT INTO",
        WriteMode::Replace => "REPLACE INTO",
        WriteMode::Ignore => "INSERT IGNORE INTO",
    };
    Ok(format!("{verb} {} ({columns}) VALUES", table.quoted))
}

/// `ON DUPLICATE KEY UPDATE` for upsert: every non-key column takes the new value.
pub(crate) fn statement_tail(table: &TableSpec) -> String {
    if table.mode != WriteMode::Upsert || table.head.is_some() {
        return String::new();
    }
    let updates: Vec<String> = table
        .columns
        .iter()
        .filter(|c| !c.key)
        .map(|c| format!("{0} = VALUES({0})", c.quoted))
        .collect();
    let updates = if updates.is_empty() {
        // Only key columns: nothing to update, but a duplicate must not fail.
        let key = table
            .columns
            .iter()
            .find(|c| c.key)
            .map_or("", |c| c.quoted.as_str());
        format!("{key} = {key}")
    } else {
        updates.join(", ")
    };
    format!(" ON DUPLICATE KEY UPDATE {updates}")
}

/// The multi-row statement for `rows` rows, with `?` for bound cells and raw SQL inline.
pub fn statement_sql(table: &TableSpec, rows: usize) -> Result<String, SinkError> {
    let head = statement_head(table)?;
    let tuple: Vec<&str> = table
        .columns
        .iter()
        .map(|c| c.raw.as_deref().unwrap_or("?"))
        .collect();
    let tuple = format!("({})", tuple.join(", "));
    let mut sql = String::with_capacity(head.len() + rows * (tuple.len() + 2) + 64);
    sql.push_str(&head);
    for i in 0..rows {
        sql.push_str(if i == 0 { " " } else { ", " });
        sql.push_str(&tuple);
    }
    sql.push_str(&statement_tail(table));
    Ok(sql)
}

/// A lane's staging table for upserts: temporary, so private to its connection.
const STAGE: &str = "`_qsync_stage`";

/// The `LOAD DATA LOCAL INFILE` statement, or `None` when the mode needs statements.
/// Upserts load into the staging table ([`Staging`]).
pub(crate) fn load_data_sql(table: &TableSpec) -> Option<String> {
    let (into, modifier) = match (table.head.is_some(), table.mode) {
        // A custom head has no LOAD DATA equivalent.
        (true, _) => return None,
        (false, WriteMode::Insert) => (table.quoted.as_str(), ""),
        (false, WriteMode::Replace) => (table.quoted.as_str(), " REPLACE"),
        (false, WriteMode::Ignore) => (table.quoted.as_str(), " IGNORE"),
        // The last version of a key in a chunk wins in the stage, as it would in the table.
        (false, WriteMode::Upsert) => (STAGE, " REPLACE"),
    };
    let mut fields = Vec::new();
    let mut sets = Vec::new();
    for column in &table.columns {
        match &column.raw {
            None => fields.push(column.quoted.as_str()),
            Some(sql) => sets.push(format!("{} = {sql}", column.quoted)),
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'qsync'{modifier} INTO TABLE {into} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        fields.join(", ")
    );
    if !sets.is_empty() {
        let _ = write!(sql, " SET {}", sets.join(", "));
    }
    Some(sql)
}

/// How an upsert lane writes a `LOAD DATA` chunk: into a fresh temporary copy of the
/// target, then one `INSERT ... SELECT ... ON DUPLICATE KEY UPDATE` merges it, instead of
/// a statement parsed per 1000 rows. Temporary-table DDL does not end the transaction
/// (`TRUNCATE` would, hence drop and create).
#[derive(Debug, Clone)]
pub(crate) struct Staging {
    reset: [String; 2],
    merge: String,
}

impl Staging {
    pub(crate) fn of(table: &TableSpec) -> Option<Staging> {
        if table.mode != WriteMode::Upsert || table.head.is_some() {
            return None;
        }
        let columns: Vec<&str> = table.columns.iter().map(|c| c.quoted.as_str()).collect();
        let columns = columns.join(", ");
        Some(Staging {
            reset: [
                format!("DROP TEMPORARY TABLE IF EXISTS {STAGE}"),
                format!("CREATE TEMPORARY TABLE {STAGE} LIKE {}", table.quoted),
            ],
            merge: format!(
                "INSERT INTO {} ({columns}) SELECT {columns} FROM {STAGE}{}",
                table.quoted,
                statement_tail(table)
            ),
        })
    }
}

/// Appends one row as `LOAD DATA` text: tab-separated, `\N` for NULL, backslash escapes.
pub(crate) fn encode_row(row: &[Cell], out: &mut Vec<u8>) {
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        match cell {
            Cell::Null => out.extend_from_slice(b"\\N"),
            Cell::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Cell::Double(x) => {
                let _ = write!(ByteWriter(out), "{x}");
            }
            Cell::Decimal(d) => push_decimal(out, d),
            Cell::Bool(b) => out.push(if *b { b'1' } else { b'0' }),
            Cell::Text(s) | Cell::Json(s) => escape_into(s.as_bytes(), out),
            Cell::Date(d) => {
                use chrono::Datelike;
                push_digits(out, d.year(), 4);
                out.push(b'-');
                push_digits(out, d.month(), 2);
                out.push(b'-');
                push_digits(out, d.day(), 2);
            }
            Cell::DateTime(t) => {
                use chrono::{Datelike, Timelike};
                push_digits(out, t.year(), 4);
                out.push(b'-');
                push_digits(out, t.month(), 2);
                out.push(b'-');
                push_digits(out, t.day(), 2);
                out.push(b' ');
                push_digits(out, t.hour(), 2);
                out.push(b':');
                push_digits(out, t.minute(), 2);
                out.push(b':');
                push_digits(out, t.second(), 2);
            }
        }
    }
    out.push(b'\n');
}

/// A decimal as `Display` writes it (`-12.30`: every digit of its scale, no exponent),
/// without the formatter: a third of a row's cells are money.
fn push_decimal(out: &mut Vec<u8>, d: &rust_decimal::Decimal) {
    let mantissa = d.mantissa();
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(mantissa.unsigned_abs()).as_bytes();
    let scale = d.scale() as usize;
    if mantissa < 0 {
        out.push(b'-');
    }
    if scale == 0 {
        out.extend_from_slice(digits);
    } else if digits.len() > scale {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    } else {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + scale - digits.len(), b'0');
        out.extend_from_slice(digits);
    }
}

/// Zero-padded decimal digits; years outside 0..=9999 fall back to `Display`.
fn push_digits<N: Into<i64>>(out: &mut Vec<u8>, n: N, width: u32) {
    let n: i64 = n.into();
    if !(0..10_i64.pow(width)).contains(&n) {
        let _ = write!(ByteWriter(out), "{n}");
        return;
    }
    // Right to left, dividing by the constant 10 (a multiplication once compiled), not by
    // a power of ten computed for every digit.
    let mut digits = [b'0'; 8];
    let width = (width as usize).min(digits.len());
    let mut rest = n;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    // Fast path: most values need no escaping.
    if !bytes
        .iter()
        .any(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\0'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\0' => out.extend_from_slice(b"\\0"),
            other => out.push(other),
        }
    }
}

/// `fmt::Write` over a byte buffer, so numbers format without a temporary `String`.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

pub(crate) fn to_sql_value(cell: &Cell) -> SqlValue {
    use chrono::{Datelike, Timelike};
    let narrow = |n: u32| u8::try_from(n).unwrap_or(0);
    match cell {
        Cell::Null => SqlValue::NULL,
        Cell::Int(n) => SqlValue::Int(*n),
        Cell::Double(x) => SqlValue::Double(*x),
        Cell::Decimal(d) => SqlValue::Bytes(d.to_string().into_bytes()),
        Cell::Text(s) | Cell::Json(s) => SqlValue::Bytes(s.as_bytes().to_vec()),
        Cell::Bool(b) => SqlValue::Int(i64::from(*b)),
        Cell::Date(d) => SqlValue::Date(
            u16::try_from(d.year()).unwrap_or(0),
            narrow(d.month()),
            narrow(d.day()),
            0,
            0,
            0,
            0,
        ),
        Cell::DateTime(t) => SqlValue::Date(
            u16::try_from(t.year()).unwrap_or(0),
            narrow(t.month()),
            narrow(t.day()),
            narrow(t.hour()),
            narrow(t.minute()),
            narrow(t.second()),
            t.nanosecond() / 1000,
        ),
    }
}

/// How a writer moves rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    /// `LOAD DATA LOCAL INFILE` where the mode allows it, else statements.
    Auto,
    /// Multi-row statements with bound parameters only.
    Statements,
}

/// Tuning of a [`WindowWriter`].
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Connections writing in parallel (1 for keyless replace/upsert/ignore, and for
    /// `insert` when the server refuses XA).
    pub connections: usize,
    pub method: WriteMethod,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            connections: 2,
            method: WriteMethod::Auto,
        }
    }
}

/// What a committed window wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Rows handed to the writer.
    pub rows: u64,
    /// Rows the server reported as affected (a replaced row counts twice).
    pub affected: u64,
    /// Transactions committed, the final one included.
    pub transactions: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: WriteStats) {
        self.rows += other.rows;
        self.affected += other.affected;
        self.transactions += other.transactions;
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
    host: String,
    database: String,
    /// Cleared for good once the server refuses `LOAD DATA LOCAL`.
    infile: AtomicBool,
    /// Whether `insert` windows may use XA over several connections; probed once.
    xa: tokio::sync::OnceCell<bool>,
    /// The warning that XA is refused was logged.
    xa_refusal_told: AtomicBool,
    /// Per table, why its loads take turns (`serialized_loads`), asked once per sink: a
    /// sink serves one run, and every window of it opens a writer.
    serialized: std::sync::Mutex<HashMap<Vec<String>, Option<String>>>,
}

impl MysqlSink {
    /// Connects and checks the server answers, so a wrong URL fails here with a clear
    /// message instead of on the first batch.
    pub async fn connect(url: &str) -> Result<MysqlSink, SinkError> {
        let opts = Opts::from_url(url).map_err(|error| SinkError::Url {
            reason: error.to_string(),
        })?;
        let host = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
        let database = opts.db_name().unwrap_or("").to_owned();
        let opts: Opts = OptsBuilder::from_opts(opts)
            // Strict mode makes bad values errors instead of silent truncation; the
            // statement fallback relies on it.
            .init(vec![
                "SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'STRICT_ALL_TABLES')",
                "SET NAMES utf8mb4",
            ])
            .into();
        let pool = Pool::new(opts.clone());
        let sink = MysqlSink {
            inner: Arc::new(SinkInner {
                opts,
                pool,
                host,
                database,
                infile: AtomicBool::new(true),
                xa: tokio::sync::OnceCell::new(),
                xa_refusal_told: AtomicBool::new(false),
                serialized: std::sync::Mutex::default(),
            }),
        };
        let mut conn = sink.connection().await?;
        conn.ping()
            .await
            .map_err(|error| sink.connect_error(&error))?;
        Ok(sink)
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

    /// `host:port` of the server.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The database named in the URL.
    pub fn database(&self) -> &str {
        &self.inner.database
    }

    fn connect_error(&self, error: &mysql_async::Error) -> SinkError {
        let (_, class) = class_of(error);
        let reason = match error {
            mysql_async::Error::Server(server) => server.message.clone(),
            other => other.to_string(),
        };
        SinkError::Connect {
            host: self.inner.host.clone(),
            database: self.inner.database.clone(),
            reason,
            class,
        }
    }

    pub(crate) fn query_error(&self, table: &str, error: &mysql_async::Error) -> SinkError {
        let (code, class) = class_of(error);
        let message = match error {
            mysql_async::Error::Server(server) => server.message.clone(),
            other => other.to_string(),
        };
        SinkError::Query {
            table: table.to_owned(),
            host: self.inner.host.clone(),
            code,
            message,
            class,
        }
    }

    pub(crate) fn xa_support(&self) -> &tokio::sync::OnceCell<bool> {
        &self.inner.xa
    }

    /// A pooled connection (state reads and short transactions).
    pub(crate) async fn connection(&self) -> Result<Conn, SinkError> {
        self.inner
            .pool
            .get_conn()
            .await
            .map_err(|error| self.connect_error(&error))
    }

    /// A connection of its own, closed (and its transaction rolled back by the server) when
    /// dropped, so an abandoned window can never leak an open transaction into the pool.
    pub(crate) async fn dedicated_connection(&self) -> Result<Conn, SinkError> {
        Conn::new(self.inner.opts.clone())
            .await
            .map_err(|error| self.connect_error(&error))
    }

    /// Creates the table when the target says `create`, else checks it exists.
    pub async fn ensure_table(&self, table: &TableSpec, create: bool) -> Result<(), SinkError> {
        let mut conn = self.connection().await?;
        let sql = if create {
            create_table_sql(table)
        } else {
            format!("SELECT 1 FROM {} LIMIT 0", table.quoted)
        };
        conn.query_drop(sql)
            .await
            .map_err(|error| self.query_error(&table.display, &error))
    }

    /// Runs statements in one transaction on a pooled connection.
    pub async fn execute(&self, statements: &[SqlStatement]) -> Result<(), SinkError> {
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

pub(crate) async fn exec_statement(
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

/// SQL texts shared by the lanes of one window.
#[derive(Debug)]
struct Statements {
    table: String,
    load: Option<String>,
    /// Bound cells per row.
    width: usize,
    /// Rows per full multi-row statement and its text.
    rows_per_statement: usize,
    full: String,
    spec: TableSpec,
    mode: WriteMode,
    /// Upserts through `LOAD DATA`: the staging statements.
    staging: Option<Staging>,
}

enum LaneMessage {
    Rows(Vec<Vec<Cell>>),
    /// Flush everything; lane 0 also writes these state statements in its last transaction.
    Finish(Option<Vec<SqlStatement>>),
}

struct Lane {
    sender: mpsc::Sender<LaneMessage>,
    task: JoinHandle<Result<LaneDone, SinkError>>,
}

/// What a lane hands back when it finished without error.
struct LaneDone {
    stats: WriteStats,
    /// An XA lane's prepared transaction, waiting for the window's decision.
    prepared: Option<Prepared>,
}

/// Writes one window; see the module doc for the transaction layout. Dropping it without
/// [`commit`](WindowWriter::commit) rolls back whatever is not yet committed.
pub struct WindowWriter {
    sink: MysqlSink,
    table: String,
    lanes: Vec<Lane>,
    key_cells: Vec<usize>,
    width: usize,
    /// Set when an `insert` window is written on several connections.
    xa: Option<WindowXa>,
    /// Lane 0's server session, to learn whether its commit happened after an error.
    first_session: u32,
    /// Rows handed to each lane.
    sent: Vec<u64>,
    /// Lane of the next batch (`insert` on several connections: see `route_runs`).
    next_lane: usize,
    /// `insert` on several connections: the lane of each key hash written in this window.
    lane_of_key: KeyLanes,
}

impl WindowWriter {
    async fn open(
        sink: MysqlSink,
        table: &TableSpec,
        options: WriterOptions,
    ) -> Result<WindowWriter, SinkError> {
        let width = table.bound_columns();
        let rows_per_statement = STATEMENT_ROWS.min(MAX_PLACEHOLDERS / width.max(1)).max(1);
        let load = match options.method {
            WriteMethod::Auto if sink.inner.infile.load(Ordering::Relaxed) => load_data_sql(table),
            _ => None,
        };
        let statements = Arc::new(Statements {
            table: table.display.clone(),
            load,
            width,
            rows_per_statement,
            full: statement_sql(table, rows_per_statement)?,
            spec: table.clone(),
            mode: table.mode,
            staging: Staging::of(table),
        });
        // `insert` is not idempotent: its window is one transaction, or one per connection
        // bound by two-phase commit (see `xa`). Other modes rewrite rows idempotently, but
        // without a key two versions of a row cannot be kept on one connection.
        let single = table.mode == WriteMode::Insert;
        let mut wanted = if single || table.has_key() {
            options.connections.clamp(1, key_lanes::MAX_LANES)
        } else {
            1
        };
        if wanted > 1 && statements.load.is_some() && statements.staging.is_none() {
            // A streamed load ends with its window: loads that hold a table lock until they
            // end would take turns, each waiting for the other lane to idle out.
            if sink.loads_take_turns(table).await? {
                wanted = 1;
            }
        }
        let xa = if single && wanted > 1 {
            if sink.supports_xa().await {
                Some(WindowXa::new(sink.database()))
            } else {
                if !sink.inner.xa_refusal_told.swap(true, Ordering::Relaxed) {
                    tracing::warn!(table = %table.display,
                        "the server refuses XA (MySQL 8 needs XA_RECOVER_ADMIN): `insert` windows use one connection");
                }
                None
            }
        } else {
            None
        };
        let count = if single && xa.is_none() { 1 } else { wanted };
        let mut lanes = Vec::with_capacity(count);
        let mut first_session = 0;
        for lane in 0..count {
            let conn = sink.dedicated_connection().await?;
            let mut worker = LaneWorker::new(sink.clone(), Arc::clone(&statements), conn, single);
            match (&xa, lane) {
                (Some(window), 0) => {
                    // Holds the decision row's lock from now on: see `xa`.
                    worker.begin().await?;
                    exec_statement(&mut worker.conn, &window.decision())
                        .await
                        .map_err(|error| sink.query_error("_qsync_xa", &error))?;
                }
                (Some(window), _) => worker.xid = Some(window.xid(lane)),
                (None, _) => {}
            }
            if lane == 0 {
                first_session = worker.conn.id();
            }
            let (sender, receiver) = mpsc::channel(LANE_BATCHES);
            lanes.push(Lane {
                sender,
                task: tokio::spawn(worker.run(receiver)),
            });
        }
        Ok(WindowWriter {
            sink,
            table: table.display.clone(),
            lanes,
            key_cells: table.key_cells(),
            width,
            xa,
            first_session,
            sent: vec![0; count],
            next_lane: 0,
            lane_of_key: KeyLanes::default(),
        })
    }

    /// Hands one batch to the lanes. Waits when the lanes are busy (backpressure), so the
    /// caller can fetch and transform the next batch meanwhile.
    pub async fn write_batch(&mut self, rows: Vec<Vec<Cell>>) -> Result<(), SinkError> {
        if let Some(row) = rows.iter().find(|row| row.len() != self.width) {
            return Err(SinkError::Spec {
                table: self.table.clone(),
                reason: format!(
                    "row has {} cells, table has {} bound columns",
                    row.len(),
                    self.width
                ),
            });
        }
        if self.lanes.is_empty() {
            // Every lane failed before (the caller went on after an error).
            return Err(SinkError::WriterGone {
                table: self.table.clone(),
            });
        }
        if self.lanes.len() == 1 {
            return self.send(0, rows).await;
        }
        let parts = if self.xa.is_some() {
            let lane = self.lane_with_room().await;
            self.route_runs(rows, lane)
        } else {
            let mut parts: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); self.lanes.len()];
            for row in rows {
                parts[self.lane_of(&row)].push(row);
            }
            parts
        };
        for (lane, part) in parts.into_iter().enumerate() {
            if !part.is_empty() {
                self.send(lane, part).await?;
            }
        }
        Ok(())
    }

    /// `insert` on several connections: the batch goes whole to one lane, so each lane
    /// loads runs of rows that came together (neighbouring keys, mostly: lanes hashing keys
    /// apart made both server threads split the same index pages; 1M rows took 0.5 s more).
    /// A key the window already wrote goes to the lane that wrote it, so a duplicate fails
    /// at once on that connection instead of waiting for another lane's row lock.
    fn route_runs(&mut self, rows: Vec<Vec<Cell>>, lane: usize) -> Vec<Vec<Vec<Cell>>> {
        let count = self.lanes.len();
        let mut parts: Vec<Vec<Vec<Cell>>> = vec![Vec::new(); count];
        if self.key_cells.is_empty() {
            parts[lane] = rows;
            return parts;
        }
        parts[lane].reserve(rows.len());
        // Every hash first, then the lookups, so that the lookups' cache misses can overlap
        // (not measured apart from the lane table that came with it).
        let hashes: Vec<u64> = rows.iter().map(|row| self.key_hash(row)).collect();
        for (row, hash) in rows.into_iter().zip(hashes) {
            let to = self.lane_of_key.lane_for(hash, lane);
            parts[to.min(count - 1)].push(row);
        }
        parts
    }

    /// The lane for an `insert` batch: the one with the most room, the next in turn among
    /// equals; when every queue is full, the first that frees a slot. A lane whose server
    /// thread is held up (a lock, a slow disk) then holds up neither the others nor the
    /// caller.
    async fn lane_with_room(&mut self) -> usize {
        let count = self.lanes.len();
        let room = |lane: usize| self.lanes[lane].sender.capacity();
        // Lanes only go away when one failed, which fails the window: stay in range.
        let first = self.next_lane % count;
        let mut lane = first;
        for step in 1..count {
            let other = (first + step) % count;
            if room(other) > room(lane) {
                lane = other;
            }
        }
        if room(lane) == 0 {
            let waits = self
                .lanes
                .iter()
                .map(|l| Box::pin(l.sender.reserve()))
                .collect::<Vec<_>>();
            // A closed lane answers at once; sending to it then reports its failure.
            let (_, freed, _) = futures::future::select_all(waits).await;
            lane = freed;
        }
        self.next_lane = (lane + 1) % count;
        lane
    }

    /// Replace and upsert: a key's versions stay on one lane, in order.
    fn lane_of(&self, row: &[Cell]) -> usize {
        // The modulo keeps the value below the lane count, which is a usize.
        #[allow(clippy::cast_possible_truncation, reason = "result < lanes.len()")]
        let lane = (self.key_hash(row) % self.lanes.len() as u64) as usize;
        lane
    }

    fn key_hash(&self, row: &[Cell]) -> u64 {
        let mut hasher = key_hasher();
        for &i in &self.key_cells {
            hash_cell(&row[i], &mut hasher);
        }
        hasher.finish()
    }

    async fn send(&mut self, lane: usize, rows: Vec<Vec<Cell>>) -> Result<(), SinkError> {
        self.sent[lane] += rows.len() as u64;
        if self.lanes[lane]
            .sender
            .send(LaneMessage::Rows(rows))
            .await
            .is_err()
        {
            // The lane stopped: its task holds the reason.
            return Err(self.failure(lane).await);
        }
        Ok(())
    }

    async fn failure(&mut self, lane: usize) -> SinkError {
        let gone = SinkError::WriterGone {
            table: self.table.clone(),
        };
        let lane = self.lanes.remove(lane);
        match lane.task.await {
            Ok(Err(error)) => error,
            _ => gone,
        }
    }

    /// Flushes every lane, then commits the last rows together with `state` in one
    /// transaction. On error nothing of the last transaction (and so no state) is committed,
    /// and in an XA window nothing at all.
    pub async fn commit(mut self, state: Vec<SqlStatement>) -> Result<WriteStats, SinkError> {
        let mut total = WriteStats::default();
        let mut lanes = std::mem::take(&mut self.lanes).into_iter();
        let first = lanes.next();
        let mut prepared = Vec::new();
        // Lane 0 commits last, after every other lane's rows are durable (or prepared), so
        // a later version of a row can never be overtaken by an earlier one, and lane 0's
        // commit decides an XA window.
        for lane in lanes.by_ref() {
            match finish(&self.table, lane, None).await {
                Ok(done) => {
                    total += done.stats;
                    prepared.extend(done.prepared);
                }
                Err(error) => {
                    // Dropping the unfinished lanes rolls them back.
                    drop(lanes);
                    drop(first);
                    MysqlSink::rollback_prepared(prepared).await;
                    return Err(error);
                }
            }
        }
        let Some(first) = first else {
            return Ok(total);
        };
        let result = finish(&self.table, first, Some(state)).await;
        let Some(window) = self.xa.take() else {
            let done = result?;
            total += done.stats;
            return Ok(total);
        };
        match result {
            Ok(done) => {
                total += done.stats;
                self.sink.commit_prepared(&window, prepared).await;
                Ok(total)
            }
            // Lane 0's answer may be lost after its commit: its decision row tells.
            Err(error) => match self.sink.decided_commit(&window, self.first_session).await {
                Ok(Some(true)) => {
                    tracing::warn!(table = %self.table,
                        "the window committed though its commit reported `{error}`");
                    self.sink.commit_prepared(&window, prepared).await;
                    total.rows += self.sent[0];
                    total.transactions += 1;
                    Ok(total)
                }
                Ok(Some(false)) => {
                    MysqlSink::rollback_prepared(prepared).await;
                    Err(error)
                }
                // Undecidable now: the prepared lanes stay for the next run to settle.
                Ok(None) | Err(_) => Err(error),
            },
        }
    }

    /// Abandons the window: nothing uncommitted is written, the state is untouched.
    pub async fn abort(mut self) {
        for lane in std::mem::take(&mut self.lanes) {
            drop(lane.sender);
            let _ = lane.task.await;
        }
    }
}

async fn finish(
    table: &str,
    lane: Lane,
    state: Option<Vec<SqlStatement>>,
) -> Result<LaneDone, SinkError> {
    // A send error means the lane already stopped; its result below says why.
    let _ = lane.sender.send(LaneMessage::Finish(state)).await;
    drop(lane.sender);
    match lane.task.await {
        Ok(result) => result,
        Err(_) => Err(SinkError::WriterGone {
            table: table.to_owned(),
        }),
    }
}

/// The hash of a row's key for lane routing: foldhash, fixed seed (routing must agree
/// within a window, never across processes). Every row of a multi-connection window hashes
/// its key: SipHash fed one lowercased character at a time cost ~390 ns a key, and FNV-1a
/// fed byte by byte was still a sixth of the insert writer's CPU.
fn key_hasher() -> foldhash::fast::FoldHasher<'static> {
    foldhash::fast::FixedState::with_seed(KEY_SEED).build_hasher()
}

/// Any fixed value does: "qsync" in ASCII.
const KEY_SEED: u64 = 0x71_73_79_6e_63;

fn hash_cell(cell: &Cell, hasher: &mut impl Hasher) {
    std::mem::discriminant(cell).hash(hasher);
    match cell {
        Cell::Null => {}
        Cell::Int(n) => n.hash(hasher),
        Cell::Double(x) => x.to_bits().hash(hasher),
        Cell::Decimal(d) => d.normalize().hash(hasher),
        // Keys compare case-insensitively under utf8mb4_unicode_ci; hashing the lowercase
        // form keeps rows MySQL sees as one key on one lane. Both paths hand the hasher the
        // whole lowercased UTF-8 text in one `write`, so a key equal under the collation
        // hashes alike whichever path it takes.
        Cell::Text(s) | Cell::Json(s) if s.is_ascii() => {
            let mut buffer = [0u8; 64];
            if let Some(lower) = buffer.get_mut(..s.len()) {
                lower.copy_from_slice(s.as_bytes());
                lower.make_ascii_lowercase();
                hasher.write(lower);
            } else {
                hasher.write(s.to_ascii_lowercase().as_bytes());
            }
        }
        Cell::Text(s) | Cell::Json(s) => hasher.write(s.to_lowercase().as_bytes()),
        Cell::Date(d) => d.hash(hasher),
        Cell::DateTime(t) => t.hash(hasher),
        Cell::Bool(b) => b.hash(hasher),
    }
}

mod key_lanes;
mod lane;
mod text_buffers;
use key_lanes::KeyLanes;
use lane::LaneWorker;
#[cfg(test)]
use lane::{decode_chunk, STREAM_CHUNK_ROWS};

#[cfg(test)]
mod tests;
