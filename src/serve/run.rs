//! One run of a spec inside `qsync serve`, from start to history: wait for a permit of the
//! global concurrency limit, hold the spec's lease with `state::hold_lease`, the holder
//! `qsync run` and `replay` use too (another instance holding it means that instance runs
//! the spec; a lost lease or shutdown tells the [`Runner`](super::runner::Runner) to stop
//! after its batch), release it, then judge the outcome, record the run in `_qsync_runs`, raise or resolve the `run_failed` and
//! `rejects` alerts, and keep the last [`HISTORY`] runs for the page and the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::alerts::Condition;
use super::lease::CoordinatedLeases;
use super::metrics::{Outcome, SkipReason};
use super::runner::{RunFailure, RunRequest};
use super::scheduler::Start;
use super::{Daemon, RunKind, Trigger};
use crate::plan::{AlertRule, Plan};
use crate::state::{hold_lease, HoldOptions, Holding, RunOutcome, RunRecord, RunSummary};

/// How many finished runs each spec keeps for the status page and `/api/runs`.
const HISTORY: usize = 50;
/// Longest wait for a lease or history statement before the run fails.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(30);

/// One finished run, as shown by the status page and `/api/runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub spec: String,
    pub kind: RunKind,
    pub trigger: Trigger,
    pub outcome: Outcome,
    pub instance: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_seconds: f64,
    #[serde(flatten)]
    pub report: RunSummary,
    pub error: Option<String>,
}

