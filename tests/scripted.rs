//! A scripted vendor on loopback and a world to run the real `qsync` binary against it: the
//! profile (`api`, a `kind: http` connection to the vendor, and `bi`, a fresh MariaDB
//! database), the spec, and the rows read back. The vendor answers every request with what
//! the test's closure returns for it, and remembers what it was asked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use mysql_async::prelude::{FromRow, Queryable};
use qsync::sink::testing::{fresh_database, DatabaseGuard};
use serde_json::Value;

use crate::support::{Output, Test};

/// One answer of the scripted vendor.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// HTTP 200 with a JSON body.
    pub(crate) fn json(body: &Value) -> Reply {
        Reply::bytes("application/json", body.to_string().into_bytes())
    }

    pub(crate) fn status(mut self, status: u16) -> Reply {
        self.status = status;
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// HTTP 200 with `body` as it is, declared as `content_type`.
    pub(crate) fn bytes(content_type: &str, body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body,
        }
    }
}

/// A request as the vendor saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) query: BTreeMap<String, String>,
    pub(crate) at: Instant,
}

type Respond = dyn Fn(&BTreeMap<String, String>, usize) -> Reply + Send + Sync;

/// The vendor: its base URL and what it was asked.
#[derive(Clone)]
pub(crate) struct Vendor {
    pub(crate) base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Vendor {
    /// Serves `respond(query, n)` for the n-th request (0-based) on every path.
    pub(crate) async fn start(
        respond: impl Fn(&BTreeMap<String, String>, usize) -> Reply + Send + Sync + 'static,
    ) -> Vendor {
        let respond: Arc<Respond> = Arc::new(respond);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = Arc::clone(&seen);
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let respond = Arc::clone(&respond);
            let log = Arc::clone(&log);
            async move {
                let query: BTreeMap<String, String> =
                    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                        .into_owned()
                        .collect();
                let n = {
                    let mut log = log.lock().expect("vendor log");
                    log.push(Seen {
                        query: query.clone(),
                        at: Instant::now(),
                    });
                    log.len() - 1
                };
                let reply = respond(&query, n);
                let mut response = axum::response::Response::builder().status(reply.status);
                for (name, value) in &reply.headers {
                    response = response.header(name, value);
                }
                response
                    .body(axum::body::Body::from(reply.body))
                    .expect("a valid response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Vendor {
            base: format!("http://{addr}"),
            seen,
        }
    }

    /// Every request so far, in arrival order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("vendor log").clone()
    }

    /// The values of query parameter `name`, request by request (`-` when absent).
    pub(crate) fn asked(&self, name: &str) -> Vec<String> {
        self.seen()
            .iter()
            .map(|s| s.query.get(name).cloned().unwrap_or_else(|| "-".to_owned()))
            .collect()
    }
}

/// A folder with the profile and a spec, a fresh database, and the binary to run there.
pub(crate) struct World {
    dir: tempfile::TempDir,
    pub(crate) url: String,
    _db: DatabaseGuard,
}

impl World {
    /// `timezone` is the profile's; `api` lines are extra settings of the `api` connection
    /// (YAML, indented by four spaces).
    pub(crate) async fn new(vendor: &Vendor, timezone: &str, api: &str) -> World {
        let (url, db) = fresh_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = format!(
            "timezone: {timezone}\nconnections:\n  api:\n    kind: http\n    base_url: {}\n{api}  bi:\n    kind: mysql\n    url: \"{url}\"\n",
            vendor.base
        );
        std::fs::write(dir.path().join("qsync.yaml"), profile).expect("profile written");
        World { dir, url, _db: db }
    }

    /// Writes `<name>.qsync`.
    pub(crate) fn spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.qsync"));
        std::fs::write(&path, text).expect("spec written");
        path
    }

    /// Writes a file of the world's folder.
    pub(crate) fn file(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).expect("file written");
    }

    /// Runs `qsync <args>` in the world's folder, expecting exit `status`.
    pub(crate) fn qsync(&self, args: &[&str], status: i32) -> Output {
        Test::new()
            .current_dir(self.dir.path())
            .args(args)
            .status(status)
            .run()
    }

    pub(crate) async fn rows<T: FromRow + Send + 'static>(&self, sql: &str) -> Vec<T> {
        let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&self.url).expect("url"))
            .await
            .expect("MySQL reachable");
        let rows = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let _ = conn.disconnect().await;
        rows
    }
}
