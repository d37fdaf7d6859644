//! One connection of a window writer: streams its rows through `LOAD DATA` (or multi-row
//! statements), commits chunks or holds the window's one transaction (`insert`), takes part
//! in the window's XA commit, and recovers a chunk after a deadlock or a refused infile.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params};
use tokio::sync::{mpsc, oneshot};

use super::collation::{written, Written};
use super::text_buffers::TextBuffers;
use super::writer::{LaneDone, LaneMessage, Statements, WriteStats, CHUNK_ROWS, LOCK_RETRIES};
use super::{
    encode_row, exec_statement, statement_sql, to_sql_value, MysqlSink, SinkError, SqlStatement,
    TableSpec,
};
use crate::plan::WriteMode;
use crate::sink::xa::Prepared;
use crate::transform::Cell;

/// Rows buffered by a lane for the statement method.
#[derive(Default)]
struct Chunk {
    rows: Vec<Vec<Cell>>,
}

/// Why a streamed `LOAD DATA` chunk ended.
enum ChunkEnd {
    /// Reached [`STREAM_CHUNK_ROWS`] or no rows came for [`STREAM_IDLE`]: commit it (unless
    /// the lane is single-transaction) and wait for more.
    Pause,
    /// The window is done: write the state statements, report ready, await the commit.
    Finish(Option<Vec<SqlStatement>>, oneshot::Sender<()>),
    /// The writer was dropped: roll back.
    Closed,
    /// The load ended on its own, i.e. failed; its error says why.
    Aborted,
}

/// Rows per streamed `LOAD DATA` (and per transaction outside `insert` mode).
pub(super) const STREAM_CHUNK_ROWS: usize = 100_000;
/// A streamed load ends when no rows come for this long: the server gives up on a client
/// silent for `net_read_timeout` (30 s by default) while it reads a local infile.
const STREAM_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) struct LaneWorker {
    sink: MysqlSink,
    statements: Arc<Statements>,
    pub(super) conn: Conn,
    /// One transaction for the whole window (`insert` mode).
    single: bool,
    /// The XA transaction of a lane other than 0 in a parallel `insert` window.
    pub(super) xid: Option<String>,
    /// A `LOAD DATA` succeeded on this connection.
    loaded: bool,
    buffer: Chunk,
    /// Where each batch's `LOAD DATA` text is encoded, reused batch after batch.
    texts: TextBuffers,
    in_transaction: bool,
    stats: WriteStats,
    /// What the open transaction wrote so far (added to `committed` when it commits).
    pending: Written,
    /// Rows of the window committed by any lane, as the server counted them: what reached
    /// the table if the window fails later.
    committed: Arc<AtomicU64>,
}

impl LaneWorker {
    pub(super) fn new(
        sink: MysqlSink,
        statements: Arc<Statements>,
        conn: Conn,
        single: bool,
        committed: Arc<AtomicU64>,
    ) -> LaneWorker {
        LaneWorker {
            sink,
            statements,
            conn,
            single,
            xid: None,
            loaded: false,
            buffer: Chunk::default(),
            texts: TextBuffers::default(),
            in_transaction: false,
            stats: WriteStats::default(),
            pending: Written::default(),
            committed,
        }
    }

    pub(super) async fn run(
        mut self,
        mut receiver: mpsc::Receiver<LaneMessage>,
    ) -> Result<LaneDone, SinkError> {
        while let Some(message) = receiver.recv().await {
            match message {
                LaneMessage::Rows(rows) if self.statements.load.is_some() => {
                    match self.stream_chunk(rows, &mut receiver).await? {
                        ChunkEnd::Pause => {
                            if !self.single {
                                self.commit().await?;
                            }
                        }
                        ChunkEnd::Finish(state, ready) => {
                            self.finish(state).await?;
                            return self.await_commit(ready, &mut receiver).await;
                        }
                        ChunkEnd::Closed | ChunkEnd::Aborted => break,
                    }
                }
                LaneMessage::Rows(rows) => {
                    self.stats.rows += rows.len() as u64;
                    self.buffer.rows.extend(rows);
                    if self.buffer.rows.len() >= CHUNK_ROWS {
                        let chunk = std::mem::take(&mut self.buffer);
                        self.flush(chunk, None, !self.single).await?;
                    }
                }
                LaneMessage::Finish(state, ready) => {
                    self.finish(state).await?;
                    return self.await_commit(ready, &mut receiver).await;
                }
                // Only sent after `Finish`, which `await_commit` answers.
                LaneMessage::Commit => {}
            }
        }
        // The writer was dropped or aborted: roll back explicitly, then the connection
        // closes with the worker.
        self.rollback().await;
        Ok(LaneDone {
            stats: self.stats,
            prepared: None,
        })
    }

