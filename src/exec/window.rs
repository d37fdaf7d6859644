//! The window loop of a run: windows fetched ahead into bounded channels, each window's
//! records streamed through the transformer into one window writer, re-read in the same
//! transaction when records move while paging or the count comes up short, and committed
//! with its state (ledger row, rejects, the mark's move) as one transaction.

use std::collections::VecDeque;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::connectors::wire;
use crate::plan::{OnDuplicateKey, OnError, Plan, ValueOrder};
use crate::sink::{
    CommittedRows, MysqlSink, SinkError, StateStore, TableSpec, WindowWriter, WriterOptions,
};
use crate::source::{
    fetch_window, HttpSource, PageRecords, SourceError, Window, WindowFetch, WindowRequest,
};
use crate::state::{Reject, WindowClose, WindowRecord, WindowStatus};
use crate::template::{Renderer, RequestContext};
use crate::transform::Transformer;

use super::collisions::{self, KeyOwners};
use super::dedup::{fingerprint, is_newest, key_identity, Streamed};
use super::{Progress, ProgressReport, RunErrorKind, RunSummary};

/// Extra reads of a window within one transaction when records move while paging.
const EXTRA_PASSES: u32 = 3;
/// Windows fetched ahead of the one being written.
const PREFETCH_WINDOWS: usize = 2;
/// Pages buffered between a window's fetcher and the writer. Decoded pages are large (a
/// 100-record after-sales page is ~0.5 MB of `Value`s) and the buffers of the windows
/// fetched ahead fill while the writer commits: 16 made the peak RSS swing by ~35 MiB
/// from run to run; 8 cost the fetch bench nothing (1.026 either way).
const PAGE_BUFFER: usize = 8;
/// Reads of one window before a short count or a lost connection fails the run.
const WINDOW_ATTEMPTS: u32 = 3;
/// Pause before re-reading a window, times the attempt number.
const REREAD_PAUSE: Duration = Duration::from_millis(300);

pub(super) fn label(window: Option<Window>) -> String {
    window.map_or_else(|| "(no window)".to_owned(), |w| w.to_string())
}

/// How the window loop ended, when no window failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// Every window committed.
    Finished,
    /// Told to stop: the windows after the last committed one were not read.
    Stopped,
}

/// The running totals of a run.
#[derive(Debug, Default)]
pub(super) struct Tally {
    windows: u64,
    /// The end of the last committed window: where the run's committed range ends.
    committed_end: Option<NaiveDateTime>,
    pages: u64,
    records: u64,
    rows: u64,
    replaced: u64,
    rejects: u64,
    rereads: u64,
    collisions: u64,
    colliding_keys: Vec<String>,
}

/// A window being fetched in the background.
struct FetchTask {
    window: Option<Window>,
    pages: mpsc::Receiver<PageRecords>,
    handle: JoinHandle<Result<WindowFetch, SourceError>>,
}

/// How one read of a window ended, when it did not commit.
enum WindowFailure {
    /// Worth reading the window again.
    Retry(RunErrorKind),
    Fatal(RunErrorKind),
}

/// What a committed window did.
struct Committed {
    fetch: WindowFetch,
    rows: u64,
    replaced: u64,
    rejects: u64,
    collisions: KeyOwners,
}

pub(super) struct Engine {
    pub(super) plan: Arc<Plan>,
    pub(super) source: Arc<HttpSource>,
    pub(super) renderer: Arc<Renderer>,
    pub(super) transformer: Transformer,
    pub(super) sink: MysqlSink,
    pub(super) store: StateStore,
    pub(super) table: TableSpec,
    pub(super) hash: String,
    pub(super) now: NaiveDateTime,
    /// How record values compare: `modified`, keyset cursors.
    pub(super) order: ValueOrder,
    /// Positions of the target's key columns in a row: what tells records apart when the
    /// source names no `id`.
    pub(super) key_cells: Vec<usize>,
    /// The row's column names, to name colliding keys.
    pub(super) column_names: Vec<String>,
    pub(super) env: std::collections::BTreeMap<String, String>,
    /// The source connection's declared secrets, for `{{ secrets.NAME }}`.
    pub(super) declared_secrets: std::collections::BTreeMap<String, String>,
    /// The stored mark, advanced as windows commit.
    pub(super) mark: Option<NaiveDateTime>,
    pub(super) move_mark: bool,
    pub(super) tally: Tally,
}

