//! The driver against live HTTP: a small fake vendor (generic `http` connector, no auth) for
//! every paging style and guard, and the simulator for the token lifecycle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::*;
use crate::config::Connection;
use crate::connectors::{self, ApiCall};
use crate::plan::{
    ConnectorKind, EndRule, FieldPath, HttpMethod, PaginationPlan, RateLimit, RetryPlan, SourcePlan,
};
use crate::sim::{self, SimConfig, SimCredentials};
use crate::template::{Renderer, RequestContext};

const RECORDS: usize = 35;

fn record(i: usize) -> Value {
    json!({"id": i, "ts": format!("{}", 1000 + i * 10), "name": format!("r{i}")})
}

fn param(q: &HashMap<String, String>, key: &str, default: usize) -> usize {
    q.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Default)]
struct Fake {
    flaky: AtomicU32,
}

async fn cursor(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let from = param(&q, "cursor", 0);
    let limit = param(&q, "limit", 10);
    let items: Vec<Value> = (from..RECORDS.min(from + limit)).map(record).collect();
    let next = (from + limit < RECORDS).then(|| (from + limit).to_string());
    Json(json!({"data": {"items": items, "next": next}}))
}

/// Keyset paging answering `ts > since`.
async fn keyset(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    keyset_page(&q, |ts, since| ts > since)
}

/// Keyset paging answering `ts >= since`.
async fn keyset_inclusive(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    keyset_page(&q, |ts, since| ts >= since)
}

fn keyset_page(q: &HashMap<String, String>, after: fn(usize, usize) -> bool) -> Json<Value> {
    let since = q.get("since").and_then(|s| s.parse::<usize>().ok());
    let size = param(q, "size", 10);
    let items: Vec<Value> = (0..RECORDS)
        .map(record)
        .filter(|r| {
            let ts = r["ts"].as_str().and_then(|t| t.parse::<usize>().ok());
            since.is_none_or(|since| ts.is_some_and(|ts| after(ts, since)))
        })
        .take(size)
        .collect();
    Json(json!({"data": {"items": items}}))
}

async fn offset(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let offset = param(&q, "offset", 0);
    let limit = param(&q, "limit", 10);
    let items: Vec<Value> = (offset..RECORDS.min(offset + limit)).map(record).collect();
    Json(json!({"data": {"items": items, "total": RECORDS}}))
}

/// Ignores the page parameter.
async fn stuck() -> Json<Value> {
    let items: Vec<Value> = (0..10).map(record).collect();
    Json(json!({"data": {"items": items, "has_next": true, "total": 20}}))
}

/// Reports two pages but never says there is no next one.
async fn growing(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let page = param(&q, "page", 1);
    let items: Vec<Value> = (page * 10..page * 10 + 10).map(record).collect();
    Json(json!({"data": {"items": items, "has_next": true, "total": 20}}))
}

async fn not_a_list() -> Json<Value> {
    Json(json!({"data": {"items": {"id": 1}}}))
}

async fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, Json(json!({"message": "no access"}))).into_response()
}

