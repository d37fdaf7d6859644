//! The spec catalogue of `qsync serve`: which specs the folder holds and what the daemon
//! knows of each ([`SpecEntry`]: its last good plan and profile, whether the file on disk is
//! broken, its jobs and their next slots, the run in progress and the ones waiting, its
//! history and counters). Loads the folder at start, re-checks changed files (a broken edit
//! keeps the last good version running and raises `spec_broken`), drops removed files once
//! their run ends, and reads each spec's high-water mark and last start back from MySQL at
//! start (a slot missed while no instance ran is run once). When runs start is the
//! scheduler's business (`scheduler.rs`), how they go the run's (`run.rs`).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::alerts::Condition;
use super::metrics::SpecStats;
use super::schedule::Schedule;
use super::{Daemon, RunKind, RunView, Trigger};
use crate::config::{EnvPolicy, LoadedProfile};
use crate::frontend::{self, LoadError};
use crate::plan::Plan;

/// A scheduled job of a spec (regular or remedy) and its next slot.
#[derive(Debug)]
pub(super) struct Job {
    pub(super) kind: RunKind,
    pub(super) schedule: Schedule,
    pub(super) next_due: Option<DateTime<Utc>>,
}

/// A spec file's modification time and length: when either changes, the file is checked
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Signature {
    pub(super) modified: Option<SystemTime>,
    pub(super) len: u64,
}

/// The run of a spec in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Running {
    pub(super) kind: RunKind,
    pub(super) since: DateTime<Utc>,
}

/// What the daemon knows of one spec.
#[derive(Debug)]
pub(super) struct SpecEntry {
    pub(super) name: String,
    pub(super) path: PathBuf,
    pub(super) signature: Option<Signature>,
    /// The last version that passed check; runs use it even while the file is broken.
    pub(super) plan: Option<Arc<Plan>>,
    pub(super) profile: Option<Arc<LoadedProfile>>,
    /// Why the file on disk does not load, when it does not.
    pub(super) broken: Option<String>,
    pub(super) jobs: Vec<Job>,
    pub(super) running: Option<Running>,
    pub(super) pending: VecDeque<(RunKind, Trigger)>,
    pub(super) history: VecDeque<RunView>,
    pub(super) stats: SpecStats,
    pub(super) high_water: Option<NaiveDateTime>,
    pub(super) last_success: Option<DateTime<Utc>>,
    pub(super) removed: bool,
}

impl SpecEntry {
    pub(super) fn new(name: String, path: PathBuf) -> SpecEntry {
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

    pub(super) fn target_url(&self) -> Result<String, String> {
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

impl Daemon {
    fn load_spec(&self, path: &Path) -> Result<frontend::Loaded, String> {
        frontend::load(path, self.profile_path.as_deref(), EnvPolicy::Require, None)
            .map_err(|e| self.mask(&describe_load_error(&e)))
    }

    /// Compares the folder with the catalogue and (re)loads what changed.
    pub(super) fn sync_folder(&self, initial: bool) {
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
    pub(super) async fn recover_history(&self) {
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
