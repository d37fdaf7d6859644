//! `qsync import`: scheme files in, specs and a profile stub out, findings on stderr (or
//! one JSON document on stdout).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::config::{self, EnvPolicy};
use crate::frontend;
use crate::import::{self, ImportOptions, Imported, SchemeFile, SchemeInput};
use crate::plan::ConnectorKind;

use super::{Format, Outcome};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Scheme files (`{"name": …, "source": {…}, "target": {…}}`) or folders of them
    /// (every `*.json` inside).
    #[arg(required_unless_present = "source", conflicts_with_all = ["source", "target"])]
    pub paths: Vec<PathBuf>,
    /// The source half, when a scheme's halves are two files (with --target).
    #[arg(long, requires = "target")]
    pub source: Option<PathBuf>,
    /// The target half, when a scheme's halves are two files (with --source).
    #[arg(long, requires = "source")]
    pub target: Option<PathBuf>,
    /// Write `<scheme>.qsync` per scheme and a profile stub (`qsync.yaml`, or
    /// `qsync.import.yaml` beside an existing one) into this folder; without it the one
    /// spec is printed.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// The connector to use when the API name does not tell it (or to override it):
    /// jushuitan, qimen, jikeyun, wdt, dingtalk_yida, http.
    #[arg(long, value_parser = parse_connector)]
    pub connector: Option<ConnectorKind>,
    /// Also run `check` on each imported spec (with the profile beside it under --out, or
    /// `./qsync.yaml`; the summary names the one used).
    #[arg(long)]
    pub check: bool,
    /// Overwrite `.qsync` files that already exist under --out (they are refused without
    /// it; an existing `qsync.yaml` is never overwritten).
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Output format of the findings.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

fn parse_connector(word: &str) -> Result<ConnectorKind, String> {
    ConnectorKind::from_keyword(word).ok_or_else(|| {
        let names: Vec<&str> = ConnectorKind::ALL.iter().map(|k| k.keyword()).collect();
        format!(
            "`{word}` is not a connector: use one of {}",
            names.join(", ")
        )
    })
}

/// One scheme to import and the spec name it gets.
struct Job {
    input: SchemeInput,
    stem: String,
}

pub(super) fn run(args: &ImportArgs) -> Outcome {
    let jobs = match jobs(args) {
        Ok(jobs) if !jobs.is_empty() => jobs,
        Ok(_) => {
            eprintln!("error: no `.json` scheme files under the given paths");
            return Outcome::Usage;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Outcome::Usage;
        }
    };
    if jobs.len() > 1 && args.out.is_none() {
        eprintln!(
            "error: {} schemes need --out <folder> (one spec file each)",
            jobs.len()
        );
        return Outcome::Usage;
    }
    if let Some(out) = &args.out {
        if let Err(e) = std::fs::create_dir_all(out) {
            eprintln!("error: cannot create `{}`: {e}", out.display());
            return Outcome::Failed;
        }
    }
    if let (Some(out), false) = (&args.out, args.force) {
        let existing: Vec<String> = jobs
            .iter()
            .map(|job| out.join(format!("{}.qsync", job.stem)))
            .filter(|path| path.exists())
            .map(|path| format!("`{}`", path.display()))
            .collect();
        if !existing.is_empty() {
            eprintln!(
                "error: {} already exist{}; nothing was written (pass --force to overwrite)",
                existing.join(", "),
                if existing.len() == 1 { "s" } else { "" }
            );
            return Outcome::Failed;
        }
    }
    let mut results = Vec::new();
    for job in &jobs {
        let imported = import::import(
            &job.input,
            &ImportOptions {
                connector: args.connector,
                default_title: job.stem.clone(),
            },
        );
        let spec_path = args
            .out
            .as_ref()
            .map(|dir| dir.join(format!("{}.qsync", job.stem)));
        if let Some(path) = &spec_path {
            if let Err(e) = std::fs::write(path, &imported.spec) {
                eprintln!("error: cannot write `{}`: {e}", path.display());
                return Outcome::Failed;
            }
        }
        results.push((job, imported, spec_path));
    }
    let profile_path = match &args.out {
        Some(dir) => match write_profile(
            dir,
            results
                .iter()
                .map(|(job, i, _)| (i, format!("{}.qsync", job.stem))),
        ) {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Failed;
            }
        },
        None => None,
    };
    report(args, &results, profile_path.as_deref())
}

/// The schemes named on the command line.
fn jobs(args: &ImportArgs) -> Result<Vec<Job>, String> {
    if let (Some(source), Some(target)) = (&args.source, &args.target) {
        for path in [source, target] {
            if !path.is_file() {
                return Err(format!("`{}`: no such file", path.display()));
            }
        }
        return Ok(vec![Job {
            input: SchemeInput::Halves {
                source: read(source),
                target: read(target),
            },
            stem: frontend::spec_name(source),
        }]);
    }
    let mut files = Vec::new();
    for path in &args.paths {
        if path.is_dir() {
            collect(path, &mut files)?;
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("`{}`: no such file or folder", path.display()));
        }
    }
    files.sort();
    files.dedup();
    Ok(files
        .iter()
        .map(|f| Job {
            input: SchemeInput::Whole(read(f)),
            stem: frontend::spec_name(f),
        })
        .collect())
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// A scheme file's bytes, decoded ([`SchemeFile::decode`]): a file that is no text is a
/// finding of its own import, so the other files of a folder are still imported.
fn read(path: &Path) -> SchemeFile {
    let name = path.display().to_string();
    match std::fs::read(path) {
        Ok(bytes) => SchemeFile::decode(name, &bytes),
        Err(e) => SchemeFile {
            unreadable: Some(e.to_string()),
            ..SchemeFile::new(name, "")
        },
    }
}

