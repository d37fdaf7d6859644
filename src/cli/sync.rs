//! `qsync run`, `qsync state` and `qsync replay`: load the spec through the shared front
//! end, hand the plan to `exec` on a tokio runtime, print the outcome. The summary goes to
//! stdout, errors and logs to stderr; the exit code is decided in `main` from [`Outcome`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::NaiveDateTime;

use super::signals::{self, Signals, StopSignal};
use super::{logging, parse_time, progress, report_load_error, LogFormat, Outcome};
use crate::config::{EnvPolicy, LoadedProfile};
use crate::exec::{self, RunError, RunErrorKind, RunOptions, RunSummary};
use crate::plan::Plan;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The spec to run.
    pub spec: PathBuf,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Start of the range (`yyyy-MM-dd HH:mm:ss`, source time zone), overriding the stored mark.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<NaiveDateTime>,
    /// End of the range (default: now minus the window's lag).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<NaiveDateTime>,
    /// Start from the window's `initial`, ignoring the stored mark.
    #[arg(long, conflicts_with = "since")]
    pub full: bool,
    /// Omission remedy: re-read the spec's `@remedy` lookback before now.
    #[arg(long, conflicts_with_all = ["since", "full"])]
    pub remedy: bool,
    /// Log format on stderr (level from `QSYNC_LOG`, e.g. `info`, default `warn`).
    #[arg(long, value_enum, default_value = "text", env = "QSYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// The spec whose state to show.
    pub spec: PathBuf,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Move the high-water mark to this time (`yyyy-MM-dd HH:mm:ss`).
    #[arg(long, value_parser = parse_time)]
    pub set: Option<NaiveDateTime>,
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The spec to replay.
    pub spec: PathBuf,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// The window, `"yyyy-MM-dd HH:mm:ss..yyyy-MM-dd HH:mm:ss"`.
    #[arg(long, value_parser = parse_window)]
    pub window: crate::source::Window,
    /// Log format on stderr (level from `QSYNC_LOG`, default `warn`).
    #[arg(long, value_enum, default_value = "text", env = "QSYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

/// Parses `START..END`.
pub fn parse_window(text: &str) -> Result<crate::source::Window, String> {
    let (start, end) = text
        .split_once("..")
        .ok_or_else(|| format!("`{text}` is not a window: write \"START..END\""))?;
    let start = parse_time(start.trim())?;
    let end = parse_time(end.trim())?;
    if start >= end {
        return Err(format!(
            "the window `{text}` is empty: its start is not before its end"
        ));
    }
    Ok(crate::source::Window { start, end })
}

/// Loads the spec and its profile; spec errors are usage errors here.
fn load(spec: &Path, profile: Option<&Path>) -> Result<(Plan, LoadedProfile), Outcome> {
    let loaded = match crate::frontend::load(spec, profile, EnvPolicy::Require, None) {
        Ok(loaded) => loaded,
        Err(error) => {
            report_load_error(&error);
            return Err(Outcome::Usage);
        }
    };
    if !loaded.warnings.is_empty() {
        eprint!(
            "{}",
            crate::check::render(&spec.display().to_string(), &loaded.text, &loaded.warnings)
        );
    }
    let Some(profile) = loaded.profile else {
        eprintln!(
            "error: no profile for `{}`: pass --profile, set QSYNC_PROFILE, or put a qsync.yaml \
             beside the spec",
            spec.display()
        );
        return Err(Outcome::Usage);
    };
    Ok((loaded.plan, profile))
}

fn runtime() -> Result<tokio::runtime::Runtime, Outcome> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            Outcome::Failed
        })
}

/// A stop signal raised by Ctrl-C or SIGTERM: the run stops after the current window
/// commits. A second signal exits at once: MySQL rolls the window's transaction back with
/// the connection, and no history row is written (as after `kill -9`).
fn stop_on_signals() -> tokio::sync::watch::Receiver<bool> {
    let (sender, receiver) = tokio::sync::watch::channel(false);
    let mut signals = Signals::listen();
    tokio::spawn(async move {
        let signal = signals.next().await;
        progress::suspended(|| {
            eprintln!(
                "{}: stopping after the current window commits (send it again to stop at once; \
                 that window then rolls back)",
                signal.name()
            );
        });
        let _ = sender.send(true);
        let again = signals.next().await;
        progress::suspended(|| eprintln!("{}: stopping now", again.name()));
        std::process::exit(match signal {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        });
    });
    receiver
}

fn finish(result: Result<RunSummary, RunError>) -> Outcome {
    match result {
        Ok(summary) => {
            print!("{summary}");
            Outcome::Ok
        }
        Err(error) => {
            let stopped = matches!(error.kind(), RunErrorKind::Stopped { .. });
            let signal = signals::received().filter(|_| stopped);
            match signal {
                Some(signal) => eprintln!(
                    "stopped by {}: {error}; `qsync run` again continues from the mark",
                    signal.name()
                ),
                None => eprintln!("error: {error}"),
            }
            if let Some(summary) = error.summary() {
                print!("{summary}");
            }
            match signal {
                Some(StopSignal::Interrupt) => Outcome::Interrupted,
                Some(StopSignal::Terminate) => Outcome::Terminated,
                None => Outcome::Failed,
            }
        }
    }
}

