//! The window writer: one window's rows spread over lanes (connections) and committed with
//! the caller's state statements; see the parent module for the transaction layout.

use std::hash::{BuildHasher as _, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::collation::KeyCompare;
use super::key_lanes::{self, KeyLanes};
use super::lane::LaneWorker;
use super::sql::{load_data_sql, statement_sql, Staging};
use super::store::closing_statements;
use super::{exec_statement, MysqlSink, SinkError, SqlStatement, TableSpec};
use crate::plan::WriteMode;
use crate::sink::xa::{Prepared, WindowXa};
use crate::state::WindowClose;
use crate::transform::Cell;

/// Most placeholders one prepared statement may carry.
const MAX_PLACEHOLDERS: usize = 65_535;
/// Rows per multi-row statement.
const STATEMENT_ROWS: usize = 1000;
/// A statement-method lane flushes (one transaction) once it buffers this many rows.
pub(super) const CHUNK_ROWS: usize = 20_000;
/// Batches waiting for a lane. Lanes are fed in turn, so one lane pausing (ending a load,
/// committing) stalls the others once its queue is full. With 2, 2-lane `insert` ran at
/// 0.78x of 2-connection LOAD DATA in the write benchmark; with 8, 0.89x (one run each).
const LANE_BATCHES: usize = 8;
/// Deadlocks and lock-wait timeouts of a chunk are retried this many times in place.
pub(super) const LOCK_RETRIES: usize = 3;

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
    /// Rows the server stored, from its affected rows and info string: new rows plus rows
    /// that replaced or updated a row with the same key. Duplicates `ignore` skipped and
    /// upserts that changed nothing are not counted.
    pub written: u64,
    /// Of `written`, the rows that replaced or updated a different row with the same key
    /// (a record updated at the vendor, or keys the table's collation takes for one). The
    /// server does not count a row replaced by an identical one (MariaDB's `Deleted`).
    pub replaced: u64,
    /// Transactions committed, the final one included.
    pub transactions: u64,
}

impl std::ops::AddAssign for WriteStats {
    fn add_assign(&mut self, other: WriteStats) {
        self.rows += other.rows;
        self.affected += other.affected;
        self.written += other.written;
        self.replaced += other.replaced;
        self.transactions += other.transactions;
    }
}

/// Rows of one window already committed (as the server counted them), readable after the
/// window failed: what reached the table although the window did not commit.
#[derive(Debug, Clone, Default)]
pub struct CommittedRows(Arc<AtomicU64>);

impl CommittedRows {
    /// The rows committed so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// SQL texts shared by the lanes of one window.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) table: String,
    pub(super) load: Option<String>,
    /// Bound cells per row.
    pub(super) width: usize,
    /// Rows per full multi-row statement and its text.
    pub(super) rows_per_statement: usize,
    pub(super) full: String,
    pub(super) spec: TableSpec,
    pub(super) mode: WriteMode,
    /// Upserts through `LOAD DATA`: the staging statements.
    pub(super) staging: Option<Staging>,
}

pub(super) enum LaneMessage {
    Rows(Vec<Vec<Cell>>),
    /// Write everything left without committing (lane 0 also these state statements in its
    /// last transaction), then answer on the sender and wait for `Commit`.
    Finish(Option<Vec<SqlStatement>>, oneshot::Sender<()>),
    /// Commit (an XA lane: prepare) what `Finish` wrote.
    Commit,
}

pub(super) struct Lane {
    sender: mpsc::Sender<LaneMessage>,
    task: JoinHandle<Result<LaneDone, SinkError>>,
}

/// What a lane hands back when it finished without error.
pub(super) struct LaneDone {
    pub(super) stats: WriteStats,
    /// An XA lane's prepared transaction, waiting for the window's decision.
    pub(super) prepared: Option<Prepared>,
}