/// Writes the profile stub; an existing `qsync.yaml` is left alone and the stub goes to
/// `qsync.import.yaml` beside it.
fn write_profile<'a>(
    dir: &Path,
    imported: impl Iterator<Item = (&'a Imported, String)>,
) -> Result<PathBuf, String> {
    let imported: Vec<(&Imported, String)> = imported.collect();
    let env: Vec<(String, String)> = imported
        .iter()
        .flat_map(|(i, spec)| i.env.iter().map(move |var| (var.clone(), spec.clone())))
        .collect();
    let stub = import::profile_stub(
        imported.iter().flat_map(|(i, _)| i.connections.iter()),
        &env,
    );
    let main = dir.join("qsync.yaml");
    let path = if main.exists() {
        dir.join("qsync.import.yaml")
    } else {
        main
    };
    std::fs::write(&path, stub).map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
    Ok(path)
}

fn report(
    args: &ImportArgs,
    results: &[(&Job, Imported, Option<PathBuf>)],
    profile: Option<&Path>,
) -> Outcome {
    let mut failed = false;
    let mut stderr = std::io::stderr().lock();
    let mut documents = Vec::new();
    for (job, imported, spec_path) in results {
        let complete = imported.is_complete();
        failed |= !complete;
        let spec_name = spec_path.as_ref().map_or_else(
            || format!("{}.qsync", job.stem),
            |p| p.display().to_string(),
        );
        // The profile `qsync check` would use for the spec: the one beside it.
        let mut profile_used = None;
        let checked = args.check.then(|| {
            let profile =
                frontend::find_profile(None, Path::new(&spec_name)).and_then(
                    |p| match config::load(&p, EnvPolicy::Tolerate, &config::process_env) {
                        Ok(loaded) => {
                            profile_used = Some(format!("profile {}", p.display()));
                            Some(loaded)
                        }
                        Err(e) => {
                            profile_used =
                                Some(format!("no profile: {} does not load ({e})", p.display()));
                            None
                        }
                    },
                );
            if profile_used.is_none() {
                profile_used = Some("no profile found: connections not checked".to_owned());
            }
            import::check_spec(&spec_name, &imported.spec, profile.as_ref())
        });
        let check_failed = checked
            .as_ref()
            .is_some_and(|d| d.iter().any(crate::check::CheckDiagnostic::is_error));
        failed |= check_failed;
        match args.format {
            Format::Human => {
                let _ = stderr.write_all(
                    import::render_diagnostics(&job.input, &imported.diagnostics).as_bytes(),
                );
                if let Some(found) = &checked {
                    let _ = stderr.write_all(
                        crate::check::render(&spec_name, &imported.spec, found).as_bytes(),
                    );
                }
                let todos = imported.todo_lines();
                let inputs: Vec<String> =
                    job.input.files().iter().map(|f| f.name.clone()).collect();
                let _ = writeln!(
                    stderr,
                    "{} → {}: {}{}",
                    inputs.join(" + "),
                    spec_path
                        .as_ref()
                        .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string()),
                    if complete {
                        "complete".to_owned()
                    } else {
                        format!("incomplete, {todos} TODO(s)")
                    },
                    match (&checked, &profile_used) {
                        (Some(_), Some(p)) if check_failed => format!(", check failed ({p})"),
                        (Some(_), Some(p)) => format!(", check ok ({p})"),
                        _ => String::new(),
                    }
                );
                for var in &imported.env {
                    let _ = writeln!(
                        stderr,
                        "  needs the environment variable {var} where qsync runs (a credential the scheme held)"
                    );
                }
                if spec_path.is_none() {
                    print!("{}", imported.spec);
                }
            }
            Format::Json => {
                let mut doc = serde_json::json!({
                    "inputs": job.input.files().iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                    "spec_file": spec_path.as_ref().map(|p| p.display().to_string()),
                    "complete": complete,
                    "todo_lines": imported.todo_lines(),
                    "env": imported.env,
                    "diagnostics": import::json_diagnostics(&job.input, &imported.diagnostics),
                    "spec": imported.spec,
                });
                if let Some(found) = &checked {
                    doc["check"] = super::check::json_report(&spec_name, &imported.spec, found);
                    doc["check_profile"] = serde_json::json!(profile_used);
                }
                documents.push(doc);
            }
        }
    }
    match args.format {
        Format::Human => {
            if let Some(profile) = profile {
                let _ = writeln!(
                    stderr,
                    "profile stub: {} (set its ${{...}} variables)",
                    profile.display()
                );
            }
        }
        Format::Json => {
            let doc = serde_json::json!({
                "ok": !failed,
                "schemes": documents,
                "profile": profile.map(|p| p.display().to_string()),
            });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    if failed {
        Outcome::Failed
    } else {
        Outcome::Ok
    }
}
