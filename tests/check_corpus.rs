//! Golden files: every broken spec under `tests/check/errors/` produces its diagnostic
//! (snapshot) and exit code 1; every spec under `tests/check/ok/` passes.

use crate::support::{repo, Test};

#[test]
fn broken_specs_report_their_diagnostics() {
    let dir = repo().join("tests/check/errors");
    insta::glob!("check/errors/*.qsync", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let out = Test::new()
            .args(&["check", name])
            .current_dir(&dir)
            .status(1)
            .run();
        insta::assert_snapshot!(out.stderr);
    });
}

#[test]
fn every_code_has_a_broken_spec() {
    let source = std::fs::read_to_string(repo().join("src/check/codes.rs")).unwrap();
    let snapshots: String = std::fs::read_dir(repo().join("tests/snapshots"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    let codes: Vec<&str> = source
        .lines()
        .filter_map(|l| l.split('"').nth(1))
        .filter(|c| c.starts_with("qsync::"))
        .collect();
    assert!(codes.len() >= 30, "only {} codes", codes.len());
    // Warnings are covered by `cli_check` and `cli_check_catches`, live-table codes by
    // `cli_check_db`; every other
    // error code has a corpus file.
    let warnings = [
        "qsync::check::missing_env",
        "qsync::check::sample_missing_field",
        "qsync::check::sample_conversion",
        "qsync::check::sample_no_records",
        "qsync::check::sample_vendor_error",
        "qsync::check::sample_duplicate_key",
        "qsync::check::insert_rereads",
        "qsync::check::total_without_identity",
        "qsync::check::http_no_error_path",
    ];
    let missing: Vec<&&str> = codes
        .iter()
        .filter(|c| !warnings.contains(c) && !c.starts_with("qsync::check::db_"))
        .filter(|c| !snapshots.contains(**c))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a corpus file: {missing:?}"
    );
}

#[test]
fn ok_specs_pass() {
    let dir = repo().join("tests/check/ok");
    let out = Test::new().args(&["check", "."]).current_dir(&dir).run();
    assert!(out.stderr.contains("checked: ok"), "{}", out.stderr);
}