    /// Everything is written but not committed: tells the writer so, then commits (or, on
    /// an XA lane, prepares) when it says so, or rolls back when it gives up the window
    /// because another lane failed. So a failing lane stops the window before any lane's
    /// last transaction commits.
    async fn await_commit(
        mut self,
        ready: oneshot::Sender<()>,
        receiver: &mut mpsc::Receiver<LaneMessage>,
    ) -> Result<LaneDone, SinkError> {
        let _ = ready.send(());
        match receiver.recv().await {
            Some(LaneMessage::Commit) => {
                if self.xid.is_none() {
                    self.commit().await?;
                }
                self.done().await
            }
            _ => {
                self.rollback().await;
                Ok(LaneDone {
                    stats: self.stats,
                    prepared: None,
                })
            }
        }
    }

    /// Hands back the lane's figures; an XA lane first prepares its transaction.
    async fn done(mut self) -> Result<LaneDone, SinkError> {
        let prepared = match self.xid.clone() {
            Some(xid) if self.in_transaction => {
                for sql in [format!("XA END '{xid}'"), format!("XA PREPARE '{xid}'")] {
                    if let Err(error) = self.conn.query_drop(sql).await {
                        self.rollback().await;
                        return Err(self.sink.query_error(&self.statements.table, &error));
                    }
                }
                self.in_transaction = false;
                self.stats.transactions += 1;
                Some(Prepared {
                    conn: self.conn,
                    xid,
                })
            }
            _ => None,
        };
        Ok(LaneDone {
            stats: self.stats,
            prepared,
        })
    }

    /// Writes what is left and `state`, leaving the transaction open for the commit.
    async fn finish(&mut self, state: Option<Vec<SqlStatement>>) -> Result<(), SinkError> {
        let chunk = std::mem::take(&mut self.buffer);
        if !chunk.rows.is_empty() || state.is_some() {
            self.flush(chunk, state.as_deref(), false).await?;
        }
        Ok(())
    }

