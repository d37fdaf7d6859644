//! Vendor behaviour that used to lose or corrupt records with exit 0, or to fail every run
//! (issue 13): each test serves a scripted vendor on loopback, runs the real binary into a
//! fresh MariaDB database and compares the table row for row.

use serde_json::{json, Value};

use crate::scripted::{Reply, Vendor, World};

/// The records `lo..hi` of a dataset where record `i` has id `i` and name `n<i>`.
fn items(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| json!({"id": i, "name": format!("n{i}")}))
        .collect()
}

/// A spec reading `/items` of connection `api` into table `items (id, name)`; `source` holds
/// the source block's statements.
fn items_spec(source: &str) -> String {
    format!(
        r#"sync "items"

source http "/items" {{
    connection api
{source}
}}

target mysql "items" {{
    connection bi
    mode replace
    key id
    create
}}

map {{
    id = id : bigint
    name = name : string(20)
}}
"#
    )
}

/// The `(id, name)` rows of table `items`.
async fn item_rows(world: &World) -> Vec<(i64, String)> {
    world.rows("SELECT id, name FROM items ORDER BY id").await
}

fn expected_items(ids: impl IntoIterator<Item = usize>) -> Vec<(i64, String)> {
    ids.into_iter()
        .map(|i| (i64::try_from(i).expect("small"), format!("n{i}")))
        .collect()
}

fn query_number(query: &std::collections::BTreeMap<String, String>, name: &str) -> usize {
    query
        .get(name)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the request has no numeric `{name}`: {query:?}"))
}

// ---- a short page in the middle (item 6) ----

/// Pages of 10, 9 and 6 records and `total 25` on every page: the short second page is not
/// the end, because the total says a third page exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_page_before_the_reported_end_is_not_the_end() {
    let pages = [0..10, 10..19, 19..25];
    let vendor = Vendor::start(move |query, _| {
        let page = query_number(query, "page");
        let records = pages
            .get(page - 1)
            .map_or_else(Vec::new, |r| items(r.clone()));
        Reply::json(&json!({"data": {"items": records, "total": 25}}))
    })
    .await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    for (name, source) in [
        (
            "short",
            "    @paginate page page per size size 10\n    records data.items\n    total data.total\n    id id",
        ),
        (
            "paged",
            "    @paginate page page per size size 10 until page_count data.pages\n    records data.items\n    total data.total\n    id id",
        ),
    ] {
        world.spec(name, &items_spec(source).replace("\"items\"\n\nsource", &format!("\"{name}\"\n\nsource")));
        let out = world.qsync(&["run", &format!("{name}.qsync")], 0);
        assert!(out.stdout.contains("records         25"), "{name}: {}", out.stdout);
        assert_eq!(item_rows(&world).await, expected_items(0..25), "{name}");
    }
    // Pages 1-3 of each run (2 and 3 concurrently), nothing twice, nothing past the end.
    let mut asked = vendor.asked("page");
    asked.sort();
    assert_eq!(asked, ["1", "1", "2", "2", "3", "3"]);
}

// ---- all-key upserts (item 7) ----

const TAGS_SPEC: &str = r#"sync "order tags"

source http "/tags" {
    connection api
    @paginate page page per size size 10
    records data
}

target mysql "order_tags" {
    connection bi
    mode upsert
    key order_id, tag
    create
}

map {
    order_id = order_id : bigint
    tag = tag : string(16)
}
"#;

