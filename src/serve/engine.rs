//! The production [`Runner`]: `exec::run` with the daemon's clock, stop signal and one
//! set of per-connection rate limiters shared by every spec.
//!
//! Owns only the translation from the daemon's run request to `exec`'s options; the run's
//! [`RunSummary`] passes through as it is. `exec` records each run in `_qsync_runs` itself.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::runner::{RunFailure, RunRequest, Runner};
use crate::exec::{self, Limiters, RunOptions, RunSummary};

/// Runs plans with the real engine.
#[derive(Debug, Clone)]
pub struct ExecRunner {
    limiters: Arc<Limiters>,
}

impl ExecRunner {
    /// One limiter set for the daemon: two specs on one vendor connection share its rate.
    pub fn new() -> ExecRunner {
        ExecRunner {
            limiters: Arc::new(Limiters::new()),
        }
    }
}

impl Default for ExecRunner {
    fn default() -> Self {
        ExecRunner::new()
    }
}

impl Runner for ExecRunner {
    fn run(&self, request: RunRequest) -> BoxFuture<'static, Result<RunSummary, RunFailure>> {
        let limiters = self.limiters.clone();
        Box::pin(async move {
            let Some(profile) = request.profile else {
                return Err(RunFailure::new(format!(
                    "spec `{}` has no profile: write `qsync.yaml` beside the specs or pass \
                     --profile",
                    request.plan.name
                )));
            };
            let options = RunOptions {
                remedy: request.remedy,
                now: Some(request.now),
                shutdown: Some(request.shutdown),
                limiters: Some(limiters),
                ..RunOptions::default()
            };
            match exec::run(&request.plan, &profile, options).await {
                Ok(summary) => Ok(summary),
                Err(error) => Err(RunFailure {
                    message: error.to_string(),
                    report: error.summary().cloned().map(Box::new),
                }),
            }
        })
    }

    fn records_history(&self) -> bool {
        true
    }
}