/// Fails twice with 500, then serves two short pages' worth.
async fn flaky(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if fake.flaky.fetch_add(1, Ordering::SeqCst) < 2 {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    let page = param(&q, "page", 1);
    let items: Vec<Value> = if page == 1 {
        (0..10).map(record).collect()
    } else {
        (10..15).map(record).collect()
    };
    Json(json!({"data": {"items": items}})).into_response()
}

async fn always_500() -> Response {
    (StatusCode::BAD_GATEWAY, "upstream down").into_response()
}

async fn fake_vendor() -> String {
    let app = Router::new()
        .route("/cursor", get(cursor))
        .route("/keyset", get(keyset))
        .route("/keyset_inclusive", get(keyset_inclusive))
        .route("/offset", get(offset))
        .route("/stuck", get(stuck))
        .route("/growing", get(growing))
        .route("/not_a_list", get(not_a_list))
        .route("/forbidden", get(forbidden))
        .route("/flaky", get(flaky))
        .route("/down", get(always_500))
        .with_state(Arc::new(Fake::default()));
    serve(app).await
}

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn source_plan(endpoint: &str, pagination: PaginationPlan) -> SourcePlan {
    SourcePlan {
        kind: ConnectorKind::Http,
        endpoint: endpoint.to_owned(),
        http_method: HttpMethod::Get,
        connection: "fake".into(),
        params: vec![],
        window: None,
        pagination,
        rates: vec![],
        rate_by_send: false,
        retry: RetryPlan {
            attempts: 3,
            base: Duration::from_millis(5),
            max: Duration::from_millis(20),
        },
        records: FieldPath::parse("data.items"),
        id: Some(FieldPath::parse("id")),
        modified: None,
        total: None,
        timeout: Duration::from_secs(5),
        max_pages: 0,
    }
}

fn path(dotted: &str) -> FieldPath {
    FieldPath::parse(dotted)
}

fn http_source(base: &str, plan: &SourcePlan) -> HttpSource {
    let connection = Connection {
        kind: "http".into(),
        settings: [("base_url".to_owned(), serde_yaml::Value::from(base))]
            .into_iter()
            .collect(),
    };
    let connector = connectors::build(ConnectorKind::Http, "fake", &connection).expect("builds");
    HttpSource::new(
        connector,
        Arc::new(RateLimiter::new(&plan.rates, plan.rate_by_send)),
        SourceOptions {
            max_response_bytes: crate::config::DEFAULT_MAX_RESPONSE_MB << 20,
            spec: "fake".into(),
            connection: "fake".into(),
            timeout: plan.timeout,
            retry: plan.retry.clone(),
            secrets: vec![],
        },
    )
    .expect("source")
}

/// Fetches one window of `plan` and returns the record ids in order, or the error.
async fn fetch(base: &str, plan: &SourcePlan) -> (Result<WindowFetch, SourceError>, Vec<u64>) {
    let source = http_source(base, plan);
    let renderer = Renderer::new(chrono_tz::Asia::Shanghai);
    let request = WindowRequest {
        source: &source,
        plan,
        renderer: &renderer,
        context: RequestContext {
            now: chrono::Utc::now().naive_utc(),
            window_start: None,
            window_end: None,
            page: None,
            page_size: None,
            offset: None,
            cursor: None,
            env: Default::default(),
            secrets: Default::default(),
        },
        spec: "fake",
        window: "(no window)".into(),
        order: crate::plan::ValueOrder::new(chrono_tz::Asia::Shanghai),
    };
    let (tx, mut rx) = mpsc::channel::<PageRecords>(2);
    let collect = tokio::spawn(async move {
        let mut ids = Vec::new();
        while let Some(page) = rx.recv().await {
            ids.extend(page.records.iter().filter_map(|r| r["id"].as_u64()));
        }
        ids
    });
    let result = fetch_window(&request, &tx).await;
    drop(tx);
    (result, collect.await.expect("collector"))
}

fn all() -> Vec<u64> {
    (0..RECORDS as u64).collect()
}

#[tokio::test]
async fn cursor_paging_follows_the_next_value_until_it_is_missing() {
    let base = fake_vendor().await;
    let plan = source_plan(
        "/cursor",
        PaginationPlan::Cursor {
            param: path("cursor"),
            from: path("data.next"),
            size_param: Some(path("limit")),
            size: Some(10),
        },
    );
    let (result, ids) = fetch(&base, &plan).await;
    let fetch = result.expect("fetched");
    assert_eq!(ids, all());
    assert_eq!(fetch.pages, 4);
}

#[tokio::test]
async fn keyset_paging_resends_the_boundary_under_either_reading_of_the_cursor() {
    let base = fake_vendor().await;
    // `ts > since` ends on an empty page, `ts >= since` on a page with nothing new.
    for (endpoint, pages) in [("/keyset", 6), ("/keyset_inclusive", 7)] {
        let plan = source_plan(
            endpoint,
            PaginationPlan::Keyset {
                param: path("since"),
                field: path("ts"),
                size_param: path("size"),
                size: 10,
            },
        );
        let (result, ids) = fetch(&base, &plan).await;
        let mut distinct = ids.clone();
        distinct.dedup();
        let mut seen = std::collections::HashSet::new();
        distinct.retain(|id| seen.insert(*id));
        assert_eq!(distinct, all(), "{endpoint}");
        assert_eq!(result.expect("fetched").pages, pages, "{endpoint}");
    }
}

#[tokio::test]
async fn offset_paging_with_a_total_fetches_the_rest_concurrently_in_order() {
    let base = fake_vendor().await;
    let plan = source_plan(
        "/offset",
        PaginationPlan::Offset {
            param: path("offset"),
            size_param: path("limit"),
            size: 10,
            until: EndRule::Total(path("data.total")),
        },
    );
    let (result, ids) = fetch(&base, &plan).await;
    let fetch = result.expect("fetched");
    assert_eq!(ids, all());
    assert_eq!(fetch.pages, 4);
    assert_eq!(fetch.reported_total(), Some(RECORDS as u64));
    assert!(!fetch.total_moved());
}

#[tokio::test]
async fn a_vendor_ignoring_the_page_parameter_is_endless_paging() {
    let base = fake_vendor().await;
    let plan = source_plan(
        "/stuck",
        PaginationPlan::Page {
            param: path("page"),
            size_param: path("size"),
            size: 10,
            first: 1,
            until: EndRule::HasNext(path("data.has_next")),
        },
    );
    let (result, _) = fetch(&base, &plan).await;
    let error = result.expect_err("guarded");
    assert!(
        matches!(error, SourceError::EndlessPaging { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("page 2"), "{error}");
}

#[tokio::test]
async fn paging_past_the_reported_count_is_refused() {
    let base = fake_vendor().await;
    let mut plan = source_plan(
        "/growing",
        PaginationPlan::Page {
            param: path("page"),
            size_param: path("size"),
            size: 10,
            first: 1,
            until: EndRule::HasNext(path("data.has_next")),
        },
    );
    plan.total = Some(path("data.total"));
    let (result, _) = fetch(&base, &plan).await;
    let error = result.expect_err("guarded");
    assert!(
        matches!(error, SourceError::PageCountGrew { reported: 2, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn records_that_are_not_a_list_are_an_error() {
    let base = fake_vendor().await;
    let plan = source_plan("/not_a_list", PaginationPlan::None);
    let (result, _) = fetch(&base, &plan).await;
    let error = result.expect_err("refused");
    assert_eq!(
        error.to_string(),
        "spec `fake`, window (no window), the only page: `records data.items` is an object, \
         not a list of records"
    );
}

#[tokio::test]
async fn fatal_answers_fail_at_once_and_transient_ones_are_retried() {
    let base = fake_vendor().await;
    let plan = source_plan("/forbidden", PaginationPlan::None);
    let source = http_source(&base, &plan);
    let site = Site {
        spec: "fake".into(),
        window: "(no window)".into(),
        page: "the only page".into(),
    };
    let call = ApiCall {
        endpoint: "/forbidden".into(),
        http_method: HttpMethod::Get,
        params: serde_json::Map::new(),
        query: vec![],
        headers: vec![],
    };
    let error = source.call(&call, &site).await.expect_err("fatal");
    assert!(
        matches!(&error, SourceError::Vendor { code, .. } if code == "http_403"),
        "{error}"
    );
    assert!(error.to_string().contains("/forbidden"), "{error}");
    assert_eq!(source.stats().requests.load(Ordering::Relaxed), 1);

    let flaky = source_plan(
        "/flaky",
        PaginationPlan::Page {
            param: path("page"),
            size_param: path("size"),
            size: 10,
            first: 1,
            until: EndRule::ShortPage,
        },
    );
    let (result, ids) = fetch(&base, &flaky).await;
    assert_eq!(result.expect("recovered").pages, 2);
    assert_eq!(ids, (0..15).collect::<Vec<u64>>());

    let down = source_plan("/down", PaginationPlan::None);
    let (result, _) = fetch(&base, &down).await;
    let error = result.expect_err("gave up");
    assert!(
        matches!(&error, SourceError::GaveUp { attempts: 3, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("http_502"), "{error}");
}

#[tokio::test]
async fn tokens_are_fetched_once_cached_and_refreshed_when_refused() {
    let sim = sim::start(SimConfig::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("sim");
    let c = SimCredentials::default();
    let connection = Connection {
        kind: "dingtalk_yida".into(),
        settings: [
            ("base_url", sim.base_url(ConnectorKind::DingtalkYida)),
            ("app_key", c.app_key.clone()),
            ("app_secret", c.app_secret.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_yaml::Value::from(v)))
        .collect(),
    };
    let connector =
        connectors::build(ConnectorKind::DingtalkYida, "yida", &connection).expect("builds");
    let source = HttpSource::new(
        connector,
        Arc::new(RateLimiter::new(&[], false)),
        SourceOptions {
            max_response_bytes: crate::config::DEFAULT_MAX_RESPONSE_MB << 20,
            spec: "yida".into(),
            connection: "yida".into(),
            timeout: Duration::from_secs(5),
            retry: RetryPlan::default(),
            secrets: vec![],
        },
    )
    .expect("source");
    let mut params = serde_json::Map::new();
    for (k, v) in [
        ("appType", json!(c.yida_app_type)),
        ("systemToken", json!(c.yida_system_token)),
        ("formUuid", json!(c.yida_form_uuid)),
        ("userId", json!("manager01")),
        ("searchFieldJson", json!({})),
        ("pageNumber", json!(1)),
        ("pageSize", json!(10)),
    ] {
        params.insert(k.to_owned(), v);
    }
    let call = ApiCall {
        endpoint: "/v1.0/yida/processes/instances".into(),
        http_method: HttpMethod::Post,
        params,
        query: vec![],
        headers: vec![],
    };
    let site = Site {
        spec: "yida".into(),
        window: "(no window)".into(),
        page: "page 1".into(),
    };
    source.call(&call, &site).await.expect("first call");
    source.call(&call, &site).await.expect("cached token");
    assert_eq!(source.stats().token_fetches.load(Ordering::Relaxed), 1);
    sim.expire_tokens();
    source.call(&call, &site).await.expect("refreshed");
    assert_eq!(source.stats().token_fetches.load(Ordering::Relaxed), 2);
    // Credentials are masked wherever the source prints.
    assert_eq!(source.mask("secret=sim-secret"), "secret=***");
    sim.shutdown().await;
}

/// A Jushuitan whose token endpoint throttles the first request (code 199), as the real
/// one does when a run starts right after another. Records when each request arrived.
async fn throttling_token_vendor() -> (String, Arc<AtomicU32>) {
    let (base, calls, _) = recording_token_vendor(true).await;
    (base, calls)
}

/// A Jushuitan vendor counting token requests (the first one throttled when `throttle`)
/// and logging the arrival of every request, token requests included.
async fn recording_token_vendor(
    throttle: bool,
) -> (
    String,
    Arc<AtomicU32>,
    Arc<std::sync::Mutex<Vec<tokio::time::Instant>>>,
) {
    let arrivals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicU32::new(0));
    let token = {
        let calls = calls.clone();
        move || async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 && throttle {
                Json(json!({"code": 199, "msg": "调用频次超过限制!请稍后再试"}))
            } else {
                Json(
                    json!({"code": 0, "data": {"access_token": "fresh-token", "expires_in": 2_592_000,
                    "refresh_token": "r", "scope": "all"}}),
                )
            }
        }
    };
    let log = arrivals.clone();
    let app = Router::new()
        .route("/openWeb/auth/getInitToken", axum::routing::post(token))
        .route(
            "/open/refund/single/query",
            axum::routing::post(|| async {
                Json(
                    json!({"code": 0, "msg": "执行成功", "data": {"datas": [], "has_next": false}}),
                )
            }),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                if let Ok(mut log) = log.lock() {
                    log.push(tokio::time::Instant::now());
                }
                next.run(request)
            },
        ));
    (serve(app).await, calls, arrivals)
}

#[tokio::test]
async fn token_requests_count_against_the_rate_limit() {
    // 2 calls per second; the token request is the vendor's third call of the first second.
    let (base, tokens, arrivals) = recording_token_vendor(false).await;
    let limits = [RateLimit {
        requests: 2,
        per: Duration::from_secs(1),
    }];
    let (source, call, site) = jushuitan_source(&base, Arc::new(RateLimiter::new(&limits, false)));
    let calls = (0..3).map(|_| source.call(&call, &site));
    for data in futures::future::join_all(calls).await {
        assert_eq!(data.expect("read")["code"], 0);
    }
    assert_eq!(tokens.load(Ordering::SeqCst), 1);
    let arrivals = arrivals.lock().expect("log").clone();
    assert_eq!(arrivals.len(), 4, "one token request and three calls");
    for three in arrivals.windows(3) {
        let span = three[2] - three[0];
        assert!(
            span >= Duration::from_millis(990),
            "three requests within {span:?}: {arrivals:?}"
        );
    }
}

/// A Jushuitan source on `base` without a profile token (it fetches one) under `limiter`,
/// with the call and site of its after-sales endpoint.
fn jushuitan_source(base: &str, limiter: Arc<RateLimiter>) -> (HttpSource, ApiCall, Site) {
    let connection = Connection {
        kind: "jushuitan".into(),
        settings: [("base_url", base), ("app_key", "k"), ("app_secret", "s")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_yaml::Value::from(v)))
            .collect(),
    };
    let connector =
        connectors::build(ConnectorKind::Jushuitan, "jst", &connection).expect("builds");
    let mut plan = source_plan("/open/refund/single/query", PaginationPlan::None);
    plan.kind = ConnectorKind::Jushuitan;
    // Long enough for the vendor's `Retry-After`: a longer wait fails the call.
    plan.retry.max = Duration::from_secs(2);
    let source = HttpSource::new(
        connector,
        limiter,
        SourceOptions {
            max_response_bytes: crate::config::DEFAULT_MAX_RESPONSE_MB << 20,
            spec: "jst".into(),
            connection: "jst".into(),
            timeout: plan.timeout,
            retry: plan.retry.clone(),
            secrets: vec![],
        },
    )
    .expect("source");
    let call = ApiCall {
        endpoint: "/open/refund/single/query".into(),
        http_method: HttpMethod::Post,
        params: serde_json::Map::new(),
        query: vec![],
        headers: vec![],
    };
    let site = Site {
        spec: "jst".into(),
        window: "(no window)".into(),
        page: "page 1".into(),
    };
    (source, call, site)
}

#[tokio::test]
async fn a_throttled_token_request_is_retried() {
    let (base, calls) = throttling_token_vendor().await;
    let (source, call, site) = jushuitan_source(&base, Arc::new(RateLimiter::new(&[], false)));
    let data = source
        .call(&call, &site)
        .await
        .expect("token retried, data read");
    assert_eq!(data["code"], 0);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(source.stats().throttled.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_specs_max_pages_bounds_a_window() {
    let base = fake_vendor().await;
    let mut plan = source_plan(
        "/cursor",
        PaginationPlan::Cursor {
            param: path("cursor"),
            from: path("data.next"),
            size_param: Some(path("limit")),
            size: Some(10),
        },
    );
    plan.max_pages = 2;
    let (result, _) = fetch(&base, &plan).await;
    let error = result.expect_err("a third page is over the bound");
    assert!(
        matches!(error, SourceError::TooManyPages { max: 2, .. }),
        "{error}"
    );
}