impl Engine {
    pub(super) fn summary(&self, range: Option<Window>, took: Duration) -> RunSummary {
        let stats = self.source.stats();
        RunSummary {
            spec: self.plan.name.clone(),
            range,
            windows: self.tally.windows,
            pages: self.tally.pages,
            records: self.tally.records,
            rows_written: self.tally.rows,
            key_collisions: self.tally.collisions,
            colliding_keys: self.tally.colliding_keys.clone(),
            rows_replaced: self.tally.replaced,
            rejects: self.tally.rejects,
            retries: stats.retries.load(AtomicOrdering::Relaxed) + self.tally.rereads,
            throttled: stats.throttled.load(AtomicOrdering::Relaxed),
            duration: took,
            high_water_mark: self.mark,
        }
    }

    /// The part of `range` the run committed: from its start to the end of the last
    /// committed window (windows commit in order); `None` when no window committed.
    pub(super) fn committed(&self, range: Option<Window>) -> Option<Window> {
        let range = range?;
        let end = self.tally.committed_end?;
        Some(Window {
            start: range.start,
            end,
        })
    }

    fn spawn_fetch(&self, window: Option<Window>) -> FetchTask {
        let (sender, pages) = mpsc::channel(PAGE_BUFFER);
        let source = Arc::clone(&self.source);
        let plan = Arc::clone(&self.plan);
        let renderer = Arc::clone(&self.renderer);
        let order = self.order;
        let context = RequestContext {
            now: self.now,
            window_start: window.map(|w| w.start),
            window_end: window.map(|w| w.end),
            page: None,
            page_size: None,
            offset: None,
            cursor: None,
            env: self.env.clone(),
            secrets: self.declared_secrets.clone(),
        };
        let handle = tokio::spawn(async move {
            let request = WindowRequest {
                source: &source,
                plan: &plan.source,
                renderer: &renderer,
                context,
                spec: &plan.name,
                window: label(window),
                order,
            };
            fetch_window(&request, &sender).await
        });
        FetchTask {
            window,
            pages,
            handle,
        }
    }

    pub(super) async fn run_windows(
        &mut self,
        windows: Vec<Option<Window>>,
        shutdown: Option<tokio::sync::watch::Receiver<bool>>,
        progress: Option<&dyn ProgressReport>,
        started: Instant,
    ) -> Result<Ended, RunErrorKind> {
        let total = windows.len() as u64;
        let stop_requested = || shutdown.as_ref().is_some_and(|rx| *rx.borrow());
        let mut upcoming = windows.into_iter();
        let mut ahead: VecDeque<FetchTask> = VecDeque::new();
        loop {
            while ahead.len() < PREFETCH_WINDOWS {
                match upcoming.next() {
                    Some(window) => ahead.push_back(self.spawn_fetch(window)),
                    None => break,
                }
            }
            let Some(task) = ahead.pop_front() else {
                return Ok(Ended::Finished);
            };
            if stop_requested() {
                task.handle.abort();
                for task in ahead {
                    task.handle.abort();
                }
                tracing::info!(spec = %self.plan.name, "stopping: shutdown requested");
                return Ok(Ended::Stopped);
            }
            let window = task.window;
            if let Err(error) = self.sync_window(task).await {
                for task in ahead {
                    task.handle.abort();
                }
                return Err(error);
            }
            if let Some(report) = progress {
                report.window(&Progress {
                    spec: self.plan.name.clone(),
                    window,
                    windows_done: self.tally.windows,
                    windows_total: total,
                    records: self.tally.records,
                    rows_written: self.tally.rows,
                    rejects: self.tally.rejects,
                    elapsed: started.elapsed(),
                });
            }
            tracing::info!(spec = %self.plan.name, window = %label(window), "window committed");
        }
    }

