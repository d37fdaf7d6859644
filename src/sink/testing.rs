//! Test support: a fresh, uniquely named database per test, so MySQL tests run in
//! parallel without seeing each other's tables. Used by unit tests here and in `state`, by
//! `tests/` and by other modules' tests.
//!
//! The server URL comes from `QSYNC_TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`). An unreachable server panics: MySQL tests fail
//! loudly, they never skip.

use std::sync::atomic::{AtomicU32, Ordering};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

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
                        let listed: Vec<(i64, i64, i64, Vec<u8>)> =
                            conn.query("XA RECOVER").await.unwrap_or_default();
                        let prefix = format!("qsync-{}-", super::xa::database_tag(&name));
                        for (_, _, _, data) in listed {
                            let xid = String::from_utf8_lossy(&data).into_owned();
                            if xid.starts_with(&prefix) {
                                let _ = conn.query_drop(format!("XA ROLLBACK '{xid}'")).await;
                            }
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

/// Creates a fresh database and returns a URL pointing at it, plus its guard.
///
/// # Panics
/// When the test server is unreachable or refuses to create the database.
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
    let mut conn = Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("test MySQL at {base} is unreachable: {e}"));
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
