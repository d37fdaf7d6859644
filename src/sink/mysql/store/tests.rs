//! State tests against a real server, each in its own database.

use std::time::Duration;

use chrono::NaiveDate;

use super::ledger::{rejects_statement, window_statement};
use super::*;
use crate::plan::{ColumnPlan, ColumnType, Expr, FieldPath, TargetPlan, Window, WriteMode};
use crate::sink::testing::fresh_database;
use crate::sink::{ErrorClass, TableSpec, WriterOptions};
use crate::state::{Reject, RunOutcome, RunRecord, WindowRecord, WindowStatus};

fn at(day: u32, hour: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2024, 4, day)
        .and_then(|d| d.and_hms_opt(hour, 0, 0))
        .expect("valid")
}

async fn store() -> (StateStore, crate::sink::testing::DatabaseGuard) {
    let (url, guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    let store = StateStore::open(&sink).await.expect("creates state tables");
    // Opening twice is harmless.
    StateStore::open(&sink).await.expect("idempotent");
    (store, guard)
}

fn window(status: WindowStatus, attempts: u32) -> WindowRecord {
    WindowRecord {
        spec: "jst-refunds".into(),
        start: at(1, 0),
        end: at(8, 0),
        pages: 3,
        reported_total: Some(120),
        fetched: 120,
        written: 130,
        rejects: 1,
        status,
        attempts,
    }
}

#[tokio::test]
async fn cursor_reads_back_and_moves() {
    let (store, _guard) = store().await;
    assert_eq!(store.cursor("jst-refunds").await.expect("reads"), None);
    store
        .set_cursor("jst-refunds", at(1, 0), "abc")
        .await
        .expect("sets");
    store
        .set_cursor("jst-refunds", at(2, 12), "def")
        .await
        .expect("moves");
    let cursor = store
        .cursor("jst-refunds")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(
        (cursor.high_water, cursor.spec_hash.as_str()),
        (at(2, 12), "def")
    );
    assert_eq!(store.cursor("other").await.expect("reads"), None);
}

#[tokio::test]
async fn window_ledger_is_unique_per_window() {
    let (store, _guard) = store().await;
    store
        .record_window(&window(WindowStatus::Running, 1))
        .await
        .expect("writes");
    store
        .record_window(&window(WindowStatus::Done, 2))
        .await
        .expect("updates");
    let mut other = window(WindowStatus::Failed, 1);
    other.start = at(8, 0);
    other.end = at(15, 0);
    other.reported_total = None;
    store.record_window(&other).await.expect("writes");
    let windows = store.windows("jst-refunds").await.expect("reads");
    assert_eq!(windows, vec![window(WindowStatus::Done, 2), other]);
}

#[tokio::test]
async fn runs_and_rejects_read_back_newest_first() {
    let (store, _guard) = store().await;
    let run = |outcome, error: Option<&str>| RunRecord {
        spec: "jst-refunds".into(),
        range: Some(Window {
            start: at(1, 0),
            end: at(8, 0),
        }),
        pages: 4,
        records: 180,
        rows_written: 530,
        rejects: 2,
        retries: 1,
        duration: Duration::from_millis(1234),
        outcome,
        error: error.map(str::to_owned),
        started_at: at(9, 1),
        finished_at: Some(at(9, 2)),
    };
    let first = store
        .record_run(&run(RunOutcome::Success, None))
        .await
        .expect("writes");
    let second = store
        .record_run(&run(RunOutcome::Failed, Some("vendor error `10001`")))
        .await
        .expect("writes");
    assert!(second > first);
    let runs = store.runs("jst-refunds", 10).await.expect("reads");
    assert_eq!(
        runs,
        vec![
            run(RunOutcome::Failed, Some("vendor error `10001`")),
            run(RunOutcome::Success, None)
        ]
    );

    let reject = |raw: &str| {
        Reject::new(
            "jst-refunds",
            Some((at(1, 0), at(8, 0))),
            raw,
            "cannot convert `as_date` value \"abc\" to datetime",
        )
    };
    store.add_rejects(&[]).await.expect("nothing to do");
    store
        .add_rejects(&[reject(r#"{"as_id":1}"#), reject(r#"{"as_id":"售后"}"#)])
        .await
        .expect("writes");
    let rejects = store.rejects("jst-refunds", 1).await.expect("reads");
    assert_eq!(rejects, vec![reject(r#"{"as_id":"售后"}"#)]);
}

#[tokio::test]
async fn state_commits_with_the_last_batch_or_not_at_all() {
    let (store, guard) = store().await;
    let sink = store.sink().clone();
    let target = TargetPlan {
        connection: "bi".into(),
        table: vec!["t".into()],
        mode: WriteMode::Replace,
        key: vec!["id".into()],
        batch: 1000,
        create: true,
        sql: None,
    };
    let columns = [ColumnPlan {
        name: "id".into(),
        ty: ColumnType::Bigint,
        expr: Expr::Field(FieldPath::parse("id")),
    }];
    let table = TableSpec::new(&target, &columns).expect("valid");
    sink.ensure_table(&table, true).await.expect("creates");
    let rows = |n: i64| (0..n).map(|i| vec![Cell::Int(i)]).collect::<Vec<_>>();
    let state = || {
        let mut statements = vec![
            cursor_statement("s", at(8, 0), "h", UpsertSyntax::Values),
            window_statement(&window(WindowStatus::Done, 1), UpsertSyntax::Values),
        ];
        statements.extend(rejects_statement(&[Reject::new("s", None, "{}", "r")]));
        statements
    };

    // A state statement that fails rolls back the last batch with it. One connection, so
    // every row is in the last batch (with more, other lanes commit theirs earlier).
    let one = WriterOptions {
        connections: 1,
        ..WriterOptions::default()
    };
    let mut writer = sink.window(&table, one).await.expect("opens");
    writer.write_batch(rows(5)).await.expect("writes");
    let mut broken = state();
    broken.push(SqlStatement::new(
        "INSERT INTO `_qsync_nope` VALUES (1)",
        vec![],
    ));
    let err = writer.commit(broken).await.expect_err("missing table");
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(store.cursor("s").await.expect("reads"), None);
    assert!(store
        .windows("jst-refunds")
        .await
        .expect("reads")
        .is_empty());
    assert!(store.rejects("s", 10).await.expect("reads").is_empty());
    let mut conn = sink.connection().await.expect("connects");
    let count: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("counts");
    assert_eq!(count, Some(0));

    // A good commit writes rows, cursor, ledger and rejects together.
    let mut writer = sink
        .window(&table, WriterOptions::default())
        .await
        .expect("opens");
    writer.write_batch(rows(5)).await.expect("writes");
    writer.commit(state()).await.expect("commits");
    assert_eq!(
        store
            .cursor("s")
            .await
            .expect("reads")
            .map(|c| c.high_water),
        Some(at(8, 0))
    );
    assert_eq!(store.windows("jst-refunds").await.expect("reads").len(), 1);
    assert_eq!(store.rejects("s", 10).await.expect("reads").len(), 1);
    let count: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .expect("counts");
    assert_eq!(count, Some(5));
    drop(guard);
}

#[tokio::test]
async fn a_lease_has_one_owner_until_it_expires() {
    let (store, _guard) = store().await;
    let ttl = Duration::from_secs(30);
    // Ten owners race for one spec: exactly one wins.
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.take_lease("spec", &format!("owner{i}"), ttl).await })
        })
        .collect();
    let mut winners = 0;
    for racer in racers {
        if racer.await.expect("ran").expect("no error") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
    let holder = store
        .lease("spec")
        .await
        .expect("reads")
        .expect("held")
        .owner;
    assert!(!store
        .take_lease("spec", "intruder", ttl)
        .await
        .expect("runs"));
    assert!(store
        .take_lease("spec", &holder, ttl)
        .await
        .expect("re-take extends"));
    assert!(store
        .renew_lease("spec", &holder, ttl)
        .await
        .expect("renews"));
    assert!(!store
        .renew_lease("spec", "intruder", ttl)
        .await
        .expect("runs"));

    // Release frees it at once.
    assert!(store
        .release_lease("spec", &holder)
        .await
        .expect("releases"));
    assert_eq!(store.lease("spec").await.expect("reads"), None);
    assert!(store
        .take_lease("spec", "b", Duration::from_millis(300))
        .await
        .expect("takes"));

    // Expiry: b stops renewing, c takes over, and b can no longer renew.
    assert!(!store.take_lease("spec", "c", ttl).await.expect("still b's"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store
        .take_lease("spec", "c", ttl)
        .await
        .expect("expired, taken over"));
    assert!(!store.renew_lease("spec", "b", ttl).await.expect("runs"));
    assert!(!store.release_lease("spec", "b").await.expect("runs"));
    assert_eq!(
        store.lease("spec").await.expect("reads").map(|l| l.owner),
        Some("c".into())
    );
    assert!(store.take_lease("spec", "", ttl).await.is_err());
}

#[test]
fn a_window_closes_with_its_rejects_then_its_ledger_row_then_the_cursor() {
    let reject = Reject::new("s", None, "{}", "r");
    let mut close = WindowClose {
        ledger: window(WindowStatus::Done, 1),
        rejects: vec![reject; 1001],
        high_water: Some(at(8, 0)),
        spec_hash: "h".into(),
    };
    let statements = closing_statements(&close, UpsertSyntax::Values);
    let tables: Vec<&str> = statements
        .iter()
        .map(|s| s.sql.split('`').nth(1).unwrap_or(""))
        .collect();
    // 1000 rejects a statement: 5000 bound values, well under the placeholder limit.
    assert_eq!(
        tables,
        [
            "_qsync_rejects",
            "_qsync_rejects",
            "_qsync_windows",
            "_qsync_state"
        ]
    );
    assert_eq!(statements[0].params.len(), 7000);
    assert_eq!(statements[1].params.len(), 7);
    assert_eq!(statements[3].sql, CURSOR_SQL);
    assert_eq!(statements[3].params[0], Cell::Text("jst-refunds".into()));

    // A replay (or a window behind the mark) leaves the cursor alone.
    close.rejects.clear();
    close.high_water = None;
    let statements = closing_statements(&close, UpsertSyntax::Values);
    assert_eq!(statements.len(), 1);
    assert!(statements[0].sql.contains("`_qsync_windows`"));
}

/// MariaDB and MySQL before 8.0.19 get `VALUES()`; MySQL 8.0.19 and later the row alias
/// (the server's choice is `dialect`'s; this is what each choice writes).
#[test]
fn state_upserts_in_each_servers_form() {
    let close = WindowClose {
        ledger: window(WindowStatus::Done, 1),
        rejects: Vec::new(),
        high_water: Some(at(8, 0)),
        spec_hash: "h".into(),
    };
    let sql = |upsert| -> Vec<String> {
        closing_statements(&close, upsert)
            .into_iter()
            .map(|s| s.sql)
            .collect()
    };
    let values = sql(UpsertSyntax::Values);
    assert_eq!(
        values[0],
        "INSERT INTO `_qsync_windows` (`spec`, `window_start`, `window_end`, `pages`, \
         `reported_total`, `fetched`, `written`, `rejects`, `status`, `attempts`, \
         `updated_at`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE \
         `pages` = VALUES(`pages`), `reported_total` = VALUES(`reported_total`), \
         `fetched` = VALUES(`fetched`), `written` = VALUES(`written`), \
         `rejects` = VALUES(`rejects`), `status` = VALUES(`status`), \
         `attempts` = VALUES(`attempts`), `updated_at` = VALUES(`updated_at`)"
    );
    assert_eq!(values[1], CURSOR_SQL);
    let alias = sql(UpsertSyntax::RowAlias);
    assert_eq!(
        alias[0],
        "INSERT INTO `_qsync_windows` (`spec`, `window_start`, `window_end`, `pages`, \
         `reported_total`, `fetched`, `written`, `rejects`, `status`, `attempts`, \
         `updated_at`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NOW(6)) AS `_qsync_new` \
         ON DUPLICATE KEY UPDATE `pages` = `_qsync_new`.`pages`, \
         `reported_total` = `_qsync_new`.`reported_total`, `fetched` = `_qsync_new`.`fetched`, \
         `written` = `_qsync_new`.`written`, `rejects` = `_qsync_new`.`rejects`, \
         `status` = `_qsync_new`.`status`, `attempts` = `_qsync_new`.`attempts`, \
         `updated_at` = `_qsync_new`.`updated_at`"
    );
    assert_eq!(
        alias[1],
        "INSERT INTO `_qsync_state` (`spec`, `high_water`, `spec_hash`, `updated_at`) \
         VALUES (?, ?, ?, NOW(6)) AS `_qsync_new` ON DUPLICATE KEY UPDATE \
         `high_water` = `_qsync_new`.`high_water`, `spec_hash` = `_qsync_new`.`spec_hash`, \
         `updated_at` = `_qsync_new`.`updated_at`"
    );
    assert!(alias.iter().all(|sql| !sql.contains("VALUES(")));
}

/// `Orders` and `orders` are two specs: two cursors. State tables made when spec names
/// compared case-insensitively are altered when a store opens them, and rejects tables
/// from before rejects were bounded get their length and hash columns.
#[tokio::test]
async fn spec_names_that_differ_only_in_case_have_their_own_state() {
    let (url, _guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    let legacy: Vec<SqlStatement> = STATE_TABLES_SQL
        .iter()
        .map(|sql| {
            let sql = sql
                .replace(" CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", "")
                .replace(
                    "  `raw_length` BIGINT NULL,\n  `raw_sha256` CHAR(64) NULL,\n",
                    "",
                );
            SqlStatement::new(sql, vec![])
        })
        .collect();
    sink.execute(&legacy).await.expect("legacy tables");
    let store = StateStore::open(&sink).await.expect("opens and alters");
    store
        .set_cursor("Orders", at(1, 0), "h")
        .await
        .expect("sets");
    store
        .set_cursor("orders", at(2, 0), "h")
        .await
        .expect("sets");
    let upper = store
        .cursor("Orders")
        .await
        .expect("reads")
        .expect("a cursor");
    let lower = store
        .cursor("orders")
        .await
        .expect("reads")
        .expect("a cursor");
    assert_eq!((upper.high_water, lower.high_water), (at(1, 0), at(2, 0)));
    store
        .add_rejects(&[Reject::new("orders", None, "{}", "r")])
        .await
        .expect("the altered rejects table takes lengths and hashes");
    assert_eq!(store.rejects("Orders", 5).await.expect("reads"), []);
}