impl Daemon {
    pub(super) async fn run(self: Arc<Self>, start: Start) {
        self.running.send_modify(|n| *n += 1);
        let mut stop = self.stop.subscribe();
        let permit = tokio::select! {
            permit = self.permits.clone().acquire_owned() => permit.ok(),
            _ = stop.wait_for(|s| *s) => None,
        };
        if permit.is_none() || self.stopping() {
            self.finish(&start.spec, None);
            return;
        }
        let started = self.services.clock.now();
        let clock_start = Instant::now();
        let result = match &start.url {
            Ok(url) => self.run_leased(&start, url).await,
            Err(e) => Some((Err(RunFailure::new(e.clone())), false)),
        };
        drop(permit);
        let Some((result, asked_to_stop)) = result else {
            // Another instance holds the lease: that instance runs the spec.
            if let Some(entry) = self.specs().get_mut(&start.spec) {
                entry.stats.skipped(SkipReason::Lease);
            }
            tracing::info!(spec = %start.spec, "leased by another instance; not run here");
            self.finish(&start.spec, None);
            return;
        };
        let finished = self.services.clock.now();
        let duration = clock_start.elapsed();
        let stopped = asked_to_stop || self.stopping();
        let (outcome, report, error) = match result {
            // Told to stop, it committed what it had and returned early: not a full run.
            Ok(report) if stopped => (Outcome::Stopped, report, None),
            Ok(report) if report.rejects > 0 => (Outcome::Partial, report, None),
            Ok(report) => (Outcome::Success, report, None),
            Err(failure) => (
                if stopped {
                    Outcome::Stopped
                } else {
                    Outcome::Failed
                },
                failure.report.map(|report| *report).unwrap_or_default(),
                Some(self.mask(&failure.message)),
            ),
        };
        let view = RunView {
            spec: start.spec.clone(),
            kind: start.kind,
            trigger: start.trigger,
            outcome,
            instance: self.config.instance.clone(),
            started_at: started,
            finished_at: finished,
            duration_seconds: duration.as_secs_f64(),
            report,
            error,
        };
        match outcome {
            Outcome::Failed => tracing::error!(
                spec = %start.spec,
                kind = start.kind.as_str(),
                "run failed: {}",
                view.error.as_deref().unwrap_or("")
            ),
            _ => tracing::info!(
                spec = %start.spec,
                kind = start.kind.as_str(),
                outcome = outcome.as_str(),
                records = view.report.records,
                rows = view.report.rows_written,
                "run finished"
            ),
        }
        if let (Ok(url), false) = (&start.url, self.services.runner.records_history()) {
            let record = self.run_record(&view);
            let recorded = tokio::time::timeout(
                DATABASE_TIMEOUT,
                self.services.coordinator.record_run(url, &record),
            )
            .await
            .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()));
            if let Err(e) = recorded {
                tracing::warn!(spec = %start.spec, "cannot record the run: {}", self.mask(&e));
            }
        }
        self.alert_on(&start.plan, &view);
        self.finish(&start.spec, Some(view));
        self.check_lag(finished);
    }

    /// Takes the lease, runs with renewal, releases. `None` when another instance holds it.
    async fn run_leased(
        &self,
        start: &Start,
        url: &str,
    ) -> Option<(Result<RunSummary, RunFailure>, bool)> {
        let owner = &self.config.instance;
        let leases = CoordinatedLeases::new(self.services.coordinator.clone(), url);
        let hold = HoldOptions {
            ttl: self.config.lease_ttl,
            // Shutdown reaches the run through the lease's stop signal.
            shutdown: Some(self.stop.subscribe()),
            // Another instance's lease is never taken over: it may be alive elsewhere.
            take_over_dead_runs: false,
        };
        // A database that does not answer must fail the run, not hang it.
        let taken = tokio::time::timeout(
            DATABASE_TIMEOUT,
            hold_lease(&leases, &start.spec, owner, hold),
        )
        .await
        .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()));
        let held = match taken {
            Ok(Holding::Held(held)) => held,
            Ok(Holding::Busy(_)) => return None,
            Err(e) => {
                let failure = RunFailure::new(format!(
                    "cannot take the lease on `{}`: {}",
                    start.spec,
                    self.mask(&e)
                ));
                return Some((Err(failure), false));
            }
        };
        let run_stop_rx = held.stop_signal();
        let request = RunRequest {
            plan: start.plan.clone(),
            profile: start.profile.clone(),
            remedy: start.kind == RunKind::Remedy,
            now: self.now_local(self.services.clock.now()),
            shutdown: run_stop_rx.clone(),
        };
        // A panicking runner must not wedge the spec as "running" forever.
        let task = tokio::spawn(self.services.runner.run(request));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task.abort_handle());
        }
        let result = task
            .await
            .unwrap_or_else(|e| Err(RunFailure::new(format!("the run ended abnormally: {e}"))));
        let asked_to_stop = *run_stop_rx.borrow();
        let released = tokio::time::timeout(DATABASE_TIMEOUT, held.release())
            .await
            .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()));
        if let Err(e) = released {
            tracing::warn!(spec = %start.spec, "cannot release the lease (it will expire): {}", self.mask(&e));
        }
        let result = match result {
            // The run was told to stop and said it failed: it stopped, it did not fail.
            Err(failure) if asked_to_stop && !self.stopping() => Err(RunFailure {
                message: format!("stopped: the lease was lost ({})", failure.message),
                report: failure.report,
            }),
            other => other,
        };
        Some((result, asked_to_stop))
    }

    fn run_record(&self, view: &RunView) -> RunRecord {
        let outcome = match view.outcome {
            Outcome::Success => RunOutcome::Success,
            Outcome::Partial => RunOutcome::Partial,
            Outcome::Failed => RunOutcome::Failed,
            Outcome::Stopped => RunOutcome::Stopped,
        };
        RunRecord {
            spec: view.spec.clone(),
            // The daemon's own measure: the runner's summary may not carry one.
            duration: Duration::from_secs_f64(view.duration_seconds),
            ..RunRecord::of(
                &view.report,
                outcome,
                view.error.clone(),
                self.now_local(view.started_at),
                self.now_local(view.finished_at),
            )
        }
    }

    fn alert_on(&self, plan: &Plan, view: &RunView) {
        let spec = &view.spec;
        match view.outcome {
            Outcome::Failed => {
                let window = view
                    .report
                    .range
                    .map(|r| format!("\nwindow: {r}"))
                    .unwrap_or_default();
                self.alerter.raise(
                    spec,
                    Condition::RunFailed,
                    &format!(
                        "{} run failed: {}{window}",
                        view.kind.as_str(),
                        view.error.as_deref().unwrap_or("unknown error")
                    ),
                );
            }
            Outcome::Success | Outcome::Partial => {
                self.alerter.resolve(
                    spec,
                    Condition::RunFailed,
                    &format!(
                        "{} run succeeded: {} records, {} rows written",
                        view.kind.as_str(),
                        view.report.records,
                        view.report.rows_written
                    ),
                );
                for rule in &plan.alerts {
                    if let AlertRule::Rejects { over } = rule {
                        if view.report.rejects > *over {
                            self.alerter.raise(
                                spec,
                                Condition::Rejects,
                                &format!(
                                    "{} records rejected in one run (limit {over}); see \
                                     `_qsync_rejects`",
                                    view.report.rejects
                                ),
                            );
                        } else {
                            self.alerter.resolve(
                                spec,
                                Condition::Rejects,
                                &format!("{} records rejected, within {over}", view.report.rejects),
                            );
                        }
                    }
                }
            }
            Outcome::Stopped => {}
        }
    }

    /// Marks the spec idle, records the run, and lets the scheduler start what is pending.
    fn finish(&self, spec: &str, view: Option<RunView>) {
        {
            let mut specs = self.specs();
            if let Some(entry) = specs.get_mut(spec) {
                entry.running = None;
                if let Some(view) = view {
                    let duration = Duration::from_secs_f64(view.duration_seconds);
                    entry
                        .stats
                        .record(view.outcome, Some(&view.report), duration);
                    if matches!(view.outcome, Outcome::Success | Outcome::Partial) {
                        entry.last_success = Some(view.finished_at);
                    }
                    if let Some(mark) = view.report.high_water_mark {
                        entry.high_water = Some(mark);
                    }
                    entry.history.push_front(view);
                    entry.history.truncate(HISTORY);
                }
                if entry.removed {
                    specs.remove(spec);
                }
            }
        }
        self.running.send_modify(|n| *n = n.saturating_sub(1));
        self.wake.notify_one();
    }
}
