//! `qsync check` catches what it can see before a run does (issue 14): templates that do
//! not render, profile entries their kind cannot use, the default sample and what it shows
//! (misspelt fields and flattens, rows sharing a key, a vendor's error answer), and the
//! run's own errors (key collisions, MySQL's missing column and database) with the help
//! `check --db` gives. The broken specs of the golden corpus cover the rest.

use serde_json::json;

use crate::scripted::{Reply, Vendor, World};
use crate::support::{repo, Test};

fn base() -> String {
    std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap()
}

fn profile() -> String {
    std::fs::read_to_string(repo().join("tests/check/qsync.yaml")).unwrap()
}

// ---- item 1: templates render in check, and `plan` exits 1 when one does not ----

/// Check renders with stand-in values; `plan` renders with the real environment, so a
/// variable holding something that is not a time fails there, and `plan` says so with exit 1.
#[test]
fn plan_exits_1_when_a_request_template_does_not_render() {
    let spec = base().replace(
        "{{ window.end | datetime }}",
        "{{ env.QSYNC_H14_END | datetime }}",
    );
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &spec)
        .env("QSYNC_H14_END", "soon")
        .args(&["plan", "s.qsync", "--at", "2024-03-10 12:00:00"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains("`soon` is not a time"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("error: "), "{}", out.stdout);
    // The same spec with a time in the variable plans fine.
    Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &spec)
        .env("QSYNC_H14_END", "2024-03-01 00:00:00")
        .args(&["plan", "s.qsync", "--at", "2024-03-10 12:00:00"])
        .run();
}

/// A signing template in the profile is rendered too: an unknown filter fails `check`.
#[test]
fn a_profile_signing_template_with_an_unknown_filter_fails_check() {
    let spec = base()
        .replace(
            "source jushuitan \"/open/refund/single/query\"",
            "source http \"/refunds\"",
        )
        .replace("connection jst", "connection api")
        .replace("    @rate 5/s 100/min\n", "");
    let profile = format!(
        "{}  api:\n    kind: http\n    base_url: http://127.0.0.1:9\n    auth: sign\n    secret: corpus-sign-secret\n    sign_template: \"{{{{ secret | md6 }}}}\"\n    error_path: code\n    success_value: \"0\"\n",
        profile()
    );
    let out = Test::new()
        .file("qsync.yaml", &profile)
        .file("s.qsync", &spec)
        .args(&["check", "s.qsync"])
        .status(1)
        .run();
    insta::assert_snapshot!(out.stderr);
}

// ---- item 2: the profile ----

/// An unknown kind names the file, line and column, and the kind meant.
#[test]
fn an_unknown_connection_kind_is_located_with_a_suggestion() {
    let profile = profile().replace("kind: jushuitan", "kind: jushuitna");
    let out = Test::new()
        .file("qsync.yaml", &profile)
        .file("s.qsync", &base())
        .args(&["check", "s.qsync"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains(
            "connection `jst` has unknown kind `jushuitna` at qsync.yaml:5:5; did you mean \
             `jushuitan`?"
        ),
        "{}",
        out.stderr
    );
}

// ---- item 3: the default sample ----

/// `check` reads `samples/<spec>.json` as `plan` does: a misspelt field gets the near name,
/// a misspelt `@flatten` is named as not in the sample (and its fields are not reported
/// again one by one).
#[test]
fn check_uses_the_default_sample_and_suggests_near_names() {
    let spec = base()
        .replace("@flatten items", "@flatten itmes")
        .replace("items_qty = items_qty : int", "items_qty = itmes_qty : int")
        .replace(
            "    source_id = 3\n",
            "    source_id = 3\n    shop = shopNmae\n",
        )
        .replace(
            "id = \"<as_id>-<items_asi_id>\"",
            "id = \"<as_id>-<itmes_asi_id>\"",
        );
    let sample = json!({"code": 0, "data": {"has_next": false, "datas": [
        {"as_id": 1, "as_date": "2024-03-01 10:00:00", "refund": "12.5", "shopName": "A",
         "items": [{"asi_id": 10, "qty": 2}]}
    ]}});
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &spec)
        .file("samples/s.json", &sample.to_string())
        .args(&["check", "s.qsync"])
        .run();
    insta::assert_snapshot!(out.stderr);
}

// ---- item 4: key collisions ----

/// A sample whose rows share the key: a warning naming the first shared key.
#[test]
fn check_warns_when_the_sample_rows_share_the_key() {
    let spec = base().replace(
        "id = \"<as_id>-<items_asi_id>\"",
        "id = \"<as_id>-<items_sku>\"",
    );
    let sample = json!({"code": 0, "data": {"has_next": false, "datas": [
        {"as_id": 1, "as_date": "2024-03-01 10:00:00", "refund": "12.5",
         "items": [{"sku": "G1", "qty": 2}, {"sku": "G1", "qty": 0}, {"sku": "G2", "qty": 1}]}
    ]}});
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &spec)
        .file("samples/s.json", &sample.to_string())
        .args(&["check", "s.qsync"])
        .run();
    insta::assert_snapshot!(out.stderr);
}

const LINES_SPEC: &str = r#"sync "order lines"

source http "/orders" {
    connection api
    records data
}

@flatten goods
@on_duplicate_key POLICY

target mysql "order_lines" {
    connection bi
    mode replace
    key trade_no, goods_no
    create
}

map {
    trade_no = trade_no : string(16)
    goods_no = goods_goods_no : string(16)
    qty = goods_qty : int
}
"#;

