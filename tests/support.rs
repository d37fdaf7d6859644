//! `Test`: a builder that writes files to a tempdir, runs the real binary there and checks
//! status, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_qsync");

/// The repository root, for tests that read `specs/` or `tests/`.
pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[must_use]
pub(crate) struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    status: i32,
    cwd: Option<PathBuf>,
}

/// What a run printed.
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// The tempdir the run used, kept for inspection.
    pub(crate) dir: PathBuf,
}

impl Test {
    pub(crate) fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("a tempdir can be created"),
            args: Vec::new(),
            env: Vec::new(),
            status: 0,
            cwd: None,
        }
    }

    pub(crate) fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub(crate) fn file(self, name: &str, content: &str) -> Test {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dirs can be created");
        }
        std::fs::write(path, content).expect("test file can be written");
        self
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn status(mut self, status: i32) -> Test {
        self.status = status;
        self
    }

    /// Runs in `dir` instead of the tempdir.
    pub(crate) fn current_dir(mut self, dir: &Path) -> Test {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn run(self) -> Output {
        let cwd = self
            .cwd
            .clone()
            .unwrap_or_else(|| self.dir.path().to_path_buf());
        let output = Command::new(BIN)
            .args(&self.args)
            .current_dir(&cwd)
            .env_remove("QSYNC_PROFILE")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("the qsync binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(self.status),
            "qsync {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.args
        );
        let dir = self.dir.keep();
        Output {
            stdout,
            stderr,
            dir,
        }
    }
}
