//! `qsync check`: every spec under the given paths through the shared front end (syntax,
//! meaning, profile, an optional sample), with `--db` the map compared with the live
//! target table, which the sink reads ([`crate::sink::MysqlSink::inspect_target`]); the
//! diagnostics go to stderr, or one JSON document to stdout with `--format json`.

use std::io::Write as _;
use std::path::PathBuf;

use super::{block_on, Format, Outcome};
use crate::config::EnvPolicy;
use crate::frontend::{self, LoadError};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Spec files or folders (searched for `*.qsync`).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Connection profile; default `qsync.yaml` beside the spec, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// A vendor response to try the map on (warns about absent fields and bad conversions);
    /// default `samples/<spec name>.json` beside the spec, as for `plan`.
    #[arg(long)]
    pub sample: Option<PathBuf>,
    /// Output format of the diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// Also compare each spec's map with its live target table in MySQL.
    #[arg(long)]
    pub db: bool,
}

pub(super) fn check(args: &CheckArgs) -> Outcome {
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
        // The same sample `plan` uses: the flag, else `samples/<spec>.json` beside the spec.
        let sample = args.sample.clone().or_else(|| frontend::find_sample(file));
        let result = frontend::load(
            file,
            args.profile.as_deref(),
            EnvPolicy::Tolerate,
            sample.as_deref(),
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
    let target = block_on(crate::sink::MysqlSink::inspect_target(
        &url,
        &plan.target.table,
    ))?
    .map_err(|e| crate::config::mask(&e.to_string(), &profile.secrets()))?;
    let diagnostics = crate::check::compare_live(
        &loaded.text,
        plan,
        target.table.as_ref(),
        target.serialized_loads.as_deref(),
        &target.binary_collation,
    );
    Ok((diagnostics, (target.database, target.transport)))
}

pub(super) fn json_report(
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