/// A link table whose every column is a key column: the staged merge must not name a
/// column the staging table also has without saying which, and `plan` shows that merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_whose_columns_are_all_key_columns_runs_and_reruns() {
    let vendor = Vendor::start(|_, _| {
        Reply::json(&json!({"data": [
            {"order_id": 1, "tag": "gift"},
            {"order_id": 1, "tag": "vip"},
            {"order_id": 2, "tag": "gift"}
        ]}))
    })
    .await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("tags", TAGS_SPEC);
    world.file(
        "sample.json",
        r#"{"data": [{"order_id": 1, "tag": "gift"}]}"#,
    );
    let plan = world.qsync(&["plan", "tags.qsync", "--sample", "sample.json"], 0);
    for statement in [
        "LOAD DATA LOCAL INFILE 'qsync' REPLACE INTO TABLE `_qsync_stage`",
        "INSERT INTO `order_tags` (`order_id`, `tag`) SELECT `order_id`, `tag` FROM \
         `_qsync_stage` ON DUPLICATE KEY UPDATE `order_id` = VALUES(`order_id`)",
        "INSERT INTO `order_tags` (`order_id`, `tag`) VALUES (?, ?) ON DUPLICATE KEY UPDATE \
         `order_id` = VALUES(`order_id`), ...",
    ] {
        assert!(plan.stdout.contains(statement), "{}", plan.stdout);
    }
    for _ in 0..2 {
        world.qsync(&["run", "tags.qsync"], 0);
        let rows: Vec<(i64, String)> = world
            .rows("SELECT order_id, tag FROM order_tags ORDER BY order_id, tag")
            .await;
        assert_eq!(
            rows,
            [
                (1, "gift".to_owned()),
                (1, "vip".to_owned()),
                (2, "gift".to_owned())
            ]
        );
    }
}

// ---- `--until` at the mark (item 10) ----

/// A run up to a time the mark already reached has nothing to do: exit 0, nothing read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_the_stored_mark_is_a_no_op() {
    let vendor = Vendor::start(|_, _| Reply::json(&json!({"data": {"items": items(0..2)}}))).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec(
        "items",
        &items_spec(
            "    window max 1d lag 0s overlap 0s initial \"2024-01-01 00:00:00\"\n    param from = \"{{ window.start | datetime }}\"\n    records data.items\n    id id",
        ),
    );
    let until = ["run", "items.qsync", "--until", "2024-01-02 00:00:00"];
    let first = world.qsync(&until, 0);
    assert!(
        first.stdout.contains("windows         1"),
        "{}",
        first.stdout
    );
    let again = world.qsync(&until, 0);
    assert!(
        again.stdout.contains("windows         0"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("high-water mark 2024-01-02 00:00:00"),
        "{}",
        again.stdout
    );
    // An earlier `--until` is a no-op too; nothing was asked of the vendor again.
    world.qsync(&["run", "items.qsync", "--until", "2024-01-01 12:00:00"], 0);
    assert_eq!(vendor.seen().len(), 1);
    assert_eq!(item_rows(&world).await, expected_items(0..2));
    // A range the user spelt out backwards is still a usage error.
    let out = world.qsync(
        &[
            "run",
            "items.qsync",
            "--since",
            "2024-01-03 00:00:00",
            "--until",
            "2024-01-02 00:00:00",
        ],
        1,
    );
    assert!(out.stderr.contains("the range is empty"), "{}", out.stderr);
}

// ---- keyset paging and ties (item 1) ----

/// Records 0..8 with `ts` 1,2,3,3,4,5,5,6 (or `ts` as given), answered in `ts` order from
/// `start_ts` on, `>=` or `>` it as the vendor reads its cursor, `size` at a time.
async fn keyset_vendor(ts: &'static [i64], inclusive: bool) -> Vendor {
    Vendor::start(move |query, _| {
        let size = query_number(query, "size");
        let from: Option<i64> = query.get("start_ts").map(|t| t.parse().expect("a number"));
        let records: Vec<Value> = ts
            .iter()
            .enumerate()
            .filter(|(_, &t)| from.is_none_or(|f| if inclusive { t >= f } else { t > f }))
            .take(size)
            .map(|(i, t)| json!({"id": i, "name": format!("n{i}"), "ts": t}))
            .collect();
        Reply::json(&json!({"data": {"items": records}}))
    })
    .await
}

const KEYSET_SOURCE: &str =
    "    @paginate keyset start_ts from ts size 3 per size\n    records data.items\n    id id";

