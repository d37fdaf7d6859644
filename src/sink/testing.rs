//! Test support: a fresh, uniquely named database per test, so MySQL tests run in
//! parallel without seeing each other's tables. Used by unit tests here and in `state`, by
//! `tests/` and by other modules' tests.
//!
//! The server URL comes from `QSYNC_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). MySQL tests fail loudly, they never skip: when the
//! server does not answer, the first test to find out ends the test process with one line
//! that says how to start one ([`fresh_database`]), instead of every MySQL test failing on
//! its own.

mod server;

use std::sync::atomic::{AtomicU32, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

pub use self::server::{ServerKind, TestServer};

/// The test server's URL.
pub fn mysql_url() -> String {
    std::env::var("QSYNC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// Drops its database when dropped.
#[derive(Debug)]
pub struct DatabaseGuard {
    base: String,
    name: String,
}

impl DatabaseGuard {
    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        // Drop runs in sync code, possibly inside a runtime: use a thread with its own.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(opts) = Opts::from_url(&base) {
                    if let Ok(mut conn) = Conn::new(opts).await {
                        // A prepared XA transaction left by a failing test would block the
                        // DROP on its table's metadata lock forever.
                        let listed = super::xa::prepared_xids(&mut conn, &name)
                            .await
                            .unwrap_or_default();
                        for (xid, _) in listed {
                            let _ = conn.query_drop(format!("XA ROLLBACK '{xid}'")).await;
                        }
                        let _ = conn
                            .query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
                            .await;
                        let _ = conn.disconnect().await;
                    }
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Ends the test process (exit status 1) with one line on stderr: the test server at `base`
/// refused a connection with `error`.
///
/// The harness captures what tests print and shows it per failed test, so a panic here
/// would repeat in every MySQL test (fifty failures for one missing server). Writing to
/// the stderr handle directly bypasses the capture; the lock, never released, keeps other
/// tests that find out at the same time from printing again before the process ends.
fn exit_unreachable(base: &str, error: &mysql_async::Error) -> ! {
    use std::io::Write as _;
    static TOLD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _told = TOLD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let line = format!(
        "\nqsync tests: cannot connect to the test MySQL at {base} ({error}): start one with \
         `scripts/ensure-mariadb`, or run the tests with `scripts/test`, which does; \
         QSYNC_TEST_MYSQL_URL names another server\n"
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    std::process::exit(1);
}

/// Creates a fresh database and returns a URL pointing at it, plus its guard.
///
/// When the test server does not answer, ends the test process with one line instead of
/// panicking (see `exit_unreachable`).
///
/// # Panics
/// When `QSYNC_TEST_MYSQL_URL` is not a MySQL URL, or the server refuses to create the
/// database.
pub async fn fresh_database() -> (String, DatabaseGuard) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let base = mysql_url();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "qsync_t{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let opts = Opts::from_url(&base).unwrap_or_else(|e| panic!("bad QSYNC_TEST_MYSQL_URL: {e}"));
    let mut conn = match Conn::new(opts).await {
        Ok(conn) => conn,
        Err(error) => exit_unreachable(&base, &error),
    };
    conn.query_drop(format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    ))
    .await
    .unwrap_or_else(|e| panic!("cannot create test database `{name}`: {e}"));
    let _ = conn.disconnect().await;
    let url = with_database(&base, &name);
    (url, DatabaseGuard { base, name })
}

/// `base` with its database path replaced by `name` (query string kept).
fn with_database(base: &str, name: &str) -> String {
    match url::Url::parse(base) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{name}"));
            parsed.to_string()
        }
        Err(_) => format!("{}/{name}", base.trim_end_matches('/')),
    }
}

/// Leaves behind what a run killed in the middle of committing a parallel `insert` window
/// leaves: a prepared, detached XA transaction running `statement` in the database of
/// `url`, and, when `decided`, the window's committed `commit` decision.
///
/// # Panics
/// When the test server refuses a step.
pub async fn leave_interrupted_window(url: &str, statement: &str, decided: bool) {
    let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad url: {e}"));
    let sink = super::MysqlSink::connect(url).await.expect("connects");
    assert!(sink.supports_xa().await, "the test server supports XA");
    let window = super::xa::WindowXa::new(opts.db_name().unwrap_or(""));
    let mut lane0 = open_decision(url, &window).await;
    let lane1 = prepare_lane(url, &window, 1, statement).await;
    lane0
        .query_drop(if decided { "COMMIT" } else { "ROLLBACK" })
        .await
        .expect("decides");
    lane1.disconnect().await.expect("detaches");
    lane0.disconnect().await.expect("disconnects");
    sink.disconnect().await;
}

/// Lane 0 of `window` as the writer opens it: a transaction holding the decision row.
pub(in crate::sink) async fn open_decision(url: &str, window: &super::xa::WindowXa) -> Conn {
    let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad url: {e}"));
    let mut lane0 = Conn::new(opts).await.expect("connects");
    lane0.query_drop("BEGIN").await.expect("begins");
    super::mysql::exec_statement(&mut lane0, &window.decision())
        .await
        .expect("decision row");
    lane0
}

/// Lane `lane` of `window` running `statement`, prepared; the connection stays attached.
pub(in crate::sink) async fn prepare_lane(
    url: &str,
    window: &super::xa::WindowXa,
    lane: usize,
    statement: &str,
) -> Conn {
    let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad url: {e}"));
    let mut conn = Conn::new(opts).await.expect("connects");
    let xid = window.xid(lane);
    for sql in [
        format!("XA START '{xid}'"),
        statement.to_owned(),
        format!("XA END '{xid}'"),
        format!("XA PREPARE '{xid}'"),
    ] {
        conn.query_drop(sql).await.expect("xa step");
    }
    conn
}

/// The xids of prepared qsync windows in the database of `url`.
///
/// # Panics
/// When the test server is unreachable.
pub async fn prepared_xids(url: &str) -> Vec<String> {
    let opts = Opts::from_url(url).unwrap_or_else(|e| panic!("bad url: {e}"));
    let database = opts.db_name().unwrap_or("").to_owned();
    let mut conn = Conn::new(opts).await.expect("connects");
    let listed = super::xa::prepared_xids(&mut conn, &database)
        .await
        .expect("lists");
    let _ = conn.disconnect().await;
    listed.into_iter().map(|(xid, _)| xid).collect()
}

/// How many qsync windows of the database of `url` are prepared.
///
/// # Panics
/// When the test server is unreachable.
pub async fn prepared_windows(url: &str) -> usize {
    prepared_xids(url).await.len()
}
