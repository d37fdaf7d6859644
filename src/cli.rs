//! Command-line front end: clap definitions and dispatch. Exit codes are decided in
//! `main` from the `Outcome` returned here: 0 ok, 1 check or run failure, 2 usage.

use std::io::Write as _;
use std::path::PathBuf;

use chrono::NaiveDateTime;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::EnvPolicy;
use crate::frontend::{self, LoadError};

mod import;
mod sync;

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
    Import(import::ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The folder of `.qsync` specs; changed files are re-checked and swapped in.
    pub folder: PathBuf,
    /// Connection profile; default `qsync.yaml` in the folder, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Address of the status page, `/metrics` and the API. Anything but loopback requires
    /// the profile's `api_token` as a bearer token.
    #[arg(long, env = "QSYNC_LISTEN", default_value = "127.0.0.1:9187")]
    pub listen: std::net::SocketAddr,
    /// This instance's name in leases (default `<hostname>-<pid>`); instances sharing a
    /// folder and database need distinct names.
    #[arg(long, env = "QSYNC_INSTANCE")]
    pub instance: Option<String>,
    /// Runs in progress at once, across all specs.
    #[arg(long, default_value_t = 4)]
    pub max_concurrent: usize,
    /// On SIGTERM / Ctrl-C, how long running runs get to commit their batch and stop.
    #[arg(long, value_parser = parse_span, default_value = "30s")]
    pub grace: std::time::Duration,
    /// After an alert, how long the same condition stays quiet (recoveries always alert).
    #[arg(long, value_parser = parse_span, default_value = "1h")]
    pub alert_quiet: std::time::Duration,
    /// Lifetime of a spec's lease; renewed every third of it while the run goes on.
    #[arg(long, value_parser = parse_span, default_value = "60s")]
    pub lease_ttl: std::time::Duration,
    /// How often the folder is checked for changed specs.
    #[arg(long, value_parser = parse_span, default_value = "2s")]
    pub watch_interval: std::time::Duration,
    /// Log format on stderr (level from `QSYNC_LOG`, e.g. `debug`, default `info`).
    #[arg(long, value_enum, default_value = "text", env = "QSYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
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

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: std::net::SocketAddr,
    /// Seed of the generated datasets.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Records per dataset.
    #[arg(long, default_value_t = 500)]
    pub records: usize,
    /// Modified times spread over this many days before now.
    #[arg(long, default_value_t = 10)]
    pub span_days: i64,
    /// Enforce the vendors' rate limits.
    #[arg(long)]
    pub rates: bool,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with HTTP 500/502 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Modify records while windows are being paged (the page-shift that loses orders).
    #[arg(long)]
    pub drift: bool,
    /// Share of requests answered 200 with the vendor's retryable error body (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub vendor_error_rate: f64,
    /// Throttle bursts: every N requests, answer the next few with the vendor's throttle
    /// code (429 with Retry-After for plain HTTP).
    #[arg(long)]
    pub throttle_every: Option<u32>,
    /// Share of requests that hang for 30 s before a 504 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Share of answers cut in half (torn bodies) (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Share of pages that repeat the previous page's last record (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_rate: f64,
    /// Lifetime of issued tokens in seconds (tokens expire mid-run).
    #[arg(long)]
    pub token_ttl_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Spec files or folders (searched for `*.qsync`).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// A vendor response to try the map on (warns about absent fields and bad conversions).
    #[arg(long)]
    pub sample: Option<PathBuf>,
    /// Output format of the diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Also compare each spec's map with its live target table in MySQL.
    #[arg(long)]
    pub db: bool,
}

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The spec to plan.
    pub spec: PathBuf,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// A vendor response to turn into rows; default `samples/<spec name>.json` beside the spec.
    #[arg(long)]
    pub sample: Option<PathBuf>,
    /// The run's clock, `yyyy-MM-dd HH:mm:ss` in the source time zone (default: now).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<NaiveDateTime>,
    /// The high-water mark to plan from, as if stored by an earlier run.
    #[arg(long, value_parser = parse_time, conflicts_with = "stored")]
    pub last_sync: Option<NaiveDateTime>,
    /// Plan from the high-water mark stored in the target database (read only).
    #[arg(long)]
    pub stored: bool,
    /// Start of the range, overriding the stored mark.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<NaiveDateTime>,
    /// End of the range (default: now minus the window's lag).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<NaiveDateTime>,
    /// Plan the omission-remedy run instead.
    #[arg(long)]
    pub remedy: bool,
    /// Rows of the sample to show.
    #[arg(long, default_value_t = 3)]
    pub rows: usize,
    /// Fetch the first page for real and show its rows (the only network access of `plan`).
    #[arg(long, conflicts_with = "sample")]
    pub live: bool,
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
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Check(args) => check(&args),
        Command::Plan(args) => plan(&args),
        Command::Sim(args) => sim(&args),
        Command::Serve(args) => serve(args),
        Command::Run(args) => sync::run(&args),
        Command::State(args) => sync::state(&args),
        Command::Replay(args) => sync::replay(&args),
        Command::Import(args) => import::run(&args),
    }
}

