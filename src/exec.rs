//! Runs a compiled plan end to end: windows → pages → records → rows → batches → MySQL,
//! with the high-water mark committed in the same transaction as each window's last rows.
//!
//! Owns the order of a run and what it promises (DESIGN.md guarantees 1–4):
//! - **Nothing missed.** Windows commit in order and the mark advances to a window's end
//!   only in the transaction that writes its last batch. A window whose vendor-reported
//!   total does not match the distinct records fetched is re-read. When the total changed
//!   *while* paging (records modified meanwhile shift others onto pages already read), the
//!   window is read a second time into the same transaction; records are de-duplicated by
//!   id (latest version wins), and what left the window is caught by the next run's
//!   overlap and by the remedy run.
//! - **Nothing duplicated.** Rows are written by key through the sink; a window re-read
//!   after a lost MySQL connection or a short count rewrites the same rows.
//! - **Exactly-once effect across crashes.** A crash before a window's commit leaves the
//!   mark where it was; the next run re-reads that window.
//! - **Bad data is kept.** Records that fail conversion go to `_qsync_rejects` (in the
//!   window's transaction) with their raw JSON, unless the spec says `@on_error fail`.
//!
//! Windows are fetched ahead of the writer (a bounded number, each into a bounded channel),
//! so the vendor's rate limit, not the writer, sets the pace, and memory stays bounded.
//!
//! It does not own HTTP details (`source`), vendor protocols (`connectors`), row building
//! (`transform`), SQL (`sink`, which stores the state tables too), what the state rows mean
//! or how a lease is held (`state`).

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::IsTerminal as _;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike as _, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use crate::source::Limiters;

use crate::config::{LoadedProfile, ProfileError};
use crate::connectors::{self, wire};
use crate::plan::{time, OnError, Plan, SourcePlan, ValueOrder};
use crate::sink::{MysqlSink, SinkError, StateStore, TableSpec, WindowWriter, WriterOptions};
use crate::source::window::RangeError;
use crate::source::{
    fetch_window, resolve_range, split, HttpSource, PageRecords, RangeInputs, SourceError,
    SourceOptions, Window, WindowFetch, WindowRequest,
};
use crate::state::{
    hold_lease, HoldOptions, Holding, Reject, RunOutcome, RunRecord, WindowClose, WindowRecord,
    WindowStatus,
};
use crate::template::{Renderer, RequestContext};
use crate::transform::{RunClock, Transformer};

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

/// How to run a plan.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    /// Start from the window's `initial`, ignoring the stored mark.
    pub full: bool,
    /// Re-read the remedy lookback before now.
    pub remedy: bool,
    /// The run clock in the source time zone; `None` = the system clock.
    pub now: Option<NaiveDateTime>,
    /// Show a progress bar (only on a terminal).
    pub progress: bool,
    /// `true` = stop after the current window's batch commits.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// Shared per-connection rate limiters (serve shares one across specs).
    pub limiters: Option<Arc<Limiters>>,
    /// Hold the spec's lease under this owner while running (`qsync run`, `replay`;
    /// `serve` takes its leases itself).
    pub lease_owner: Option<String>,
}

