//! `qsync serve`: schedules on a manual clock, no overlapping runs, leases across three
//! instances on one MariaDB, reload of good and broken edits, graceful shutdown, metrics,
//! alerts (dedupe, recovery, DingTalk signature checked by a local receiver), the token
//! check, and the status page as a headless browser renders it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use hmac::{Hmac, Mac};
use qsync::serve::clock::ManualClock;
use qsync::serve::lease::MysqlCoordinator;
use qsync::serve::runner::{RunFailure, RunRequest, Runner};
use qsync::serve::{self, RunKind, ServeConfig, ServeHandle, Services};
use qsync::sink::testing::{fresh_database, DatabaseGuard};
use qsync::state::RunSummary;
use sha2::Sha256;

const SPEC: &str = r#"sync "聚水潭-售后单 -> BI 售后表"

source jushuitan "/open/refund/single/query" {
    connection jst
    window max 7d lag 1m initial "2024-01-01 00:00:00"
    param modified_begin = "{{ window.start | datetime }}"
    param modified_end = "{{ window.end | datetime }}"
    @paginate page_index size 50
    @rate 5/s
    records data.datas
    id as_id
}

@flatten items
DIRECTIVES

target mysql "refund_list_query" {
    connection bi
    mode replace
    key id
    batch 1000
    create
}

map {
    id = "<as_id>-<items_asi_id>"
    as_id = as_id : bigint
    refund = refund : decimal(12,2)
}
"#;

const DINGTALK_SECRET: &str = "SECtest-robot-secret";
const JST_SECRET: &str = "jst-super-secret-value";

fn spec(directives: &str) -> String {
    SPEC.replace("DIRECTIVES", directives)
}

/// A folder of specs with its profile, and the test database the profile points at.
struct Fixture {
    dir: tempfile::TempDir,
    url: String,
    _db: DatabaseGuard,
}

impl Fixture {
    async fn new(alerts: &str) -> Fixture {
        let (url, db) = fresh_database().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let profile = format!(
            "timezone: Asia/Shanghai\nconnections:\n  jst:\n    kind: jushuitan\n    \
             base_url: http://127.0.0.1:9/jushuitan\n    app_key: k\n    app_secret: \
             {JST_SECRET}\n    access_token: jst-token\n  bi:\n    kind: mysql\n    url: {url}\n\
             api_token: tok-123456\n{alerts}"
        );
        std::fs::write(dir.path().join("qsync.yaml"), profile).expect("profile");
        Fixture { dir, url, _db: db }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, name: &str, text: &str) {
        let path = self.path().join(format!("{name}.qsync"));
        // Make the change visible to an mtime+size watcher even within one clock tick.
        let before = std::fs::metadata(&path)
            .ok()
            .and_then(|m| m.modified().ok());
        std::fs::write(&path, text).expect("spec");
        if let Some(before) = before {
            let later = before + Duration::from_secs(2);
            let file = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            file.set_modified(later).expect("mtime");
        }
    }
}

fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-01T00:00:05Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// One call the scripted runner received.
#[derive(Debug, Clone)]
struct Call {
    instance: String,
    spec: String,
    remedy: bool,
    schedule: Option<String>,
    start: Instant,
    end: Option<Instant>,
}

type Script =
    Arc<dyn Fn(RunRequest) -> BoxFuture<'static, Result<RunSummary, RunFailure>> + Send + Sync>;

/// A runner that does what the test's script says and logs every call.
#[derive(Clone)]
struct ScriptRunner {
    instance: String,
    log: Arc<Mutex<Vec<Call>>>,
    script: Arc<Mutex<Script>>,
}

impl ScriptRunner {
    fn new(instance: &str, log: &Arc<Mutex<Vec<Call>>>, script: Script) -> ScriptRunner {
        ScriptRunner {
            instance: instance.to_owned(),
            log: log.clone(),
            script: Arc::new(Mutex::new(script)),
        }
    }

    fn set(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }
}

impl Runner for ScriptRunner {
    fn run(&self, request: RunRequest) -> BoxFuture<'static, Result<RunSummary, RunFailure>> {
        let index = {
            let mut log = self.log.lock().unwrap();
            log.push(Call {
                instance: self.instance.clone(),
                spec: request.plan.name.clone(),
                remedy: request.remedy,
                schedule: request.plan.schedule.clone(),
                start: Instant::now(),
                end: None,
            });
            log.len() - 1
        };
        let script = self.script.lock().unwrap().clone();
        let log = self.log.clone();
        Box::pin(async move {
            let result = script(request).await;
            log.lock().unwrap()[index].end = Some(Instant::now());
            result
        })
    }
}

fn window(start: &str, end: &str) -> qsync::plan::Window {
    let at = |t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap();
    qsync::plan::Window {
        start: at(start),
        end: at(end),
    }
}

fn ok_after(delay: Duration, report: RunSummary) -> Script {
    Arc::new(move |_| {
        let report = report.clone();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(report)
        })
    })
}

fn fail_with(message: &str) -> Script {
    let message = message.to_owned();
    Arc::new(move |_| {
        let message = message.clone();
        Box::pin(async move {
            Err(RunFailure {
                message,
                report: Some(Box::new(RunSummary {
                    range: Some(window("2024-03-01 00:00:00", "2024-03-01 08:00:00")),
                    ..RunSummary::default()
                })),
            })
        })
    })
}

fn config(dir: &Path, instance: &str) -> ServeConfig {
    let mut config = ServeConfig::new(dir.to_path_buf());
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.instance = instance.to_owned();
    config.watch_interval = Duration::from_millis(100);
    config.lease_ttl = Duration::from_secs(2);
    config.grace = Duration::from_secs(5);
    config.alerts.retries = 1;
    config.alerts.backoff = Duration::from_millis(50);
    config
}

