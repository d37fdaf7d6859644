//! Keys and records a hostile vendor sends (issue 21): ids that differ only in case,
//! trailing spaces or emoji, records that are not objects, oversized and unparsable
//! records, huge bodies and big integer ids. Each test serves a scripted vendor on loopback,
//! runs the real binary into a fresh MariaDB database and reads the tables back.

use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use crate::scripted::{Reply, Vendor, World};

/// A spec reading `/items` into table `items (id, name)` keyed by a string `id`; `extra`
/// goes between the source and the target (directives), `create` into the target.
fn spec(extra: &str, create: &str) -> String {
    format!(
        r#"sync "items"

source http "/items" {{
    connection api
    records data.items
}}
{extra}
target mysql "items" {{
    connection bi
    mode replace
    key id
    {create}
}}

map {{
    id = id : string(20)
    name = name : string(20)
}}
"#
    )
}

/// The issue's ids: each pair is one key under `utf8mb4_unicode_ci`.
const IDS: [&str; 6] = ["ABC", "abc", "x", "x ", "\u{1F600}", "\u{1F389}"];

fn page(records: Vec<Value>) -> Reply {
    Reply::json(&json!({"data": {"items": records}}))
}

fn six_records() -> Vec<Value> {
    IDS.iter()
        .enumerate()
        .map(|(i, id)| json!({"id": id, "name": format!("v{i}")}))
        .collect()
}

async fn names(world: &World) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = world.rows("SELECT id, name FROM items").await;
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_differ_only_in_case_spaces_or_emoji_stay_six_rows() {
    // The second run's records carry new names.
    let vendor = Vendor::start(|_, n| {
        let mut records = six_records();
        for record in &mut records {
            let name = format!("{}-{n}", record["name"].as_str().unwrap_or_default());
            record["name"] = json!(name);
        }
        page(if n == 0 { six_records() } else { records })
    })
    .await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("", "create"));
    let out = world.qsync(&["run", "items.qsync"], 0);
    assert!(out.stdout.contains("rows written    6\n"), "{}", out.stdout);
    let mut want: Vec<(String, String)> = IDS
        .iter()
        .enumerate()
        .map(|(i, id)| ((*id).to_owned(), format!("v{i}")))
        .collect();
    want.sort();
    assert_eq!(names(&world).await, want);
    // The key column compares bytes, trailing spaces included.
    let collation: Vec<String> = world
        .rows(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = \
             DATABASE() AND TABLE_NAME = 'items' AND COLUMN_NAME = 'id'",
        )
        .await;
    assert_eq!(collation, ["utf8mb4_nopad_bin"]);
    // Run again with changed records: the server replaced each row once and says so.
    let out = world.qsync(&["run", "items.qsync", "--full"], 0);
    assert!(
        out.stdout
            .contains("rows written    6 (6 replaced a different row with the same key)"),
        "{}",
        out.stdout
    );
    assert_eq!(names(&world).await.len(), 6);
    let check = world.qsync(&["check", "--db", "items.qsync"], 0);
    assert!(
        !check.stderr.contains("db_key_collation"),
        "{}",
        check.stderr
    );
}

