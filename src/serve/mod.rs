//! `qsync serve`: the daemon that runs every spec of a folder on its schedule for months.
//!
//! Owns the spec catalogue (load, re-check on change, keep the last good version of a broken
//! edit), the scheduler (cron slots in the profile zone, no overlapping runs, missed slots
//! run once, a global concurrency limit), per-run leases so several instances can share a
//! folder, graceful shutdown, metrics, the status page and JSON API (`http`) and alerts
//! ([`alerts`]). It does not own how a run works: that is behind [`runner::Runner`], which
//! production backs with `exec`. Nothing here may take the daemon down: a failing spec, a
//! broken edit, an unreachable MySQL or a dead alert channel is logged, shown and alerted.

pub mod alerts;
pub mod clock;
pub mod engine;
mod http;
pub mod lease;
pub mod metrics;
mod page;
pub mod runner;
pub mod schedule;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::config::{self, EnvPolicy, LoadedProfile};
use crate::frontend::{self, LoadError};
use crate::plan::{AlertRule, Plan};
use crate::state::{RunOutcome, RunRecord};

use self::alerts::{AlertSettings, Alerter, Condition};
use self::clock::Clock;
use self::lease::Coordinator;
use self::metrics::{Outcome, SkipReason, SpecStats};
use self::runner::{RunFailure, RunReport, RunRequest, Runner};
use self::schedule::Schedule;

/// How many finished runs each spec keeps for the status page and `/api/runs`.
const HISTORY: usize = 50;
/// Longest wait for a lease or history statement before the run fails.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of one daemon.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The folder of `.qsync` specs (searched recursively).
    pub folder: PathBuf,
    /// The profile; default `qsync.yaml` in the folder, then in the working directory.
    pub profile: Option<PathBuf>,
    pub listen: SocketAddr,
    /// This instance's name: the owner of its leases.
    pub instance: String,
    /// Runs in progress at once, across all specs.
    pub max_concurrent: usize,
    /// After a shutdown request, how long running runs get to stop on their own.
    pub grace: Duration,
    pub alerts: AlertSettings,
    /// Lease lifetime; renewed every third of it while a run goes on.
    pub lease_ttl: Duration,
    /// How often the folder is checked for changed specs.
    pub watch_interval: Duration,
}

impl ServeConfig {
    /// Defaults for `folder`: loopback port 9187, 4 concurrent runs, 30 s grace.
    pub fn new(folder: PathBuf) -> ServeConfig {
        ServeConfig {
            folder,
            profile: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            instance: default_instance(),
            max_concurrent: 4,
            grace: Duration::from_secs(30),
            alerts: AlertSettings::default(),
            lease_ttl: Duration::from_secs(60),
            watch_interval: Duration::from_secs(2),
        }
    }
}

/// `<hostname>-<pid>`.
pub fn default_instance() -> String {
    format!("{}-{}", crate::state::host_name(), std::process::id())
}

/// What the daemon is plugged into.
#[derive(Clone)]
pub struct Services {
    pub clock: Arc<dyn Clock>,
    pub runner: Arc<dyn Runner>,
    pub coordinator: Arc<dyn Coordinator>,
}

/// Why the daemon could not start. Once started, it does not fail.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("`{path}` is not a folder of specs")]
    Folder { path: String },
    #[error(transparent)]
    Profile(#[from] config::ProfileError),
    #[error("{0}")]
    Alerts(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "listening on {addr}, which is not loopback, needs `api_token` in the profile: the API \
         can start runs"
    )]
    TokenRequired { addr: SocketAddr },
}

/// Which job of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The regular incremental run (`@schedule`).
    Regular,
    /// The omission remedy (`@remedy`).
    Remedy,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Regular => "regular",
            RunKind::Remedy => "remedy",
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    /// A slot missed while the daemon was down, run once at start.
    Missed,
    /// `POST /api/specs/<name>/run`.
    Manual,
}

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
    pub report: RunReport,
    pub error: Option<String>,
}