/// A gift line carrying the goods number of a real line: with `last` (the default) one row
/// stays and the summary counts the collision with its key; with `fail` the window fails,
/// naming the key, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_collapsing_onto_one_key_are_counted_or_fail_the_window() {
    let vendor = Vendor::start(|_, _| {
        Reply::json(&json!({"code": 0, "data": [
            {"trade_no": "T1", "goods": [
                {"goods_no": "G1", "qty": 2},
                {"goods_no": "G1", "qty": 0},
                {"goods_no": "G2", "qty": 1}
            ]},
            {"trade_no": "T2", "goods": [{"goods_no": "G1", "qty": 5}]}
        ]}))
    })
    .await;
    let world = World::new(
        &vendor,
        "Asia/Shanghai",
        "    error_path: code\n    success_value: \"0\"\n",
    )
    .await;
    world.spec("lines", &LINES_SPEC.replace("POLICY", "last"));
    let out = world.qsync(&["run", "lines.qsync"], 0);
    assert!(out.stdout.contains("rows written    4"), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "key collisions  1 (rows sharing a key with another row of their window; one of \
             each is kept; first: trade_no=T1, goods_no=G1)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("1 row(s) shared a key"),
        "{}",
        out.stderr
    );
    let rows: Vec<(String, String, i64)> = world
        .rows("SELECT trade_no, goods_no, qty FROM order_lines ORDER BY trade_no, goods_no")
        .await;
    let expected = [("T1", "G1", 0), ("T1", "G2", 1), ("T2", "G1", 5)]
        .map(|(t, g, q)| (t.to_owned(), g.to_owned(), q));
    assert_eq!(rows, expected);

    world.spec(
        "strict",
        &LINES_SPEC
            .replace("POLICY", "fail")
            .replace("order_lines", "strict_lines"),
    );
    let out = world.qsync(&["run", "strict.qsync"], 1);
    assert!(
        out.stderr
            .contains("two rows have the key trade_no=T1, goods_no=G1 (`@on_duplicate_key fail`"),
        "{}",
        out.stderr
    );
    let written: Vec<(i64,)> = world.rows("SELECT COUNT(*) FROM strict_lines").await;
    assert_eq!(written, [(0,)]);
}

// ---- item 5: a sample that is the vendor's error answer ----

/// WDT's "start and end times are required": the vendor's code and message, not "no records".
#[test]
fn a_sample_that_is_a_vendor_error_is_reported_as_the_vendors_error() {
    let spec = std::fs::read_to_string(repo().join("specs/wdt-refunds.qsync")).unwrap();
    let out = Test::new()
        .file(
            "qsync.yaml",
            &std::fs::read_to_string(repo().join("specs/qsync.yaml")).unwrap(),
        )
        .file("wdt-refunds.qsync", &spec)
        .file(
            "samples/wdt-refunds.json",
            r#"{"status":100,"message":"参数中必须包含起止时间"}"#,
        )
        .args(&["check", "wdt-refunds.qsync"])
        .run();
    assert!(
        out.stderr
            .contains("the sample is an error answer of qimen: code 100: 参数中必须包含起止时间"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("has no records"), "{}", out.stderr);
}

// ---- item 8: the run's MySQL errors carry check --db's help ----

const MEMO_SPEC: &str = r#"sync "refund memos"

source http "/refunds" {
    connection api
    records data
}

target mysql "refund_memos" {
    connection bi
    mode replace
    key id
}

map {
    id = id : bigint
    seller_memo = memo : string(64)
}
"#;

/// A table without a column the map writes: the run's error gives the ALTER TABLE line; a
/// database that does not exist: the CREATE DATABASE line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_mysql_errors_say_how_to_fix_the_table_and_the_database() {
    let vendor = Vendor::start(|_, _| {
        Reply::json(&json!({"code": 0, "data": [{"id": 1, "memo": "fragile"}]}))
    })
    .await;
    let world = World::new(
        &vendor,
        "Asia/Shanghai",
        "    error_path: code\n    success_value: \"0\"\n",
    )
    .await;
    let _: Vec<(i64,)> = world
        .rows("CREATE TABLE refund_memos (id BIGINT PRIMARY KEY)")
        .await;
    world.spec("memos", MEMO_SPEC);
    let out = world.qsync(&["run", "memos.qsync"], 1);
    assert!(
        out.stderr.contains(
            "table `refund_memos` has no column `seller_memo`, which the map writes; add it: \
             ALTER TABLE `refund_memos` ADD COLUMN `seller_memo` VARCHAR(64)"
        ),
        "{}",
        out.stderr
    );

    let (server, _) = world.url.rsplit_once('/').unwrap();
    world.file(
        "qsync.yaml",
        &format!(
            "connections:\n  api:\n    kind: http\n    base_url: {}\n    error_path: code\n    success_value: \"0\"\n  bi:\n    kind: mysql\n    url: \"{server}/qsync_h14_no_such_db\"\n",
            vendor.base
        ),
    );
    let expected = "Unknown database 'qsync_h14_no_such_db'; create it: CREATE DATABASE \
                    `qsync_h14_no_such_db` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci";
    let out = world.qsync(&["run", "memos.qsync"], 1);
    assert!(out.stderr.contains(expected), "{}", out.stderr);
    let out = world.qsync(&["check", "memos.qsync", "--db"], 1);
    assert!(out.stderr.contains(expected), "{}", out.stderr);
}

// ---- item 7: `plan` without a sample says how to get one ----

#[test]
fn plan_without_a_sample_says_how_to_get_one() {
    let out = Test::new()
        .file("qsync.yaml", &profile())
        .file("s.qsync", &base())
        .args(&["plan", "s.qsync", "--at", "2024-03-10 12:00:00"])
        .run();
    assert!(
        out.stdout.contains(
            "rows\n  no sample: pass `--sample <response.json>`, put a vendor response at \
             `samples/s.json` beside the spec, or fetch the first page with `--live`"
        ),
        "{}",
        out.stdout
    );
}
