//! Issue 21, item 8: secrets are masked in every encoding qsync prints them. One canary per
//! kind of secret, each with `+ / = & %` in it, sent to a loopback vendor that echoes the
//! request back in its error message (the raw query, the query as JSON, the Authorization
//! header); then every output surface is searched for the raw, percent-encoded, JSON and
//! base64 forms: `plan`, `run`'s error, `_qsync_runs`, `qsync state`, and `qsync serve`'s
//! status page, `/api/*` and webhook alert bodies.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::Json;
use base64::Engine as _;
use mysql_async::prelude::Queryable;
use qsync::sink::testing::fresh_database;

use crate::support::{Test, BIN};

/// Canaries: the `api_key` setting, a declared `secrets:` value, an env variable named like
/// a token, the password inside `base_url`, and a Basic auth password.
const API_KEY: &str = "KeyCanary+/=&%1x";
const DECLARED: &str = "SysCanary+/=&%2x";
const ENV_TOKEN: &str = "EnvCanary+/=&%3x";
const URL_PASSWORD: &str = "UrlCanary+/=&%4x";
const BASIC_PASSWORD: &str = "PwCanary+/=&%5x";

/// Every spelling of `secret` that must not appear.
fn forms(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let form: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let strict: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let json = serde_json::to_string(secret).expect("json");
    vec![
        secret.to_owned(),
        form,
        strict,
        json[1..json.len() - 1].to_owned(),
        b64.encode(secret),
        b64.encode(format!("ci-user:{secret}")),
    ]
}

fn assert_masked(surface: &str, text: &str) {
    for secret in [API_KEY, DECLARED, ENV_TOKEN, URL_PASSWORD, BASIC_PASSWORD] {
        for form in forms(secret) {
            assert!(
                !text.contains(&form),
                "{surface} shows `{form}` (a form of {secret}):\n{text}"
            );
        }
    }
    // The canaries' common stem in plain text or base64 (`Canary` → `Q2FuYXJ5`).
    assert!(!text.contains("Canary"), "{surface}:\n{text}");
}

/// A vendor whose every answer is an error quoting the request, as careless vendors do.
async fn echo_vendor() -> SocketAddr {
    let app = axum::Router::new().fallback(|uri: Uri, headers: HeaderMap| async move {
        let query: std::collections::BTreeMap<String, String> =
            form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let message = format!(
            "bad request {uri} params {} auth {auth}",
            serde_json::to_string(&query).expect("json")
        );
        Json(serde_json::json!({ "code": 7, "msg": message }))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// An alert webhook that keeps every body.
async fn receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(b): State<Arc<Mutex<Vec<String>>>>, body: String| async move {
                    b.lock().expect("bodies").push(body);
                    "ok"
                },
            ),
        )
        .with_state(Arc::clone(&bodies));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, bodies)
}

fn spec(connection: &str) -> String {
    format!(
        r#"sync "canary"

source http "/orders" {{
    connection {connection}
    param sys = "{{{{ secrets.sys }}}}"
    param tok = "{{{{ env.SHOP_TOKEN }}}}"
    records data
    id id
}}

target mysql "canary_rows" {{
    connection bi
    mode replace
    key id
    create
}}

map {{
    id = id : bigint
}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_surface_masks_every_form_of_every_secret() {
    let vendor = echo_vendor().await;
    let (hook, bodies) = receiver().await;
    let (url, _db) = fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let password: String = form_urlencoded::byte_serialize(URL_PASSWORD.as_bytes()).collect();
    let common = format!(
        "    error_path: code\n    success_value: \"0\"\n    secrets:\n      sys: \"{DECLARED}\"\n"
    );
    let profile = format!(
        "connections:\n  keyed:\n    kind: http\n    base_url: http://ci-user:{password}@{vendor}\n    \
         auth: api_key\n    api_key: \"{API_KEY}\"\n    api_key_query: key\n{common}  basic:\n    \
         kind: http\n    base_url: http://{vendor}\n    auth: basic\n    username: ci-user\n    \
         password: \"{BASIC_PASSWORD}\"\n{common}  bi:\n    kind: mysql\n    url: \"{url}\"\n\
         alerts:\n  - kind: webhook\n    url: http://{hook}/hook\n"
    );
    std::fs::write(dir.path().join("qsync.yaml"), profile).expect("profile");
    std::fs::write(dir.path().join("keyed.qsync"), spec("keyed")).expect("spec");
    std::fs::write(dir.path().join("basic.qsync"), spec("basic")).expect("spec");

    let qsync = |args: &[&str], status: i32| {
        Test::new()
            .current_dir(dir.path())
            .env("SHOP_TOKEN", ENV_TOKEN)
            .args(args)
            .status(status)
            .run()
    };
    for name in ["keyed", "basic"] {
        let file = format!("{name}.qsync");
        let plan = qsync(&["plan", &file, "--at", "2024-03-10 12:00:00"], 0);
        assert!(plan.stdout.contains("GET http://"), "{}", plan.stdout);
        assert_masked("plan", &plan.stdout);
        let run = qsync(&["run", &file], 1);
        assert!(run.stderr.contains("bad request"), "{}", run.stderr);
        assert_masked("run", &format!("{}{}", run.stdout, run.stderr));
    }
    for name in ["keyed", "basic"] {
        let state = qsync(&["state", &format!("{name}.qsync")], 0);
        assert!(state.stdout.contains("bad request"), "{}", state.stdout);
        assert_masked("state", &format!("{}{}", state.stdout, state.stderr));
    }
    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).expect("url"))
        .await
        .expect("MySQL");
    let runs: Vec<String> = conn
        .query("SELECT CONCAT_WS(' ', spec, COALESCE(error, '')) FROM _qsync_runs")
        .await
        .expect("runs");
    assert!(runs.iter().any(|r| r.contains("bad request")), "{runs:?}");
    assert_masked("_qsync_runs", &runs.join("\n"));

    // The daemon: both specs run every second, fail, alert.
    for name in ["keyed", "basic"] {
        let text = spec(name) + "\n@schedule \"* * * * * *\"\n";
        std::fs::write(dir.path().join(format!("{name}.qsync")), text).expect("spec");
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut child = std::process::Command::new(BIN)
        .arg("serve")
        .arg(dir.path())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--instance",
            "canary",
        ])
        .env("SHOP_TOKEN", ENV_TOKEN)
        .env_remove("QSYNC_PROFILE")
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut api = String::new();
    while !(api.matches("bad request").count() >= 2 && bodies.lock().expect("bodies").len() >= 2) {
        assert!(Instant::now() < deadline, "no failures seen: {api}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(response) = reqwest::get(format!("{base}/api/specs")).await {
            api = response.text().await.unwrap_or_default();
        }
    }
    let mut seen = api;
    for path in ["/", "/api/runs", "/metrics"] {
        let text = reqwest::get(format!("{base}{path}"))
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        seen.push_str(&text);
    }
    seen.push_str(&bodies.lock().expect("bodies").join("\n"));
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("bad request"), "{seen}");
    assert_masked("serve", &seen);
}
