//! What the daemon asks of the engine: run one plan once, stop early when told.
//!
//! Owns the [`Runner`] seam between the scheduler and `exec`, so the scheduler, leases,
//! metrics and alerts can be tested with a scripted runner and driven in production by the
//! real engine. A run reports the one run-result type, [`RunSummary`] (`state`), whatever
//! runs it. It does not own how a plan is executed.

use std::sync::Arc;

use chrono::NaiveDateTime;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::config::LoadedProfile;
use crate::plan::Plan;
use crate::state::RunSummary;

/// One run to perform.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plan: Arc<Plan>,
    pub profile: Option<Arc<LoadedProfile>>,
    /// The omission-remedy run (re-read the lookback window) instead of the regular one.
    pub remedy: bool,
    /// The daemon clock's time in the profile zone; the run's `CURRENT_TIME`.
    pub now: NaiveDateTime,
    /// Turns `true` when the run must stop after the batch it is committing.
    pub shutdown: watch::Receiver<bool>,
}

/// A run that failed, with what it managed before failing.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFailure {
    pub message: String,
    pub report: Option<Box<RunSummary>>,
}

impl RunFailure {
    /// A failure with nothing done.
    pub fn new(message: impl Into<String>) -> RunFailure {
        RunFailure {
            message: message.into(),
            report: None,
        }
    }
}

/// Runs plans. Implementations must honour `shutdown` and never panic on a bad spec.
pub trait Runner: Send + Sync + 'static {
    fn run(&self, request: RunRequest) -> BoxFuture<'static, Result<RunSummary, RunFailure>>;

    /// Whether the runner writes `_qsync_runs` itself; otherwise the daemon does.
    fn records_history(&self) -> bool {
        false
    }
}