/// What `run` and `replay` share: load the spec, then on a runtime run `go` with the
/// options of every manual run (progress on stderr, Ctrl-C and SIGTERM, the spec's lease) over `options`,
/// and print the summary.
fn manual_run<F, Fut>(
    spec: &Path,
    profile: Option<&Path>,
    log_format: LogFormat,
    options: RunOptions,
    go: F,
) -> Outcome
where
    F: FnOnce(Plan, LoadedProfile, RunOptions) -> Fut,
    Fut: std::future::Future<Output = Result<RunSummary, RunError>>,
{
    logging::init(log_format, "warn");
    let (plan, profile) = match load(spec, profile) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(outcome) => return outcome,
    };
    let result = runtime.block_on(async {
        let options = RunOptions {
            progress: Some(Arc::new(progress::Reporter::for_stderr())),
            shutdown: Some(stop_on_signals()),
            lease_owner: Some(crate::state::run_owner()),
            ..options
        };
        go(plan, profile, options).await
    });
    finish(result)
}

pub(super) fn run(args: &RunArgs) -> Outcome {
    let options = RunOptions {
        since: args.since,
        until: args.until,
        full: args.full,
        remedy: args.remedy,
        ..RunOptions::default()
    };
    manual_run(
        &args.spec,
        args.profile.as_deref(),
        args.log_format,
        options,
        |plan, profile, options| async move { exec::run(&plan, &profile, options).await },
    )
}

pub(super) fn replay(args: &ReplayArgs) -> Outcome {
    let window = args.window;
    manual_run(
        &args.spec,
        args.profile.as_deref(),
        args.log_format,
        RunOptions::default(),
        |plan, profile, options| async move { exec::replay(&plan, &profile, window, options).await },
    )
}

fn time(t: Option<NaiveDateTime>) -> String {
    t.map_or_else(
        || "-".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

pub(super) fn state(args: &StateArgs) -> Outcome {
    let (plan, profile) = match load(&args.spec, args.profile.as_deref()) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(outcome) => return outcome,
    };
    let result: Result<String, String> = runtime.block_on(async {
        let store = exec::open_state(&plan, &profile)
            .await
            .map_err(|e| e.to_string())?;
        let cursor = store.cursor(&plan.name).await.map_err(|e| e.to_string())?;
        let old = cursor.as_ref().map(|c| c.high_water);
        if let Some(new) = args.set {
            store
                .set_cursor(&plan.name, new, &exec::spec_hash(&plan))
                .await
                .map_err(|e| e.to_string())?;
            return Ok(format!(
                "{}: high-water mark {} -> {}\n",
                plan.name,
                time(old),
                time(Some(new))
            ));
        }
        let mut out = format!("spec            {}\n", plan.name);
        let sink = store.sink();
        out.push_str(&format!(
            "database        {}/{}, {}\n",
            sink.host(),
            sink.database(),
            sink.transport()
        ));
        out.push_str(&format!("high-water mark {}\n", time(old)));
        if let Some(c) = &cursor {
            let changed = if c.spec_hash == exec::spec_hash(&plan) {
                ""
            } else {
                " (the spec changed since)"
            };
            out.push_str(&format!(
                "updated at      {}{changed}\n",
                time(Some(c.updated_at))
            ));
        }
        let lease = store.lease(&plan.name).await.map_err(|e| e.to_string())?;
        out.push_str(&match lease {
            Some(lease) => format!(
                "running         yes: `{}` holds the lease until {} (server time)\n",
                lease.owner,
                time(Some(lease.expires_at))
            ),
            None => "running         no\n".to_owned(),
        });
        let runs = store
            .runs(&plan.name, 10)
            .await
            .map_err(|e| e.to_string())?;
        if runs.is_empty() {
            out.push_str("no runs recorded\n");
        } else {
            out.push_str("\nrecent runs (newest first):\n");
            out.push_str(
                "started              outcome  range                                       \
                 pages  records     rows  rejects  retries  duration\n",
            );
            for run in &runs {
                out.push_str(&format!(
                    "{:<20} {:<8} {:<43} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8.1}s\n",
                    time(Some(run.started_at)),
                    run.outcome.as_str(),
                    format!(
                        "{} .. {}",
                        time(run.range.map(|r| r.start)),
                        time(run.range.map(|r| r.end))
                    ),
                    run.pages,
                    run.records,
                    run.rows_written,
                    run.rejects,
                    run.retries,
                    run.duration.as_secs_f64(),
                ));
                if let Some(error) = &run.error {
                    out.push_str(&format!("    error: {error}\n"));
                }
            }
        }
        Ok(out)
    });
    match result {
        Ok(text) => {
            print!("{text}");
            Outcome::Ok
        }
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::Failed
        }
    }
}
