//! `qsync check --db`: the map against the live target table in a real MariaDB.

use mysql_async::prelude::Queryable;

use crate::support::{repo, Test};

fn base() -> String {
    std::fs::read_to_string(repo().join("tests/check/base.qsync")).unwrap()
}

fn profile(url: &str) -> String {
    std::fs::read_to_string(repo().join("tests/check/qsync.yaml"))
        .unwrap()
        .replace("mysql://root@127.0.0.1:3306/corpus", url)
}

/// The `CREATE TABLE` a run of `spec` would issue.
fn create_sql(spec: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.qsync"), spec).unwrap();
    let loaded = qsync::frontend::load(
        &dir.path().join("s.qsync"),
        None,
        qsync::config::EnvPolicy::Require,
        None,
    )
    .unwrap();
    let table = qsync::sink::TableSpec::new(&loaded.plan.target, &loaded.plan.columns).unwrap();
    qsync::sink::create_table_sql(&table, qsync::sink::BINARY_KEY_COLLATION)
}

async fn execute(url: &str, sql: &str) {
    let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
    conn.query_drop(sql).await.unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test]
async fn narrow_columns_missing_keys_and_replace_pitfalls() {
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    execute(
        &url,
        "CREATE TABLE refund_list_query (
            row_id INT AUTO_INCREMENT PRIMARY KEY,
            id VARCHAR(64) NOT NULL,
            as_id INT,
            as_date DATE,
            refund INT,
            items_qty INT,
            source_id BIGINT,
            updated TIMESTAMP DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
        )",
    )
    .await;
    let out = Test::new()
        .file("qsync.yaml", &profile(&url))
        .file("s.qsync", &base())
        .args(&["check", "--db", "s.qsync", "--format", "json"])
        .status(1)
        .run();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let err: String = doc["files"][0]["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}: {}\n",
                d["code"].as_str().unwrap(),
                d["message"].as_str().unwrap()
            )
        })
        .collect();
    assert!(err.contains("qsync::check::db_missing_column"), "{err}");
    assert!(
        err.contains("table `refund_list_query` has no column `create_time`"),
        "{err}"
    );
    assert!(
        err.contains("column `refund` is `decimal(12,2)` in the spec but `int(11)` in the table: an integer column drops the 2 decimal places"),
        "{err}"
    );
    assert!(
        err.contains("column `as_id` is `bigint` in the spec but `int(11)`"),
        "{err}"
    );
    assert!(err.contains("a DATE column drops the time of day"), "{err}");
    assert!(
        err.contains("64 characters where the spec allows 255"),
        "{err}"
    );
    assert!(err.contains("qsync::check::db_no_unique_key"), "{err}");
    assert!(
        err.contains("its auto-increment value changes on every REPLACE"),
        "{err}"
    );
    assert!(
        err.contains("its ON UPDATE time resets on every run"),
        "{err}"
    );
    let mut conn = mysql_async::Conn::from_url(&url).await.unwrap();
    let lock_mode: Option<i64> = conn
        .query_first("SELECT @@innodb_autoinc_lock_mode")
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    let one_connection = format!(
        "qsync::check::db_one_connection: table `refund_list_query` has an AUTO_INCREMENT column and innodb_autoinc_lock_mode is {}",
        lock_mode.unwrap_or(-1)
    );
    assert_eq!(err.contains(&one_connection), lock_mode != Some(2), "{err}");
}

#[tokio::test]
async fn a_table_of_another_engine_is_written_on_one_connection() {
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    let spec = base();
    let aria = create_sql(&spec).replace("ENGINE=InnoDB", "ENGINE=Aria");
    execute(&url, &aria).await;
    let out = Test::new()
        .file("qsync.yaml", &profile(&url))
        .file("s.qsync", &spec)
        .args(&["check", "--db", "s.qsync"])
        .run();
    for part in [
        "qsync::check::db_one_connection",
        "table `refund_list_query` uses the Aria engine, which locks the whole table for each",
        "its windows are written on one connection",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.stderr);
    }
    assert!(out.stderr.contains("1 spec checked"), "{}", out.stderr);
}

#[tokio::test]
async fn a_table_created_from_the_plan_matches() {
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    let spec = base();
    execute(&url, &create_sql(&spec)).await;
    let out = Test::new()
        .file("qsync.yaml", &profile(&url))
        .file("s.qsync", &spec)
        .args(&["check", "--db", "s.qsync"])
        .run();
    // Nothing to say about the table; where it is and how the connection travels.
    let parsed = url::Url::parse(&url).expect("url");
    let at = format!(
        "{}:{}{}",
        parsed.host_str().expect("host"),
        parsed.port().unwrap_or(3306),
        parsed.path()
    );
    assert_eq!(
        out.stderr,
        format!("s.qsync: MySQL at {at}: not encrypted (ssl-mode=preferred)\n1 spec checked: ok\n")
    );
}

#[tokio::test]
async fn a_missing_table_is_an_error_unless_the_target_creates_it() {
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    let out = Test::new()
        .file("qsync.yaml", &profile(&url))
        .file("s.qsync", &base().replace("    create\n", ""))
        .args(&["check", "--db", "s.qsync"])
        .status(1)
        .run();
    assert!(
        out.stderr
            .contains("table `refund_list_query` does not exist in the target database"),
        "{}",
        out.stderr
    );
    Test::new()
        .file("qsync.yaml", &profile(&url))
        .file("s.qsync", &base())
        .args(&["check", "--db", "s.qsync"])
        .run();
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    let out = Test::new()
        .file(
            "qsync.yaml",
            &profile("mysql://root:pw-secret@127.0.0.1:1/x"),
        )
        .file("s.qsync", &base())
        .args(&["check", "--db", "s.qsync"])
        .status(1)
        .run();
    assert!(out.stderr.contains("127.0.0.1:1"), "{}", out.stderr);
    assert!(!out.stderr.contains("pw-secret"), "{}", out.stderr);
}
