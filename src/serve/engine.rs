//! The production [`Runner`]: `exec::run` with the daemon's clock, stop signal and one
//! set of per-connection rate limiters shared by every spec.
//!
//! Owns only the translation between the daemon's run request / report and `exec`'s
//! options / summary. `exec` records each run in `_qsync_runs` itself.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::runner::{RunFailure, RunReport, RunRequest, Runner};
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

fn report(summary: &RunSummary) -> RunReport {
    let time = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    RunReport {
        range: summary
            .range
            .map(|(start, end)| format!("{} .. {}", time(start), time(end))),
        windows: summary.windows as u64,
        pages: summary.pages,
        records: summary.records,
        rows_written: summary.rows_written,
        rejects: summary.rejects,
        retries: summary.retries,
        throttled: summary.throttled,
        high_water_mark: summary.high_water_mark,
    }
}

impl Runner for ExecRunner {
    fn run(&self, request: RunRequest) -> BoxFuture<'static, Result<RunReport, RunFailure>> {
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
                Ok(summary) => Ok(report(&summary)),
                Err(error) => Err(RunFailure {
                    message: error.to_string(),
                    report: error.summary().map(report),
                }),
            }
        })
    }

    fn records_history(&self) -> bool {
        true
    }
}
