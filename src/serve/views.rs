//! What `qsync serve` shows of itself: each spec as the status page and `/api/specs` see it
//! ([`SpecView`]), the finished runs for `/api/runs`, and the Prometheus text of
//! `/metrics`. Read-only snapshots of the catalogue; rendering them is `page.rs`,
//! `http.rs` and `metrics.rs`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

use super::metrics::{self, Outcome};
use super::{Daemon, RunKind, RunView};

impl Daemon {
    pub(super) fn spec_views(&self) -> Vec<SpecView> {
        let now = self.services.clock.now();
        let local = self.now_local(now);
        self.specs()
            .values()
            .filter(|e| !e.removed)
            .map(|e| {
                let plan = e.plan.as_deref();
                let next_run = e
                    .jobs
                    .iter()
                    .filter_map(|j| j.next_due)
                    .min()
                    .filter(|_| plan.is_some());
                SpecView {
                    name: e.name.clone(),
                    title: plan.map(|p| p.title.clone()),
                    file: e.path.display().to_string(),
                    status: if e.plan.is_none() {
                        "invalid"
                    } else if e.broken.is_some() {
                        "broken"
                    } else if e.running.is_some() {
                        "running"
                    } else {
                        "idle"
                    },
                    error: e.broken.clone(),
                    schedule: plan.and_then(|p| p.schedule.clone()),
                    remedy_schedule: plan
                        .and_then(|p| p.remedy.as_ref().map(|r| r.schedule.clone())),
                    next_run,
                    running_since: e.running.map(|r| r.since),
                    running_kind: e.running.map(|r| r.kind),
                    last_run: e.history.front().cloned(),
                    last_success: e.last_success,
                    high_water_mark: e.high_water,
                    lag_seconds: e
                        .high_water
                        .map(|h| (local - h).num_milliseconds() as f64 / 1000.0),
                    runs: e.stats.runs.iter().sum(),
                    failures: e.stats.runs_of(Outcome::Failed),
                    records: e.stats.records,
                    rows_written: e.stats.rows_written,
                    rejects: e.stats.rejects,
                    skipped_overlap: e.stats.skipped_overlap,
                    skipped_lease: e.stats.skipped_lease,
                }
            })
            .collect()
    }

    pub(super) fn runs(&self, spec: Option<&str>, limit: usize) -> Option<Vec<RunView>> {
        let specs = self.specs();
        match spec {
            Some(name) => specs
                .get(name)
                .map(|e| e.history.iter().take(limit).cloned().collect()),
            None => {
                let mut all: Vec<RunView> = specs
                    .values()
                    .flat_map(|e| e.history.iter().cloned())
                    .collect();
                all.sort_by_key(|r| std::cmp::Reverse(r.started_at));
                all.truncate(limit);
                Some(all)
            }
        }
    }

    pub(super) fn metrics(&self) -> String {
        let now = self.services.clock.now();
        let local = self.now_local(now);
        let specs = self.specs();
        let rows: Vec<metrics::SpecMetrics<'_>> = specs
            .values()
            .filter(|e| !e.removed)
            .map(|e| metrics::SpecMetrics {
                spec: &e.name,
                stats: &e.stats,
                running: e.running.is_some(),
                broken: e.broken.is_some(),
                seconds_since_last_success: e
                    .last_success
                    .map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
                lag_seconds: e
                    .high_water
                    .map(|h| (local - h).num_milliseconds() as f64 / 1000.0),
            })
            .collect();
        let (sent, failed) = self.alerter.delivery_counts();
        metrics::render(&rows, sent, failed)
    }
}

/// A spec as `/api/specs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SpecView {
    pub name: String,
    pub title: Option<String>,
    pub file: String,
    /// `idle`, `running`, `broken` (the file fails check; the last good version runs) or
    /// `invalid` (never loaded).
    pub status: &'static str,
    /// Why the file fails check.
    pub error: Option<String>,
    pub schedule: Option<String>,
    pub remedy_schedule: Option<String>,
    pub next_run: Option<DateTime<Utc>>,
    pub running_since: Option<DateTime<Utc>>,
    pub running_kind: Option<RunKind>,
    pub last_run: Option<RunView>,
    pub last_success: Option<DateTime<Utc>>,
    pub high_water_mark: Option<NaiveDateTime>,
    pub lag_seconds: Option<f64>,
    pub runs: u64,
    pub failures: u64,
    pub records: u64,
    pub rows_written: u64,
    pub rejects: u64,
    pub skipped_overlap: u64,
    pub skipped_lease: u64,
}