    /// Reads, writes and commits one window, re-reading it after a short count or a lost
    /// MySQL connection.
    async fn sync_window(&mut self, first: FetchTask) -> Result<(), RunErrorKind> {
        let window = first.window;
        let mut task = Some(first);
        let mut attempt = 0;
        // Rows that failed reads of this window committed before they failed (chunks of a
        // long window commit as they go): they reached the table.
        let mut partial = 0;
        loop {
            attempt += 1;
            let current = task.take().unwrap_or_else(|| self.spawn_fetch(window));
            let mut committed_rows = CommittedRows::default();
            let result = self
                .write_window(current, attempt, &mut committed_rows)
                .await;
            if result.is_err() {
                partial += committed_rows.get();
                self.tally.rows += committed_rows.get();
            }
            match result {
                Ok(committed) => {
                    self.tally.windows += 1;
                    self.tally.pages += committed.fetch.pages;
                    self.tally.records += committed.fetch.records;
                    self.tally.rows += committed.rows;
                    self.tally.replaced += committed.replaced;
                    self.tally.rejects += committed.rejects;
                    self.tally_collisions(window, &committed.collisions);
                    if let Some(w) = window {
                        self.tally.committed_end = Some(w.end);
                    }
                    if self.move_mark {
                        if let Some(w) = window {
                            if self.mark.is_none_or(|m| w.end > m) {
                                self.mark = Some(w.end);
                            }
                        }
                    }
                    return Ok(());
                }
                Err(WindowFailure::Retry(kind)) if attempt < WINDOW_ATTEMPTS => {
                    self.tally.rereads += 1;
                    tracing::warn!(spec = %self.plan.name, window = %label(window), attempt,
                        "reading the window again: {kind}");
                    // A restarting or failing-over server needs a moment.
                    tokio::time::sleep(REREAD_PAUSE * attempt).await;
                }
                Err(WindowFailure::Retry(kind) | WindowFailure::Fatal(kind)) => {
                    let ledger =
                        self.ledger(window, WindowStatus::Failed, attempt, None, partial, 0);
                    if let Err(e) = self.store.record_window(&ledger).await {
                        tracing::warn!(spec = %self.plan.name, "cannot record the failed window: {e}");
                    }
                    return Err(kind);
                }
            }
        }
    }

    fn ledger(
        &self,
        window: Option<Window>,
        status: WindowStatus,
        attempts: u32,
        fetch: Option<&WindowFetch>,
        written: u64,
        rejects: u64,
    ) -> WindowRecord {
        WindowRecord {
            spec: self.plan.name.clone(),
            start: window.map_or(self.now, |w| w.start),
            end: window.map_or(self.now, |w| w.end),
            pages: fetch.map_or(0, |f| f.pages),
            reported_total: fetch.and_then(WindowFetch::reported_total),
            fetched: fetch.map_or(0, |f| f.records),
            written,
            rejects,
            status,
            attempts,
        }
    }

    /// Whether reads can be told apart record by record: by `id`, else by the target key.
    fn identified(&self) -> bool {
        self.plan.source.id.is_some() || !self.key_cells.is_empty()
    }

    /// Counts a committed window's key collisions into the run and logs them.
    fn tally_collisions(&mut self, window: Option<Window>, collided: &KeyOwners) {
        if collided.count == 0 {
            return;
        }
        tracing::warn!(spec = %self.plan.name, window = %label(window),
            "{} row(s) shared a key with another row of the window and one of each was kept; \
             first: {}", collided.count, collided.first.join("; "));
        self.tally.collisions += collided.count;
        for key in &collided.first {
            if self.tally.colliding_keys.len() < collisions::SHOWN {
                self.tally.colliding_keys.push(key.clone());
            }
        }
    }

    fn sink_failure(&self, window: Option<Window>, source: SinkError) -> WindowFailure {
        let source = self.table.explain(source);
        let retriable = source.is_retriable();
        let kind = RunErrorKind::Sink {
            spec: self.plan.name.clone(),
            window: label(window),
            source,
        };
        if retriable {
            WindowFailure::Retry(kind)
        } else {
            WindowFailure::Fatal(kind)
        }
    }