/// What a run did: the one run-result type, owned by `state` beside the history row
/// derived from it.
pub use crate::state::RunSummary;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunErrorKind {
    /// `connection bi` missing from the profile, not `kind: mysql`, or without a `url`.
    #[error("spec `{spec}`: {source}")]
    Profile { spec: String, source: ProfileError },
    /// `--remedy` on a spec without `@remedy`, or an empty range.
    #[error("spec `{spec}`: {message}")]
    Usage { spec: String, message: String },
    /// The first run of a window without `initial` and without `--since`.
    #[error("spec `{spec}`: {source}")]
    Range { spec: String, source: RangeError },
    /// Fetching failed: vendor error, retries exhausted, paging guard.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// MySQL refused or lost the connection for good.
    #[error("spec `{spec}`, window {window}: {source}")]
    Sink {
        spec: String,
        window: String,
        source: SinkError,
    },
    /// The vendor's total and the records fetched disagree on every re-read.
    #[error(
        "spec `{spec}`, window {window}: the vendor reported {reported} records but {fetched} \
         were fetched, on each of {attempts} reads; the window was not committed"
    )]
    Incomplete {
        spec: String,
        window: String,
        reported: u64,
        fetched: u64,
        attempts: u32,
    },
    /// `@on_error fail` and a record whose value does not convert.
    #[error(
        "spec `{spec}`, window {window}: record {record} cannot become a row: {reason} \
         (`@on_error fail`; the window was not committed)"
    )]
    Rejected {
        spec: String,
        window: String,
        record: String,
        reason: String,
    },
    /// A plan the transformer cannot compile (normally caught by `check`).
    #[error("spec `{spec}`: {message}")]
    Transform { spec: String, message: String },
    /// A fetch task that panicked or was cancelled.
    #[error("spec `{spec}`, window {window}: the fetch task ended abnormally: {message}")]
    Task {
        spec: String,
        window: String,
        message: String,
    },
    /// Another run of the spec holds its lease.
    #[error(
        "spec `{spec}` is already running: `{owner}` holds its lease until {until} (MySQL \
         server time); wait for that run to end, or for the lease to expire if it died \
         on another machine"
    )]
    Busy {
        spec: String,
        owner: String,
        until: NaiveDateTime,
    },
}

/// A failed run: what went wrong and what had been committed before.
#[derive(Debug)]
pub struct RunError {
    kind: Box<RunErrorKind>,
    summary: Option<Box<RunSummary>>,
}

impl RunError {
    pub fn kind(&self) -> &RunErrorKind {
        &self.kind
    }

    /// Progress made before the failure, when the run got as far as reading its state.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.summary.as_deref()
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(summary) = &self.summary {
            write!(
                f,
                ". {} window{} committed before the failure; the high-water mark is {}",
                summary.windows,
                if summary.windows == 1 {
                    " was"
                } else {
                    "s were"
                },
                summary.high_water_mark.map_or_else(
                    || "not set".to_owned(),
                    |m| m.format("%Y-%m-%d %H:%M:%S").to_string()
                )
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.kind)
    }
}

impl From<RunErrorKind> for RunError {
    fn from(kind: RunErrorKind) -> RunError {
        RunError {
            kind: Box::new(kind),
            summary: None,
        }
    }
}

/// Runs `plan`: the stored mark (or `--since`) up to now minus the lag, window by window.
pub async fn run(
    plan: &Plan,
    profile: &LoadedProfile,
    options: RunOptions,
) -> Result<RunSummary, RunError> {
    exclusive(plan, profile, options, None).await
}

/// Re-runs one window; the mark never moves (neither back nor past a gap).
pub async fn replay(
    plan: &Plan,
    profile: &LoadedProfile,
    window: Window,
    options: RunOptions,
) -> Result<RunSummary, RunError> {
    exclusive(plan, profile, options, Some(window)).await
}

/// How long a run's lease lasts without renewal: how long others wait after a run that
/// died on another machine (one that died on this host is taken over at once).
const RUN_LEASE_TTL: Duration = Duration::from_secs(60);

