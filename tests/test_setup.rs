//! The test command's own promises: a missing test MySQL is one clear line, not a failure
//! per MySQL test.

use std::process::Command;

#[test]
fn an_unreachable_test_mysql_ends_the_tests_with_one_line() {
    // This test binary itself, running only the `check --db` tests (each makes a database)
    // against a port where nothing listens.
    let url = "mysql://root@127.0.0.1:1/test";
    let output = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["cli_check_db::", "--test-threads=4"])
        .env("QSYNC_TEST_MYSQL_URL", url)
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, not one per test:\n{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "qsync tests: cannot connect to the test MySQL at {url} ("
        )),
        "{stderr}"
    );
    assert!(lines[0].contains("scripts/ensure-mariadb"), "{stderr}");
    assert!(!stdout.contains("panicked"), "{stdout}");
}