    /// One read of a window: stream its records into a window writer, check the count,
    /// commit rows and state together.
    async fn write_window(
        &self,
        mut task: FetchTask,
        attempt: u32,
        committed_rows: &mut CommittedRows,
    ) -> Result<Committed, WindowFailure> {
        let window = task.window;
        let running = self.ledger(window, WindowStatus::Running, attempt, None, 0, 0);
        if let Err(e) = self.store.record_window(&running).await {
            task.handle.abort();
            return Err(self.sink_failure(window, e));
        }
        let mut writer = match self
            .sink
            .window(&self.table, WriterOptions::default())
            .await
        {
            Ok(writer) => writer,
            Err(e) => {
                task.handle.abort();
                return Err(self.sink_failure(window, e));
            }
        };
        *committed_rows = writer.committed_rows();
        let mut acc = Streamed::default();
        let mut fetch = match self.read_pass(&mut task, &mut writer, &mut acc).await {
            Ok(fetch) => fetch,
            Err(failure) => {
                task.handle.abort();
                writer.abort().await;
                return Err(failure);
            }
        };
        // Records that move while paging (modified during the run) shift others onto pages
        // already read: a read can come up short of the vendor's total, a different record
        // each time. Read the window again into the same transaction, so the reads add up:
        // ids already written are skipped, records that slipped between pages are caught.
        // What left the window is read by the next run (overlap) and the remedy run.
        let mut last_moved = fetch.total_moved();
        let mut last_reported = fetch.reported_total();
        let mut last_records = fetch.records;
        let mut extra_passes = 0;
        let identified = self.identified();
        loop {
            let fetched = acc.distinct().unwrap_or(last_records);
            let short = last_reported.is_some_and(|reported| fetched < reported);
            // Without ids or keys a second pass cannot be told from the first: only a
            // moving total justifies one; a short count re-reads from scratch (below).
            let again = last_moved || (short && identified);
            if !again || extra_passes >= EXTRA_PASSES {
                break;
            }
            extra_passes += 1;
            tracing::warn!(spec = %self.plan.name, window = %label(window),
                "reading the window again in the same transaction: {} (totals {:?}, {} distinct so far)",
                if last_moved { "the vendor's total changed while paging" } else { "fewer records than the vendor reported" },
                fetch.totals, fetched);
            let mut pass = self.spawn_fetch(window);
            match self.read_pass(&mut pass, &mut writer, &mut acc).await {
                Ok(next) => {
                    last_moved = next.total_moved();
                    last_reported = next.reported_total();
                    last_records = next.records;
                    fetch.pages += next.pages;
                    fetch.records += next.records;
                    fetch.totals.extend(next.totals);
                }
                Err(failure) => {
                    pass.handle.abort();
                    writer.abort().await;
                    return Err(failure);
                }
            }
        }
        if let (false, Some(reported)) = (last_moved, last_reported) {
            // Totals count distinct records: compare ids (or target keys) when qsync has
            // them. More is fine (a record moved into the window while it was read); fewer is
            // not. A record that moved to a later page while paging is served twice and
            // another never: the raw count matches the total, the distinct count does not.
            let fetched = acc.distinct().unwrap_or(last_records);
            let incomplete = if identified {
                fetched < reported
            } else {
                fetched != reported
            };
            if incomplete {
                writer.abort().await;
                return Err(WindowFailure::Retry(RunErrorKind::Incomplete {
                    spec: self.plan.name.clone(),
                    window: label(window),
                    reported,
                    fetched,
                    attempts: attempt,
                }));
            }
        }
        let Streamed {
            rows,
            rejects,
            collisions,
            ..
        } = acc;
        let reject_count = rejects.len() as u64;
        let high_water = match (self.move_mark, window) {
            (true, Some(w)) if self.mark.is_none_or(|m| w.end > m) => Some(w.end),
            _ => None,
        };
        let close = WindowClose {
            ledger: self.ledger(
                window,
                WindowStatus::Done,
                attempt,
                Some(&fetch),
                rows,
                reject_count,
            ),
            rejects,
            high_water,
            spec_hash: self.hash.clone(),
        };
        match writer.commit_window(&close).await {
            Ok(stats) => Ok(Committed {
                fetch,
                rows: stats.written,
                replaced: stats.replaced,
                rejects: reject_count,
                collisions,
            }),
            Err(e) => Err(self.sink_failure(window, e)),
        }
    }