/// A table made before qsync created binary keys: ids the collation merges are one row;
/// the newest version wins, the summary counts the replaced rows, and both `run` and
/// `check --db` say why and how to fix the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_case_insensitive_key_merges_ids_visibly_and_the_newest_wins() {
    let vendor = Vendor::start(|_, _| page(six_records())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    let mut conn = mysql_async::Conn::from_url(world.url.as_str())
        .await
        .expect("MySQL");
    conn.query_drop(
        "CREATE TABLE items (id VARCHAR(20) NOT NULL PRIMARY KEY, name VARCHAR(20)) \
         DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci",
    )
    .await
    .expect("legacy table");
    drop(conn);
    world.spec("items", &spec("", ""));
    let check = world.qsync(&["check", "--db", "items.qsync"], 0);
    assert!(
        check.stderr.contains("db_key_collation"),
        "{}",
        check.stderr
    );
    assert!(
        check
            .stderr
            .contains("key column `id` of `items` compares with collation utf8mb4_unicode_ci"),
        "{}",
        check.stderr
    );
    assert!(
        check
            .stderr
            .contains("ALTER TABLE `items` MODIFY `id` varchar(20) CHARACTER SET")
            && check
                .stderr
                .contains("utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL"),
        "{}",
        check.stderr
    );
    let out = world.qsync(&["run", "items.qsync"], 0);
    assert!(
        out.stderr
            .contains("compares with collation utf8mb4_unicode_ci"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("rows written    6 (3 replaced a different row with the same key)"),
        "{}",
        out.stdout
    );
    let got: Vec<String> = names(&world).await.into_iter().map(|r| r.1).collect();
    let mut got = got;
    got.sort();
    assert_eq!(got, ["v1", "v3", "v5"], "the later record of each pair");
    // The fix `check --db` names keeps them apart from then on.
    let mut conn = mysql_async::Conn::from_url(world.url.as_str())
        .await
        .expect("MySQL");
    conn.query_drop(
        "ALTER TABLE `items` MODIFY `id` varchar(20) CHARACTER SET utf8mb4 COLLATE \
         utf8mb4_nopad_bin NOT NULL",
    )
    .await
    .expect("alter");
    drop(conn);
    world.qsync(&["run", "items.qsync", "--full"], 0);
    assert_eq!(names(&world).await.len(), 6);
}

/// Records that are not objects become rejects with a reason (the object is written), or
/// fail the run under `@on_error fail` with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_are_not_objects_are_rejected_with_a_reason() {
    let records = || {
        vec![
            json!(1),
            json!("two"),
            Value::Null,
            json!([3]),
            json!(true),
            json!({"id": "ok", "name": "n"}),
        ]
    };
    let vendor = Vendor::start(move |_, _| page(records())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("", "create"));
    let out = world.qsync(&["run", "items.qsync"], 0);
    assert!(out.stdout.contains("rows written    1\n"), "{}", out.stdout);
    assert!(out.stdout.contains("rejects         5"), "{}", out.stdout);
    assert_eq!(names(&world).await, [("ok".to_owned(), "n".to_owned())]);
    let rejects: Vec<(String, String)> = world
        .rows("SELECT raw, reason FROM _qsync_rejects ORDER BY id")
        .await;
    let want = [
        ("1", "the record is a number, not a JSON object"),
        ("\"two\"", "the record is a string, not a JSON object"),
        ("null", "the record is null, not a JSON object"),
        ("[3]", "the record is an array, not a JSON object"),
        ("true", "the record is a boolean, not a JSON object"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(rejects, want);

    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("@on_error fail\n", "create"));
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr
            .contains("record 1 cannot become a row: the record is a number, not a JSON object"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("rows written    0"), "{}", out.stdout);
    assert_eq!(names(&world).await, []);
}

/// One record with a lone surrogate makes the page invalid JSON: the run fails at once (not
/// retried, nothing written), naming the byte offset and showing the record, and so does
/// every later run until the vendor fixes it; `_qsync_runs` keeps the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_record_fails_its_page_naming_the_byte_offset_and_the_record() {
    let body =
        br#"{"data": {"items": [{"id": "a", "name": "fine"}, {"id": "b", "name": "bad\ud800"}]}}"#;
    let vendor = Vendor::start(move |_, _| Reply::bytes("application/json", body.to_vec())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("", "create"));
    for run in 1..=2 {
        let out = world.qsync(&["run", "items.qsync"], 1);
        assert!(out.stderr.contains("hex escape"), "{}", out.stderr);
        assert!(out.stderr.contains("byte offset 79"), "{}", out.stderr);
        assert!(
            out.stderr.contains(r#"{"id": "b", "name": "bad\ud800"#),
            "{}",
            out.stderr
        );
        assert_eq!(vendor.seen().len(), run, "a parse error is not retried");
    }
    assert_eq!(names(&world).await, []);
    let errors: Vec<String> = world
        .rows("SELECT error FROM _qsync_runs WHERE outcome = 'failed'")
        .await;
    assert_eq!(errors.len(), 2);
    assert!(errors[1].contains("byte offset 79"), "{}", errors[1]);
}

/// A body over the connection's `max_response_mb` fails the call with the limit and the
/// key to raise, without retrying; under the default limit (64 MiB) the same body is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_size_limit_fails_with_the_limit_named() {
    let big = || {
        let records: Vec<Value> = (0..2200)
            .map(|i| json!({"id": format!("id{i}"), "name": "n", "pad": "p".repeat(1000)}))
            .collect();
        page(records)
    };
    let vendor = Vendor::start(move |_, _| big()).await;
    let world = World::new(&vendor, "Asia/Shanghai", "    max_response_mb: 1\n").await;
    world.spec("items", &spec("", "create"));
    world.qsync(&["check", "items.qsync"], 0);
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr.contains(
            "the response body is larger than the connection's limit of 1 MiB (Content-Length"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("raise `max_response_mb` of connection `api`"),
        "{}",
        out.stderr
    );
    assert_eq!(vendor.seen().len(), 1, "not retried");
    assert_eq!(names(&world).await, []);

    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("", "create"));
    world.qsync(&["run", "items.qsync"], 0);
    assert_eq!(names(&world).await.len(), 2200);

    let world = World::new(&vendor, "Asia/Shanghai", "    max_response_mb: lots\n").await;
    world.spec("items", &spec("", "create"));
    let out = world.qsync(&["run", "items.qsync"], 1);
    assert!(
        out.stderr.contains(
            "`max_response_mb` must be a whole number of MiB from 1 to 1048576, not `lots`"
        ),
        "{}",
        out.stderr
    );
}