/// Ties at a page boundary: a vendor reading the cursor as `ts > start_ts` used to lose the
/// second record with ts 3, one reading `ts >= start_ts` to page forever. Both give all 8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_paging_reads_ties_whichever_way_the_vendor_reads_its_cursor() {
    const TS: &[i64] = &[1, 2, 3, 3, 4, 5, 5, 6];
    for inclusive in [false, true] {
        let vendor = keyset_vendor(TS, inclusive).await;
        let world = World::new(&vendor, "Asia/Shanghai", "").await;
        world.spec("items", &items_spec(KEYSET_SOURCE));
        let out = world.qsync(&["run", "items.qsync"], 0);
        assert!(out.stdout.contains("rows written    8"), "{}", out.stdout);
        assert_eq!(
            item_rows(&world).await,
            expected_items(0..8),
            ">= {inclusive}"
        );
        // Each request resends the boundary: the largest value below the page's maximum,
        // else the maximum. `>` ends on an empty page, `>=` on a page with nothing new.
        assert_eq!(
            vendor.asked("start_ts"),
            ["-", "2", "3", "4", "5", "6"],
            ">= {inclusive}"
        );
    }
}

/// More records share one value than fit a page: neither reading of the cursor can reach
/// them, so the window fails with what to do, and nothing is committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyset_ties_larger_than_a_page_fail_the_window_naming_the_value() {
    const TS: &[i64] = &[1, 3, 3, 3, 3, 4];
    for inclusive in [false, true] {
        let vendor = keyset_vendor(TS, inclusive).await;
        let world = World::new(&vendor, "Asia/Shanghai", "").await;
        world.spec("items", &items_spec(KEYSET_SOURCE));
        let out = world.qsync(&["run", "items.qsync"], 1);
        assert!(
            out.stderr
                .contains("all 3 records of a full page have `ts` 3: more records may share that value than fit a page"),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("raise the page `size`"),
            "{}",
            out.stderr
        );
        assert_eq!(item_rows(&world).await, []);
        let ledger: Vec<String> = world.rows("SELECT status FROM _qsync_windows").await;
        assert_eq!(ledger, ["failed"]);
    }
}

// ---- drift without an id (item 2) ----

/// 25 records sorted by update time, 10 a page, `total` on every page, no `id`. After the
/// first page, record 3 is updated and moves to the end: record 10 slides onto page 1,
/// which was read already, and record 3 comes twice. The raw count is 25; the target keys
/// say 24, so the window is read again and gets record 10.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_without_an_id_is_seen_through_the_target_key() {
    let moved = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&moved);
    let vendor = Vendor::start(move |query, _| {
        let page = query_number(query, "page");
        let mut list: Vec<Value> = items(0..25);
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            list.remove(3);
            list.push(json!({"id": 3, "name": "n3-updated"}));
        }
        let records: Vec<Value> = list.into_iter().skip((page - 1) * 10).take(10).collect();
        if page == 1 {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Reply::json(&json!({"data": {"items": records, "total": 25}}))
    })
    .await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec(
        "items",
        &items_spec(
            "    @paginate page page per size size 10\n    records data.items\n    total data.total",
        ),
    );
    let out = world.qsync(&["run", "items.qsync"], 0);
    assert!(
        out.stderr
            .contains("reading the window again in the same transaction"),
        "{}",
        out.stderr
    );
    let mut expected = expected_items(0..25);
    expected[3].1 = "n3-updated".to_owned();
    assert_eq!(item_rows(&world).await, expected);
    assert!(moved.load(std::sync::atomic::Ordering::SeqCst));
}

// ---- an error envelope where the records should be (item 3) ----

const BUSY: &str = r#"{"code":1001,"msg":"系统繁忙，请稍后再试"}"#;

/// 25 records, 10 a page; page 2 answers HTTP 200 with an error envelope (no `data` at
/// all) on its first `busy` attempts, or always.
async fn busy_vendor(busy: usize, envelope: &'static str) -> Vendor {
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Vendor::start(move |query, _| {
        let page = query_number(query, "page");
        if page == 2 && attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < busy {
            return Reply::bytes("application/json", envelope.as_bytes().to_vec());
        }
        let records = items((page - 1) * 10..(page * 10).min(25));
        Reply::json(&json!({"code": 0, "data": {"items": records}}))
    })
    .await
}

const BUSY_SOURCE: &str =
    "    @paginate page page per size size 10\n    @retry 3 backoff 10ms max 50ms\n    records data.items\n    id id";