#[derive(Debug)]
struct Job {
    kind: RunKind,
    schedule: Schedule,
    next_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Signature {
    modified: Option<SystemTime>,
    len: u64,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    kind: RunKind,
    since: DateTime<Utc>,
}

#[derive(Debug)]
struct SpecEntry {
    name: String,
    path: PathBuf,
    signature: Option<Signature>,
    /// The last version that passed check; runs use it even while the file is broken.
    plan: Option<Arc<Plan>>,
    profile: Option<Arc<LoadedProfile>>,
    /// Why the file on disk does not load, when it does not.
    broken: Option<String>,
    jobs: Vec<Job>,
    running: Option<Running>,
    pending: VecDeque<(RunKind, Trigger)>,
    history: VecDeque<RunView>,
    stats: SpecStats,
    high_water: Option<NaiveDateTime>,
    last_success: Option<DateTime<Utc>>,
    removed: bool,
}

impl SpecEntry {
    fn new(name: String, path: PathBuf) -> SpecEntry {
        SpecEntry {
            name,
            path,
            signature: None,
            plan: None,
            profile: None,
            broken: None,
            jobs: Vec::new(),
            running: None,
            pending: VecDeque::new(),
            history: VecDeque::new(),
            stats: SpecStats::default(),
            high_water: None,
            last_success: None,
            removed: false,
        }
    }

    fn target_url(&self) -> Result<String, String> {
        let plan = self.plan.as_ref().ok_or("the spec never loaded")?;
        let profile = self
            .profile
            .as_ref()
            .ok_or("no profile: cannot find the target database")?;
        profile
            .target_url(&plan.target.connection)
            .map_err(|e| format!("{e}: cannot take the spec's lease"))
    }

