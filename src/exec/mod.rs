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
//!
//! Files: `mod.rs` sets a run up (options, lease, range, windows) and records it;
//! `window.rs` is the window loop (prefetch, re-reads, one transaction per window);
//! `dedup.rs` tells records apart across pages and passes (ids, `modified`, target keys);
//! `error.rs` is [`RunError`].

mod collisions;
mod dedup;
mod error;
mod progress;
mod window;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, Timelike as _, Utc};
use sha2::{Digest, Sha256};

pub use crate::source::Limiters;

use crate::config::LoadedProfile;
use crate::connectors;
use crate::plan::{time, Plan, ValueOrder};
use crate::sink::{MysqlSink, SinkError, StateStore, TableSpec};
use crate::source::window::RangeError;
use crate::source::{
    resolve_range, split, HttpSource, RangeInputs, SourceError, SourceOptions, Window,
};
use crate::state::{hold_lease, HoldOptions, Holding, RunOutcome, RunRecord};
use crate::template::Renderer;
use crate::transform::{RunClock, Transformer};

pub use self::error::{RunError, RunErrorKind};
pub use self::progress::{Progress, ProgressReport};
use self::window::{Ended, Engine, Tally};

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
    /// Told the run's progress after each committed window (`qsync run`'s bar or lines).
    pub progress: Option<Arc<dyn ProgressReport>>,
    /// `true` = stop after the current window commits: the run then ends with
    /// [`RunErrorKind::Stopped`], recorded as `stopped` over the range it committed.
    pub shutdown: Option<tokio::sync::watch::Receiver<bool>>,
    /// Shared per-connection rate limiters (serve shares one across specs).
    pub limiters: Option<Arc<Limiters>>,
    /// Hold the spec's lease under this owner while running (`qsync run`, `replay`;
    /// `serve` holds its lease itself, with the same `state::hold_lease`).
    pub lease_owner: Option<String>,
}

/// What a run did: the one run-result type, owned by `state` beside the history row
/// derived from it.
pub use crate::state::RunSummary;

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
            max_response_bytes: connection.max_response_bytes().map_err(|message| {
                RunErrorKind::from(SourceError::Connector {
                    spec: spec.clone(),
                    connection: plan.source.connection.clone(),
                    message,
                })
            })?,
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

    let column_names: Vec<String> = transformer.column_names().map(str::to_owned).collect();
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
        column_names,
        env: std::env::vars().collect(),
        declared_secrets: connection.declared_secrets(),
        mark,
        move_mark: replay.is_none(),
        tally: Tally::default(),
    };
    let started_at = Utc::now().with_timezone(&tz).naive_local();
    if let Some(report) = &options.progress {
        report.start(&spec, windows.len() as u64);
    }
    let result = engine
        .run_windows(
            windows,
            options.shutdown,
            options.progress.as_deref(),
            started,
        )
        .await;
    if let Some(report) = &options.progress {
        report.finish();
    }
    let mut summary = engine.summary(range, started.elapsed());
    let result = match result {
        Ok(Ended::Finished) => Ok(()),
        Ok(Ended::Stopped) => {
            // Honest history: the run covered only what it committed, from the range's
            // start to the end of its last committed window (nothing, when none was).
            summary.range = engine.committed(range);
            Err(RunErrorKind::Stopped {
                spec: spec.clone(),
                range,
            })
        }
        Err(kind) => Err(kind),
    };
    let (outcome, error) = match &result {
        Ok(()) if summary.rejects > 0 => (RunOutcome::Partial, None),
        Ok(()) => (RunOutcome::Success, None),
        Err(kind @ RunErrorKind::Stopped { .. }) => (RunOutcome::Stopped, Some(kind.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

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
                "yida-receipts 953b251b47c0d248",
                "http-orders 5b527ff33f4a5a6c",
                "jst-orders bd13b4fe114a7d7d",
            ]
        );
    }
}