    /// One read of the window, then its fetch result: records → rows → batches into
    /// `writer`, counted in `acc`.
    async fn read_pass(
        &self,
        task: &mut FetchTask,
        writer: &mut WindowWriter,
        acc: &mut Streamed,
    ) -> Result<WindowFetch, WindowFailure> {
        self.stream(task, writer, acc).await?;
        match (&mut task.handle).await {
            Ok(Ok(fetch)) => Ok(fetch),
            Ok(Err(source)) => Err(WindowFailure::Fatal(RunErrorKind::Source(source))),
            Err(join) => Err(WindowFailure::Fatal(RunErrorKind::Task {
                spec: self.plan.name.clone(),
                window: label(task.window),
                message: join.to_string(),
            })),
        }
    }

    /// Records → rows → batches.
    async fn stream(
        &self,
        task: &mut FetchTask,
        writer: &mut WindowWriter,
        acc: &mut Streamed,
    ) -> Result<(), WindowFailure> {
        let window = task.window;
        let batch = self.plan.target.batch.max(1);
        let mut rows = Vec::with_capacity(batch);
        let by_key = self.plan.source.id.is_none() && !self.key_cells.is_empty();
        let Streamed {
            rows: written,
            rejects,
            seen,
            keys,
            collisions,
        } = acc;
        while let Some(page) = task.pages.recv().await {
            for record in page.records {
                if !is_newest(&self.plan.source, self.order, &record, seen) {
                    continue;
                }
                let before = rows.len();
                let converted = self.transformer.rows(&record, &mut rows);
                if by_key {
                    // No `id`: the rows' target keys tell records apart. A record read again
                    // unchanged is not written (or rejected) twice.
                    let fingerprint = fingerprint(&record);
                    let identity = match converted {
                        Ok(n) if n > 0 => key_identity(&rows[before..], &self.key_cells),
                        _ => fingerprint,
                    };
                    if keys.insert(identity, fingerprint) == Some(fingerprint) {
                        rows.truncate(before);
                        continue;
                    }
                }
                if matches!(converted, Ok(n) if n > 0) && !self.key_cells.is_empty() {
                    let made = &rows[before..];
                    let owner = match self.plan.source.id.as_ref().and_then(|p| p.get(&record)) {
                        Some(id) if !id.is_null() => collisions::owner_of(&wire::scalar_text(id)),
                        _ if by_key => key_identity(made, &self.key_cells),
                        _ => fingerprint(&record),
                    };
                    let found = collisions.note(owner, made, &self.key_cells, &self.column_names);
                    if let (Some(key), OnDuplicateKey::Fail) = (found, self.plan.on_duplicate_key) {
                        return Err(WindowFailure::Fatal(RunErrorKind::KeyCollision {
                            spec: self.plan.name.clone(),
                            window: label(window),
                            key,
                        }));
                    }
                }
                if let Err(error) = converted {
                    let raw = record.to_string();
                    if self.plan.on_error == OnError::Fail {
                        return Err(WindowFailure::Fatal(RunErrorKind::Rejected {
                            spec: self.plan.name.clone(),
                            window: label(window),
                            record: wire::snippet(raw.as_bytes()),
                            reason: error.to_string(),
                        }));
                    }
                    rejects.push(Reject::new(
                        &self.plan.name,
                        window.map(|w| (w.start, w.end)),
                        &raw,
                        &error.to_string(),
                    ));
                }
                if rows.len() >= batch {
                    let full = std::mem::replace(&mut rows, Vec::with_capacity(batch));
                    *written += full.len() as u64;
                    writer
                        .write_batch(full)
                        .await
                        .map_err(|e| self.sink_failure(window, e))?;
                }
            }
        }
        if !rows.is_empty() {
            *written += rows.len() as u64;
            writer
                .write_batch(rows)
                .await
                .map_err(|e| self.sink_failure(window, e))?;
        }
        Ok(())
    }
}
