//! `qsync sim`: the simulator as a process, for demos and manual testing.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{Test, BIN};

#[test]
fn sim_serves_every_vendor_until_stopped() {
    let mut child = Command::new(BIN)
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--records",
            "20",
            "--drift",
            "--truncate-rate",
            "0.5",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("qsync sim starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    let listed: Vec<String> = lines.by_ref().take(6).map(|l| l.expect("line")).collect();
    assert!(
        listed.iter().any(|l| l.contains("/jushuitan")),
        "{listed:?}"
    );
    let stats = reqwest::blocking_get(&format!("{url}/_sim/faults"));
    child.kill().expect("stop the simulator");
    let _ = child.wait();
    let faults: serde_json::Value = serde_json::from_str(&stats).expect("json");
    assert_eq!(faults["drift"], true);
    assert_eq!(faults["truncate_rate"], 0.5);
}

#[test]
fn sim_refuses_bad_flags() {
    let out = Test::new()
        .args(&["sim", "--listen", "10.1.2.3:8700"])
        .status(2)
        .run();
    assert!(out.stderr.contains("loopback only"), "{}", out.stderr);
    let out = Test::new()
        .args(&["sim", "--error-rate", "1.5"])
        .status(2)
        .run();
    assert_eq!(
        out.stderr,
        "error: --error-rate is a share of requests between 0 and 1, not 1.5\n"
    );
}

mod reqwest {
    /// A tiny blocking GET over a fresh tokio runtime (the test itself is synchronous).
    pub(super) fn blocking_get(url: &str) -> String {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            ::reqwest::get(url)
                .await
                .expect("request")
                .text()
                .await
                .expect("body")
        })
    }
}