    pub(super) async fn begin(&mut self) -> Result<(), SinkError> {
        if !self.in_transaction {
            let sql = match &self.xid {
                Some(xid) => format!("XA START '{xid}'"),
                None => "BEGIN".to_owned(),
            };
            self.conn
                .query_drop(sql)
                .await
                .map_err(|error| self.sink.query_error(&self.statements.table, &error))?;
            self.in_transaction = true;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SinkError> {
        if self.in_transaction {
            if let Err(error) = self.conn.query_drop("COMMIT").await {
                self.in_transaction = false;
                return Err(self.sink.query_error(&self.statements.table, &error));
            }
            self.in_transaction = false;
            self.stats.transactions += 1;
            let pending = std::mem::take(&mut self.pending);
            self.committed.fetch_add(pending.rows, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Counts what one statement or load wrote in the open transaction.
    fn count(&mut self, written: Written) {
        self.stats.written += written.rows;
        self.stats.replaced += written.replaced;
        self.pending.rows += written.rows;
        self.pending.replaced += written.replaced;
    }

    /// Forgets what the rolled-back transaction wrote.
    fn discard_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.stats.written -= pending.rows;
        self.stats.replaced -= pending.replaced;
    }

    async fn rollback(&mut self) {
        if self.in_transaction {
            match &self.xid {
                Some(xid) => {
                    // END fails when the server already ended it (an error inside the XA
                    // transaction); ROLLBACK then still applies.
                    let _ = self.conn.query_drop(format!("XA END '{xid}'")).await;
                    let _ = self.conn.query_drop(format!("XA ROLLBACK '{xid}'")).await;
                }
                None => {
                    let _ = self.conn.query_drop("ROLLBACK").await;
                }
            }
            self.in_transaction = false;
            self.discard_pending();
        }
    }

    /// Streams rows into one `LOAD DATA` while they arrive: the server ingests a batch while
    /// the next one is encoded, and the writer keeps no more than a chunk in memory.
    async fn stream_chunk(
        &mut self,
        first: Vec<Vec<Cell>>,
        receiver: &mut mpsc::Receiver<LaneMessage>,
    ) -> Result<ChunkEnd, SinkError> {
        self.begin().await?;
        let table = self.statements.table.clone();
        self.reset_stage().await?;
        let load_sql = self.statements.load.clone().unwrap_or_default();
        let (sender, bytes) = mpsc::channel::<Bytes>(4);
        self.conn.set_infile_handler(async move {
            let stream = futures::stream::unfold(bytes, |mut bytes| async move {
                bytes.recv().await.map(|piece| (Ok(piece), bytes))
            });
            Ok(stream.boxed())
        });
        let done = Arc::new(tokio::sync::Notify::new());
        // Kept until the chunk commits, to retry it after a deadlock or fall back to
        // statements; bounded by STREAM_CHUNK_ROWS. A single-transaction lane has nothing
        // to replay once a load succeeded on its connection (a server refusing local
        // infile refuses the first; a lock conflict fails its window anyway): it streams
        // the rest of its window as one load and keeps nothing.
        let replayable = !(self.single && self.loaded);
        let mut retained: Vec<Bytes> = Vec::new();
        let mut rows_sent = 0u64;
        let conn = &mut self.conn;
        let texts = &self.texts;
        let load = {
            let done = Arc::clone(&done);
            async move {
                let result = conn.query_drop(load_sql).await;
                done.notify_one();
                result
            }
        };
        let pump = async {
            let mut next = Some(first);
            let mut in_chunk = 0;
            // Sized from the rows before, so a batch's text is allocated once, not grown.
            let mut bytes_per_row = 256;
            let end = loop {
                let rows = match next.take() {
                    Some(rows) => rows,
                    None => match tokio::time::timeout(STREAM_IDLE, receiver.recv()).await {
                        Err(_) => break ChunkEnd::Pause,
                        Ok(None) => break ChunkEnd::Closed,
                        Ok(Some(LaneMessage::Finish(state, ready))) => {
                            break ChunkEnd::Finish(state, ready)
                        }
                        Ok(Some(LaneMessage::Rows(rows))) => rows,
                        // Only sent after `Finish`.
                        Ok(Some(LaneMessage::Commit)) => continue,
                    },
                };
                let mut text = texts.take(rows.len() * bytes_per_row);
                for row in &rows {
                    encode_row(row, &mut text);
                }
                bytes_per_row = text.len() / rows.len().max(1) + 32;
                in_chunk += rows.len();
                rows_sent += rows.len() as u64;
                drop(rows);
                let text = texts.share(text);
                if replayable {
                    retained.push(text.clone());
                }
                tokio::select! {
                    sent = sender.send(text) => if sent.is_err() { break ChunkEnd::Aborted },
                    () = done.notified() => break ChunkEnd::Aborted,
                }
                if replayable && in_chunk >= STREAM_CHUNK_ROWS {
                    break ChunkEnd::Pause;
                }
            };
            // Ends the infile stream, so the load completes.
            drop(sender);
            end
        };
        let (loaded, end) = tokio::join!(load, pump);
        self.stats.rows += rows_sent;
        let result = match loaded {
            Ok(()) => self.check_warnings().await,
            Err(error) => Err(LoadError::Mysql(error)),
        };
        match result {
            Ok(()) => self.loaded = true,
            Err(error) if replayable => self.recover(error, &retained, &table).await?,
            Err(error) => {
                self.rollback().await;
                if refuses_infile(&error) {
                    // Refused after it accepted: the window's retry writes statements.
                    self.sink.refuse_infile(&self.statements.table);
                    return Err(SinkError::WriterGone { table });
                }
                return Err(self.sink.load_error(&table, error));
            }
        }
        if matches!(end, ChunkEnd::Aborted) {
            // The load finished before the pump did, without an error: the stream was cut.
            self.rollback().await;
            return Err(SinkError::WriterGone { table });
        }
        self.merge_stage().await?;
        Ok(end)
    }

    /// Empties the staging table (upserts through `LOAD DATA` only).
    async fn reset_stage(&mut self) -> Result<(), SinkError> {
        let Some(staging) = self.statements.staging.clone() else {
            return Ok(());
        };
        for sql in &staging.reset {
            if let Err(error) = self.conn.query_drop(sql).await {
                self.rollback().await;
                return Err(self.sink.query_error(&self.statements.table, &error));
            }
        }
        Ok(())
    }

    /// Upserts the staged chunk into the target, unless the lane fell back to statements
    /// (which wrote the target directly).
    async fn merge_stage(&mut self) -> Result<(), SinkError> {
        let Some(staging) = self.statements.staging.clone() else {
            return Ok(());
        };
        if self.statements.load.is_none() {
            return Ok(());
        }
        if let Err(error) = self.conn.query_drop(&staging.merge).await {
            self.rollback().await;
            return Err(self.sink.query_error(&self.statements.table, &error));
        }
        let affected = self.conn.affected_rows();
        self.stats.affected += affected;
        let merged = written(self.statements.mode, 0, affected, &self.conn.info());
        self.count(merged);
        Ok(())
    }

    /// After a failed streamed load: fall back to statements when the server refuses local
    /// infile, retry in place after a lock conflict when nothing else is in the
    /// transaction, else roll back and fail.
    async fn recover(
        &mut self,
        error: LoadError,
        retained: &[Bytes],
        table: &str,
    ) -> Result<(), SinkError> {
        let mut error = error;
        let mut attempt = 0;
        loop {
            if refuses_infile(&error) {
                self.sink.refuse_infile(&self.statements.table);
                let mut rows = Vec::new();
                for piece in retained {
                    rows.extend(decode_chunk(piece, &self.statements.spec)?);
                }
                self.statements = Arc::new(Statements {
                    load: None,
                    ..clone_statements(&self.statements)
                });
                return self.insert_rows(&rows).await;
            }
            let lock_conflict = matches!(
                &error,
                LoadError::Mysql(mysql_async::Error::Server(e)) if matches!(e.code, 1213 | 1205)
            );
            self.rollback().await;
            if !lock_conflict || self.single || attempt >= LOCK_RETRIES {
                return Err(self.sink.load_error(table, error));
            }
            attempt += 1;
            self.begin().await?;
            let load_sql = self.statements.load.clone().unwrap_or_default();
            match self.load(&load_sql, retained.to_vec()).await {
                Ok(()) => return Ok(()),
                Err(next) => error = next,
            }
        }
    }

    /// Writes a statement-method chunk (plus `state`) and commits, unless this is a
    /// single-transaction lane that is not finishing. Lock conflicts retry the chunk in
    /// place when nothing else is in the transaction.
    async fn flush(
        &mut self,
        chunk: Chunk,
        state: Option<&[SqlStatement]>,
        commit: bool,
    ) -> Result<(), SinkError> {
        // A retry rewrites this chunk only: rows of a streamed load still open in the
        // transaction would be lost by the rollback.
        let alone = !self.in_transaction;
        let mut attempt = 0;
        loop {
            let result = self.try_flush(&chunk.rows, state, commit).await;
            match result {
                Ok(()) => return Ok(()),
                Err(error) => {
                    let lock_conflict = matches!(
                        &error,
                        SinkError::Query {
                            code: 1213 | 1205,
                            ..
                        }
                    );
                    self.rollback().await;
                    // A single-transaction lane loses earlier chunks on rollback: only the
                    // caller (re-reading the window) can retry it.
                    if lock_conflict && !self.single && alone && attempt < LOCK_RETRIES {
                        attempt += 1;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    async fn try_flush(
        &mut self,
        rows: &[Vec<Cell>],
        state: Option<&[SqlStatement]>,
        commit: bool,
    ) -> Result<(), SinkError> {
        self.begin().await?;
        if !rows.is_empty() {
            self.insert_rows(rows).await?;
        }
        if let Some(state) = state {
            for statement in state {
                self.sink.expect_fits("state", statement).await?;
                exec_statement(&mut self.conn, statement)
                    .await
                    .map_err(|error| self.sink.query_error("state", &error))?;
            }
        }
        if commit {
            self.commit().await?;
        }
        Ok(())
    }

    /// `LOAD DATA` of already encoded pieces.
    async fn load(&mut self, sql: &str, pieces: Vec<Bytes>) -> Result<(), LoadError> {
        self.conn.set_infile_handler(async move {
            Ok(futures::stream::iter(pieces.into_iter().map(Ok)).boxed())
        });
        self.conn.query_drop(sql).await.map_err(LoadError::Mysql)?;
        self.check_warnings().await
    }

    /// `LOAD DATA LOCAL` reports bad values and duplicates as warnings, not errors.
    async fn check_warnings(&mut self) -> Result<(), LoadError> {
        // A staged load's count is the stage's; the merge counts the table's. Rows of one
        // chunk that replaced each other in the stage met a key already written.
        let affected = self.conn.affected_rows();
        let loaded = written(self.statements.mode, 0, affected, &self.conn.info());
        if self.statements.staging.is_none() {
            self.stats.affected += affected;
            self.count(loaded);
        } else {
            let collapsed = written(WriteMode::Replace, 0, affected, &self.conn.info()).replaced;
            self.count(Written {
                rows: collapsed,
                replaced: collapsed,
            });
        }
        if self.conn.get_warnings() == 0 {
            return Ok(());
        }
        let warnings: Vec<(String, u16, String)> = self
            .conn
            .query("SHOW WARNINGS")
            .await
            .map_err(LoadError::Mysql)?;
        // `ignore` mode expects duplicate-key notes; anything else changed the data.
        let expected = |code: u16| self.statements.mode == WriteMode::Ignore && code == 1062;
        match warnings.into_iter().find(|w| !expected(w.1)) {
            Some((_, code, message)) => Err(LoadError::Rejected { code, message }),
            None => Ok(()),
        }
    }

    async fn insert_rows(&mut self, rows: &[Vec<Cell>]) -> Result<(), SinkError> {
        let per = self.statements.rows_per_statement;
        for part in rows.chunks(per) {
            let sql = if part.len() == per {
                self.statements.full.clone()
            } else {
                statement_sql(&self.statements.spec, part.len())?
            };
            let mut params = Vec::with_capacity(part.len() * self.statements.width);
            for row in part {
                params.extend(row.iter().map(to_sql_value));
            }
            self.conn
                .exec_drop(sql, Params::Positional(params))
                .await
                .map_err(|error| self.sink.query_error(&self.statements.table, &error))?;
            let affected = self.conn.affected_rows();
            self.stats.affected += affected;
            let wrote = written(
                self.statements.mode,
                part.len() as u64,
                affected,
                &self.conn.info(),
            );
            self.count(wrote);
        }
        Ok(())
    }
}

fn clone_statements(s: &Statements) -> Statements {
    Statements {
        table: s.table.clone(),
        load: s.load.clone(),
        width: s.width,
        rows_per_statement: s.rows_per_statement,
        full: s.full.clone(),
        spec: s.spec.clone(),
        mode: s.mode,
        staging: s.staging.clone(),
    }
}

enum LoadError {
    Mysql(mysql_async::Error),
    Rejected { code: u16, message: String },
}

impl MysqlSink {
    fn load_error(&self, table: &str, error: LoadError) -> SinkError {
        match error {
            LoadError::Mysql(error) => self.query_error(table, &error),
            LoadError::Rejected { code, message } => SinkError::Rejected {
                table: table.to_owned(),
                code,
                message,
            },
        }
    }
}

/// Whether the server (or its configuration) refuses `LOAD DATA LOCAL`.
fn refuses_infile(error: &LoadError) -> bool {
    // 1148: command not allowed; 3948: local infile disabled (MySQL 8);
    // 4166: the client lacks the capability (MariaDB).
    matches!(error, LoadError::Mysql(mysql_async::Error::Server(e)) if matches!(e.code, 1148 | 3948 | 4166))
}

/// Turns a buffered `LOAD DATA` chunk back into rows of text cells, for the one chunk that
/// was encoded before the server refused local infile.
pub(super) fn decode_chunk(text: &[u8], spec: &TableSpec) -> Result<Vec<Vec<Cell>>, SinkError> {
    let bad = || SinkError::Spec {
        table: spec.display.clone(),
        reason: "buffered rows are not valid UTF-8".into(),
    };
    let mut rows = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        let mut row = Vec::new();
        for field in line.split(|&b| b == b'\t') {
            if field == b"\\N" {
                row.push(Cell::Null);
                continue;
            }
            let mut out = Vec::with_capacity(field.len());
            let mut escaped = false;
            for &b in field {
                if escaped {
                    out.push(match b {
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'0' => b'\0',
                        other => other,
                    });
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else {
                    out.push(b);
                }
            }
            row.push(Cell::Text(
                String::from_utf8(out).map_err(|_| bad())?.into(),
            ));
        }
        rows.push(row);
    }
    Ok(rows)
}
