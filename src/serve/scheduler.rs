//! The scheduler of `qsync serve`: at each look it starts what is due (cron slots in the
//! profile's zone; a slot that comes while the same job still runs is skipped and counted,
//! other triggers wait in the spec's queue, so a spec never runs twice at once), queues
//! manual runs (`POST /api/specs/<name>/run`), re-reads the folder every `watch_interval`,
//! and raises or resolves the `lag` alert. It looks again at the earliest next slot, when
//! woken, and at least every minute. Starting a run hands it to `run.rs`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::alerts::Condition;
use super::catalogue::Running;
use super::metrics::SkipReason;
use super::{Daemon, RunKind, Trigger};
use crate::config::LoadedProfile;
use crate::plan::{AlertRule, Plan};

/// A run the scheduler decided to start.
pub(super) struct Start {
    pub(super) spec: String,
    pub(super) kind: RunKind,
    pub(super) trigger: Trigger,
    pub(super) plan: Arc<Plan>,
    pub(super) profile: Option<Arc<LoadedProfile>>,
    pub(super) url: Result<String, String>,
}

impl Daemon {
    /// Starts what is due at `now`; returns when to look again.
    fn due(&self, now: DateTime<Utc>) -> (Vec<Start>, Option<DateTime<Utc>>) {
        let mut starts = Vec::new();
        let mut earliest: Option<DateTime<Utc>> = None;
        let mut specs = self.specs();
        for entry in specs.values_mut() {
            let Some(plan) = entry.plan.clone().filter(|_| !entry.removed) else {
                continue;
            };
            let mut due = Vec::new();
            for job in &mut entry.jobs {
                if job.next_due.is_some_and(|t| t <= now) {
                    job.next_due = job.schedule.next_after(now);
                    due.push(job.kind);
                }
                if let Some(next) = job.next_due {
                    earliest = Some(earliest.map_or(next, |e| e.min(next)));
                }
            }
            for kind in due {
                match entry.running {
                    Some(running) if running.kind == kind => {
                        entry.stats.skipped(SkipReason::Overlap);
                        tracing::warn!(
                            spec = %entry.name,
                            kind = kind.as_str(),
                            "still running at its next slot; slot skipped"
                        );
                    }
                    _ => {
                        if !entry.pending.iter().any(|(k, _)| *k == kind) {
                            entry.pending.push_back((kind, Trigger::Schedule));
                        }
                    }
                }
            }
            if entry.running.is_none() {
                if let Some((kind, trigger)) = entry.pending.pop_front() {
                    entry.running = Some(Running { kind, since: now });
                    starts.push(Start {
                        spec: entry.name.clone(),
                        kind,
                        trigger,
                        plan,
                        profile: entry.profile.clone(),
                        url: entry.target_url(),
                    });
                }
            }
        }
        (starts, earliest)
    }

    pub(super) async fn schedule_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            if self.stopping() {
                return;
            }
            let now = self.services.clock.now();
            let (starts, earliest) = self.due(now);
            for start in starts {
                let daemon = self.clone();
                self.spawn(async move { daemon.run(start).await });
            }
            self.check_lag(now);
            // Look again at least every minute so lag alerts are timely.
            let minute = now + chrono::Duration::seconds(60);
            let wake_at = earliest.map_or(minute, |e| e.min(minute));
            let sleep = self.services.clock.sleep_until(wake_at);
            tokio::select! {
                () = sleep => {}
                () = self.wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    pub(super) async fn watch_loop(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.config.watch_interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let daemon = self.clone();
            // Loading reads files and checks specs: keep it off the async workers.
            if let Err(e) = tokio::task::spawn_blocking(move || daemon.sync_folder(false)).await {
                tracing::error!("reloading specs failed: {e}");
            }
        }
    }

    pub(super) fn check_lag(&self, now: DateTime<Utc>) {
        let local = self.now_local(now);
        let checks: Vec<(String, Duration, NaiveDateTime)> = self
            .specs()
            .values()
            .filter_map(|e| {
                let plan = e.plan.as_ref()?;
                let over = plan.alerts.iter().find_map(|rule| match rule {
                    AlertRule::Lag { over } => Some(*over),
                    AlertRule::Rejects { .. } => None,
                })?;
                Some((e.name.clone(), over, e.high_water?))
            })
            .collect();
        for (name, over, high_water) in checks {
            let lag = (local - high_water).to_std().unwrap_or_default();
            if lag > over {
                self.alerter.raise(
                    &name,
                    Condition::Lag,
                    &format!(
                        "data lag {} is over the {} limit (high-water mark {high_water})",
                        human(lag),
                        human(over)
                    ),
                );
            } else if self.alerter.is_active(&name, Condition::Lag) {
                self.alerter.resolve(
                    &name,
                    Condition::Lag,
                    &format!("data lag is back to {}", human(lag)),
                );
            }
        }
    }

    /// Queues a run of `spec` now.
    pub(super) fn trigger(&self, spec: &str, kind: RunKind) -> Result<bool, TriggerError> {
        if self.stopping() {
            return Err(TriggerError::Stopping);
        }
        let mut specs = self.specs();
        let entry = specs
            .get_mut(spec)
            .filter(|e| !e.removed)
            .ok_or(TriggerError::NotFound)?;
        if entry.plan.is_none() {
            return Err(TriggerError::Broken);
        }
        if kind == RunKind::Remedy && entry.plan.as_ref().is_some_and(|p| p.remedy.is_none()) {
            return Err(TriggerError::NoRemedy);
        }
        let behind = entry.running.is_some();
        if !entry.pending.iter().any(|(k, _)| *k == kind) {
            entry.pending.push_back((kind, Trigger::Manual));
        }
        drop(specs);
        self.wake.notify_one();
        Ok(behind)
    }
}

/// Why `POST /api/specs/<name>/run` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("no such spec")]
    NotFound,
    #[error("the spec never passed check")]
    Broken,
    #[error("the spec has no @remedy")]
    NoRemedy,
    #[error("the daemon is shutting down")]
    Stopping,
}

/// A lag for alerts (`2h 5m`, `40s`): [`crate::plan::human`] to the second, and to the
/// minute once it is over an hour.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let shown = if secs >= 3600 { secs - secs % 60 } else { secs };
    crate::plan::human(Duration::from_secs(shown))
}
