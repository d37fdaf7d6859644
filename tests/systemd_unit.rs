//! `contrib/qsync.service`: `systemd-analyze verify` accepts it without a warning, its stop
//! timeout leaves room for serve's grace period, and the real binary takes its command line
//! and its environment file (`contrib/qsync.env`).
//!
//! Without `systemd-analyze` on the PATH when the tests are built, the verification is
//! marked ignored (`build.rs`), so the summary says it did not run.

use std::path::Path;
use std::time::Duration;

use crate::support::{repo, BIN};

fn unit() -> String {
    std::fs::read_to_string(repo().join("contrib/qsync.service")).expect("contrib/qsync.service")
}

/// The value of `key=` in the unit (the last one, as systemd reads it).
fn setting(unit: &str, key: &str) -> String {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .next_back()
        .unwrap_or_else(|| panic!("the unit sets {key}"))
        .trim()
        .to_owned()
}

/// `30s`, `1min 30s`-free spans as the unit writes them: `<n>s` or `<n>min`.
fn span(text: &str) -> Duration {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number.parse().unwrap_or_else(|_| panic!("a span: {text}"));
    match unit {
        "s" | "" => Duration::from_secs(n),
        "min" => Duration::from_secs(n * 60),
        other => panic!("unit {other} in {text}"),
    }
}

#[test]
#[cfg_attr(
    qsync_no_systemd_analyze,
    ignore = "systemd-analyze not found when the tests were built: contrib/qsync.service not verified"
)]
fn the_unit_passes_systemd_analyze_verify() {
    // `verify` checks that ExecStart's binary exists: point it at the one the tests built.
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit().replace("/usr/local/bin/qsync", BIN);
    let path = dir.path().join("qsync.service");
    std::fs::write(&path, unit).expect("unit written");
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // An unknown key or a bad value is only a warning, with exit status 0.
    assert!(stderr.trim().is_empty(), "systemd-analyze warns:\n{stderr}");
}

#[test]
fn the_stop_timeout_covers_the_grace_period_and_qsync_takes_the_command_line() {
    let unit = unit();
    let exec = setting(&unit, "ExecStart");
    let args: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(args[..2], ["/usr/local/bin/qsync", "serve"], "{exec}");
    let grace = args
        .iter()
        .position(|a| *a == "--grace")
        .map(|i| span(args[i + 1]))
        .unwrap_or_else(|| panic!("ExecStart names --grace: {exec}"));
    let stop = span(&setting(&unit, "TimeoutStopSec"));
    assert!(
        stop >= grace + Duration::from_secs(10),
        "TimeoutStopSec {stop:?} leaves too little room after --grace {grace:?}"
    );
    assert_eq!(setting(&unit, "KillSignal"), "SIGTERM");
    assert_eq!(setting(&unit, "Restart"), "on-failure");
    assert_eq!(setting(&unit, "EnvironmentFile"), "/etc/qsync/qsync.env");

    // The environment file as systemd reads it (VAR=value lines), and the unit's command
    // line: qsync parses both and gets as far as the missing spec folder (exit 1, not 2 for
    // a usage error).
    let env_file = std::fs::read_to_string(repo().join("contrib/qsync.env")).expect("qsync.env");
    let mut command = std::process::Command::new(BIN);
    for line in env_file.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("qsync.env: not VAR=value: {line}"));
        command.env(key, value);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("specs");
    let mut args: Vec<String> = args[1..].iter().map(|a| (*a).to_owned()).collect();
    let folder = args.pop().expect("the spec folder");
    assert_eq!(folder, "/etc/qsync/specs");
    args.push(missing.display().to_string());
    let output = command
        .args(&args)
        .env("QSYNC_LISTEN", "127.0.0.1:0")
        .output()
        .expect("qsync runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not a folder of specs"), "{stderr}");
    assert!(Path::new(&folder).is_absolute());
}
