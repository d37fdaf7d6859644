//! Command-line front end: the clap definition of the command line and dispatch, one file
//! per command with its arguments (`check`, `plan`, `sim`, `serve`, `import`; `sync` holds
//! `run`, `state` and `replay`, which share loading and the runtime), and what commands
//! share: flag parsers for times and spans, the output formats, how a load failure is
//! printed, logging, progress and stop signals. Exit codes are decided in `main` from the
//! `Outcome` returned here: 0 ok, 1 check or run failure, 2 usage, 130 and 143 for a run
//! stopped by SIGINT or SIGTERM. Nothing here reads MySQL or HTTP itself: the sink, `exec`
//! and `dryrun` do, and a command prints what they return.

use chrono::NaiveDateTime;
use clap::{Parser, Subcommand, ValueEnum};

use crate::frontend::LoadError;

mod check;
mod import;
mod logging;
mod plan;
mod progress;
mod serve;
mod signals;
mod sim;
mod sync;

pub use self::check::CheckArgs;
pub use self::import::ImportArgs;
pub use self::plan::PlanArgs;
pub use self::serve::ServeArgs;
pub use self::sim::SimArgs;
pub use self::sync::{parse_window, ReplayArgs, RunArgs, StateArgs};

/// qsync: sync SaaS API data into MySQL, driven by declarative `.qsync` specs.
#[derive(Debug, Parser)]
#[command(name = "qsync", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check specs: syntax, meaning, profile; non-zero exit on any error.
    Check(CheckArgs),
    /// Dry run: windows, the signed first request, paging, rows from a sample, the SQL.
    Plan(PlanArgs),
    /// Serve the vendor API simulator (every vendor at once) until Ctrl-C.
    Sim(SimArgs),
    /// Run every spec of a folder on its schedule: status page, metrics, API and alerts.
    Serve(ServeArgs),
    /// Sync a spec: from the stored high-water mark (or --since) to now, window by window.
    Run(RunArgs),
    /// Show a spec's stored high-water mark and recent runs, or move the mark.
    State(StateArgs),
    /// Re-run one window; the high-water mark does not move.
    Replay(ReplayArgs),
    /// Turn integration-platform schemes (轻易云 JSON) into specs and a profile stub,
    /// naming what could not be translated; non-zero exit when anything was not.
    Import(ImportArgs),
}

/// Parses `500ms`, `30s`, `5m`, `1h`, `1d`.
pub fn parse_span(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. 30s, 5m, 1h"))?;
    let secs = |k: u64| std::time::Duration::from_secs(n.saturating_mul(k));
    match unit {
        "ms" => Ok(std::time::Duration::from_millis(n)),
        "" | "s" => Ok(secs(1)),
        "m" => Ok(secs(60)),
        "h" => Ok(secs(3600)),
        "d" => Ok(secs(86_400)),
        other => Err(format!(
            "`{other}` is not a time unit: use ms, s, m, h or d"
        )),
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

/// Parses `yyyy-MM-dd HH:mm:ss` or `yyyy-MM-dd`.
pub fn parse_time(text: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| format!("`{text}` is not a time: write \"yyyy-MM-dd HH:mm:ss\""))
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Usage,
    /// `run` or `replay` stopped by Ctrl-C (SIGINT) after committing its current window.
    Interrupted,
    /// `run` or `replay` stopped by SIGTERM after committing its current window.
    Terminated,
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Check(args) => check::check(&args),
        Command::Plan(args) => plan::plan(&args),
        Command::Sim(args) => sim::sim(&args),
        Command::Serve(args) => serve::serve(args),
        Command::Run(args) => sync::run(&args),
        Command::State(args) => sync::state(&args),
        Command::Replay(args) => sync::replay(&args),
        Command::Import(args) => import::run(&args),
    }
}

/// Prints a load failure the way `check` would, for `plan` and `run`.
pub fn report_load_error(error: &LoadError) {
    match error {
        LoadError::Check(failure) => {
            let text = failure.src.inner().clone();
            eprint!(
                "{}",
                crate::check::render(&failure.file, &text, &failure.diagnostics)
            );
        }
        other => eprintln!("error: {other}"),
    }
}

/// Runs one async call on a single-threaded runtime, for the one-shot MySQL and HTTP reads
/// of `check --db` and `plan`; `Err` with the reason when the runtime cannot start.
fn block_on<F: std::future::Future>(future: F) -> Result<F::Output, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(runtime.block_on(future))
}