/// Runs holding the spec's lease when `options.lease_owner` says so.
async fn exclusive(
    plan: &Plan,
    profile: &LoadedProfile,
    mut options: RunOptions,
    replay: Option<Window>,
) -> Result<RunSummary, RunError> {
    let Some(owner) = options.lease_owner.clone() else {
        return execute(plan, profile, options, replay, None).await;
    };
    let store = open_state(plan, profile).await?;
    let hold = HoldOptions {
        ttl: RUN_LEASE_TTL,
        shutdown: options.shutdown.take(),
        take_over_dead_runs: true,
    };
    let held = hold_lease(&store, &plan.name, &owner, hold)
        .await
        .map_err(|source| outside_windows(&plan.name, source))?;
    let held = match held {
        Holding::Held(held) => held,
        Holding::Busy(lease) => {
            return Err(RunErrorKind::Busy {
                spec: plan.name.clone(),
                owner: lease.owner,
                until: lease.expires_at,
            }
            .into())
        }
    };
    options.shutdown = Some(held.stop_signal());
    // The lease's store serves the run too: one pool, the state tables checked once.
    let result = execute(plan, profile, options, replay, Some(store)).await;
    if let Err(error) = held.release().await {
        tracing::warn!(spec = %plan.name, "cannot release the run's lease (it will expire): {error}");
    }
    result
}

/// Connects to the target database of `plan` and opens its state tables.
pub async fn open_state(plan: &Plan, profile: &LoadedProfile) -> Result<StateStore, RunError> {
    let url = mysql_url(plan, profile)?;
    let sink = MysqlSink::connect(&url)
        .await
        .map_err(|source| outside_windows(&plan.name, source))?;
    StateStore::open(&sink)
        .await
        .map_err(|source| outside_windows(&plan.name, source).into())
}

/// A MySQL failure before or after the windows (connecting, state tables, leases).
fn outside_windows(spec: &str, source: SinkError) -> RunErrorKind {
    RunErrorKind::Sink {
        spec: spec.to_owned(),
        window: "(none)".to_owned(),
        source,
    }
}

/// A stable hash of the plan, stored with the mark to notice a changed spec.
pub fn spec_hash(plan: &Plan) -> String {
    let text = serde_json::to_string(plan).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))[..16].to_owned()
}

fn mysql_url(plan: &Plan, profile: &LoadedProfile) -> Result<String, RunError> {
    profile
        .target_url(&plan.target.connection)
        .map_err(|source| {
            RunErrorKind::Profile {
                spec: plan.name.clone(),
                source,
            }
            .into()
        })
}

fn label(window: Option<Window>) -> String {
    window.map_or_else(|| "(no window)".to_owned(), |w| w.to_string())
}

/// The running totals of a run.
#[derive(Debug, Default)]
struct Tally {
    windows: u64,
    pages: u64,
    records: u64,
    rows: u64,
    rejects: u64,
    rereads: u64,
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
    rejects: u64,
}

struct Engine {
    plan: Arc<Plan>,
    source: Arc<HttpSource>,
    renderer: Arc<Renderer>,
    transformer: Transformer,
    sink: MysqlSink,
    store: StateStore,
    table: TableSpec,
    hash: String,
    now: NaiveDateTime,
    /// How record values compare: `modified`, keyset cursors.
    order: ValueOrder,
    /// Positions of the target's key columns in a row: what tells records apart when the
    /// source names no `id`.
    key_cells: Vec<usize>,
    env: std::collections::BTreeMap<String, String>,
    /// The stored mark, advanced as windows commit.
    mark: Option<NaiveDateTime>,
    move_mark: bool,
    tally: Tally,
}