fn check(args: &CheckArgs) -> Outcome {
    let files = match frontend::spec_files(&args.paths) {
        Ok(files) if !files.is_empty() => files,
        Ok(_) => {
            eprintln!("error: no `.qsync` files under the given paths");
            return Outcome::Usage;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
    };
    let mut failed = false;
    let mut json_files = Vec::new();
    let mut stderr = std::io::stderr().lock();
    for file in &files {
        let result = frontend::load(
            file,
            args.profile.as_deref(),
            EnvPolicy::Tolerate,
            args.sample.as_deref(),
        );
        let mut transport = None;
        let (diagnostics, text) = match result {
            Ok(loaded) if args.db => {
                let mut diagnostics = loaded.warnings.clone();
                match live_diagnostics(&loaded) {
                    Ok((found, how)) => {
                        diagnostics.extend(found);
                        transport = Some(how);
                    }
                    Err(message) => {
                        failed = true;
                        let _ = writeln!(stderr, "error: {}: {message}", file.display());
                    }
                }
                failed |= diagnostics
                    .iter()
                    .any(crate::check::CheckDiagnostic::is_error);
                diagnostics.sort_by_key(|d| d.span.start);
                (diagnostics, loaded.text)
            }
            Ok(loaded) => (loaded.warnings, loaded.text),
            Err(LoadError::Check(failure)) => {
                failed |= failure.has_errors();
                let text = failure.src.inner().clone();
                (failure.diagnostics, text)
            }
            Err(other) => {
                failed = true;
                match args.format {
                    Format::Human => {
                        let _ = writeln!(stderr, "error: {other}");
                    }
                    Format::Json => json_files.push(serde_json::json!({
                        "file": file.display().to_string(),
                        "error": other.to_string(),
                        "diagnostics": [],
                    })),
                }
                continue;
            }
        };
        let name = file.display().to_string();
        match args.format {
            Format::Human => {
                let _ =
                    stderr.write_all(crate::check::render(&name, &text, &diagnostics).as_bytes());
                if let Some((host, transport)) = &transport {
                    let _ = writeln!(stderr, "{name}: MySQL at {host}: {transport}");
                }
            }
            Format::Json => {
                let mut report = json_report(&name, &text, &diagnostics);
                if let Some((host, transport)) = &transport {
                    report["connection"] = serde_json::json!({
                        "host": host,
                        "ssl_mode": transport.mode.to_string(),
                        "encrypted": transport.tls.is_some(),
                        "tls_version": transport.tls.as_ref().map(|(version, _)| version),
                        "cipher": transport.tls.as_ref().map(|(_, cipher)| cipher),
                    });
                }
                json_files.push(report);
            }
        }
    }
    let errors_files = files.len();
    match args.format {
        Format::Human => {
            let _ = writeln!(
                stderr,
                "{} {} checked: {}",
                errors_files,
                if errors_files == 1 { "spec" } else { "specs" },
                if failed { "errors found" } else { "ok" }
            );
        }
        Format::Json => {
            let doc = serde_json::json!({ "ok": !failed, "files": json_files });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    if failed {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}

/// `plan --stored`: the mark `_qsync_state` holds for this spec, reading only.
fn stored_mark(loaded: &frontend::Loaded) -> Result<Option<NaiveDateTime>, String> {
    let plan = &loaded.plan;
    let profile = loaded
        .profile
        .as_ref()
        .ok_or("--stored needs a profile (qsync.yaml) with the target connection")?;
    let url = profile
        .target_url(&plan.target.connection)
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mark = runtime.block_on(async {
        let sink = crate::sink::MysqlSink::connect(&url).await?;
        let mark = match crate::sink::StateStore::existing(&sink).await? {
            Some(store) => store.cursor(&plan.name).await?.map(|c| c.high_water),
            None => None,
        };
        sink.disconnect().await;
        Ok::<_, crate::sink::SinkError>(mark)
    });
    mark.map_err(|e| crate::config::mask(&e.to_string(), &profile.secrets()))
}

/// What `check --db` found, and where the target database is (`host:port/database`) and
/// how the connection to it travels.
type LiveFindings = (
    Vec<crate::check::CheckDiagnostic>,
    (String, crate::sink::Transport),
);

/// `check --db`: reads the live target table and compares the map with it.
fn live_diagnostics(loaded: &frontend::Loaded) -> Result<LiveFindings, String> {
    let plan = &loaded.plan;
    let profile = loaded
        .profile
        .as_ref()
        .ok_or("--db needs a profile (qsync.yaml) with the target connection")?;
    let url = profile
        .target_url(&plan.target.connection)
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let found = runtime.block_on(async {
        let sink = crate::sink::MysqlSink::connect(&url).await?;
        let found = async {
            let live = sink.describe(&plan.target.table).await?;
            let serialized = match live {
                Some(_) => sink.serialized_loads(&plan.target.table).await?,
                None => None,
            };
            Ok::<_, crate::sink::SinkError>((live, serialized))
        }
        .await;
        let how = (
            format!("{}/{}", sink.host(), sink.database()),
            sink.transport().clone(),
        );
        sink.disconnect().await;
        found.map(|found| (found, how))
    });
    let ((live, serialized), how) =
        found.map_err(|e| crate::config::mask(&e.to_string(), &profile.secrets()))?;
    let diagnostics =
        crate::check::compare_live(&loaded.text, plan, live.as_ref(), serialized.as_deref());
    Ok((diagnostics, how))
}

fn json_report(
    file: &str,
    text: &str,
    diagnostics: &[crate::check::CheckDiagnostic],
) -> serde_json::Value {
    let items: Vec<serde_json::Value> = diagnostics
        .iter()
        .map(|d| {
            let (line, column) = crate::check::line_col(text, d.span.start);
            serde_json::json!({
                "code": d.code,
                "severity": if d.is_error() { "error" } else { "warning" },
                "message": d.message,
                "label": d.label,
                "help": d.help,
                "line": line,
                "column": column,
                "start": d.span.start,
                "end": d.span.end,
            })
        })
        .collect();
    serde_json::json!({ "file": file, "diagnostics": items })
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

fn plan(args: &PlanArgs) -> Outcome {
    // With --live the first page is the sample; the bundled sample file is not read.
    let sample = if args.live {
        None
    } else {
        args.sample
            .clone()
            .or_else(|| frontend::find_sample(&args.spec))
    };
    let loaded = match frontend::load(
        &args.spec,
        args.profile.as_deref(),
        EnvPolicy::Require,
        sample.as_deref(),
    ) {
        Ok(l) => l,
        Err(e) => {
            report_load_error(&e);
            return Outcome::Failed;
        }
    };
    if !loaded.warnings.is_empty() {
        eprint!(
            "{}",
            crate::check::render(
                &args.spec.display().to_string(),
                &loaded.text,
                &loaded.warnings
            )
        );
    }
    let stored = if args.stored {
        match stored_mark(&loaded) {
            Ok(mark) => mark,
            Err(e) => {
                eprintln!("error: cannot read the stored high-water mark: {e}");
                return Outcome::Failed;
            }
        }
    } else {
        None
    };
    let mut inputs = crate::dryrun::DryRunInputs {
        at: args.at,
        last_sync: args.last_sync.or(stored),
        since: args.since,
        until: args.until,
        remedy: args.remedy,
        profile: loaded.profile.as_ref(),
        sample: loaded.sample.as_ref(),
        max_rows: args.rows,
        live: args.live,
    };
    let live_sample = if args.live {
        let Some(profile) = loaded.profile.as_ref() else {
            eprintln!("error: --live needs a profile (qsync.yaml) with the source connection");
            return Outcome::Failed;
        };
        let fetched = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(crate::dryrun::fetch_live_page(
                    &loaded.plan,
                    profile,
                    &inputs,
                ))
                .map_err(|e| e.to_string())
            });
        match fetched {
            Ok(page) => Some(page),
            Err(e) => {
                eprintln!("error: the live first page failed: {e}");
                return Outcome::Failed;
            }
        }
    } else {
        None
    };
    if live_sample.is_some() {
        inputs.sample = live_sample.as_ref();
    }
    print!("{}", crate::dryrun::explain(&loaded.plan, &inputs));
    Outcome::Ok
}

fn sim(args: &SimArgs) -> Outcome {
    let rates = [
        ("--error-rate", args.error_rate),
        ("--vendor-error-rate", args.vendor_error_rate),
        ("--timeout-rate", args.timeout_rate),
        ("--truncate-rate", args.truncate_rate),
        ("--duplicate-rate", args.duplicate_rate),
    ];
    if let Some((flag, value)) = rates.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        eprintln!("error: {flag} is a share of requests between 0 and 1, not {value}");
        return Outcome::Usage;
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "error: the simulator listens on loopback only, not {}",
            args.listen
        );
        return Outcome::Usage;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Outcome::Failed;
        }
    };
    runtime.block_on(async {
        let config = crate::sim::SimConfig {
            seed: args.seed,
            records: args.records,
            span_days: args.span_days,
            rates: args.rates,
            faults: crate::sim::Faults {
                latency: std::time::Duration::from_millis(args.latency_ms),
                error_rate: args.error_rate,
                drift: args.drift,
                vendor_error_rate: args.vendor_error_rate,
                throttle_burst: args.throttle_every.map(|every| crate::sim::ThrottleBurst {
                    every,
                    len: 2,
                    retry_after_secs: 1,
                }),
                timeout_rate: args.timeout_rate,
                truncate_rate: args.truncate_rate,
                duplicate_rate: args.duplicate_rate,
                token_ttl: args.token_ttl_secs.map(std::time::Duration::from_secs),
                ..crate::sim::Faults::default()
            },
            ..crate::sim::SimConfig::default()
        };
        let handle = match crate::sim::start(config, args.listen).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot start the simulator on {}: {e}", args.listen);
                return Outcome::Failed;
            }
        };
        eprintln!(
            "qsync sim: serving every vendor on http://{} (Ctrl-C to stop)",
            handle.addr()
        );
        for kind in crate::plan::ConnectorKind::ALL {
            eprintln!("  {:<14} {}", kind.keyword(), handle.base_url(kind));
        }
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
        Outcome::Ok
    })
}
fn serve(args: ServeArgs) -> Outcome {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QSYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Outcome::Failed;
        }
    };
    let mut config = crate::serve::ServeConfig::new(args.folder);
    config.profile = args.profile;
    config.listen = args.listen;
    if let Some(instance) = args.instance {
        config.instance = instance;
    }
    config.max_concurrent = args.max_concurrent;
    config.grace = args.grace;
    config.alerts.quiet = args.alert_quiet;
    config.lease_ttl = args.lease_ttl;
    config.watch_interval = args.watch_interval;
    runtime.block_on(async move {
        let services = crate::serve::Services {
            clock: std::sync::Arc::new(crate::serve::clock::SystemClock),
            runner: std::sync::Arc::new(crate::serve::engine::ExecRunner::new()),
            coordinator: std::sync::Arc::new(crate::serve::lease::MysqlCoordinator::new()),
        };
        let handle = match crate::serve::start(config, services).await {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Failed;
            }
        };
        let stopper = handle.stopper();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::warn!("shutdown requested; send the signal again to exit at once");
            stopper.shutdown();
            shutdown_signal().await;
            tracing::error!("second signal: exiting now; running runs' leases will expire");
            std::process::exit(130);
        });
        let report = handle.wait().await;
        if report.unfinished == 0 {
            Outcome::Ok
        } else {
            Outcome::Failed
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