    fn job(&self, kind: RunKind) -> Option<&Job> {
        self.jobs.iter().find(|j| j.kind == kind)
    }
}

/// A run the scheduler decided to start.
struct Start {
    spec: String,
    kind: RunKind,
    trigger: Trigger,
    plan: Arc<Plan>,
    profile: Option<Arc<LoadedProfile>>,
    url: Result<String, String>,
}

/// The state every task of one daemon shares.
struct Daemon {
    config: ServeConfig,
    services: Services,
    zone: Tz,
    profile_path: Option<PathBuf>,
    api_token: Option<String>,
    secrets: Vec<String>,
    alerter: Alerter,
    specs: Mutex<BTreeMap<String, SpecEntry>>,
    permits: Arc<Semaphore>,
    wake: Notify,
    /// `true` once shutdown began: no new runs; running ones are told to stop.
    stop: watch::Sender<bool>,
    running: watch::Sender<usize>,
    tasks: Mutex<Vec<AbortHandle>>,
    started_at: DateTime<Utc>,
    unfinished: AtomicUsize,
}

impl Daemon {
    fn specs(&self) -> MutexGuard<'_, BTreeMap<String, SpecEntry>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than stopping the daemon would, so keep serving.
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn spawn<F>(self: &Arc<Self>, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(future);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle.abort_handle());
        }
    }

    fn now_local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.zone).naive_local()
    }

    fn to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        self.zone
            .from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    }

    fn mask(&self, text: &str) -> String {
        alerts::mask(text, &self.secrets)
    }

    // ---- catalogue -------------------------------------------------------------------

    fn load_spec(&self, path: &Path) -> Result<frontend::Loaded, String> {
        frontend::load(path, self.profile_path.as_deref(), EnvPolicy::Require, None)
            .map_err(|e| self.mask(&describe_load_error(&e)))
    }

    /// Compares the folder with the catalogue and (re)loads what changed.
    fn sync_folder(&self, initial: bool) {
        let files = match frontend::spec_files(std::slice::from_ref(&self.config.folder)) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!("cannot list the spec folder: {e}");
                return;
            }
        };
        let now = self.services.clock.now();
        let mut seen = Vec::new();
        for path in files {
            let name = frontend::spec_name(&path);
            let signature = signature(&path);
            let unchanged = self
                .specs()
                .get(&name)
                .is_some_and(|e| e.path == path && e.signature == signature && !e.removed);
            seen.push(name.clone());
            if unchanged {
                continue;
            }
            let result = self.load_spec(&path);
            let mut specs = self.specs();
            if let Some(other) = specs.get(&name) {
                if other.path != path && !other.removed && other.plan.is_some() {
                    tracing::warn!(
                        spec = %name,
                        "`{}` has the same name as `{}`; ignored",
                        path.display(),
                        other.path.display()
                    );
                    continue;
                }
            }
            let entry = specs
                .entry(name.clone())
                .or_insert_with(|| SpecEntry::new(name.clone(), path.clone()));
            entry.path = path.clone();
            entry.signature = signature;
            entry.removed = false;
            match result {
                Ok(loaded) => {
                    let was_broken = entry.broken.take().is_some();
                    let had_plan = entry.plan.is_some();
                    self.install(entry, loaded, now);
                    drop(specs);
                    if had_plan {
                        tracing::info!(spec = %name, "spec reloaded");
                    } else if !initial {
                        tracing::info!(spec = %name, "new spec loaded");
                    }
                    if was_broken {
                        self.alerter.resolve(
                            &name,
                            Condition::SpecBroken,
                            "the spec file checks again; the new version is in use",
                        );
                    }
                }
                Err(message) => {
                    let keeps = entry.plan.is_some();
                    entry.broken = Some(message.clone());
                    drop(specs);
                    let what = if keeps {
                        "the last good version keeps running"
                    } else {
                        "the spec is not scheduled"
                    };
                    tracing::error!(spec = %name, "spec fails check; {what}:\n{message}");
                    self.alerter.raise(
                        &name,
                        Condition::SpecBroken,
                        &format!("`{}` fails check; {what}.\n{message}", path.display()),
                    );
                }
            }
        }
        let mut specs = self.specs();
        let gone: Vec<String> = specs
            .keys()
            .filter(|name| !seen.contains(name))
            .cloned()
            .collect();
        for name in gone {
            let running = specs.get(&name).is_some_and(|e| e.running.is_some());
            if running {
                if let Some(entry) = specs.get_mut(&name) {
                    entry.removed = true;
                }
            } else {
                specs.remove(&name);
            }
            tracing::info!(spec = %name, "spec file removed; spec unscheduled");
        }
        drop(specs);
        self.wake.notify_one();
    }

    /// Swaps a freshly checked version in; schedules keep their next slot when unchanged.
    fn install(&self, entry: &mut SpecEntry, loaded: frontend::Loaded, now: DateTime<Utc>) {
        let plan = Arc::new(loaded.plan);
        let mut jobs = Vec::new();
        let wanted = [
            (RunKind::Regular, plan.schedule.clone()),
            (
                RunKind::Remedy,
                plan.remedy.as_ref().map(|r| r.schedule.clone()),
            ),
        ];
        for (kind, text) in wanted {
            let Some(text) = text else { continue };
            match Schedule::parse(&text, self.zone) {
                Ok(schedule) => {
                    let next_due = entry
                        .job(kind)
                        .filter(|old| old.schedule.text() == text)
                        .map_or_else(|| schedule.next_after(now), |old| old.next_due);
                    jobs.push(Job {
                        kind,
                        schedule,
                        next_due,
                    });
                }
                Err(e) => tracing::error!(spec = %entry.name, "{e}"),
            }
        }
        entry.jobs = jobs;
        entry.plan = Some(plan);
        entry.profile = loaded.profile.map(Arc::new);
    }

    /// At start: the cursor for the lag, and a regular run at once when a slot was missed
    /// while no instance was running the spec.
    async fn recover_history(&self) {
        let targets: Vec<(String, Result<String, String>)> = self
            .specs()
            .values()
            .map(|e| (e.name.clone(), e.target_url()))
            .collect();
        let now = self.services.clock.now();
        for (name, url) in targets {
            let Ok(url) = url else { continue };
            let coordinator = &self.services.coordinator;
            let lookup = async {
                let high_water = coordinator.high_water(&url, &name).await?;
                let last = coordinator.last_started(&url, &name).await?;
                Ok::<_, String>((high_water, last))
            };
            match tokio::time::timeout(Duration::from_secs(10), lookup).await {
                Ok(Ok((high_water, last))) => {
                    let last = last.and_then(|l| self.to_utc(l));
                    let mut specs = self.specs();
                    let Some(entry) = specs.get_mut(&name) else {
                        continue;
                    };
                    entry.high_water = entry.high_water.or(high_water);
                    let mut missed = false;
                    for job in &mut entry.jobs {
                        if job.kind == RunKind::Regular && last.is_some() {
                            job.next_due = job.schedule.due_after_downtime(last, now);
                            missed = job.next_due == Some(now);
                        }
                    }
                    if missed {
                        // Queue it as missed (so the run says why it started) and move
                        // the job on to its next slot.
                        entry.pending.push_back((RunKind::Regular, Trigger::Missed));
                        for job in &mut entry.jobs {
                            if job.kind == RunKind::Regular {
                                job.next_due = job.schedule.next_after(now);
                            }
                        }
                        tracing::info!(spec = %name, "a slot was missed while down; running once now");
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(spec = %name, "cannot read the spec's history: {}", self.mask(&e));
                }
                Err(_) => tracing::warn!(spec = %name, "reading the spec's history timed out"),
            }
        }
        self.wake.notify_one();
    }

    // ---- scheduler -------------------------------------------------------------------

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

    async fn schedule_loop(self: Arc<Self>) {
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

    async fn watch_loop(self: Arc<Self>) {
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

    fn check_lag(&self, now: DateTime<Utc>) {
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
    fn trigger(&self, spec: &str, kind: RunKind) -> Result<bool, TriggerError> {
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

    // ---- one run ---------------------------------------------------------------------

    async fn run(self: Arc<Self>, start: Start) {
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
                failure.report.unwrap_or_default(),
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
    ) -> Option<(Result<RunReport, RunFailure>, bool)> {
        let owner = &self.config.instance;
        let ttl = self.config.lease_ttl;
        let coordinator = self.services.coordinator.clone();
        // A database that does not answer must fail the run, not hang it.
        let taken = tokio::time::timeout(
            DATABASE_TIMEOUT,
            coordinator.take(url, &start.spec, owner, ttl),
        )
        .await
        .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()));
        match taken {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                let failure = RunFailure::new(format!(
                    "cannot take the lease on `{}`: {}",
                    start.spec,
                    self.mask(&e)
                ));
                return Some((Err(failure), false));
            }
        }
        let (run_stop, run_stop_rx) = watch::channel(false);
        let guard = {
            let coordinator = coordinator.clone();
            let url = url.to_owned();
            let spec = start.spec.clone();
            let owner = owner.clone();
            let mut stop = self.stop.subscribe();
            tokio::spawn(async move {
                let mut last_ok = Instant::now();
                let mut told = false;
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(ttl / 3) => {}
                        _ = stop.wait_for(|s| *s), if !told => {
                            told = true;
                            let _ = run_stop.send(true);
                            continue;
                        }
                    }
                    let renewed =
                        tokio::time::timeout(ttl / 3, coordinator.renew(&url, &spec, &owner, ttl))
                            .await
                            .unwrap_or_else(|_| Err("the database did not answer".to_owned()));
                    match renewed {
                        Ok(true) => last_ok = Instant::now(),
                        Ok(false) => {
                            tracing::error!(spec = %spec, "lease lost to another instance; stopping the run");
                            let _ = run_stop.send(true);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(spec = %spec, "cannot renew the lease: {e}");
                            if last_ok.elapsed() >= ttl * 2 / 3 {
                                tracing::error!(spec = %spec, "lease about to expire; stopping the run");
                                let _ = run_stop.send(true);
                                return;
                            }
                        }
                    }
                }
            })
        };
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(guard.abort_handle());
        }
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
        guard.abort();
        let released = tokio::time::timeout(
            DATABASE_TIMEOUT,
            coordinator.release(url, &start.spec, owner),
        )
        .await
        .unwrap_or_else(|_| Err("the database did not answer in time".to_owned()));
        if let Err(e) = released {
            tracing::warn!(spec = %start.spec, "cannot release the lease (it will expire): {}", self.mask(&e));
        }
        let result = match result {
            // The run was told to stop and said it failed: it stopped, it did not fail.
            Err(failure) if *run_stop_rx.borrow() && !self.stopping() => Err(RunFailure {
                message: format!("stopped: the lease was lost ({})", failure.message),
                report: failure.report,
            }),
            other => other,
        };
        let asked_to_stop = *run_stop_rx.borrow();
        Some((result, asked_to_stop))
    }

    fn run_record(&self, view: &RunView) -> RunRecord {
        let (range_start, range_end) = view
            .report
            .range
            .as_deref()
            .and_then(|r| r.split_once(" .. "))
            .map_or((None, None), |(a, b)| {
                (
                    crate::cli::parse_time(a).ok(),
                    crate::cli::parse_time(b).ok(),
                )
            });
        RunRecord {
            spec: view.spec.clone(),
            range_start,
            range_end,
            pages: view.report.pages,
            records: view.report.records,
            rows_written: view.report.rows_written,
            rejects: view.report.rejects,
            retries: view.report.retries,
            duration: Duration::from_secs_f64(view.duration_seconds),
            outcome: match view.outcome {
                Outcome::Success => RunOutcome::Success,
                Outcome::Partial => RunOutcome::Partial,
                Outcome::Failed | Outcome::Stopped => RunOutcome::Failed,
            },
            error: view.error.clone(),
            started_at: self.now_local(view.started_at),
            finished_at: Some(self.now_local(view.finished_at)),
        }
    }

    fn alert_on(&self, plan: &Plan, view: &RunView) {
        let spec = &view.spec;
        match view.outcome {
            Outcome::Failed => {
                let window = view
                    .report
                    .range
                    .as_deref()
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

    // ---- views -----------------------------------------------------------------------

    fn spec_views(&self) -> Vec<SpecView> {
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

    fn runs(&self, spec: Option<&str>, limit: usize) -> Option<Vec<RunView>> {
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

    fn metrics(&self) -> String {
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

fn signature(path: &Path) -> Option<Signature> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Signature {
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

/// One line per diagnostic (`file:line:col: message`), for logs, alerts and the page.
fn describe_load_error(error: &LoadError) -> String {
    match error {
        LoadError::Check(failure) => {
            let text = failure.src.inner();
            let lines: Vec<String> = failure
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| {
                    let (line, column) = crate::check::line_col(text, d.span.start);
                    format!("{}:{line}:{column}: {}", failure.file, d.message)
                })
                .collect();
            if lines.is_empty() {
                error.to_string()
            } else {
                lines.join("\n")
            }
        }
        other => other.to_string(),
    }
}

/// A lag for alerts (`2h 5m`, `40s`): [`crate::plan::human`] to the second, and to the
/// minute once it is over an hour.
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let shown = if secs >= 3600 { secs - secs % 60 } else { secs };
    crate::plan::human(Duration::from_secs(shown))
}

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs still going when the grace period ended (abandoned; their leases expire).
    pub unfinished: usize,
}

/// A running daemon.
pub struct ServeHandle {
    daemon: Arc<Daemon>,
    addr: SocketAddr,
    main: tokio::task::JoinHandle<ShutdownReport>,
}

impl std::fmt::Debug for ServeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeHandle")
            .field("addr", &self.addr)
            .field("instance", &self.daemon.config.instance)
            .finish_non_exhaustive()
    }
}

impl ServeHandle {
    /// Where the HTTP server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts a graceful shutdown: no new runs; running ones stop after their current batch.
    pub fn shutdown(&self) {
        self.daemon.stop.send_replace(true);
    }

    /// A cheap handle that can start a shutdown from elsewhere (a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            daemon: self.daemon.clone(),
        }
    }

    /// Queues a run now, as `POST /api/specs/<name>/run` does; true when it waits for a
    /// run in progress.
    pub fn trigger(&self, spec: &str, kind: RunKind) -> Result<bool, TriggerError> {
        self.daemon.trigger(spec, kind)
    }

    /// Every spec as `/api/specs` shows it.
    pub fn specs(&self) -> Vec<SpecView> {
        self.daemon.spec_views()
    }

    /// Waits until the daemon has shut down.
    pub async fn wait(self) -> ShutdownReport {
        match self.main.await {
            Ok(report) => report,
            Err(_) => ShutdownReport {
                unfinished: self.daemon.unfinished.load(Ordering::Relaxed),
            },
        }
    }

    /// Stops every task at once without releasing anything, as a crash would: for tests of
    /// lease expiry and for a second Ctrl-C.
    pub fn kill(self) {
        self.main.abort();
        if let Ok(tasks) = self.daemon.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

/// Starts a graceful shutdown of its daemon.
#[derive(Clone)]
pub struct Stopper {
    daemon: Arc<Daemon>,
}

impl Stopper {
    pub fn shutdown(&self) {
        self.daemon.stop.send_replace(true);
    }
}

/// Loads the folder, binds the listener and starts the daemon on the current runtime.
pub async fn start(config: ServeConfig, services: Services) -> Result<ServeHandle, ServeError> {
    if !config.folder.is_dir() {
        return Err(ServeError::Folder {
            path: config.folder.display().to_string(),
        });
    }
    let profile_path = config.profile.clone().or_else(|| {
        [
            config.folder.join("qsync.yaml"),
            PathBuf::from("qsync.yaml"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    });
    let profile = match &profile_path {
        Some(path) => Some(config::load(
            path,
            EnvPolicy::Require,
            &config::process_env,
        )?),
        None => None,
    };
    let zone = profile
        .as_ref()
        .map_or(chrono_tz::Asia::Shanghai, LoadedProfile::timezone);
    let channels = alerts::parse_channels(
        profile
            .as_ref()
            .map_or(&[][..], |p| p.profile.alerts.as_slice()),
    )
    .map_err(ServeError::Alerts)?;
    let api_token = profile
        .as_ref()
        .and_then(|p| p.profile.api_token.clone())
        .filter(|t| !t.is_empty());
    let loopback = config.listen.ip().is_loopback();
    if !loopback && api_token.is_none() {
        return Err(ServeError::TokenRequired {
            addr: config.listen,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    // Secrets under four characters would turn every message into asterisks and reveal
    // next to nothing; they are left as they are.
    let mut secrets = profile
        .as_ref()
        .map(LoadedProfile::secrets)
        .unwrap_or_default();
    secrets.retain(|s| s.chars().count() >= 4);
    let alerter = Alerter::start(
        channels,
        services.clock.clone(),
        config.instance.clone(),
        config.alerts,
        secrets.clone(),
    );
    let now = services.clock.now();
    let daemon = Arc::new(Daemon {
        permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
        config,
        services,
        zone,
        profile_path,
        api_token: if loopback { None } else { api_token },
        secrets,
        alerter,
        specs: Mutex::new(BTreeMap::new()),
        wake: Notify::new(),
        stop: watch::Sender::new(false),
        running: watch::Sender::new(0),
        tasks: Mutex::new(Vec::new()),
        started_at: now,
        unfinished: AtomicUsize::new(0),
    });
    {
        let loader = daemon.clone();
        tokio::task::spawn_blocking(move || loader.sync_folder(true))
            .await
            .map_err(|e| ServeError::Alerts(format!("loading specs failed: {e}")))?;
    }
    let count = daemon.specs().len();
    tracing::info!(
        instance = %daemon.config.instance,
        "serving {count} specs from `{}` on http://{addr}",
        daemon.config.folder.display()
    );
    daemon.recover_history().await;
    let app = http::router(daemon.clone());
    let mut stop = daemon.stop.subscribe();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("HTTP server failed: {e}");
        }
    });
    daemon.spawn(daemon.clone().watch_loop());
    let scheduler = tokio::spawn(daemon.clone().schedule_loop());
    if let Ok(mut tasks) = daemon.tasks.lock() {
        tasks.push(server.abort_handle());
        tasks.push(scheduler.abort_handle());
    }
    let main = {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let mut stop = daemon.stop.subscribe();
            let _ = stop.wait_for(|s| *s).await;
            tracing::info!(
                "shutting down: no new runs; waiting up to {}s for running ones",
                daemon.config.grace.as_secs()
            );
            let mut running = daemon.running.subscribe();
            let drained = tokio::time::timeout(daemon.config.grace, running.wait_for(|n| *n == 0))
                .await
                .is_ok();
            let unfinished = if drained { 0 } else { *daemon.running.borrow() };
            if unfinished > 0 {
                tracing::error!(
                    "{unfinished} runs did not stop within the grace period; abandoning them"
                );
            }
            daemon.unfinished.store(unfinished, Ordering::Relaxed);
            let _ = scheduler.await;
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
            ShutdownReport { unfinished }
        })
    };
    Ok(ServeHandle { daemon, addr, main })
}