async fn execute(
    plan: &Plan,
    profile: &LoadedProfile,
    options: RunOptions,
    replay: Option<Window>,
    store: Option<StateStore>,
) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let spec = plan.name.clone();
    let tz = profile.timezone();
    // Whole seconds: vendors take times to the second, and marks are stored as such.
    let now = options
        .now
        .unwrap_or_else(|| Utc::now().with_timezone(&tz).naive_local());
    let now = now.with_nanosecond(0).unwrap_or(now);
    let now_utc = time::instant(now, tz);

    // Source first: a bad credential setting fails before touching MySQL.
    let connection = profile
        .connection(&plan.source.connection)
        .map_err(|source| RunErrorKind::Profile {
            spec: spec.clone(),
            source,
        })?;
    let secrets = profile.secrets();
    let connector = connectors::build(plan.source.kind, &plan.source.connection, connection)
        .map_err(|e| SourceError::Connector {
            spec: spec.clone(),
            connection: plan.source.connection.clone(),
            message: crate::config::mask(&e.to_string(), &secrets),
        })
        .map_err(RunErrorKind::from)?;
    let limiters = options
        .limiters
        .clone()
        .unwrap_or_else(|| Arc::new(Limiters::new()));
    let limiter = limiters.get(
        &plan.source.connection,
        &plan.source.rates,
        plan.source.rate_by_send,
    );
    let source = HttpSource::new(
        connector,
        limiter,
        SourceOptions {
            spec: spec.clone(),
            connection: plan.source.connection.clone(),
            timeout: plan.source.timeout,
            retry: plan.source.retry.clone(),
            secrets,
        },
    )
    .map_err(RunErrorKind::from)?;
    let transformer = Transformer::new(
        &plan.transforms,
        &plan.columns,
        RunClock { now: now_utc, tz },
    )
    .map_err(|e| RunErrorKind::Transform {
        spec: spec.clone(),
        message: e.to_string(),
    })?;

    let key_cells: Vec<usize> = transformer
        .column_names()
        .enumerate()
        .filter(|(_, name)| plan.target.key.iter().any(|key| key == name))
        .map(|(index, _)| index)
        .collect();

    let sink_error = |source: SinkError| outside_windows(&spec, source);
    let store = match store {
        Some(store) => store,
        None => open_state(plan, profile).await?,
    };
    let sink = store.sink().clone();
    let table = TableSpec::new(&plan.target, &plan.columns).map_err(sink_error)?;
    sink.ensure_table(&table, plan.target.create)
        .await
        .map_err(sink_error)?;
    // An interrupted run may have left an `insert` window's parallel transactions prepared.
    sink.resolve_prepared().await.map_err(sink_error)?;
    let mark = store
        .cursor(&spec)
        .await
        .map_err(sink_error)?
        .map(|c| c.high_water);

    let (range, windows): (Option<Window>, Vec<Option<Window>>) = if let Some(window) = replay {
        (Some(window), vec![Some(window)])
    } else if let Some(window_plan) = &plan.source.window {
        let remedy = if options.remedy {
            match &plan.remedy {
                Some(r) => Some(r.lookback),
                None => {
                    return Err(RunErrorKind::Usage {
                        spec,
                        message: "`--remedy` needs a `@remedy \"<cron>\" lookback <d>` \
                                      directive in the spec"
                            .to_owned(),
                    }
                    .into())
                }
            }
        } else {
            None
        };
        let inputs = RangeInputs {
            now: Some(now),
            last_sync: mark,
            since: options.since,
            until: options.until,
            full: options.full,
            remedy,
        };
        match resolve_range(window_plan, &inputs, tz) {
            Ok((start, end)) => {
                let windows = split(start, end, window_plan.max_span, tz)
                    .into_iter()
                    .map(Some)
                    .collect();
                (Some(Window { start, end }), windows)
            }
            // Run again before the clock passed the mark (no overlap), or `--until` a time
            // the mark already reached: nothing to do. A range spelt out backwards with
            // `--since` stays an error.
            Err(RangeError::Empty { start, end })
                if options.since.is_none()
                    && !options.remedy
                    && (options.until.is_none() || (mark.is_some() && !options.full)) =>
            {
                match mark {
                    Some(mark) => tracing::info!(spec = %spec,
                            "nothing to sync: the high-water mark {mark} is already at or past {end}"),
                    None => tracing::info!(spec = %spec,
                            "nothing to sync: {start} is not before {end}"),
                }
                (Some(Window { start, end }), Vec::new())
            }
            Err(source) => {
                return Err(RunErrorKind::Range {
                    spec: spec.clone(),
                    source,
                }
                .into())
            }
        }
    } else {
        (None, vec![None])
    };

    let mut engine = Engine {
        plan: Arc::new(plan.clone()),
        source: Arc::new(source),
        renderer: Arc::new(Renderer::new(tz)),
        transformer,
        sink,
        store,
        table,
        hash: spec_hash(plan),
        now,
        order: ValueOrder::new(tz),
        key_cells,
        env: std::env::vars().collect(),
        mark,
        move_mark: replay.is_none(),
        tally: Tally::default(),
    };
    let started_at = Utc::now().with_timezone(&tz).naive_local();
    let progress = (options.progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(windows.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {pos}/{len} windows {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(spec.clone());
        bar
    });
    let result = engine
        .run_windows(windows, options.shutdown, progress.as_ref())
        .await;
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let summary = engine.summary(range, started.elapsed());
    let (outcome, error) = match &result {
        Ok(()) if summary.rejects > 0 => (RunOutcome::Partial, None),
        Ok(()) => (RunOutcome::Success, None),
        Err(kind) => (RunOutcome::Failed, Some(kind.to_string())),
    };
    let finished_at = Utc::now().with_timezone(&tz).naive_local();
    let record = RunRecord::of(&summary, outcome, error, started_at, finished_at);
    // The pool may hold a connection killed during the run: try twice.
    if let Err(first) = engine.store.record_run(&record).await {
        if let Err(second) = engine.store.record_run(&record).await {
            tracing::warn!(spec = %spec, "cannot record the run in `_qsync_runs`: {second} (first try: {first})");
        }
    }
    match result {
        Ok(()) => Ok(summary),
        Err(kind) => Err(RunError {
            kind: Box::new(kind),
            summary: Some(Box::new(summary)),
        }),
    }
}

