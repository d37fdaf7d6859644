//! Xid naming as examples, then settling against a real MariaDB/MySQL: every state an
//! interrupted parallel `insert` window can leave behind.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::*;
use crate::sink::testing::{fresh_database, open_decision, prepare_lane, prepared_xids};

#[test]
fn xids_name_their_database_and_parse_back() {
    let window = WindowXa::new("qsync_t_1");
    let xid = window.xid(3);
    assert!(xid.len() <= 64, "{xid}");
    let tag = database_tag("qsync_t_1");
    assert_eq!(token_of(&xid, &tag), Some(window.token.as_str()));
    assert_eq!(token_of(&xid, &database_tag("qsync_t_2")), None);
    let bad_token = format!("qsync-{tag}-zz-1");
    let bad_lane = format!("qsync-{tag}-{}-x", window.token);
    for foreign in ["", "qsync-", "other-xid", &bad_token, &bad_lane] {
        assert_eq!(token_of(foreign, &tag), None, "{foreign}");
    }
}

#[test]
fn database_tags_are_stable() {
    // FNV-1a of "test": a changed tag would orphan prepared transactions of old runs.
    assert_eq!(database_tag("test"), "afd071e5");
    assert_ne!(database_tag("a"), database_tag("b"));
}

async fn conn(url: &str) -> Conn {
    Conn::new(Opts::from_url(url).expect("url"))
        .await
        .expect("connects")
}

/// A database with table `t` and the decision table, and a sink on it.
async fn setup() -> (MysqlSink, String, crate::sink::testing::DatabaseGuard) {
    let (url, guard) = fresh_database().await;
    let sink = MysqlSink::connect(&url).await.expect("connects");
    assert!(sink.supports_xa().await, "the test server supports XA");
    conn(&url)
        .await
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("table");
    (sink, url, guard)
}

/// Lane `lane` of `window` with row `id`, prepared; the connection stays attached.
async fn prepare(url: &str, window: &WindowXa, lane: usize, id: i64) -> Conn {
    prepare_lane(url, window, lane, &format!("INSERT INTO t VALUES ({id})")).await
}

async fn ids(url: &str) -> Vec<i64> {
    conn(url)
        .await
        .query("SELECT id FROM t ORDER BY id")
        .await
        .expect("reads")
}

async fn outcome(url: &str, window: &WindowXa) -> Option<String> {
    conn(url)
        .await
        .exec_first(
            "SELECT outcome FROM _qsync_xa WHERE token = ?",
            (window.token.as_str(),),
        )
        .await
        .expect("reads")
}

#[tokio::test]
async fn a_decided_window_is_committed_and_an_undecided_one_rolled_back() {
    let (sink, url, _guard) = setup().await;
    let decided = WindowXa::new(sink.database());
    let undecided = WindowXa::new(sink.database());

    // Crash after lane 0 committed, before the XA COMMITs.
    let mut lane0 = open_decision(&url, &decided).await;
    let a = prepare(&url, &decided, 1, 1).await;
    let b = prepare(&url, &decided, 2, 2).await;
    lane0.query_drop("COMMIT").await.expect("decides");
    // Crash before lane 0 committed.
    let lane0_lost = open_decision(&url, &undecided).await;
    let c = prepare(&url, &undecided, 1, 3).await;
    for gone in [a, b, c, lane0, lane0_lost] {
        gone.disconnect().await.expect("disconnects");
    }

    let settled = sink.resolve_prepared().await.expect("settles");
    assert_eq!(
        settled,
        Settled {
            committed: 2,
            rolled_back: 1,
            live: 0
        }
    );
    assert_eq!(ids(&url).await, vec![1, 2]);
    // The undecided window is now decided `rollback`: its lane 0 can never commit late.
    assert_eq!(outcome(&url, &undecided).await.as_deref(), Some("rollback"));
    let mut late = conn(&url).await;
    let decision = undecided.decision();
    let err = late
        .exec_drop(&decision.sql, (undecided.token.as_str(),))
        .await
        .expect_err("a rollback row is there");
    assert!(err.to_string().contains("Duplicate"), "{err}");
    // Settling again finds nothing.
    assert_eq!(
        sink.resolve_prepared().await.expect("settles"),
        Settled::default()
    );
}

#[tokio::test]
async fn a_live_window_is_left_to_its_writer() {
    let (sink, url, _guard) = setup().await;
    let window = WindowXa::new(sink.database());
    // Lane 0 still open (its writer alive), lane 1 prepared and detached.
    let mut lane0 = open_decision(&url, &window).await;
    prepare(&url, &window, 1, 7)
        .await
        .disconnect()
        .await
        .expect("disconnects");
    // Lane 2 prepared and still attached to its session.
    let attached = prepare(&url, &window, 2, 8).await;

    let settled = sink.resolve_prepared().await.expect("settles");
    assert_eq!(settled.live, 2, "{settled:?}");
    assert_eq!(settled.committed + settled.rolled_back, 0, "{settled:?}");
    assert!(ids(&url).await.is_empty());

    // The writer decides; its detached lane is then committed by settling, the attached
    // one by the writer itself.
    lane0.query_drop("COMMIT").await.expect("decides");
    let settled = sink.resolve_prepared().await.expect("settles");
    assert_eq!(settled.committed, 1, "{settled:?}");
    sink.commit_prepared(
        &window,
        vec![Prepared {
            conn: attached,
            xid: window.xid(2),
        }],
    )
    .await;
    assert_eq!(ids(&url).await, vec![7, 8]);
    assert_eq!(outcome(&url, &window).await, None, "decision row dropped");
}

#[tokio::test]
async fn other_databases_are_never_touched() {
    let (sink, _url, _guard) = setup().await;
    let (other_url, _other_guard) = fresh_database().await;
    conn(&other_url)
        .await
        .query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .expect("table");
    let other_db = other_url.rsplit('/').next().expect("db").to_owned();
    let foreign = WindowXa::new(&other_db);
    prepare(&other_url, &foreign, 1, 5)
        .await
        .disconnect()
        .await
        .expect("disconnects");
    assert_eq!(
        sink.resolve_prepared().await.expect("settles"),
        Settled::default()
    );
    let xid = foreign.xid(1);
    assert_eq!(
        prepared_xids(&other_url).await,
        vec![xid.clone()],
        "left alone"
    );
    conn(&other_url)
        .await
        .query_drop(format!("XA ROLLBACK '{xid}'"))
        .await
        .expect("cleans up");
}

#[tokio::test]
async fn a_lost_commit_answer_is_read_from_the_decision_row() {
    let (sink, url, _guard) = setup().await;
    let window = WindowXa::new(sink.database());
    let mut lane0 = open_decision(&url, &window).await;
    let session = lane0.id();
    lane0.query_drop("COMMIT").await.expect("decides");
    lane0.disconnect().await.expect("disconnects");
    assert_eq!(
        sink.decided_commit(&window, session).await.expect("reads"),
        Some(true)
    );
    let other = WindowXa::new(sink.database());
    let lane0 = open_decision(&url, &other).await;
    let session = lane0.id();
    // Still connected and undecided: the wait ends, with no answer.
    let waiting = tokio::spawn({
        let sink = sink.clone();
        let other = other.clone();
        async move { sink.decided_commit(&other, session).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lane0);
    assert_eq!(waiting.await.expect("joins").expect("reads"), Some(false));
}