/// Without `error_path`, an answer without the records path is not taken for an empty last
/// page: it is retried, and fails the window when it persists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_the_records_path_is_retried_then_fails_the_window() {
    let vendor = busy_vendor(usize::MAX, BUSY).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &items_spec(BUSY_SOURCE));
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr.contains(
            "page 2: gave up after 3 attempts; last error: code no_records: the answer has no \
             `data.items` (the records path) and is not recognised as an error: \
             {\"code\":1001,\"msg\":\"系统繁忙，请稍后再试\"}"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(item_rows(&world).await, []);
    assert_eq!(vendor.asked("page").iter().filter(|p| *p == "2").count(), 3);
    // A vendor that recovers within the retries loses nothing.
    let vendor = busy_vendor(2, BUSY).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &items_spec(BUSY_SOURCE));
    world.qsync(&["run", "items.qsync"], 0);
    assert_eq!(item_rows(&world).await, expected_items(0..25));
}

/// With `error_path`, the profile names which codes are "busy, try again": those are
/// retried, any other error code fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_codes_are_retried_and_other_codes_fail_at_once() {
    let api = "    error_path: code\n    success_value: \"0\"\n    retryable_codes: [1001]\n";
    let vendor = busy_vendor(2, BUSY).await;
    let world = World::new(&vendor, "Asia/Shanghai", api).await;
    world.spec("items", &items_spec(BUSY_SOURCE));
    world.qsync(&["run", "items.qsync"], 0);
    assert_eq!(item_rows(&world).await, expected_items(0..25));

    let vendor = busy_vendor(usize::MAX, r#"{"code":40001,"msg":"签名错误"}"#).await;
    let world = World::new(&vendor, "Asia/Shanghai", api).await;
    world.spec("items", &items_spec(BUSY_SOURCE));
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr
            .contains("the vendor refused the request with code 40001: 签名错误"),
        "{}",
        out.stderr
    );
    assert_eq!(vendor.asked("page").iter().filter(|p| *p == "2").count(), 1);
    assert_eq!(item_rows(&world).await, []);
}

// ---- times as instants (item 5) ----

/// Records every 20 minutes of elapsed time from 04:00Z to 10:00Z, each with its epoch
/// second; the vendor answers those in `[from_ts, to_ts)`.
async fn epoch_vendor(day_utc: &'static str) -> Vendor {
    Vendor::start(move |query, _| {
        let from: i64 = query["from_ts"].parse().expect("from_ts");
        let to: i64 = query["to_ts"].parse().expect("to_ts");
        let start = chrono::NaiveDateTime::parse_from_str(
            &format!("{day_utc} 04:00:00"),
            "%Y-%m-%d %H:%M:%S",
        )
        .expect("day")
        .and_utc()
        .timestamp();
        let records: Vec<Value> = (0..18)
            .map(|i| (i, start + i * 1200))
            .filter(|(_, at)| (from..to).contains(at))
            .map(|(i, at)| json!({"id": i, "name": format!("n{i}"), "at": at}))
            .collect();
        Reply::json(&json!({"data": {"items": records}}))
    })
    .await
}

const EPOCH_SOURCE: &str = "    window max 1h lag 0s overlap 0s initial \"DAY 00:00:00\"\n    param from = \"{{ window.start | datetime }}\"\n    param to = \"{{ window.end | datetime }}\"\n    param from_ts = \"{{ window.start | timestamp }}\"\n    param to_ts = \"{{ window.end | timestamp }}\"\n    records data.items\n    id id";