async fn start(config: ServeConfig, clock: &ManualClock, runner: &ScriptRunner) -> ServeHandle {
    let services = Services {
        clock: Arc::new(clock.clone()),
        runner: Arc::new(runner.clone()),
        coordinator: Arc::new(MysqlCoordinator::new()),
    };
    serve::start(config, services).await.expect("serve starts")
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the daemon has finished (and booked) `runs` runs of `spec` and is idle again.
fn settled(handle: &ServeHandle, spec: &str, runs: u64) -> bool {
    handle
        .specs()
        .iter()
        .any(|s| s.name == spec && s.runs == runs && s.running_since.is_none())
}

fn calls(log: &Arc<Mutex<Vec<Call>>>) -> Vec<Call> {
    log.lock().unwrap().clone()
}

fn finished(log: &Arc<Mutex<Vec<Call>>>) -> usize {
    log.lock()
        .unwrap()
        .iter()
        .filter(|c| c.end.is_some())
        .count()
}

async fn get(addr: SocketAddr, path: &str) -> String {
    reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}

/// The "Run now" token the status page embeds.
async fn run_token(addr: SocketAddr) -> String {
    let page = get(addr, "/").await;
    let start = page
        .find("name=\"qsync-run-token\" content=\"")
        .expect("the page embeds the run token")
        + "name=\"qsync-run-token\" content=\"".len();
    page[start..start + 32].to_owned()
}

/// The value of one sample line of the exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .expect("a number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedules_fire_on_the_clock_and_missed_slots_run_once() {
    let fixture = Fixture::new("").await;
    fixture.write("every10s", &spec("@schedule \"*/10 * * * * *\""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, RunSummary::default()));
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;

    let specs = handle.specs();
    assert_eq!(specs.len(), 1);
    assert_eq!(specs[0].schedule.as_deref(), Some("*/10 * * * * *"));
    assert_eq!(
        specs[0].next_run,
        Some(start_time() + chrono::Duration::seconds(5))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(finished(&log), 0, "nothing runs before the first slot");

    clock.advance(Duration::from_secs(5));
    let runs = |n| settled(&handle, "every10s", n);
    eventually("first slot", Duration::from_secs(5), || runs(1)).await;
    clock.advance(Duration::from_secs(10));
    eventually("second slot", Duration::from_secs(5), || runs(2)).await;

    // An hour passes at once (360 slots): one run, not 360.
    clock.advance(Duration::from_secs(3600));
    eventually("catch-up run", Duration::from_secs(5), || runs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(finished(&log), 3);
    assert!(calls(&log).iter().all(|c| !c.remedy && c.instance == "a"));
    handle.shutdown();
    assert_eq!(handle.wait().await.unfinished, 0);

    // Down for an hour, then started again: the missed slots run once, at start.
    clock.advance(Duration::from_secs(3600));
    let handle = start(config(fixture.path(), "b"), &clock, &runner).await;
    eventually("missed-slot run", Duration::from_secs(5), || {
        settled(&handle, "every10s", 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(finished(&log), 4);
    let runs: serde_json::Value =
        serde_json::from_str(&get(handle.addr(), "/api/runs?spec=every10s").await).unwrap();
    assert_eq!(runs[0]["trigger"], "missed");
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_run_is_never_started_twice() {
    let fixture = Fixture::new("").await;
    fixture.write("slow", &spec("@schedule \"*/10 * * * * *\""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let blocked: Script = {
        let gate = gate.clone();
        Arc::new(move |_| {
            let gate = gate.clone();
            Box::pin(async move {
                let _permit = gate.acquire().await;
                Ok(RunSummary::default())
            })
        })
    };
    let runner = ScriptRunner::new("a", &log, blocked);
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;

    clock.advance(Duration::from_secs(5));
    eventually("run starts", Duration::from_secs(5), || {
        calls(&log).len() == 1
    })
    .await;
    for _ in 0..5 {
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(calls(&log).len(), 1, "slots while running start nothing");
    let metrics = get(handle.addr(), "/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "qsync_runs_skipped_total{spec=\"slow\",reason=\"overlap\"}"
        ),
        5.0
    );
    assert_eq!(metric(&metrics, "qsync_spec_running{spec=\"slow\"}"), 1.0);

    gate.add_permits(100);
    eventually("run ends", Duration::from_secs(5), || {
        settled(&handle, "slow", 1)
    })
    .await;
    clock.advance(Duration::from_secs(10));
    eventually("next slot runs", Duration::from_secs(5), || {
        finished(&log) == 2
    })
    .await;
    let all = calls(&log);
    assert!(all[0].end.unwrap() <= all[1].start, "runs never overlap");

    handle.shutdown();
    handle.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_a_spec_through_leases() {
    let fixture = Fixture::new("").await;
    fixture.write("shared", &spec("@schedule \"*/10 * * * * *\""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut runners = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b", "c"] {
        let runner = ScriptRunner::new(
            name,
            &log,
            ok_after(Duration::from_millis(300), RunSummary::default()),
        );
        handles.push(start(config(fixture.path(), name), &clock, &runner).await);
        runners.push(runner);
    }

    // Five slots: each is run by exactly one instance; the others find the lease taken.
    clock.advance(Duration::from_secs(5));
    for slot in 1..=5 {
        eventually("a slot's run", Duration::from_secs(10), || {
            finished(&log) == slot
        })
        .await;
        // Let the losers notice the lease before the next slot.
        tokio::time::sleep(Duration::from_millis(300)).await;
        clock.advance(Duration::from_secs(10));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let done: Vec<Call> = calls(&log)
        .into_iter()
        .filter(|c| c.end.is_some())
        .collect();
    assert!(done.len() >= 5, "{done:?}");
    for (i, x) in done.iter().enumerate() {
        for y in &done[i + 1..] {
            let apart = x.end.unwrap() <= y.start || y.end.unwrap() <= x.start;
            assert!(apart, "runs on {} and {} overlap", x.instance, y.instance);
        }
    }
    let skipped: u64 = handles.iter().map(|h| h.specs()[0].skipped_lease).sum();
    assert!(
        skipped >= 5,
        "the other instances saw the lease ({skipped})"
    );

    // The holder crashes mid-run: its lease blocks the others until it expires (2 s).
    for runner in &runners {
        runner.set(Arc::new(|_| Box::pin(std::future::pending())));
    }
    let before = calls(&log).len();
    clock.advance(Duration::from_secs(10));
    eventually("a hanging run", Duration::from_secs(5), || {
        calls(&log).len() == before + 1
    })
    .await;
    let holder = calls(&log).last().unwrap().instance.clone();
    let crashed_at = Instant::now();
    let index = ["a", "b", "c"].iter().position(|n| *n == holder).unwrap();
    let crashed = handles.remove(index);
    runners.remove(index);
    crashed.kill();
    for runner in &runners {
        runner.set(ok_after(Duration::from_millis(50), RunSummary::default()));
    }
    let survivors_before = finished(&log);
    // Slots keep coming; until the lease expires nobody else runs the spec.
    while crashed_at.elapsed() < Duration::from_millis(1500) {
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        finished(&log),
        survivors_before,
        "nobody runs while the lease is live"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while finished(&log) == survivors_before {
        assert!(
            Instant::now() < deadline,
            "no instance took over the expired lease"
        );
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taker = calls(&log).into_iter().rfind(|c| c.end.is_some()).unwrap();
    assert_ne!(taker.instance, holder);
    assert!(
        crashed_at.elapsed() >= Duration::from_secs(2),
        "taken only after expiry"
    );

    for handle in handles {
        handle.shutdown();
        handle.wait().await;
    }
}

/// Records what alert channels receive; the DingTalk route checks the robot signature.
#[derive(Clone, Default)]
struct Receiver {
    hits: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    bad_signatures: Arc<Mutex<u32>>,
}

impl Receiver {
    async fn start() -> (Receiver, SocketAddr) {
        let receiver = Receiver::default();
        let app = Router::new()
            .route("/hook", post(webhook))
            .route("/robot/send", post(dingtalk))
            .route("/wecom", post(wecom))
            .route("/down", post(down))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, addr)
    }

    fn on(&self, route: &str) -> Vec<serde_json::Value> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, body)| body.clone())
            .collect()
    }
}

async fn webhook(State(r): State<Receiver>, Json(body): Json<serde_json::Value>) -> &'static str {
    r.hits.lock().unwrap().push(("hook".into(), body));
    "ok"
}

async fn wecom(
    State(r): State<Receiver>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    r.hits.lock().unwrap().push(("wecom".into(), body));
    Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
}

async fn down() -> (axum::http::StatusCode, &'static str) {
    (axum::http::StatusCode::BAD_GATEWAY, "down")
}

/// Recomputes the signature as DingTalk does: HMAC-SHA256 over "timestamp\nsecret".
async fn dingtalk(
    State(r): State<Receiver>,
    Query(query): Query<HashMap<String, String>>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let timestamp = query.get("timestamp").cloned().unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(DINGTALK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{timestamp}\n{DINGTALK_SECRET}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (Utc::now().timestamp_millis() - t).abs() < 3_600_000);
    if query.get("access_token").map(String::as_str) != Some("robot-token")
        || query.get("sign") != Some(&expected)
        || !fresh
    {
        *r.bad_signatures.lock().unwrap() += 1;
        return Json(serde_json::json!({"errcode": 310000, "errmsg": "sign not match"}));
    }
    r.hits.lock().unwrap().push(("dingtalk".into(), body));
    Json(serde_json::json!({"errcode": 0, "errmsg": "ok"}))
}

fn alert_channels(addr: SocketAddr) -> String {
    format!(
        "alerts:\n  - kind: webhook\n    url: http://{addr}/hook\n  - kind: dingtalk\n    \
         url: http://{addr}/robot/send?access_token=robot-token\n    secret: {DINGTALK_SECRET}\n  \
         - kind: wecom\n    url: http://{addr}/wecom?key=wecom-key\n  - kind: webhook\n    url: \
         http://{addr}/down\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alerts_once_then_quiet_then_recovery_on_every_channel() {
    let (receiver, addr) = Receiver::start().await;
    let fixture = Fixture::new(&alert_channels(addr)).await;
    fixture.write("orders", &spec("@alert rejects > 5"));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new(
        "a",
        &log,
        fail_with(&format!("vendor error 10001: bad app_secret {JST_SECRET}")),
    );
    let mut config = config(fixture.path(), "a");
    config.alerts.quiet = Duration::from_secs(3600);
    let handle = start(config, &clock, &runner).await;

    // Three failures in a row: one alert per channel.
    for n in 1..=3 {
        handle.trigger("orders", RunKind::Regular).unwrap();
        eventually("failed run", Duration::from_secs(5), || finished(&log) == n).await;
    }
    eventually("webhook alert", Duration::from_secs(5), || {
        receiver.on("hook").len() == 1
    })
    .await;
    eventually("dingtalk alert", Duration::from_secs(5), || {
        receiver.on("dingtalk").len() == 1
    })
    .await;
    eventually("wecom alert", Duration::from_secs(5), || {
        receiver.on("wecom").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.on("hook").len(), 1, "deduplicated");
    let hook = &receiver.on("hook")[0];
    assert_eq!(hook["event"], "run_failed");
    assert_eq!(hook["spec"], "orders");
    let message = hook["message"].as_str().unwrap();
    assert!(message.contains("vendor error 10001"), "{message}");
    assert!(
        message.contains("window: 2024-03-01 00:00:00 .. 2024-03-01 08:00:00"),
        "{message}"
    );
    assert!(
        !message.contains(JST_SECRET),
        "secrets are masked: {message}"
    );
    let ding = &receiver.on("dingtalk")[0];
    assert_eq!(ding["msgtype"], "text");
    assert!(ding["text"]["content"]
        .as_str()
        .unwrap()
        .contains("orders: run failed"));
    assert_eq!(receiver.on("wecom")[0]["msgtype"], "text");
    assert_eq!(
        *receiver.bad_signatures.lock().unwrap(),
        0,
        "DingTalk signature verified"
    );

    // After the quiet period the same condition alerts again.
    clock.advance(Duration::from_secs(3601));
    handle.trigger("orders", RunKind::Regular).unwrap();
    eventually("second alert", Duration::from_secs(5), || {
        receiver.on("hook").len() == 2
    })
    .await;

    // Recovery is always announced; too many rejects is its own condition.
    runner.set(ok_after(
        Duration::ZERO,
        RunSummary {
            records: 50,
            rows_written: 40,
            rows_replaced: 0,
            rejects: 10,
            ..RunSummary::default()
        },
    ));
    handle.trigger("orders", RunKind::Regular).unwrap();
    eventually("recovery and rejects", Duration::from_secs(5), || {
        receiver.on("hook").len() == 4
    })
    .await;
    let events: Vec<String> = receiver.on("hook")[2..]
        .iter()
        .map(|h| format!("{}/{}", h["event"], h["condition"]))
        .collect();
    assert!(
        events.contains(&"\"recovered\"/\"run_failed\"".to_owned()),
        "{events:?}"
    );
    assert!(
        events.contains(&"\"rejects\"/\"rejects\"".to_owned()),
        "{events:?}"
    );

    // The dead channel failed each alert (after its retry) and the daemon carried on.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = get(handle.addr(), "/metrics").await;
        let failed = metric(&metrics, "qsync_alerts_total{result=\"failed\"}");
        let sent = metric(&metrics, "qsync_alerts_total{result=\"sent\"}");
        if failed == 4.0 && sent == 12.0 {
            break;
        }
        assert!(Instant::now() < deadline, "failed {failed}, sent {sent}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_swaps_good_edits_and_keeps_the_last_good_version_of_broken_ones() {
    let (receiver, addr) = Receiver::start().await;
    let fixture = Fixture::new(&format!(
        "alerts:\n  - kind: webhook\n    url: http://{addr}/hook\n"
    ))
    .await;
    fixture.write("orders", &spec("@schedule \"0 * * * * *\""));
    fixture.write("refunds", "sync \"never good\"\nsource nowhere {");
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, RunSummary::default()));
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;

    // A spec failing check at start is reported and skipped; the rest run.
    let view = |name: &str| handle.specs().into_iter().find(|s| s.name == name).unwrap();
    assert_eq!(view("refunds").status, "invalid");
    assert!(view("refunds").error.unwrap().contains("refunds.qsync:"));
    eventually("broken-at-start alert", Duration::from_secs(5), || {
        receiver.on("hook").iter().any(|h| h["spec"] == "refunds")
    })
    .await;
    assert_eq!(
        handle.trigger("refunds", RunKind::Regular),
        Err(serve::TriggerError::Broken)
    );

    // A good edit is swapped in.
    fixture.write("orders", &spec("@schedule \"30 * * * * *\""));
    eventually("good edit", Duration::from_secs(5), || {
        view("orders").schedule.as_deref() == Some("30 * * * * *")
    })
    .await;

    // A broken edit keeps the last good version running and alerts.
    fixture.write(
        "orders",
        &spec("@schedule \"30 * * * * *\"\n@paginate sideways"),
    );
    eventually("broken edit", Duration::from_secs(5), || {
        view("orders").status == "broken"
    })
    .await;
    eventually("broken alert", Duration::from_secs(5), || {
        receiver
            .on("hook")
            .iter()
            .any(|h| h["spec"] == "orders" && h["event"] == "spec_broken")
    })
    .await;
    clock.advance(Duration::from_secs(25)); // 00:00:30: the good version's slot
    eventually("last good version runs", Duration::from_secs(5), || {
        finished(&log) == 1
    })
    .await;
    assert_eq!(calls(&log)[0].schedule.as_deref(), Some("30 * * * * *"));
    let page = get(handle.addr(), "/").await;
    assert!(
        page.contains("the last good version keeps running"),
        "{page}"
    );

    // Fixing it announces the recovery.
    fixture.write("orders", &spec("@schedule \"45 * * * * *\""));
    eventually("fixed", Duration::from_secs(5), || {
        view("orders").status == "idle"
    })
    .await;
    eventually("recovered alert", Duration::from_secs(5), || {
        receiver
            .on("hook")
            .iter()
            .any(|h| h["spec"] == "orders" && h["event"] == "recovered")
    })
    .await;

    // New and deleted files.
    fixture.write("extra", &spec(""));
    eventually("new spec", Duration::from_secs(5), || {
        handle.specs().len() == 3
    })
    .await;
    std::fs::remove_file(fixture.path().join("extra.qsync")).unwrap();
    eventually("removed spec", Duration::from_secs(5), || {
        handle.specs().len() == 2
    })
    .await;

    handle.shutdown();
    handle.wait().await;
}

/// Issue 21, item 11: 1,500 nested calls dropped into a served folder killed the daemon (its
/// worker threads have smaller stacks than `main`). Now they are a diagnostic, loaded at start
/// and on reload, and the other specs keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deeply_nested_specs_are_refused_without_harming_the_daemon() {
    let fixture = Fixture::new("").await;
    fixture.write("orders", &spec("@schedule \"0 * * * * *\""));
    let deep = |open: &str, close: &str, n: usize| {
        spec("").replace(
            "refund = refund",
            &format!("refund = {}refund{}", open.repeat(n), close.repeat(n)),
        )
    };
    fixture.write("calls", &deep("coalesce(", ")", 1_500));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, RunSummary::default()));
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;
    let view = |name: &str| handle.specs().into_iter().find(|s| s.name == name).unwrap();
    assert_eq!(view("calls").status, "invalid");
    let error = view("calls").error.unwrap();
    assert!(error.contains("calls.qsync:"), "{error}");
    assert!(error.contains("nesting deeper than 64 levels"), "{error}");

    // The same on reload, for other shapes too.
    fixture.write("cases", &deep("case ", " {}", 20_000));
    fixture.write(
        "arrays",
        &spec("").replace(
            "@rate 5/s",
            &format!(
                "param deep = {}1{}\n    @rate 5/s",
                "[".repeat(20_000),
                "]".repeat(20_000)
            ),
        ),
    );
    eventually("deep specs loaded", Duration::from_secs(10), || {
        handle.specs().len() == 4
    })
    .await;
    for name in ["cases", "arrays"] {
        let error = view(name).error.unwrap_or_default();
        assert!(
            error.contains("nesting deeper than 64 levels"),
            "{name}: {error}"
        );
    }
    clock.advance(Duration::from_secs(55)); // 00:01:00: the good spec's slot
    eventually("the good spec runs", Duration::from_secs(5), || {
        finished(&log) == 1
    })
    .await;
    let page = get(handle.addr(), "/").await;
    assert!(page.contains("nesting deeper than 64 levels"), "{page}");
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graceful_shutdown_lets_runs_finish_their_batch_and_bounds_the_wait() {
    let fixture = Fixture::new("").await;
    fixture.write("orders", &spec(""));
    fixture.write("stubborn", &spec(""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let batches = Arc::new(Mutex::new(0u32));
    let cooperative: Script = {
        let batches = batches.clone();
        Arc::new(move |request: RunRequest| {
            let batches = batches.clone();
            Box::pin(async move {
                if request.plan.name == "stubborn" {
                    // Ignores the stop signal: the grace period must bound the wait.
                    std::future::pending::<()>().await;
                }
                let mut stop = request.shutdown.clone();
                loop {
                    // A "batch": committed as a whole, then the signal is checked.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    *batches.lock().unwrap() += 1;
                    if *stop.borrow_and_update() {
                        return Ok(RunSummary {
                            rows_written: 1,
                            rows_replaced: 0,
                            ..RunSummary::default()
                        });
                    }
                }
            })
        })
    };
    let runner = ScriptRunner::new("a", &log, cooperative);
    let mut config = config(fixture.path(), "a");
    config.grace = Duration::from_secs(1);
    let handle = start(config, &clock, &runner).await;
    handle.trigger("orders", RunKind::Regular).unwrap();
    handle.trigger("stubborn", RunKind::Regular).unwrap();
    eventually("both running", Duration::from_secs(5), || {
        calls(&log).len() == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let asked = Instant::now();
    handle.shutdown();
    let report = handle.wait().await;
    let waited = asked.elapsed();
    assert_eq!(report.unfinished, 1, "the stubborn run is abandoned");
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let orders = calls(&log)
        .into_iter()
        .find(|c| c.spec == "orders")
        .unwrap();
    assert!(
        orders.end.is_some(),
        "the cooperative run finished its batch and returned"
    );
    assert!(orders.end.unwrap() < asked + Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_and_api_match_the_runs() {
    let (receiver, addr) = Receiver::start().await;
    let fixture = Fixture::new(&format!(
        "alerts:\n  - kind: webhook\n    url: http://{addr}/hook\n"
    ))
    .await;
    fixture.write(
        "orders",
        &spec("@schedule \"2 1 * * *\"\n@remedy \"0 3 * * *\" lookback 1d\n@alert lag > 1h"),
    );
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mark =
        chrono::NaiveDateTime::parse_from_str("2024-03-01 06:00:05", "%Y-%m-%d %H:%M:%S").unwrap();
    let report = RunSummary {
        range: Some(window("2024-02-29 00:00:00", "2024-03-01 06:00:05")),
        windows: 2,
        pages: 7,
        records: 120,
        rows_written: 300,
        rows_replaced: 0,
        rejects: 0,
        retries: 2,
        throttled: 3,
        high_water_mark: Some(mark),
        ..RunSummary::default()
    };
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, report.clone()));
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;
    for n in 1..=2 {
        handle.trigger("orders", RunKind::Regular).unwrap();
        eventually("run", Duration::from_secs(5), || finished(&log) == n).await;
    }
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/api/specs/orders/run?remedy=true",
            handle.addr()
        ))
        .header("X-Qsync-Run-Token", run_token(handle.addr()).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    eventually("remedy run", Duration::from_secs(5), || finished(&log) == 3).await;
    assert!(calls(&log)[2].remedy);
    runner.set(fail_with("mysql is down"));
    handle.trigger("orders", RunKind::Regular).unwrap();
    eventually("failed run", Duration::from_secs(5), || finished(&log) == 4).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    clock.advance(Duration::from_secs(60));

    let text = get(handle.addr(), "/metrics").await;
    let m = |s: &str| metric(&text, s);
    assert_eq!(
        m("qsync_runs_total{spec=\"orders\",outcome=\"success\"}"),
        3.0
    );
    assert_eq!(
        m("qsync_runs_total{spec=\"orders\",outcome=\"failed\"}"),
        1.0
    );
    assert_eq!(m("qsync_records_total{spec=\"orders\"}"), 360.0);
    assert_eq!(m("qsync_rows_written_total{spec=\"orders\"}"), 900.0);
    assert_eq!(m("qsync_retries_total{spec=\"orders\"}"), 6.0);
    assert_eq!(m("qsync_throttled_requests_total{spec=\"orders\"}"), 9.0);
    assert_eq!(m("qsync_run_duration_seconds_count{spec=\"orders\"}"), 4.0);
    assert_eq!(
        m("qsync_run_duration_seconds_bucket{spec=\"orders\",le=\"+Inf\"}"),
        4.0
    );
    let since = m("qsync_seconds_since_last_success{spec=\"orders\"}");
    assert!((60.0..61.0).contains(&since), "{since}");
    // Clock 00:01:05 UTC = 08:01:05 Shanghai; the mark is 06:00:05.
    assert_eq!(m("qsync_data_lag_seconds{spec=\"orders\"}"), 7260.0);

    let specs: serde_json::Value =
        serde_json::from_str(&get(handle.addr(), "/api/specs").await).unwrap();
    let orders = &specs[0];
    assert_eq!(orders["name"], "orders");
    assert_eq!(orders["runs"], 4);
    assert_eq!(orders["failures"], 1);
    assert_eq!(orders["rows_written"], 900);
    assert_eq!(orders["last_run"]["outcome"], "failed");
    assert_eq!(orders["last_run"]["error"], "mysql is down");
    assert_eq!(orders["remedy_schedule"], "0 3 * * *");
    let runs: serde_json::Value =
        serde_json::from_str(&get(handle.addr(), "/api/runs?spec=orders").await).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 4);
    assert_eq!(runs[0]["outcome"], "failed");
    assert_eq!(runs[1]["kind"], "remedy");
    assert_eq!(runs[1]["trigger"], "manual");
    assert_eq!(runs[1]["rows_written"], 300);
    let missing = reqwest::get(format!("http://{}/api/runs?spec=nope", handle.addr()))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    // The daemon wrote its runs to `_qsync_runs` in the target database.
    let store = qsync::sink::StateStore::open(
        &qsync::sink::MysqlSink::connect(&fixture.url).await.unwrap(),
    )
    .await
    .unwrap();
    let history = store.runs("orders", 10).await.unwrap();
    assert_eq!(history.len(), 4);
    assert_eq!(history[0].error.as_deref(), Some("mysql is down"));

    // `@alert lag > 1h`: the 2 h lag alerted once; a fresh mark announces the recovery.
    let lag_alerts = |event: &str| {
        receiver
            .on("hook")
            .into_iter()
            .filter(|h| h["condition"] == "lag" && h["event"] == event)
            .collect::<Vec<_>>()
    };
    eventually("lag alert", Duration::from_secs(5), || {
        lag_alerts("lag").len() == 1
    })
    .await;
    let message = lag_alerts("lag")[0]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("over the 1h limit"), "{message}");
    runner.set(ok_after(
        Duration::ZERO,
        RunSummary {
            high_water_mark: Some(mark + chrono::Duration::hours(2)),
            ..RunSummary::default()
        },
    ));
    handle.trigger("orders", RunKind::Regular).unwrap();
    eventually("lag recovered", Duration::from_secs(5), || {
        lag_alerts("recovered").len() == 1
    })
    .await;
    assert_eq!(lag_alerts("lag").len(), 1);
    handle.shutdown();
    handle.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn non_loopback_listeners_require_the_api_token() {
    let fixture = Fixture::new("").await;
    fixture.write("orders", &spec(""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, RunSummary::default()));
    let mut config = config(fixture.path(), "a");
    config.listen = SocketAddr::from(([0, 0, 0, 0], 0));
    let handle = start(config, &clock, &runner).await;
    let url = format!("http://127.0.0.1:{}/api/specs", handle.addr().port());
    let client = reqwest::Client::new();
    let denied = client.get(&url).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let wrong = client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let allowed = client
        .get(&url)
        .bearer_auth("tok-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    handle.shutdown();
    handle.wait().await;

    // Without a token in the profile, a non-loopback listener is refused.
    let bare = tempfile::tempdir().unwrap();
    std::fs::write(bare.path().join("qsync.yaml"), "connections: {}\n").unwrap();
    let mut config = ServeConfig::new(bare.path().to_path_buf());
    config.listen = SocketAddr::from(([0, 0, 0, 0], 0));
    let services = Services {
        clock: Arc::new(clock.clone()),
        runner: Arc::new(runner.clone()),
        coordinator: Arc::new(MysqlCoordinator::new()),
    };
    let error = serve::start(config, services).await.unwrap_err();
    assert!(error.to_string().contains("needs `api_token`"), "{error}");
}

/// Issue 21, item 9: a page of another site can neither reach the loopback API under its
/// own name (DNS rebinding) nor start runs (cross-site POST, no run token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_api_refuses_other_sites() {
    let fixture = Fixture::new("").await;
    fixture.write("orders", &spec(""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, RunSummary::default()));
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;
    let addr = handle.addr();
    let port = addr.port();
    let client = reqwest::Client::new();
    let page = format!("http://{addr}/");
    let status = |r: reqwest::Response| r.status().as_u16();
    for host in [
        format!("evil.example:{port}"),
        format!("127.0.0.1:{}", port + 1),
        "evil.example".to_owned(),
    ] {
        let r = client
            .get(&page)
            .header("Host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 421, "{host}");
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("LOCALHOST:{port}"),
    ] {
        let r = client
            .get(&page)
            .header("Host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 200, "{host}");
    }

    let token = run_token(addr).await;
    assert_eq!(token.len(), 32);
    let run = format!("http://{addr}/api/specs/orders/run");
    let post = |origin: Option<&str>, token: Option<&str>, site: Option<&str>| {
        let mut request = client.post(&run);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        if let Some(token) = token {
            request = request.header("X-Qsync-Run-Token", token);
        }
        if let Some(site) = site {
            request = request.header("Sec-Fetch-Site", site);
        }
        request.send()
    };
    assert_eq!(
        status(
            post(Some("http://evil.example"), Some(&token), None)
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(
        status(post(None, Some(&token), Some("cross-site")).await.unwrap()),
        403
    );
    assert_eq!(status(post(None, None, None).await.unwrap()), 403);
    assert_eq!(
        status(
            post(None, Some("0123456789abcdef0123456789abcdef"), None)
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(finished(&log), 0, "nothing refused ran");
    let own = format!("http://{addr}");
    let accepted = post(Some(&own), Some(&token), Some("same-origin"))
        .await
        .unwrap();
    assert_eq!(status(accepted), 202);
    eventually("the accepted run", Duration::from_secs(5), || {
        finished(&log) == 1
    })
    .await;
    // Another process, another token.
    handle.shutdown();
    handle.wait().await;
    let again = start(config(fixture.path(), "a"), &clock, &runner).await;
    assert_ne!(run_token(again.addr()).await, token);
    again.shutdown();
    again.wait().await;
}

/// Issue 21, item 10: a half-sent header is closed after the header-read timeout, and
/// connections over the cap are refused (accepted and closed at once) until one frees up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_time_out_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let fixture = Fixture::new("").await;
    fixture.write("orders", &spec(""));
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new("a", &log, ok_after(Duration::ZERO, RunSummary::default()));
    // Closed, or at least not answered, within `limit`: the bytes read until EOF.
    async fn read_to_close(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Vec<u8>> {
        let mut seen = Vec::new();
        tokio::time::timeout(limit, stream.read_to_end(&mut seen))
            .await
            .ok()
            .map(|r| r.map(|_| seen).unwrap_or_default())
    }

    let mut settings = config(fixture.path(), "a");
    settings.http.header_read_timeout = Duration::from_millis(500);
    let handle = start(settings, &clock, &runner).await;
    let mut half = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
    half.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    let opened = Instant::now();
    let answer = read_to_close(&mut half, Duration::from_secs(20)).await;
    assert!(
        answer.is_some(),
        "a half-sent header is still open after 20 s"
    );
    assert!(
        opened.elapsed() >= Duration::from_millis(400),
        "closed before the timeout"
    );
    // An idle keep-alive connection goes the same way; a whole request is still served.
    assert!(get(handle.addr(), "/api/specs").await.contains("orders"));
    handle.shutdown();
    handle.wait().await;

    let mut settings = config(fixture.path(), "a");
    settings.http.header_read_timeout = Duration::from_secs(120);
    settings.http.max_connections = 3;
    let handle = start(settings, &clock, &runner).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(handle.addr()).await.unwrap());
    }
    // Let the daemon accept the three before the fourth arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut over = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
    let request = format!(
        "GET /api/specs HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        handle.addr()
    );
    let _ = over.write_all(request.as_bytes()).await;
    let refused = read_to_close(&mut over, Duration::from_secs(20)).await;
    assert_eq!(
        refused.as_deref(),
        Some(&b""[..]),
        "the fourth connection is closed unanswered"
    );
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
        let _ = stream.write_all(request.as_bytes()).await;
        let answer = read_to_close(&mut stream, Duration::from_secs(10))
            .await
            .unwrap_or_default();
        if String::from_utf8_lossy(&answer).contains("orders") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    handle.shutdown();
    handle.wait().await;
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// Needs Chromium: a missing browser fails the test. `QSYNC_SKIP_BROWSER_TESTS=1` at build
/// time marks it ignored instead (see build.rs), which the summary counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    qsync_skip_browser_tests,
    ignore = "browser tests skipped: QSYNC_SKIP_BROWSER_TESTS is set"
)]
async fn status_page_shows_specs_outcomes_and_errors_in_a_browser() {
    let browser = chromium().unwrap_or_else(|| {
        panic!(
            "chromium is not installed: `scripts/test` installs it (ci-packages.txt), or \
             `apt-get install chromium`; QSYNC_SKIP_BROWSER_TESTS=1 skips browser tests"
        )
    });
    let fixture = Fixture::new("").await;
    fixture.write("orders", &spec("@schedule \"2 1 * * *\""));
    fixture.write("refunds", &spec("@schedule \"*/5 * * * *\""));
    fixture.write("broken", "sync \"broken\"\nsource jushuitan {");
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let runner = ScriptRunner::new(
        "a",
        &log,
        ok_after(
            Duration::ZERO,
            RunSummary {
                records: 42,
                rows_written: 84,
                rows_replaced: 0,
                ..RunSummary::default()
            },
        ),
    );
    let handle = start(config(fixture.path(), "a"), &clock, &runner).await;
    handle.trigger("orders", RunKind::Regular).unwrap();
    eventually("orders ran", Duration::from_secs(5), || finished(&log) == 1).await;
    runner.set(fail_with(&format!(
        "jushuitan error 10000012: signature invalid (app_secret {JST_SECRET})"
    )));
    handle.trigger("refunds", RunKind::Regular).unwrap();
    eventually("refunds failed", Duration::from_secs(5), || {
        finished(&log) == 2
    })
    .await;

    let profile_dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", handle.addr());
    let output = tokio::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile_dir.path().display()))
        .args(["--dump-dom", &url])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("chromium finishes")
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("<table id=\"specs\">"),
        "chromium rendered no status table\n--- stderr\n{}\n--- dom\n{dom}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What a person sees: every spec, the last outcome, the error text, a chart.
    for name in ["orders", "refunds", "broken"] {
        assert!(
            dom.contains(&format!("data-spec=\"{name}\"")),
            "{name} missing:\n{dom}"
        );
    }
    let row = |name: &str| {
        let start = dom.find(&format!("data-spec=\"{name}\"")).unwrap();
        let end = dom[start..].find("</tr>").unwrap() + start;
        dom[start..end].to_owned()
    };
    assert!(row("orders").contains(">success<"), "{}", row("orders"));
    assert!(row("orders").contains("<svg"), "{}", row("orders"));
    assert!(row("orders").contains("84"), "rows written shown");
    assert!(row("refunds").contains(">failed<"), "{}", row("refunds"));
    assert!(
        dom.contains("jushuitan error 10000012: signature invalid"),
        "{dom}"
    );
    assert!(!dom.contains(JST_SECRET), "secrets are masked on the page");
    assert!(dom.contains("Recent failures"));
    assert!(row("broken").contains("invalid"), "{}", row("broken"));
    assert!(dom.contains("broken.qsync:"), "the check error is shown");
    handle.shutdown();
    handle.wait().await;
}

/// `qsync serve` as a process, with a timeout on everything it is asked.
struct Daemon {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Daemon {
    async fn spawn(folder: &Path, instance: &str) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new(crate::support::BIN)
            .arg("serve")
            .arg(folder)
            .args(["--listen", &addr.to_string(), "--instance", instance])
            .args(["--grace", "20s", "--watch-interval", "200ms"])
            .env_remove("QSYNC_PROFILE")
            .env("QSYNC_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("qsync serve starts");
        let daemon = Daemon { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("http://{addr}/api/specs"))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "qsync serve never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        daemon
    }

    async fn spec(&self, name: &str) -> serde_json::Value {
        let specs: serde_json::Value =
            serde_json::from_str(&get(self.addr, "/api/specs").await).expect("JSON");
        specs
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no spec {name} in {specs}"))
    }

    fn signal(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// SIGTERM, then the exit status and what it logged.
    async fn terminate(self) -> (Option<i32>, String, Duration) {
        self.signal();
        self.exit().await
    }

    /// Waits for the exit: status, what it logged, how long it took.
    async fn exit(mut self) -> (Option<i32>, String, Duration) {
        let asked = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status.code();
            }
            assert!(
                Instant::now() < deadline,
                "qsync serve did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let waited = asked.elapsed();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            use std::io::Read as _;
            let _ = stderr.read_to_string(&mut log);
        }
        (code, log, waited)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(url: &str, sql: &str) -> u64 {
    use mysql_async::prelude::Queryable as _;
    let mut conn = mysql_async::Conn::from_url(url).await.expect("test MySQL");
    let n: Option<u64> = conn.query_first(sql).await.expect("query");
    let _ = conn.disconnect().await;
    n.unwrap_or(0)
}

/// The simulator, a fresh database, and a folder with one Jushuitan refunds spec.
async fn engine_fixture() -> (
    qsync::sim::SimHandle,
    String,
    DatabaseGuard,
    tempfile::TempDir,
    u64,
) {
    use qsync::plan::ConnectorKind;
    use qsync::sim::{self, Dataset, SimConfig};

    let config = SimConfig {
        records: 400,
        ..SimConfig::default()
    };
    let sim = sim::start(config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator");
    let (url, db) = fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = format!(
        "timezone: Asia/Shanghai\nconnections:\n  jst:\n    kind: jushuitan\n    base_url: {}\n    \
         app_key: sim-app\n    app_secret: sim-secret\n    access_token: sim-jst-access-token\n    \
         refresh_token: sim-jst-refresh-token\n  bi:\n    kind: mysql\n    url: {url}\n",
        sim.base_url(ConnectorKind::Jushuitan)
    );
    std::fs::write(dir.path().join("qsync.yaml"), profile).expect("profile");
    let initial = (Utc::now() - chrono::Duration::days(7))
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y-%m-%d 00:00:00");
    let text = format!(
        r#"sync "jst refunds"

source jushuitan "/open/refund/single/query" {{
    connection jst
    window max 12h lag 1m initial "{initial}"
    param modified_begin = "{{{{ window.start | datetime }}}}"
    param modified_end = "{{{{ window.end | datetime }}}}"
    @paginate page_index size 20
    records data.datas
    id as_id
}}

@flatten items
@schedule "0 0 1 1 *"

target mysql "refunds" {{
    connection bi
    mode replace
    key id
    batch 500
    create
}}

map {{
    id = "<as_id>-<items_asi_id>"
    as_id = as_id : bigint
    amount = items_amount : decimal(12,2)
    qty = items_qty : int
}}
"#
    );
    std::fs::write(dir.path().join("refunds.qsync"), text).expect("spec");
    let expected: u64 = sim
        .truth(Dataset::JstRefunds)
        .iter()
        .map(|r| r["items"].as_array().map_or(0, |i| i.len() as u64))
        .sum();
    (sim, url, db, dir, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_binary_runs_the_real_engine_and_stops_gracefully_without_loss() {
    use qsync::sim::Faults;

    let (sim, url, _db, dir, expected) = engine_fixture().await;
    // Slow answers, so the run is still going when SIGTERM arrives.
    sim.set_faults(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });

    let first = Daemon::spawn(dir.path(), "e2e-1").await;
    assert_eq!(first.spec("refunds").await["status"], "idle");
    let started = reqwest::Client::new()
        .post(format!("http://{}/api/specs/refunds/run", first.addr))
        .header("X-Qsync-Run-Token", run_token(first.addr).await)
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&url, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'refunds'").await == 0
        || count(&url, "SELECT COUNT(*) FROM refunds").await == 0
    {
        assert!(Instant::now() < deadline, "no window committed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, log, waited) = first.terminate().await;
    assert_eq!(code, Some(0), "graceful exit\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(
        waited < Duration::from_secs(20),
        "bounded by the grace period: {waited:?}"
    );
    let partial = count(&url, "SELECT COUNT(*) FROM refunds").await;
    assert!(
        partial > 0 && partial < expected,
        "stopped mid-run: {partial} of {expected}"
    );
    // What was committed is consistent: the lease was released, the cursor is set.
    assert_eq!(
        count(&url, "SELECT COUNT(*) FROM _qsync_leases WHERE owner <> ''").await,
        0
    );
    assert_eq!(count(&url, "SELECT COUNT(*) FROM _qsync_state").await, 1);
    // The history says it stopped, over the range it committed: up to the mark.
    assert_eq!(
        count(
            &url,
            "SELECT COUNT(*) FROM _qsync_runs r JOIN _qsync_state s ON s.spec = r.spec \
             WHERE r.outcome = 'stopped' AND r.range_end = s.high_water \
             AND r.range_start < r.range_end"
        )
        .await,
        1,
        "{log}"
    );

    // A second instance picks up from the cursor; nothing lost, nothing doubled.
    sim.set_faults(Faults::default());
    let second = Daemon::spawn(dir.path(), "e2e-2").await;
    let started = reqwest::Client::new()
        .post(format!("http://{}/api/specs/refunds/run", second.addr))
        .header("X-Qsync-Run-Token", run_token(second.addr).await)
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let spec = second.spec("refunds").await;
        if spec["last_run"]["outcome"] == "success" {
            break;
        }
        assert!(
            spec["last_run"]["outcome"] != "failed",
            "the run failed: {}",
            spec["last_run"]
        );
        assert!(
            Instant::now() < deadline,
            "the second run never finished: {spec}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count(&url, "SELECT COUNT(*) FROM refunds").await, expected);
    assert_eq!(
        count(&url, "SELECT COUNT(DISTINCT id) FROM refunds").await,
        expected
    );
    let metrics = get(second.addr, "/metrics").await;
    let written = metric(&metrics, "qsync_rows_written_total{spec=\"refunds\"}");
    assert!(written >= (expected - partial) as f64, "{written}");
    assert_eq!(
        metric(
            &metrics,
            "qsync_runs_total{spec=\"refunds\",outcome=\"success\"}"
        ),
        1.0
    );
    assert!(metric(&metrics, "qsync_data_lag_seconds{spec=\"refunds\"}") < 3600.0);
    // Both runs are in the history the engine keeps.
    assert_eq!(count(&url, "SELECT COUNT(*) FROM _qsync_runs").await, 2);
    let (code, log, _) = second.terminate().await;
    assert_eq!(code, Some(0), "{log}");
    sim.shutdown().await;
}

#[test]
fn serve_refuses_a_public_address_without_a_token_and_a_missing_folder() {
    let output = crate::support::Test::new()
        .file("specs/qsync.yaml", "connections: {}\n")
        .env("QSYNC_LISTEN", "0.0.0.0:0")
        .args(&["serve", "specs"])
        .status(1)
        .run();
    assert!(
        output.stderr.contains("needs `api_token`"),
        "{}",
        output.stderr
    );
    assert!(output.stdout.is_empty());
    assert!(output.dir.join("specs/qsync.yaml").is_file());

    let test = crate::support::Test::new();
    let missing = test.path().join("nowhere");
    let output = test
        .args(&["serve", &missing.display().to_string()])
        .status(1)
        .run();
    assert!(
        output.stderr.contains("is not a folder of specs"),
        "{}",
        output.stderr
    );

    let output = crate::support::Test::new()
        .args(&["serve", ".", "--grace", "soon"])
        .status(2)
        .run();
    assert!(
        output.stderr.contains("is not a duration"),
        "{}",
        output.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_database_fails_runs_not_the_daemon_and_concurrency_is_capped() {
    let fixture = Fixture::new("").await;
    // `lost` writes to a MySQL nobody listens on; the others to the test database.
    let lost = spec("").replace("connection bi", "connection lost");
    fixture.write("lost", &lost);
    let profile = std::fs::read_to_string(fixture.path().join("qsync.yaml")).unwrap();
    let profile = profile.replace(
        "connections:\n",
        "connections:\n  lost:\n    kind: mysql\n    url: mysql://root@127.0.0.1:1/nowhere\n",
    );
    std::fs::write(fixture.path().join("qsync.yaml"), profile).unwrap();
    for name in ["one", "two", "three"] {
        fixture.write(name, &spec(""));
    }
    let clock = ManualClock::new(start_time());
    let log = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(Mutex::new((0u32, 0u32)));
    let counting: Script = {
        let in_flight = in_flight.clone();
        Arc::new(move |_| {
            let in_flight = in_flight.clone();
            Box::pin(async move {
                {
                    let mut n = in_flight.lock().unwrap();
                    n.0 += 1;
                    n.1 = n.1.max(n.0);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                in_flight.lock().unwrap().0 -= 1;
                Ok(RunSummary::default())
            })
        })
    };
    let runner = ScriptRunner::new("a", &log, counting);
    let mut config = config(fixture.path(), "a");
    config.max_concurrent = 2;
    let handle = start(config, &clock, &runner).await;
    for name in ["lost", "one", "two", "three"] {
        handle.trigger(name, RunKind::Regular).unwrap();
    }
    for name in ["one", "two", "three"] {
        eventually(name, Duration::from_secs(10), || settled(&handle, name, 1)).await;
    }
    eventually("lost fails", Duration::from_secs(10), || {
        settled(&handle, "lost", 1)
    })
    .await;
    assert_eq!(
        in_flight.lock().unwrap().1,
        2,
        "never more than --max-concurrent runs"
    );
    let lost = handle
        .specs()
        .into_iter()
        .find(|s| s.name == "lost")
        .unwrap();
    let run = lost.last_run.unwrap();
    assert_eq!(run.outcome, serve::metrics::Outcome::Failed);
    let error = run.error.unwrap();
    assert!(error.contains("cannot take the lease on `lost`"), "{error}");
    assert!(
        calls(&log).iter().all(|c| c.spec != "lost"),
        "no lease, no run"
    );
    // The daemon still answers and schedules.
    assert!(get(handle.addr(), "/metrics")
        .await
        .contains("qsync_runs_total"));
    handle.shutdown();
    assert_eq!(handle.wait().await.unfinished, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_signal_exits_at_once() {
    use mysql_async::prelude::Queryable as _;
    let (sim, url, _db, dir, _) = engine_fixture().await;
    let daemon = Daemon::spawn(dir.path(), "twice").await;
    // Hold the cursor table locked: the run blocks in MySQL and cannot reach a batch
    // boundary, so only the second signal ends the process.
    qsync::sink::StateStore::open(&qsync::sink::MysqlSink::connect(&url).await.unwrap())
        .await
        .unwrap();
    let mut locker = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    locker
        .query_drop("LOCK TABLES _qsync_state WRITE")
        .await
        .unwrap();
    let started = reqwest::Client::new()
        .post(format!("http://{}/api/specs/refunds/run", daemon.addr))
        .header("X-Qsync-Run-Token", run_token(daemon.addr).await)
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.spec("refunds").await["status"] != "running" {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.signal();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        reqwest::get(format!("http://{}/metrics", daemon.addr))
            .await
            .is_err(),
        "the HTTP server stops on the first signal"
    );
    daemon.signal();
    let (code, log, waited) = daemon.exit().await;
    assert_eq!(code, Some(130), "{log}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert!(log.contains("second signal"), "{log}");
    locker.query_drop("UNLOCK TABLES").await.unwrap();
    let _ = locker.disconnect().await;
    sim.shutdown().await;
}
