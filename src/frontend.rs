//! The front end `check`, `plan`, `run` and `serve` share: find files, load the profile,
//! read the sample, then `check::check` (which parses, checks and builds the plan).

use std::path::{Path, PathBuf};

use crate::check::{self, CheckContext, CheckDiagnostic, CheckFailure};
use crate::config::{self, EnvPolicy, LoadedProfile, ProfileError};
use crate::plan::Plan;

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error("sample `{path}` is not JSON: {message}")]
    Sample { path: String, message: String },
    #[error("{0}")]
    Check(Box<CheckFailure>),
}

/// A spec that passed `check`, with what it was checked against.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub plan: Plan,
    pub warnings: Vec<CheckDiagnostic>,
    pub profile: Option<LoadedProfile>,
    pub sample: Option<serde_json::Value>,
}

/// Every `.qsync` file under the given files and folders, sorted, without duplicates.
pub fn spec_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for path in paths {
        if !path.exists() {
            return Err(LoadError::Read {
                path: path.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            });
        }
        if path.is_dir() {
            collect(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Read {
        path: dir.display().to_string(),
        source,
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "qsync") {
            out.push(path);
        }
    }
    Ok(())
}

/// The profile to use: the flag, else `qsync.yaml` beside the spec, else in the working
/// directory, else none.
pub fn find_profile(explicit: Option<&Path>, spec: &Path) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let beside = spec.parent().map(|d| d.join("qsync.yaml"));
    beside
        .filter(|p| p.is_file())
        .or_else(|| Some(PathBuf::from("qsync.yaml")).filter(|p| p.is_file()))
}

/// `samples/<stem>.json` beside the spec, when it exists.
pub fn find_sample(spec: &Path) -> Option<PathBuf> {
    let stem = spec.file_stem()?;
    let mut name = stem.to_os_string();
    name.push(".json");
    let path = spec.parent()?.join("samples").join(name);
    path.is_file().then_some(path)
}

/// Reads a JSON sample response.
pub fn read_sample(path: &Path) -> Result<serde_json::Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| LoadError::Sample {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

pub use crate::plan::spec_name;

/// Loads, checks and compiles one spec.
pub fn load(
    path: &Path,
    profile: Option<&Path>,
    policy: EnvPolicy,
    sample: Option<&Path>,
) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let profile = match find_profile(profile, path) {
        Some(p) => Some(config::load(&p, policy, &config::process_env)?),
        None => None,
    };
    let sample = sample.map(read_sample).transpose()?;
    let file = path.display().to_string();
    let ctx = CheckContext {
        profile: profile.as_ref(),
        sample: sample.as_ref(),
    };
    let check::Checked { plan, warnings } =
        check::check(&file, &text, ctx).map_err(|f| LoadError::Check(Box::new(f)))?;
    Ok(Loaded {
        path: path.to_path_buf(),
        text,
        plan,
        warnings,
        profile,
        sample,
    })
}