impl Engine {
    fn summary(&self, range: Option<Window>, took: Duration) -> RunSummary {
        let stats = self.source.stats();
        RunSummary {
            spec: self.plan.name.clone(),
            range,
            windows: self.tally.windows,
            pages: self.tally.pages,
            records: self.tally.records,
            rows_written: self.tally.rows,
            rejects: self.tally.rejects,
            retries: stats.retries.load(AtomicOrdering::Relaxed) + self.tally.rereads,
            throttled: stats.throttled.load(AtomicOrdering::Relaxed),
            duration: took,
            high_water_mark: self.mark,
        }
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

    async fn run_windows(
        &mut self,
        windows: Vec<Option<Window>>,
        shutdown: Option<tokio::sync::watch::Receiver<bool>>,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<(), RunErrorKind> {
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
                return Ok(());
            };
            if stop_requested() {
                task.handle.abort();
                for task in ahead {
                    task.handle.abort();
                }
                tracing::info!(spec = %self.plan.name, "stopping: shutdown requested");
                return Ok(());
            }
            let window = task.window;
            if let Err(error) = self.sync_window(task).await {
                for task in ahead {
                    task.handle.abort();
                }
                return Err(error);
            }
            if let Some(bar) = progress {
                bar.inc(1);
                bar.set_message(format!(
                    "{} records, {} rows",
                    self.tally.records, self.tally.rows
                ));
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
        loop {
            attempt += 1;
            let current = task.take().unwrap_or_else(|| self.spawn_fetch(window));
            let result = self.write_window(current, attempt).await;
            match result {
                Ok(committed) => {
                    self.tally.windows += 1;
                    self.tally.pages += committed.fetch.pages;
                    self.tally.records += committed.fetch.records;
                    self.tally.rows += committed.rows;
                    self.tally.rejects += committed.rejects;
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
                    let ledger = self.ledger(window, WindowStatus::Failed, attempt, None, 0, 0);
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

    fn sink_failure(&self, window: Option<Window>, source: SinkError) -> WindowFailure {
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
        let Streamed { rows, rejects, .. } = acc;
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
                rows: stats.rows,
                rejects: reject_count,
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
                    rejects.push(Reject {
                        spec: self.plan.name.clone(),
                        window_start: window.map(|w| w.start),
                        window_end: window.map(|w| w.end),
                        raw,
                        reason: error.to_string(),
                    });
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

/// Whether `record` should be written: the first version of its id, or a newer one (by
/// `modified` when the spec names it, else any changed version, the later winning).
fn is_newest(
    source: &SourcePlan,
    order: ValueOrder,
    record: &Value,
    seen: &mut HashMap<String, Seen>,
) -> bool {
    let Some(id_path) = &source.id else {
        return true;
    };
    let Some(id) = id_path.get(record).filter(|v| !v.is_null()) else {
        return true;
    };
    let fingerprint = fingerprint(record);
    let modified = source
        .modified
        .as_ref()
        .and_then(|path| path.get(record))
        .cloned();
    match seen.entry(wire::scalar_text(id)) {
        Entry::Vacant(entry) => {
            entry.insert(Seen {
                fingerprint,
                modified,
            });
            true
        }
        Entry::Occupied(mut entry) => {
            let old = entry.get();
            let newer = match (&modified, &old.modified) {
                (Some(new), Some(old)) => {
                    order.compare_times(new, old) == std::cmp::Ordering::Greater
                }
                _ => old.fingerprint != fingerprint,
            };
            if newer {
                entry.insert(Seen {
                    fingerprint,
                    modified,
                });
            }
            newer
        }
    }
}

/// What the reads of one window produced so far.
#[derive(Default)]
struct Streamed {
    /// Rows handed to the writer.
    rows: u64,
    rejects: Vec<Reject>,
    /// By record id, when the source names one.
    seen: HashMap<String, Seen>,
    /// Without an id: a hash of each record's row keys (of the record itself when it made
    /// no row) → the fingerprint of its last version.
    keys: HashMap<u64, u64>,
}

impl Streamed {
    /// How many distinct records the window has seen, when qsync can tell them apart.
    fn distinct(&self) -> Option<u64> {
        if !self.seen.is_empty() {
            Some(self.seen.len() as u64)
        } else if !self.keys.is_empty() {
            Some(self.keys.len() as u64)
        } else {
            None
        }
    }
}

/// A hash of a record's JSON text: tells versions of a record apart.
fn fingerprint(record: &Value) -> u64 {
    let mut hasher = DefaultHasher::new();
    record.to_string().hash(&mut hasher);
    hasher.finish()
}

/// A hash of the key cells of a record's rows, in order.
fn key_identity(rows: &[Vec<crate::transform::Cell>], key_cells: &[usize]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for row in rows {
        for &index in key_cells {
            if let Some(cell) = row.get(index) {
                cell.render().hash(&mut hasher);
            }
        }
        0xffu8.hash(&mut hasher);
    }
    hasher.finish()
}

/// What the window has seen of one id.
struct Seen {
    fingerprint: u64,
    modified: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FieldPath;
    use serde_json::json;

    fn source(modified: bool) -> SourcePlan {
        SourcePlan {
            kind: crate::plan::ConnectorKind::Http,
            endpoint: "/x".into(),
            http_method: crate::plan::HttpMethod::Get,
            connection: "x".into(),
            params: vec![],
            window: None,
            pagination: crate::plan::PaginationPlan::None,
            rates: vec![],
            rate_by_send: false,
            retry: crate::plan::RetryPlan::default(),
            records: FieldPath::default(),
            id: Some(FieldPath::parse("id")),
            modified: modified.then(|| FieldPath::parse("m")),
            total: None,
            timeout: Duration::from_secs(1),
            max_pages: 0,
        }
    }

    #[test]
    fn the_latest_version_of_an_id_wins() {
        let plan = source(true);
        let mut seen = HashMap::new();
        let order = ValueOrder::new(chrono_tz::Asia::Shanghai);
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 10:00:00"}),
            &mut seen
        ));
        // A repeat across a page boundary, and an older version: skipped.
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 10:00:00"}),
            &mut seen
        ));
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 09:00:00", "x": 1}),
            &mut seen
        ));
        // A newer version: written (it replaces the row by key).
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 1, "m": "2024-01-01 11:00:00"}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 2, "m": "2024-01-01 09:00:00"}),
            &mut seen
        ));
        assert_eq!(seen.len(), 2);
        // Times compare as instants whatever the vendor wrote: unpadded, with an offset.
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-1-9 10:00:00"}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-01-10 09:00:00"}),
            &mut seen
        ));
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-01-10T00:30:00Z"}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": 3, "m": "2024-01-10T09:30:00+08:00"}),
            &mut seen
        ));
    }

    #[test]
    fn without_modified_a_changed_record_is_written_again() {
        let plan = source(false);
        let order = ValueOrder::new(chrono_tz::Asia::Shanghai);
        let mut seen = HashMap::new();
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": "a", "v": 1}),
            &mut seen
        ));
        assert!(!is_newest(
            &plan,
            order,
            &json!({"id": "a", "v": 1}),
            &mut seen
        ));
        assert!(is_newest(
            &plan,
            order,
            &json!({"id": "a", "v": 2}),
            &mut seen
        ));
        // No id: never de-duplicated.
        assert!(is_newest(&plan, order, &json!({"v": 2}), &mut seen));
        assert!(is_newest(&plan, order, &json!({"v": 2}), &mut seen));
    }

    #[test]
    fn run_errors_name_the_window_and_what_was_committed() {
        let error = RunError {
            kind: Box::new(RunErrorKind::Incomplete {
                spec: "refunds".into(),
                window: "2024-01-01 00:00:00 .. 2024-01-02 00:00:00".into(),
                reported: 105,
                fetched: 100,
                attempts: 3,
            }),
            summary: Some(Box::new(RunSummary {
                spec: "refunds".into(),
                range: None,
                windows: 2,
                pages: 0,
                records: 0,
                rows_written: 0,
                rejects: 0,
                retries: 0,
                throttled: 0,
                duration: Duration::ZERO,
                high_water_mark: NaiveDateTime::parse_from_str(
                    "2024-01-01 00:00:00",
                    "%Y-%m-%d %H:%M:%S",
                )
                .ok(),
            })),
        };
        assert_eq!(
            error.to_string(),
            "spec `refunds`, window 2024-01-01 00:00:00 .. 2024-01-02 00:00:00: the vendor \
             reported 105 records but 100 were fetched, on each of 3 reads; the window was not \
             committed. 2 windows were committed before the failure; the high-water mark is \
             2024-01-01 00:00:00"
        );
    }

    /// The hash is stored with the high-water mark: a change in how a plan serializes
    /// would make every stored mark look like a changed spec.
    #[test]
    fn the_spec_hash_of_every_example_spec_is_stable() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("specs");
        let mut hashes = Vec::new();
        for name in [
            "jst-refunds",
            "wdt-refunds",
            "yida-receipts",
            "http-orders",
            "jst-orders",
        ] {
            let file = dir.join(format!("{name}.qsync"));
            let text = std::fs::read_to_string(&file).expect("example spec");
            let checked = crate::check::check(
                &file.display().to_string(),
                &text,
                crate::check::CheckContext::default(),
            )
            .unwrap_or_else(|e| panic!("{name}: {:?}", e.diagnostics));
            hashes.push(format!("{name} {}", spec_hash(&checked.plan)));
        }
        assert_eq!(
            hashes,
            [
                "jst-refunds e9ff98ccbafa4147",
                "wdt-refunds a1d3bae5324f7194",
                "yida-receipts 84d340188ca7ff96",
                "http-orders 5b527ff33f4a5a6c",
                "jst-orders bd13b4fe114a7d7d",
            ]
        );
    }
}