/// `timezone: America/New_York`, hourly windows over the spring-forward night: no window
/// bound is a time that does not exist (02:00-03:00), every record is read once, the mark
/// moves; then the autumn night, whose repeated hour is one window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_step_over_daylight_saving_changes_without_losing_a_record() {
    // 2024-03-10 00:00 EST is 05:00Z; 05:00 EDT is 09:00Z: records 3..15 (05:00Z-08:40Z).
    let vendor = epoch_vendor("2024-03-10").await;
    let world = World::new(&vendor, "America/New_York", "").await;
    world.spec(
        "items",
        &items_spec(&EPOCH_SOURCE.replace("DAY", "2024-03-10")),
    );
    let out = world.qsync(&["run", "items.qsync", "--until", "2024-03-10 05:00:00"], 0);
    assert!(out.stdout.contains("windows         4"), "{}", out.stdout);
    assert!(
        out.stdout.contains("high-water mark 2024-03-10 05:00:00"),
        "{}",
        out.stdout
    );
    let mut asked = vendor.asked("from");
    asked.sort();
    assert_eq!(
        asked,
        [
            "2024-03-10 00:00:00",
            "2024-03-10 01:00:00",
            "2024-03-10 03:00:00",
            "2024-03-10 04:00:00"
        ]
    );
    assert_eq!(item_rows(&world).await, expected_items(3..15));
    // Again: nothing left to do, and the mark stays.
    world.qsync(&["run", "items.qsync", "--until", "2024-03-10 05:00:00"], 0);
    assert_eq!(vendor.seen().len(), 4);

    // 2024-11-03 00:00 EDT is 04:00Z; 03:00 EST is 08:00Z: records 0..12.
    let vendor = epoch_vendor("2024-11-03").await;
    let world = World::new(&vendor, "America/New_York", "").await;
    world.spec(
        "items",
        &items_spec(&EPOCH_SOURCE.replace("DAY", "2024-11-03")),
    );
    let out = world.qsync(&["run", "items.qsync", "--until", "2024-11-03 03:00:00"], 0);
    assert!(out.stdout.contains("windows         3"), "{}", out.stdout);
    let mut asked = vendor.asked("to");
    asked.sort();
    assert_eq!(
        asked,
        [
            "2024-11-03 01:00:00",
            "2024-11-03 02:00:00",
            "2024-11-03 03:00:00"
        ]
    );
    assert_eq!(item_rows(&world).await, expected_items(0..12));
}

/// Two versions of a record in one window, their `modified` written with different
/// offsets: the later instant wins, whatever the text order says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_version_is_chosen_by_instant_not_by_text() {
    let vendor = Vendor::start(|query, _| {
        let records = match query_number(query, "page") {
            1 => vec![
                json!({"id": 1, "name": "older", "m": "2024-01-09T10:00:00+08:00"}),
                json!({"id": 2, "name": "newer", "m": "2024-1-9 10:00:00"}),
            ],
            2 => vec![
                json!({"id": 1, "name": "newer", "m": "2024-01-09T03:00:00Z"}),
                json!({"id": 2, "name": "older", "m": "2024-01-09 09:30:00"}),
            ],
            _ => vec![],
        };
        Reply::json(&json!({"data": {"items": records}}))
    })
    .await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec(
        "items",
        &items_spec(
            "    @paginate page page per size size 2 until empty\n    records data.items\n    id id\n    modified m",
        ),
    );
    world.qsync(&["run", "items.qsync"], 0);
    assert_eq!(
        item_rows(&world).await,
        [(1, "newer".to_owned()), (2, "newer".to_owned())]
    );
}

// ---- bodies that are valid, just not plain UTF-8 (item 8) ----

/// The records `0..3` with Chinese names, as a JSON body.
fn chinese_page() -> String {
    let records: Vec<Value> = (0..3)
        .map(|i| json!({"id": i, "name": format!("退款单{i}")}))
        .collect();
    json!({"data": {"items": records}}).to_string()
}

fn chinese_rows() -> Vec<(i64, String)> {
    (0..3).map(|i| (i, format!("退款单{i}"))).collect()
}

/// A UTF-8 body with a byte-order mark and a GBK body that says so are read at the first
/// attempt; a GBK body that declares nothing fails at once, without blaming a torn body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_with_a_byte_order_mark_or_a_declared_charset_are_read() {
    let with_bom = {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(chinese_page().as_bytes());
        Reply::bytes("application/json", body)
    };
    let gbk = encoding_rs::GBK.encode(&chinese_page()).0.into_owned();
    let declared = Reply::bytes("application/json;charset=GBK", gbk.clone());
    for reply in [with_bom, declared] {
        let vendor = Vendor::start(move |_, _| reply.clone()).await;
        let world = World::new(&vendor, "Asia/Shanghai", "").await;
        world.spec("items", &items_spec("    records data.items\n    id id"));
        world.qsync(&["run", "items.qsync"], 0);
        assert_eq!(item_rows(&world).await, chinese_rows());
        assert_eq!(vendor.seen().len(), 1, "read at the first attempt");
    }
    let undeclared = Reply::bytes("application/json", gbk);
    let vendor = Vendor::start(move |_, _| undeclared.clone()).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &items_spec("    records data.items\n    id id"));
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr
            .contains("the response body is not UTF-8 and its Content-Type (application/json) declares no other charset"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("torn"), "{}", out.stderr);
    assert_eq!(
        vendor.seen().len(),
        1,
        "never parses differently: not retried"
    );
    assert_eq!(item_rows(&world).await, []);
}

