//! `qsync check` from the command line: formats, exit codes, warnings, samples.

use crate::support::{repo, Test};

fn base() -> String {
    std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap()
}

fn profile() -> String {
    std::fs::read_to_string(repo().join("tests/check/qsync.yaml")).unwrap()
}

#[test]
fn example_specs_pass() {
    let out = Test::new()
        .args(&["check", "specs/"])
        .current_dir(&repo())
        .run();
    assert!(
        out.stderr.ends_with("6 specs checked: ok\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn json_format_is_machine_readable() {
    let spec = base().replace("mode replace", "mode merge");
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("bad.qsync", &spec)
        .args(&["check", "bad.qsync", "--format", "json"])
        .status(1)
        .run();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let d = &doc["files"][0]["diagnostics"][0];
    assert_eq!(d["code"], "qsync::check::unknown_mode");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 20);
    assert_eq!(d["column"], 10);
    assert_eq!(d["help"], "modes: insert, replace, upsert, ignore");
}

#[test]
fn usage_errors_exit_2() {
    Test::new().args(&["check"]).status(2).run();
    Test::new()
        .args(&["check", "empty-dir-without-specs"])
        .status(2)
        .run();
    Test::new().args(&["frobnicate"]).status(2).run();
}

/// A page size or window span over what the vendor publishes is refused by the vendor, so
/// it is an error (issue 14, item 6).
#[test]
fn values_over_the_vendors_limits_fail_the_check() {
    let spec = base()
        .replace(
            "@paginate page_index size 50",
            "@paginate page_index size 100",
        )
        .replace("window max 7d", "window max 14d");
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &spec)
        .args(&["check", "s.qsync"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains("qsync::check::page_size_over_limit"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the vendor allows at most 50 records per page, this asks for 100"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("qsync::check::window_over_limit"),
        "{}",
        out.stderr
    );
    insta::assert_snapshot!(out.stderr);
}

#[test]
fn insert_mode_on_a_source_that_rereads_is_a_warning() {
    let keyed = base().replace("mode replace", "mode insert");
    let keyless = base().replace("    mode replace\n    key id\n", "");
    assert_ne!(keyless, base(), "the base spec changed: adjust this test");
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("keyed.qsync", &keyed)
        .file("keyless.qsync", &keyless)
        .args(&["check", "keyed.qsync", "keyless.qsync"])
        .run();
    assert!(
        out.stderr
            .contains("`mode insert` fails a window on the first record read twice"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("without a key, every record read twice is written twice"),
        "{}",
        out.stderr
    );
    insta::assert_snapshot!(out.stderr);
    // Replace and upsert make re-reads harmless: no warning.
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &base())
        .args(&["check", "s.qsync"])
        .run();
    assert!(!out.stderr.contains("insert_rereads"), "{}", out.stderr);
}

#[test]
fn missing_env_is_a_warning_at_check_time() {
    let profile = profile().replace("corpus-secret", "${QSYNC_TEST_UNSET_VAR}");
    let out = Test::new()
        .file("qsync.yaml", &profile)
        .file("s.qsync", &base())
        .args(&["check", "s.qsync"])
        .run();
    assert!(
        out.stderr.contains("qsync::check::missing_env"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "connection `jst` uses environment variable `QSYNC_TEST_UNSET_VAR`, which is not set"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn sample_warnings_name_absent_fields_and_failed_conversions() {
    let spec = base().replace(
        "    source_id = 3\n",
        "    source_id = 3\n    shop = shop_nmae\n",
    );
    let sample = serde_json::json!({"code": 0, "data": {"has_next": false, "datas": [
        {"as_id": 1, "as_date": 1709258467000_u64, "refund": "12.5", "items": [{"asi_id": 10, "qty": "2"}]},
        {"as_id": 2, "as_date": "2024-04-27T07:56Z", "refund": "abc", "items": [{"asi_id": 20, "qty": 1}]}
    ]}});
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &spec)
        .file("sample.json", &sample.to_string())
        .args(&["check", "s.qsync", "--sample", "sample.json"])
        .run();
    assert!(
        out.stderr
            .contains("no record of the sample has field `shop_nmae` (column `shop`)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("sample value \"abc\" of `refund` does not convert to `decimal(12,2)`"),
        "{}",
        out.stderr
    );
    // Epoch milliseconds, ISO dates with Z and numbers as strings convert without warnings.
    assert!(!out.stderr.contains("of `as_date`"), "{}", out.stderr);
    assert!(!out.stderr.contains("of `items_qty`"), "{}", out.stderr);
}

#[test]
fn unreadable_sample_is_a_clear_error() {
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &base())
        .file("sample.json", "{not json")
        .args(&["check", "s.qsync", "--sample", "sample.json"])
        .status(1)
        .run();
    assert!(
        out.stderr
            .starts_with("error: sample `sample.json` is not JSON:"),
        "{}",
        out.stderr
    );
}

/// What qsync cannot verify on its own is a warning: a vendor total without anything that
/// tells records apart, and an `http` connection whose error bodies look like data.
#[test]
fn unverifiable_totals_and_unrecognised_error_bodies_are_warnings() {
    let profile = format!(
        "{}  api:\n    kind: http\n    base_url: http://127.0.0.1:9/api\n",
        profile()
    );
    let spec = r#"sync "orders"

source http "/orders" {
    connection api
    @paginate page page size 100 until total data.total
    records data.items
    total data.total
}

target mysql "orders" {
    connection bi
    mode insert
    create
}

map {
    order_no = order_no : string(32)
}
"#;
    let out = Test::new()
        .file("qsync.yaml", &profile)
        .file("orders.qsync", spec)
        .args(&["check", "orders.qsync"])
        .run();
    for code in [
        "qsync::check::total_without_identity",
        "qsync::check::http_no_error_path",
    ] {
        assert!(out.stderr.contains(code), "{code}: {}", out.stderr);
    }
    insta::assert_snapshot!(out.stderr);
    // An `id`, or a target key, and an `error_path`: no such warnings.
    let profile = profile.replace(
        "base_url: http://127.0.0.1:9/api\n",
        "base_url: http://127.0.0.1:9/api\n    error_path: code\n    success_value: \"0\"\n",
    );
    let keyed = spec.replace("    mode insert\n", "    mode replace\n    key order_no\n");
    let out = Test::new()
        .file("qsync.yaml", &profile)
        .file("orders.qsync", &keyed)
        .args(&["check", "orders.qsync"])
        .run();
    assert!(
        out.stderr.ends_with("1 spec checked: ok\n"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("qsync::check::"), "{}", out.stderr);
}
