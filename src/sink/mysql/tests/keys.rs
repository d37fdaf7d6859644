//! Keys against a real MariaDB: ids that differ only in case, trailing spaces or emoji stay
//! apart in tables qsync creates; in a legacy case-insensitive table the newest version
//! wins; the counts are the server's; a lane that fails stops every lane's last commit.

use mysql_async::prelude::Queryable;

use super::*;

/// The ids: three pairs a case- or accent-insensitive collation merges.
const IDS: [&str; 6] = ["ABC", "abc", "x", "x ", "\u{1F600}", "\u{1F389}"];

async fn keyed_rows(url: &str) -> Vec<(String, Option<String>)> {
    let mut conn = Conn::new(Opts::from_url(url).expect("url"))
        .await
        .expect("connects");
    conn.query("SELECT id, note FROM refunds ORDER BY id, note")
        .await
        .expect("reads")
}

async fn table_with(
    collation: Option<&str>,
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
    match collation {
        None => sink.ensure_table(&table, true).await.expect("creates"),
        Some(collation) => sink
            .execute(&[SqlStatement::new(
                create_table_sql(&table, collation),
                vec![],
            )])
            .await
            .expect("creates"),
    }
    (sink, table, url, guard)
}

#[tokio::test]
async fn ids_that_differ_only_in_case_spaces_or_emoji_are_six_rows_in_a_created_table() {
    for method in [WriteMethod::Auto, WriteMethod::Statements] {
        for mode in [WriteMode::Replace, WriteMode::Upsert, WriteMode::Insert] {
            let (sink, table, url, _guard) = table_with(None, mode).await;
            let options = WriterOptions {
                connections: 2,
                method,
            };
            let rows: Vec<Vec<Cell>> = IDS.iter().map(|id| row(id, 1, "first")).collect();
            let mut writer = sink.window(&table, options).await.expect("opens");
            assert_eq!(writer.lanes.len(), 2, "exact keys keep both lanes");
            writer.write_batch(rows).await.expect("writes");
            let stats = writer.commit(vec![]).await.expect("commits");
            assert_eq!(
                (stats.written, stats.replaced),
                (6, 0),
                "{mode:?} {method:?}"
            );
            let got = keyed_rows(&url).await;
            let mut ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
            ids.sort_unstable();
            let mut want = IDS.to_vec();
            want.sort_unstable();
            assert_eq!(ids, want, "{mode:?} {method:?}: trailing space kept too");
            if mode == WriteMode::Insert {
                continue;
            }
            // Written again with a new note: each row replaced once, the server says so.
            let rows: Vec<Vec<Cell>> = IDS.iter().map(|id| row(id, 1, "second")).collect();
            let mut writer = sink.window(&table, options).await.expect("opens");
            writer.write_batch(rows).await.expect("writes");
            let stats = writer.commit(vec![]).await.expect("commits");
            assert_eq!(
                (stats.written, stats.replaced),
                (6, 6),
                "{mode:?} {method:?}"
            );
            assert!(keyed_rows(&url)
                .await
                .iter()
                .all(|(_, n)| n.as_deref() == Some("second")));
        }
    }
}

/// A table made before keys compared exactly: ids the collation merges are one row, the
/// newest version wins (one lane keeps the order), and the count says rows were replaced.
#[tokio::test]
async fn in_a_legacy_case_insensitive_table_the_newest_version_wins() {
    for method in [WriteMethod::Auto, WriteMethod::Statements] {
        for mode in [WriteMode::Replace, WriteMode::Upsert] {
            let (sink, table, url, _guard) = table_with(Some("utf8mb4_unicode_ci"), mode).await;
            let options = WriterOptions {
                connections: 2,
                method,
            };
            let rows: Vec<Vec<Cell>> = IDS
                .iter()
                .enumerate()
                .map(|(i, id)| row(id, 1, &format!("v{i}")))
                .collect();
            let mut writer = sink.window(&table, options).await.expect("opens");
            assert_eq!(
                writer.lanes.len(),
                1,
                "a folding key collation writes on one lane"
            );
            writer.write_batch(rows).await.expect("writes");
            let stats = writer.commit(vec![]).await.expect("commits");
            let notes: Vec<String> = keyed_rows(&url)
                .await
                .into_iter()
                .filter_map(|(_, note)| note)
                .collect();
            let mut notes = notes;
            notes.sort_unstable();
            assert_eq!(
                notes,
                ["v1", "v3", "v5"],
                "{mode:?} {method:?}: the later of each pair"
            );
            assert_eq!(
                (stats.written, stats.replaced),
                (6, 3),
                "{mode:?} {method:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_pad_space_binary_key_hashes_without_trailing_spaces() {
    let (sink, table, url, _guard) = table_with(Some("utf8mb4_bin"), WriteMode::Replace).await;
    let options = WriterOptions {
        connections: 2,
        method: WriteMethod::Auto,
    };
    let mut writer = sink.window(&table, options).await.expect("opens");
    assert_eq!(writer.lanes.len(), 2, "case-exact keys keep both lanes");
    // `x` and `x ` are one key under PAD SPACE: in order on one lane, the later wins.
    let rows: Vec<Vec<Cell>> = (0..40)
        .flat_map(|i| {
            [
                row(&format!("k{i}"), 1, "old"),
                row(&format!("k{i} "), 1, "new"),
            ]
        })
        .collect();
    writer.write_batch(rows).await.expect("writes");
    let stats = writer.commit(vec![]).await.expect("commits");
    assert_eq!((stats.written, stats.replaced), (80, 40));
    let rows = keyed_rows(&url).await;
    assert_eq!(rows.len(), 40);
    assert!(
        rows.iter().all(|(_, n)| n.as_deref() == Some("new")),
        "{rows:?}"
    );
}

/// One lane's last chunk fails (a NULL key): the state did not commit, and the writer's
/// count of committed rows is exactly what reached the table (a lane that finished before
/// the failing one has committed: lanes never wait for each other, see `commit`).
#[tokio::test]
async fn a_lane_that_fails_at_the_end_commits_no_state_and_counts_what_reached_the_table() {
    for method in [WriteMethod::Auto, WriteMethod::Statements] {
        for bad_at in [0, 25, 49] {
            let (sink, table, url, _guard) = table_with(None, WriteMode::Replace).await;
            sink.execute(&[SqlStatement::new(
                "CREATE TABLE marks (k INT PRIMARY KEY)",
                vec![],
            )])
            .await
            .expect("marks");
            let options = WriterOptions {
                connections: 2,
                method,
            };
            let mut rows: Vec<Vec<Cell>> = (0..50).map(|i| row(&format!("r{i}"), 1, "n")).collect();
            rows[bad_at][0] = Cell::Null;
            let mut writer = sink.window(&table, options).await.expect("opens");
            let committed = writer.committed_rows();
            writer.write_batch(rows).await.expect("handed over");
            let mark = SqlStatement::new("INSERT INTO marks (k) VALUES (1)", vec![]);
            let err = writer
                .commit(vec![mark])
                .await
                .expect_err("a NULL key fails");
            assert_eq!(err.class(), ErrorClass::Data, "{method:?}: {err}");
            let reached = keyed_rows(&url).await.len() as u64;
            assert!(
                reached < 50,
                "{method:?} {bad_at}: the failing lane committed"
            );
            assert_eq!(committed.get(), reached, "{method:?} {bad_at}");
            let mut conn = Conn::new(Opts::from_url(&url).expect("url"))
                .await
                .expect("c");
            let marks: Vec<i64> = conn.query("SELECT k FROM marks").await.expect("reads");
            assert!(marks.is_empty());
        }
    }
}
