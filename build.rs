//! Turns `QSYNC_SKIP_BROWSER_TESTS` into the `qsync_skip_browser_tests` cfg, which marks the
//! browser tests `#[ignore]`: the test harness has no run-time skip, and a test that returns
//! early on its own reports `ok` (it used to, in 0.00 s, when Chromium was missing). Ignored
//! tests are counted and named in the summary.
//!
//! Likewise `qsync_no_systemd_analyze` when no `systemd-analyze` is on the PATH: the check of
//! `contrib/qsync.service` is then ignored, visibly, instead of passing without running. The
//! PATH is looked at when this script runs (a fresh build, or a change here), not on every
//! build: PATH differs between shells, and each difference would rebuild the crate.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(qsync_skip_browser_tests)");
    println!("cargo::rerun-if-env-changed=QSYNC_SKIP_BROWSER_TESTS");
    println!("cargo::rustc-check-cfg=cfg(qsync_no_systemd_analyze)");
    println!("cargo::rerun-if-changed=build.rs");
    let skip = std::env::var("QSYNC_SKIP_BROWSER_TESTS").unwrap_or_default();
    if !skip.is_empty() && skip != "0" {
        println!("cargo::rustc-cfg=qsync_skip_browser_tests");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if !std::env::split_paths(&path).any(|dir| dir.join("systemd-analyze").is_file()) {
        println!("cargo::rustc-cfg=qsync_no_systemd_analyze");
    }
}