// ---- reject reasons (item 10) ----

/// `text` holds 65,535 bytes: a longer value is rejected, and the reason counts bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_text_is_rejected_in_bytes() {
    let vendor = Vendor::start(|_, _| {
        Reply::json(&json!({"data": [
            {"id": 1, "note": "退".repeat(21_846)},
            {"id": 2, "note": "退".repeat(21_845)}
        ]}))
    })
    .await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec(
        "notes",
        r#"sync "notes"

source http "/notes" {
    connection api
    records data
    id id
}

target mysql "notes" {
    connection bi
    key id
    create
}

map {
    id = id : bigint
    note = note : text
}
"#,
    );
    world.qsync(&["run", "notes.qsync"], 0);
    let rows: Vec<(i64, i64)> = world.rows("SELECT id, CHAR_LENGTH(note) FROM notes").await;
    assert_eq!(rows, [(2, 21_845)]);
    let reasons: Vec<String> = world.rows("SELECT reason FROM _qsync_rejects").await;
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].ends_with("to text: 65538 bytes in UTF-8, at most 65535 bytes allowed"),
        "{}",
        reasons[0]
    );
}

// ---- Retry-After (item 9) ----

const RETRY_SOURCE: &str = "    @retry 3 backoff 10ms max 10s\n    records data.items\n    id id";

/// The first answer is `429` with `Retry-After` as given, then the vendor answers.
async fn throttling_vendor(status: u16, retry_after: fn() -> String) -> Vendor {
    Vendor::start(move |_, n| {
        if n == 0 {
            return Reply::json(&json!({"msg": "slow down"}))
                .status(status)
                .header("Retry-After", &retry_after());
        }
        Reply::json(&json!({"data": {"items": items(0..3)}}))
    })
    .await
}

/// `Retry-After` as an HTTP-date is a wait until that date; as seconds, a wait that long,
/// logged when long; over `@retry ... max` it fails the call at once, naming the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_in_both_forms_is_honoured_up_to_the_retry_max() {
    let in_two_seconds = || {
        httpdate::fmt_http_date(std::time::SystemTime::now() + std::time::Duration::from_secs(2))
    };
    let vendor = throttling_vendor(429, in_two_seconds).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &items_spec(RETRY_SOURCE));
    world.qsync(&["run", "items.qsync"], 0);
    assert_eq!(item_rows(&world).await, expected_items(0..3));
    let seen = vendor.seen();
    assert_eq!(seen.len(), 2);
    // The date has whole seconds: the wait is between 1 and 2 seconds, not the 10 ms backoff.
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= std::time::Duration::from_millis(900),
        "{waited:?}"
    );

    let vendor = throttling_vendor(503, || "6".to_owned()).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &items_spec(RETRY_SOURCE));
    let out = world.qsync(&["run", "items.qsync"], 0);
    assert!(
        out.stderr
            .contains("waiting 6s before attempt 2 as the vendor asks (Retry-After)"),
        "{}",
        out.stderr
    );
    let seen = vendor.seen();
    assert!(seen[1].at - seen[0].at >= std::time::Duration::from_secs(6));

    let vendor = throttling_vendor(503, || "3600".to_owned()).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &items_spec(RETRY_SOURCE));
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr.contains(
            "the vendor asks to wait 1h (Retry-After) before the next attempt, longer than the \
             spec allows (`@retry ... max 10s`)"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(vendor.seen().len(), 1, "no attempt after the refusal");
    assert_eq!(item_rows(&world).await, []);
}