/// Writes one window; see the module doc for the transaction layout. Dropping it without
/// [`commit`](WindowWriter::commit) rolls back whatever is not yet committed.
pub struct WindowWriter {
    sink: MysqlSink,
    table: String,
    /// Read by the tests, as is `sent`.
    pub(super) lanes: Vec<Lane>,
    key_cells: Vec<usize>,
    width: usize,
    /// Set when an `insert` window is written on several connections.
    xa: Option<WindowXa>,
    /// Lane 0's server session, to learn whether its commit happened after an error.
    first_session: u32,
    /// Rows handed to each lane.
    pub(super) sent: Vec<u64>,
    /// Lane of the next batch (`insert` on several connections: see `route_runs`).
    next_lane: usize,
    /// `insert` on several connections: the lane of each key hash written in this window.
    lane_of_key: KeyLanes,
    /// Keys hash without their trailing spaces (a PAD SPACE key collation).
    trim_keys: bool,
    /// Rows committed so far by any lane.
    committed: CommittedRows,
}

impl WindowWriter {
    pub(super) async fn open(
        sink: MysqlSink,
        table: &TableSpec,
        options: WriterOptions,
    ) -> Result<WindowWriter, SinkError> {
        let table = &table.for_server(sink.server().upsert_syntax());
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
        // Rows go to lanes by a hash of their key's exact text: under a collation that
        // takes different texts for one key, two versions would land on two lanes and the
        // older could commit last. One lane keeps them in order.
        let compare = if wanted > 1 && table.has_key() {
            sink.key_compare(table).await?
        } else {
            KeyCompare::Exact
        };
        if compare == KeyCompare::Folding {
            wanted = 1;
        }
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
        let committed = CommittedRows::default();
        for lane in 0..count {
            let conn = sink.dedicated_connection().await?;
            let mut worker = LaneWorker::new(
                sink.clone(),
                Arc::clone(&statements),
                conn,
                single,
                Arc::clone(&committed.0),
            );
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
            trim_keys: compare == KeyCompare::PadSpace,
            committed,
        })
    }

    /// What this window's lanes committed so far; still readable after the window failed.
    pub fn committed_rows(&self) -> CommittedRows {
        self.committed.clone()
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
            hash_cell(&row[i], self.trim_keys, &mut hasher);
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

    /// Commits the window: flushes every lane, then writes the last rows together with
    /// `close` (rejects, ledger row, cursor) in one transaction (design guarantee 3).
    ///
    /// # Errors
    /// The first lane's failure. Then nothing of the last transaction (and so no state) is
    /// committed, and in an `insert` window written over several connections nothing at all.
    pub async fn commit_window(self, close: &WindowClose) -> Result<WriteStats, SinkError> {
        let upsert = self.sink.server().upsert_syntax();
        self.commit(closing_statements(close, upsert)).await
    }

    /// Flushes every lane, then commits the last rows together with `state` in one
    /// transaction: the other lanes one after another, each writing its rest and then
    /// committing (or preparing, in an XA window), then lane 0 with `state`. On error no
    /// state is committed, and in an XA window nothing at all; what lanes committed before
    /// is in [`committed_rows`](WindowWriter::committed_rows).
    pub(in crate::sink) async fn commit(
        mut self,
        state: Vec<SqlStatement>,
    ) -> Result<WriteStats, SinkError> {
        let mut total = WriteStats::default();
        let mut lanes = std::mem::take(&mut self.lanes).into_iter();
        let first = lanes.next();
        let mut prepared = Vec::new();
        // Lane 0 commits last, after every other lane's rows are durable (or prepared), so
        // the state never commits without them, and lane 0's commit decides an XA window.
        // Each lane commits as soon as it has written its rest, never waiting for another
        // lane: a lane holding its locks until the others are ready deadlocked with a lane
        // whose last LOAD DATA ... REPLACE waited on those locks (InnoDB next-key locks
        // span neighbouring keys of other lanes), until the lock wait timeout, forever.
        for lane in lanes.by_ref() {
            match finish_lane(&self.table, lane, None).await {
                Ok(done) => {
                    total += done.stats;
                    prepared.extend(done.prepared);
                }
                Err(error) => {
                    abandon(lanes.chain(first)).await;
                    MysqlSink::rollback_prepared(prepared).await;
                    return Err(error);
                }
            }
        }
        let Some(first) = first else {
            return Ok(total);
        };
        let result = finish_lane(&self.table, first, Some(state)).await;
        let Some(window) = self.xa.take() else {
            let done = result?;
            total += done.stats;
            return Ok(total);
        };
        match result {
            Ok(done) => {
                total += done.stats;
                self.sink.commit_prepared(&window, prepared).await;
                self.committed
                    .0
                    .fetch_add(total.written - done.stats.written, Ordering::Relaxed);
                Ok(total)
            }
            // Lane 0's answer may be lost after its commit: its decision row tells.
            Err(error) => match self.sink.decided_commit(&window, self.first_session).await {
                Ok(Some(true)) => {
                    tracing::warn!(table = %self.table,
                        "the window committed though its commit reported `{error}`");
                    self.sink.commit_prepared(&window, prepared).await;
                    total.rows += self.sent[0];
                    // Lane 0's own count went with its answer: its rows were all new
                    // (`insert`).
                    total.written += self.sent[0];
                    total.transactions += 1;
                    self.committed.0.store(total.written, Ordering::Relaxed);
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

/// Rolls back lanes that have not committed, and waits until they did, so that no open
/// transaction of the window outlives its failure.
async fn abandon(lanes: impl IntoIterator<Item = Lane>) {
    for lane in lanes {
        drop(lane.sender);
        let _ = lane.task.await;
    }
}

/// A lane's end, once it was told to commit (or failed).
/// Has `lane` write its rest (and `state`, for lane 0), then commit it (an XA lane:
/// prepare), and returns what it did.
async fn finish_lane(
    table: &str,
    lane: Lane,
    state: Option<Vec<SqlStatement>>,
) -> Result<LaneDone, SinkError> {
    let (ready, answer) = oneshot::channel();
    // A send error means the lane already stopped; its result below says why.
    let _ = lane.sender.send(LaneMessage::Finish(state, ready)).await;
    if answer.await.is_err() {
        // The lane failed before it was ready: its task holds why.
        return Err(lane_result(table, lane)
            .await
            .err()
            .unwrap_or(SinkError::WriterGone {
                table: table.to_owned(),
            }));
    }
    let _ = lane.sender.send(LaneMessage::Commit).await;
    lane_result(table, lane).await
}

async fn lane_result(table: &str, lane: Lane) -> Result<LaneDone, SinkError> {
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
pub(super) fn key_hasher() -> foldhash::fast::FoldHasher<'static> {
    foldhash::fast::FixedState::with_seed(KEY_SEED).build_hasher()
}

/// Any fixed value does: "qsync" in ASCII.
const KEY_SEED: u64 = 0x71_73_79_6e_63;

/// Hashes one key cell as the key column compares it: text byte for byte, without its
/// trailing spaces when `trim` (a PAD SPACE collation). Linguistic collations never get
/// here: their windows have one lane (`WindowWriter::open`).
pub(super) fn hash_cell(cell: &Cell, trim: bool, hasher: &mut impl Hasher) {
    std::mem::discriminant(cell).hash(hasher);
    match cell {
        Cell::Null => {}
        Cell::Int(n) => n.hash(hasher),
        Cell::Double(x) => x.to_bits().hash(hasher),
        // One column's decimals all carry its scale, so equal values have equal text.
        Cell::Decimal(d) => hasher.write(d.as_bytes()),
        Cell::Text(s) | Cell::Json(s) if trim => hasher.write(s.trim_end_matches(' ').as_bytes()),
        Cell::Text(s) | Cell::Json(s) => hasher.write(s.as_bytes()),
        Cell::Date(d) => d.hash(hasher),
        Cell::DateTime(t) => t.hash(hasher),
        Cell::Bool(b) => b.hash(hasher),
    }
}
