//! Window writer tests against a real MariaDB/MySQL, each test in its own database: every
//! mode and method, lanes, XA, killed connections, locks.

use std::sync::atomic::Ordering;

use mysql_async::prelude::Queryable;

use super::*;

async fn table_rows(
    url: &str,
    table: &str,
) -> Vec<(String, Option<i64>, Option<String>, Option<String>)> {
    let mut conn = Conn::new(Opts::from_url(url).expect("url"))
        .await
        .expect("connects");
    conn.query(format!(
        "SELECT id, qty, CAST(refund AS CHAR), note FROM `{table}` ORDER BY id"
    ))
    .await
    .expect("reads")
}

async fn setup(
    mode: WriteMode,
) -> (
    MysqlSink,
    TableSpec,
    String,
    crate::sink::testing::DatabaseGuard,
) {
    let (url, guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    let table = spec(mode);
    sink.ensure_table(&table, true).await.expect("creates");
    sink.execute(&[SqlStatement::new(
        "CREATE TABLE marks (k INT PRIMARY KEY)",
        vec![],
    )])
    .await
    .expect("marks table");
    (sink, table, url, guard)
}

fn mark(k: i64) -> SqlStatement {
    SqlStatement::new("INSERT INTO marks (k) VALUES (?)", vec![Cell::Int(k)])
}

async fn marks(url: &str) -> Vec<i64> {
    let mut conn = Conn::new(Opts::from_url(url).expect("url"))
        .await
        .expect("connects");
    conn.query("SELECT k FROM marks ORDER BY k")
        .await
        .expect("reads")
}

fn many(n: usize, qty: i64) -> Vec<Vec<Cell>> {
    (0..n).map(|i| row(&format!("r{i:06}"), qty, "n")).collect()
}

#[tokio::test]
async fn every_mode_and_method_writes_and_rewrites_identically() {
    for method in [WriteMethod::Auto, WriteMethod::Statements] {
        for mode in [
            WriteMode::Replace,
            WriteMode::Upsert,
            WriteMode::Ignore,
            WriteMode::Insert,
        ] {
            let (sink, table, url, _guard) = setup(mode).await;
            let options = WriterOptions {
                connections: 3,
                method,
            };
            let mut writer = sink.window(&table, options).await.expect("opens");
            for batch in many(2500, 1).chunks(1000) {
                writer.write_batch(batch.to_vec()).await.expect("writes");
            }
            let stats = writer.commit(vec![mark(1)]).await.expect("commits");
            assert_eq!(stats.rows, 2500, "{mode:?} {method:?}");
            let first = table_rows(&url, "refunds").await;
            assert_eq!(first.len(), 2500);
            assert_eq!(
                first[0],
                (
                    "r000000".into(),
                    Some(1),
                    Some("12.34".into()),
                    Some("n".into())
                )
            );
            assert_eq!(marks(&url).await, vec![1]);
            // Auto must really have used LOAD DATA where the mode allows it.
            assert!(
                sink.inner.infile.load(Ordering::Relaxed),
                "fell back to statements"
            );
            if mode == WriteMode::Insert {
                // Three lanes: two prepared and committed by lane 0's decision.
                assert_eq!(stats.transactions, 3, "{method:?}");
                assert_no_xa_leftovers(&url).await;
                continue;
            }
            // Re-running the window leaves the table identical.
            let mut writer = sink.window(&table, options).await.expect("opens");
            writer.write_batch(many(2500, 1)).await.expect("writes");
            writer.commit(vec![mark(2)]).await.expect("commits");
            assert_eq!(
                table_rows(&url, "refunds").await,
                first,
                "{mode:?} {method:?}"
            );
            // JSON with escapes survived the trip.
            let mut conn = Conn::new(Opts::from_url(&url).expect("url"))
                .await
                .expect("c");
            let extra: Option<String> = conn
                .query_first("SELECT extra FROM refunds WHERE id = 'r000001'")
                .await
                .expect("reads");
            let extra: serde_json::Value =
                serde_json::from_str(&extra.expect("json stored")).expect("valid json");
            assert_eq!(extra, json!({"k": [1, "\t\n\\"]}));
        }
    }
}

#[tokio::test]
async fn later_versions_of_a_key_win_across_lanes() {
    // Upsert: versions meet in one staged chunk, where the last must win too.
    for mode in [WriteMode::Replace, WriteMode::Upsert] {
        let (sink, table, url, _guard) = setup(mode).await;
        let options = WriterOptions {
            connections: 4,
            method: WriteMethod::Auto,
        };
        let mut writer = sink.window(&table, options).await.expect("opens");
        for version in 1..=5 {
            writer
                .write_batch(many(300, version))
                .await
                .expect("writes");
        }
        writer.commit(vec![]).await.expect("commits");
        let rows = table_rows(&url, "refunds").await;
        assert_eq!(rows.len(), 300);
        assert!(
            rows.iter().all(|r| r.1 == Some(5)),
            "{mode:?}: an older version won"
        );
        assert!(sink.inner.infile.load(Ordering::Relaxed), "used LOAD DATA");
    }
}

#[tokio::test]
async fn dropped_writer_commits_neither_rows_nor_state() {
    for mode in [WriteMode::Replace, WriteMode::Insert] {
        let (sink, table, url, _guard) = setup(mode).await;
        let mut writer = sink
            .window(&table, WriterOptions::default())
            .await
            .expect("opens");
        writer.write_batch(many(10, 1)).await.expect("writes");
        drop(writer);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(table_rows(&url, "refunds").await.is_empty(), "{mode:?}");
        assert!(marks(&url).await.is_empty());
    }
}

#[tokio::test]
async fn killed_connection_before_commit_leaves_neither_rows_nor_state() {
    let cases = [
        (WriteMode::Replace, 1, WriteMethod::Auto),
        (WriteMode::Replace, 1, WriteMethod::Statements),
        // Lane 0 of an XA window dies while its lanes 1 and 2 are prepared.
        (WriteMode::Insert, 3, WriteMethod::Auto),
    ];
    for (mode, connections, method) in cases {
        let (sink, table, url, guard) = setup(mode).await;
        let options = WriterOptions {
            connections,
            method,
        };
        let mut writer = sink.window(&table, options).await.expect("opens");
        writer.write_batch(many(50, 1)).await.expect("writes");
        // The state update is written, then the transaction sleeps before its COMMIT
        // while another session kills the connection.
        let state = vec![mark(7), SqlStatement::new("DO SLEEP(5)", vec![])];
        let database = guard.name().to_owned();
        let killer = tokio::spawn(async move {
            let mut conn = Conn::new(Opts::from_url(&url).expect("url"))
                .await
                .expect("c");
            for _ in 0..100 {
                let id: Option<u64> = conn
                    .exec_first(
                        "SELECT id FROM information_schema.processlist \
                         WHERE db = ? AND info LIKE 'DO SLEEP%'",
                        (database.as_str(),),
                    )
                    .await
                    .expect("processlist");
                if let Some(id) = id {
                    conn.query_drop(format!("KILL {id}")).await.expect("kills");
                    return url;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("the window transaction never reached its sleep");
        });
        let err = writer
            .commit(state)
            .await
            .expect_err("killed before commit");
        assert_eq!(err.class(), ErrorClass::Retriable, "{err}");
        let url = killer.await.expect("killer ran");
        assert!(table_rows(&url, "refunds").await.is_empty(), "{method:?}");
        assert!(marks(&url).await.is_empty(), "{method:?}");
        if mode == WriteMode::Insert {
            assert_no_xa_leftovers(&url).await;
        }
    }
}

#[tokio::test]
async fn rows_the_table_cannot_hold_are_data_errors() {
    let cases = [
        (WriteMode::Replace, WriteMethod::Auto),
        (WriteMode::Replace, WriteMethod::Statements),
        (WriteMode::Upsert, WriteMethod::Auto),
    ];
    for (mode, method) in cases {
        let (url, _guard) = fresh_database().await;
        let sink = MysqlSink::connect(&url).await.expect("connects");
        let table = spec(mode);
        // An existing table narrower than the spec says.
        let narrow =
            create_table_sql(&table, "utf8mb4_nopad_bin").replace("VARCHAR(8)", "VARCHAR(2)");
        sink.execute(&[SqlStatement::new(narrow, vec![])])
            .await
            .expect("creates");
        sink.ensure_table(&table, false).await.expect("exists");
        let options = WriterOptions {
            connections: 1,
            method,
        };
        let mut writer = sink.window(&table, options).await.expect("opens");
        writer
            .write_batch(vec![row("a", 1, "toolong")])
            .await
            .expect("buffers");
        let err = writer.commit(vec![]).await.expect_err("too long");
        assert_eq!(err.class(), ErrorClass::Data, "{method:?}: {err}");
        assert!(err.to_string().contains("note"), "{err}");
        assert!(table_rows(&url, "refunds").await.is_empty());
    }
}

/// A duplicate in `insert` mode fails the whole window. Its batches go whole to the lanes,
/// but a key the window already wrote goes to the lane that wrote it: the duplicate fails
/// at once with the server's duplicate-key error, not after a lock wait behind the other
/// lane's uncommitted row.
#[tokio::test]
async fn a_key_written_again_in_an_insert_window_goes_to_the_lane_that_wrote_it() {
    for method in [WriteMethod::Auto, WriteMethod::Statements] {
        let (sink, table, url, _guard) = setup(WriteMode::Insert).await;
        let options = WriterOptions {
            connections: 2,
            method,
        };
        let mut writer = sink.window(&table, options).await.expect("opens");
        writer.write_batch(many(10, 1)).await.expect("buffers");
        let mut again = vec![row("r000003", 2, "again")];
        again.extend((100..110).map(|i| row(&format!("r{i:06}"), 1, "n")));
        writer.write_batch(again).await.expect("buffers");
        assert_eq!(writer.sent, [11, 10], "{method:?}");
        let err = writer.commit(vec![mark(1)]).await.expect_err("duplicate");
        assert_eq!(err.class(), ErrorClass::Data, "{method:?}: {err}");
        assert!(err.to_string().contains("Duplicate"), "{method:?}: {err}");
        assert!(table_rows(&url, "refunds").await.is_empty());
        assert!(marks(&url).await.is_empty());
        assert_no_xa_leftovers(&url).await;
    }
}

/// No prepared transaction of this database is left, nor a decision row.
async fn assert_no_xa_leftovers(url: &str) {
    let ours = crate::sink::testing::prepared_xids(url).await;
    assert!(ours.is_empty(), "prepared transactions left: {ours:?}");
    let mut conn = Conn::new(Opts::from_url(url).expect("url"))
        .await
        .expect("c");
    let decisions: Option<i64> = conn
        .query_first("SELECT COUNT(*) FROM _qsync_xa")
        .await
        .expect("counts");
    assert_eq!(decisions, Some(0), "decision rows left");
}

#[tokio::test]
async fn an_insert_window_on_several_connections_commits_all_or_nothing() {
    for method in [WriteMethod::Auto, WriteMethod::Statements] {
        let options = WriterOptions {
            connections: 3,
            method,
        };
        // A prepared lane (not lane 0) fails: a row already in the table is in the third
        // batch, which goes to lane 2.
        let (sink, table, url, _guard) = setup(WriteMode::Insert).await;
        let mut writer = sink.window(&table, options).await.expect("opens");
        let rows = many(60, 1);
        sink.execute(&[SqlStatement::new(
            "INSERT INTO refunds (id, qty) VALUES (?, 0)",
            vec![rows[45][0].clone()],
        )])
        .await
        .expect("pre-existing row");
        for batch in rows.chunks(20) {
            writer.write_batch(batch.to_vec()).await.expect("buffers");
        }
        assert_eq!(writer.sent, [20, 20, 20]);
        let err = writer.commit(vec![mark(1)]).await.expect_err("duplicate");
        assert_eq!(err.class(), ErrorClass::Data, "{method:?}: {err}");
        assert_eq!(table_rows(&url, "refunds").await.len(), 1, "{method:?}");
        assert!(marks(&url).await.is_empty());
        assert_no_xa_leftovers(&url).await;

        // Lane 0's commit fails after the other lanes prepared: they roll back.
        let (sink, table, url, _guard) = setup(WriteMode::Insert).await;
        sink.execute(&[mark(1)]).await.expect("mark 1 exists");
        let mut writer = sink.window(&table, options).await.expect("opens");
        writer.write_batch(many(60, 1)).await.expect("buffers");
        let err = writer.commit(vec![mark(1)]).await.expect_err("mark clash");
        assert_eq!(err.class(), ErrorClass::Data, "{method:?}: {err}");
        assert!(table_rows(&url, "refunds").await.is_empty(), "{method:?}");
        assert_eq!(marks(&url).await, vec![1]);
        assert_no_xa_leftovers(&url).await;

        // Keyless rows spread over every lane, and all commit.
        let mut keyless_target = target("log", WriteMode::Insert, None);
        keyless_target.key = Vec::new();
        let keyless = TableSpec::new(&keyless_target, &columns()).expect("valid");
        sink.ensure_table(&keyless, true).await.expect("creates");
        let mut writer = sink.window(&keyless, options).await.expect("opens");
        for batch in many(90, 1).chunks(30) {
            writer.write_batch(batch.to_vec()).await.expect("writes");
        }
        assert!(writer.sent.iter().all(|&n| n == 30), "{:?}", writer.sent);
        let stats = writer.commit(vec![mark(2)]).await.expect("commits");
        assert_eq!((stats.rows, stats.transactions), (90, 3), "{method:?}");
        assert_eq!(table_rows(&url, "log").await.len(), 90);
        assert_no_xa_leftovers(&url).await;
    }
}

#[tokio::test]
async fn missing_table_is_fatal() {
    let (url, _guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    let err = sink
        .ensure_table(&spec(WriteMode::Replace), false)
        .await
        .expect_err("no table");
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert!(err.to_string().contains("refunds"), "{err}");
}

#[tokio::test]
async fn connect_errors_name_host_and_database_not_password() {
    let err = MysqlSink::connect("mysql://root:hunter2@127.0.0.1:1/shop")
        .await
        .expect_err("nothing listens on port 1");
    let text = err.to_string();
    assert!(
        text.contains("`127.0.0.1:1`") && text.contains("`shop`"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(err.class(), ErrorClass::Retriable);

    let base = url::Url::parse(&crate::sink::testing::mysql_url()).expect("test url");
    let mut denied = base.clone();
    let _ = denied.set_username("qsync_nobody");
    let _ = denied.set_password(Some("hunter2"));
    let err = MysqlSink::connect(denied.as_str())
        .await
        .expect_err("access denied");
    let text = err.to_string();
    assert!(
        text.contains("denied") && !text.contains("hunter2"),
        "{text}"
    );
    assert_eq!(err.class(), ErrorClass::Fatal);

    let err = MysqlSink::connect("postgres://x@y/z")
        .await
        .expect_err("not mysql");
    assert!(matches!(err, SinkError::Url { .. }), "{err}");
}

#[tokio::test]
async fn an_insert_window_past_one_load_streams_the_rest_and_stays_atomic() {
    // Past STREAM_CHUNK_ROWS a single-transaction lane keeps nothing to replay and loads
    // the rest of its window in one statement; a duplicate there still fails it all.
    let rows = STREAM_CHUNK_ROWS + STREAM_CHUNK_ROWS / 2;
    let options = WriterOptions {
        connections: 1,
        method: WriteMethod::Auto,
    };
    let (sink, table, url, _guard) = setup(WriteMode::Insert).await;
    let mut writer = sink.window(&table, options).await.expect("opens");
    for batch in many(rows, 1).chunks(5000) {
        writer.write_batch(batch.to_vec()).await.expect("writes");
    }
    let stats = writer.commit(vec![mark(1)]).await.expect("commits");
    assert_eq!((stats.rows, stats.transactions), (rows as u64, 1));
    assert_eq!(table_rows(&url, "refunds").await.len(), rows);

    let (sink, table, url, _guard) = setup(WriteMode::Insert).await;
    let late = format!("r{:06}", rows - 10);
    sink.execute(&[SqlStatement::new(
        "INSERT INTO refunds (id, qty) VALUES (?, 0)",
        vec![Cell::Text(late.into())],
    )])
    .await
    .expect("pre-existing row");
    let mut writer = sink.window(&table, options).await.expect("opens");
    for batch in many(rows, 1).chunks(5000) {
        writer.write_batch(batch.to_vec()).await.expect("writes");
    }
    let err = writer.commit(vec![mark(1)]).await.expect_err("duplicate");
    assert_eq!(err.class(), ErrorClass::Data, "{err}");
    assert_eq!(table_rows(&url, "refunds").await.len(), 1);
    assert!(marks(&url).await.is_empty());
}

#[tokio::test]
async fn a_server_refusing_xa_gets_insert_windows_on_one_connection() {
    // An account that may write rows but not create the decision table: no XA for it.
    let (url, guard) = fresh_database().await;
    let root = MysqlSink::connect(&url).await.expect("connects");
    let table = spec(WriteMode::Insert);
    root.ensure_table(&table, true).await.expect("creates");
    let user = format!("qsync_rw_{}", std::process::id());
    let database = guard.name().to_owned();
    let grants = [
        format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY 'pw'"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO '{user}'@'%'"),
    ];
    for sql in &grants {
        root.execute(&[SqlStatement::new(sql.clone(), vec![])])
            .await
            .expect("grants");
    }
    let mut limited = url::Url::parse(&url).expect("url");
    let _ = limited.set_username(&user);
    let _ = limited.set_password(Some("pw"));
    let sink = MysqlSink::connect(limited.as_str())
        .await
        .expect("connects");
    assert!(!sink.supports_xa().await);
    let options = WriterOptions {
        connections: 3,
        method: WriteMethod::Auto,
    };
    let mut writer = sink.window(&table, options).await.expect("opens");
    assert_eq!(writer.lanes.len(), 1, "one connection without XA");
    writer.write_batch(many(500, 1)).await.expect("writes");
    let stats = writer.commit(vec![]).await.expect("commits");
    assert_eq!((stats.rows, stats.transactions), (500, 1));
    assert_eq!(table_rows(&url, "refunds").await.len(), 500);
    // Settling has nothing to do and says so without failing.
    assert_eq!(
        sink.resolve_prepared().await.expect("settles"),
        crate::sink::Settled::default()
    );
    root.execute(&[SqlStatement::new(format!("DROP USER '{user}'@'%'"), vec![])])
        .await
        .expect("drops the user");
}

/// Loads that hold a table lock until they end would take turns on several connections,
/// each waiting for the other lane's stream to idle out (30,000 rows took 5 s in insert mode
/// and 10 s in replace mode on two lanes): such tables get one lane. An `AUTO_INCREMENT`
/// column under `innodb_autoinc_lock_mode` 1 (MariaDB's default) and a non-InnoDB engine
/// both do; a plain InnoDB table and an upsert (which loads a temporary table) keep two.
#[tokio::test]
async fn tables_whose_loads_take_a_table_lock_are_written_on_one_connection() {
    let (url, _guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    let lock_mode: Option<i64> = Conn::new(Opts::from_url(&url).expect("url"))
        .await
        .expect("connects")
        .query_first("SELECT @@innodb_autoinc_lock_mode")
        .await
        .expect("reads");
    let options = WriterOptions {
        connections: 2,
        method: WriteMethod::Auto,
    };
    let cases = [
        (
            "auto_increment",
            WriteMode::Insert,
            "InnoDB",
            lock_mode == Some(2),
        ),
        (
            "auto_increment",
            WriteMode::Replace,
            "InnoDB",
            lock_mode == Some(2),
        ),
        ("auto_increment", WriteMode::Upsert, "InnoDB", true),
        ("", WriteMode::Insert, "InnoDB", true),
        ("", WriteMode::Replace, "Aria", false),
    ];
    for (n, (extra, mode, engine, side_by_side)) in cases.into_iter().enumerate() {
        let name = format!("t{n}");
        let table = TableSpec::new(&target(&name, mode, None), &columns()).expect("spec");
        let sql = create_table_sql(&table, "utf8mb4_nopad_bin")
            .replace(
                &format!("`{name}` ("),
                &format!("`{name}` (pk BIGINT {extra}, KEY (pk), "),
            )
            .replace("ENGINE=InnoDB", &format!("ENGINE={engine}"));
        sink.execute(&[SqlStatement::new(sql, vec![])])
            .await
            .expect("creates");
        let mut writer = sink.window(&table, options).await.expect("opens");
        let lanes = writer.lanes.len();
        for batch in many(30_000, 1).chunks(1000) {
            writer.write_batch(batch.to_vec()).await.expect("writes");
        }
        writer.commit(vec![]).await.expect("commits");
        assert_eq!(table_rows(&url, &name).await.len(), 30_000, "{name}");
        let expected = if side_by_side { 2 } else { 1 };
        assert_eq!(lanes, expected, "{extra} {mode:?} {engine}");
    }
    assert_no_xa_leftovers(&url).await;
}

/// A lane whose server thread is held up (here: by another session's uncommitted row with
/// a key the lane must insert) gets no more batches than its buffers absorb: the others
/// take the rest, and the window still commits whole once the lane is free. (Before, the
/// writer waited on the held-up lane's queue until the lock wait timed out.)
#[tokio::test]
async fn insert_batches_go_to_the_lane_with_room() {
    let (sink, table, url, _guard) = setup(WriteMode::Insert).await;
    let mut blocker = Conn::new(Opts::from_url(&url).expect("url"))
        .await
        .expect("connects");
    blocker
        .query_drop("START TRANSACTION")
        .await
        .expect("begins");
    blocker
        .query_drop("INSERT INTO refunds (id, qty) VALUES ('r000150', 0)")
        .await
        .expect("holds the key");
    let options = WriterOptions {
        connections: 2,
        method: WriteMethod::Auto,
    };
    let mut writer = sink.window(&table, options).await.expect("opens");
    // Batch 2 (rows 100..199) goes to lane 1, which then waits for the key 'r000150'.
    // Far more than the held-up lane's queue, stream and socket buffers can absorb.
    let rows = many(400_000, 1);
    let mut batches = rows.chunks(100);
    for batch in batches.by_ref().take(2) {
        writer.write_batch(batch.to_vec()).await.expect("writes");
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for batch in batches {
        writer.write_batch(batch.to_vec()).await.expect("writes");
    }
    let sent = writer.sent.clone();
    blocker.query_drop("ROLLBACK").await.expect("rolls back");
    let stats = writer.commit(vec![mark(1)]).await.expect("commits");
    assert_eq!(stats.rows, 400_000);
    assert_eq!(table_rows(&url, "refunds").await.len(), 400_000);
    assert!(sent[1] * 4 < sent[0], "the held-up lane got {sent:?}");
    assert_no_xa_leftovers(&url).await;
}

/// A caller that goes on writing after its lanes failed gets errors, then `WriterGone`
/// once no lane is left, never a panic; abort still rolls back and leaves no XA behind.
#[tokio::test]
async fn writing_after_every_lane_failed_is_an_error_not_a_panic() {
    let (sink, table, url, guard) = setup(WriteMode::Insert).await;
    let options = WriterOptions {
        connections: 2,
        method: WriteMethod::Auto,
    };
    let mut writer = sink.window(&table, options).await.expect("opens");
    writer.write_batch(many(10, 1)).await.expect("writes");
    let mut admin = Conn::new(Opts::from_url(&url).expect("url"))
        .await
        .expect("connects");
    let own = admin.id();
    let sessions: Vec<u64> = admin
        .exec(
            "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> ?",
            (guard.name(), own),
        )
        .await
        .expect("processlist");
    assert!(sessions.len() >= 2, "both lanes' sessions: {sessions:?}");
    for id in sessions {
        // A session may end between the query and its kill.
        let _ = admin.query_drop(format!("KILL {id}")).await;
    }
    let mut errors = Vec::new();
    for i in 0..50 {
        let rows = (0..10)
            .map(|j| row(&format!("late{i:02}{j}"), 1, "n"))
            .collect();
        if let Err(error) = writer.write_batch(rows).await {
            let gone = matches!(error, SinkError::WriterGone { .. });
            errors.push(error);
            if gone && writer.lanes.is_empty() {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(writer.lanes.is_empty(), "every lane failed: {errors:?}");
    assert!(
        matches!(errors.last(), Some(SinkError::WriterGone { .. })),
        "{errors:?}"
    );
    let again = writer.write_batch(many(1, 1)).await;
    assert!(
        matches!(again, Err(SinkError::WriterGone { .. })),
        "{again:?}"
    );
    writer.abort().await;
    assert!(table_rows(&url, "refunds").await.is_empty());
    assert_no_xa_leftovers(&url).await;
}
