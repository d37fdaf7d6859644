//! Turns `QSYNC_SKIP_BROWSER_TESTS` into the `qsync_skip_browser_tests` cfg, which marks the
//! browser tests `#[ignore]`: the test harness has no run-time skip, and a test that returns
//! early on its own reports `ok` (it used to, in 0.00 s, when Chromium was missing). Ignored
//! tests are counted and named in the summary.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(qsync_skip_browser_tests)");
    println!("cargo::rerun-if-env-changed=QSYNC_SKIP_BROWSER_TESTS");
    println!("cargo::rerun-if-changed=build.rs");
    let skip = std::env::var("QSYNC_SKIP_BROWSER_TESTS").unwrap_or_default();
    if !skip.is_empty() && skip != "0" {
        println!("cargo::rustc-cfg=qsync_skip_browser_tests");
    }
}