/// A 20 MB field is rejected; its reject row keeps the first 64 KiB of the record, its full
/// length and a SHA-256 of the whole, so the window commits (under MariaDB's 16 MiB
/// `max_allowed_packet`) and the next run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_record_is_rejected_with_a_bounded_reject_row() {
    use sha2::Digest as _;
    let huge = json!({"id": "big", "name": "x".repeat(20 << 20)});
    let whole = huge.to_string();
    let records = vec![json!({"id": "ok", "name": "n"}), huge];
    let vendor = Vendor::start(move |_, _| page(records.clone())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("", "create"));
    for _ in 0..2 {
        let out = world.qsync(&["run", "items.qsync", "--full"], 0);
        assert!(out.stdout.contains("rejects         1"), "{}", out.stdout);
    }
    assert_eq!(names(&world).await, [("ok".to_owned(), "n".to_owned())]);
    let rows: Vec<(u64, u64, String, String)> = world
        .rows(
            "SELECT LENGTH(raw), raw_length, raw_sha256, LEFT(raw, 20) FROM _qsync_rejects \
             ORDER BY id",
        )
        .await;
    assert_eq!(rows.len(), 2, "one reject per run");
    let (stored, length, sha256, head) = &rows[0];
    assert_eq!(*stored, 64 * 1024);
    assert_eq!(*length, whole.len() as u64);
    assert_eq!(*sha256, hex::encode(sha2::Sha256::digest(whole.as_bytes())));
    assert_eq!(head, &whole[..20]);
}

/// A rejected record keeps the vendor's exact text: a 23-digit id is not rounded to a float.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_keep_big_integer_ids_exactly() {
    let body = br#"{"data": {"items": [{"id": "a", "name": "this name is far too long", "big": 12345678901234567890123}]}}"#;
    let vendor = Vendor::start(move |_, _| Reply::bytes("application/json", body.to_vec())).await;
    let world = World::new(&vendor, "Asia/Shanghai", "").await;
    world.spec("items", &spec("", "create"));
    world.qsync(&["run", "items.qsync"], 0);
    let raw: Vec<String> = world.rows("SELECT raw FROM _qsync_rejects").await;
    assert_eq!(raw.len(), 1);
    assert!(
        raw[0].contains(r#""big":12345678901234567890123"#),
        "{}",
        raw[0]
    );
}
