//! End-to-end tests: every connector's `prepare` output is sent with reqwest to a started
//! simulator on 127.0.0.1:0 and its answer classified by the same connector. Covers real
//! data, paging to exactly the truth, rejected signatures / timestamps / tokens, rate
//! limits, injected faults, drift and duplicates, and the control endpoints.
//!
//! This file holds the shared harness (a started simulator, connectors built for it, a
//! reqwest sender) and the tests that cross vendors; each vendor's own tests sit in the
//! file of its name, like `vendors/`.

mod dingtalk_yida;
mod http;
mod jikeyun;
mod jushuitan;
mod qimen;
mod wdt;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::data::shanghai;
use super::*;
use crate::config::Connection;
use crate::connectors::{self, wire, ApiCall, Connector, Outcome, PreparedRequest, Token};
use crate::plan::{ConnectorKind, FieldPath, HttpMethod};

const RECORDS: usize = 37;

async fn sim_with(rates: bool, limits: Limits) -> SimHandle {
    let config = SimConfig {
        seed: 7,
        records: RECORDS,
        span_days: 5,
        rates,
        limits,
        ..SimConfig::default()
    };
    start(config, "127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("simulator starts")
}

async fn sim() -> SimHandle {
    sim_with(false, Limits::default()).await
}

fn connection(kind: ConnectorKind, settings: &[(&str, &str)]) -> Connection {
    Connection {
        kind: kind.keyword().to_owned(),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_yaml::Value::String((*v).to_owned())))
            .collect(),
    }
}

fn connector(sim: &SimHandle, kind: ConnectorKind, extra: &[(&str, &str)]) -> Box<dyn Connector> {
    let c = SimCredentials::default();
    let base = sim.base_url(kind);
    let mut settings: Vec<(&str, &str)> = vec![("base_url", base.as_str())];
    match kind {
        ConnectorKind::Jushuitan => settings.extend([
            ("app_key", c.app_key.as_str()),
            ("app_secret", c.app_secret.as_str()),
        ]),
        ConnectorKind::Qimen => settings.extend([
            ("app_key", c.app_key.as_str()),
            ("app_secret", c.app_secret.as_str()),
            ("target_app_key", c.qimen_target_app_key.as_str()),
            ("customer_id", c.qimen_customer_id.as_str()),
            ("wdt_appkey", c.wdt_app_key.as_str()),
            ("wdt_secret", c.wdt_secret.as_str()),
            ("wdt_salt", c.wdt_salt.as_str()),
            ("wdt3_customer_id", "sim-c3"),
        ]),
        ConnectorKind::Jikeyun | ConnectorKind::DingtalkYida => settings.extend([
            ("app_key", c.app_key.as_str()),
            ("app_secret", c.app_secret.as_str()),
        ]),
        ConnectorKind::Wdt => settings.extend([
            ("sid", c.wdt_sid.as_str()),
            ("app_key", c.wdt_app_key.as_str()),
            ("secret", c.wdt_secret.as_str()),
            ("salt", c.wdt_salt.as_str()),
        ]),
        ConnectorKind::Http => settings.extend([
            ("auth", "sign"),
            ("secret", c.app_secret.as_str()),
            ("sign_template", HTTP_SIGN_TEMPLATE),
            ("sign_case", "upper"),
            ("timestamp_param", "ts"),
        ]),
    }
    // Later entries win: tests override credentials through `extra`.
    let mut merged: Vec<(&str, &str)> = Vec::new();
    for (k, v) in settings.into_iter().chain(extra.iter().copied()) {
        merged.retain(|(key, _)| *key != k);
        merged.push((k, v));
    }
    connectors::build(kind, "sim", &connection(kind, &merged)).expect("connector builds")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client builds")
}

async fn send(req: &PreparedRequest) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let method = match req.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
    };
    let mut builder = client().request(method, &req.url);
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    let response = builder.send().await.expect("request reaches the simulator");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

async fn call_at(
    c: &dyn Connector,
    call: &ApiCall,
    now: DateTime<Utc>,
    token: Option<&Token>,
) -> Outcome {
    let req = c.prepare(call, now, token).expect("prepare");
    let (status, headers, body) = send(&req).await;
    c.classify(status, &headers, &body)
}

async fn call(c: &dyn Connector, call: &ApiCall, token: Option<&Token>) -> Outcome {
    call_at(c, call, Utc::now(), token).await
}

async fn fetch_token(c: &dyn Connector, current: Option<&Token>) -> Token {
    let now = Utc::now();
    let req = c
        .token_request(now, current)
        .expect("token request")
        .expect("vendor issues tokens");
    let (_, _, body) = send(&req).await;
    c.parse_token(now, &body).expect("token parses")
}

fn api(endpoint: &str, method: HttpMethod, params: Value) -> ApiCall {
    let params: Map<String, Value> = match params {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    ApiCall {
        endpoint: endpoint.to_owned(),
        http_method: method,
        params,
        query: vec![],
        headers: vec![],
    }
}

/// The window covering the whole dataset (span 5 days, vendors allow 7).
fn window() -> (String, String) {
    let now = Utc::now();
    (
        shanghai(now - chrono::Duration::days(6)),
        shanghai(now + chrono::Duration::minutes(1)),
    )
}

fn data(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Data(v) => v,
        other => panic!("expected data, got {other:?}"),
    }
}

fn records(v: &Value, path: &str) -> Vec<Value> {
    FieldPath::parse(path)
        .get(v)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| panic!("no records at `{path}` in {v}"))
}

fn ids(records: &[Value], field: &str) -> Vec<String> {
    records
        .iter()
        .map(|r| wire::scalar_text(&r[field]))
        .collect()
}

fn truth_ids(sim: &SimHandle, dataset: Dataset) -> BTreeSet<String> {
    ids(&sim.truth(dataset), dataset.id_field())
        .into_iter()
        .collect()
}

fn fatal_code(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Fatal { code, .. } => code.clone(),
        other => panic!("expected fatal, got {other:?}"),
    }
}

fn jst_call(page: i64, size: i64) -> ApiCall {
    let (from, to) = window();
    api(
        "/open/refund/single/query",
        HttpMethod::Post,
        json!({"modified_begin": from, "modified_end": to, "page_index": page, "page_size": size}),
    )
}

fn http_call(page: i64, per_page: i64) -> ApiCall {
    let (from, to) = window();
    api(
        "/api/v1/orders",
        HttpMethod::Get,
        json!({"updated_since": from, "updated_until": to, "page": page, "per_page": per_page}),
    )
}

fn wdt_call(page: i64, size: i64, from: &str, to: &str) -> ApiCall {
    api(
        "aftersales.refund.Refund.search",
        HttpMethod::Post,
        json!({"pager": {"page_size": size, "page_no": page},
               "params": {"modified_from": from, "modified_to": to}}),
    )
}

#[tokio::test]
async fn injected_faults_classify_as_retryable() {
    let sim = sim().await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert!(matches!(
        call(jst.as_ref(), &jst_call(1, 10), None).await,
        Outcome::Transient { .. }
    ));
    sim.set_faults(Faults {
        truncate_rate: 1.0,
        ..Faults::default()
    });
    let outcome = call(jst.as_ref(), &jst_call(1, 10), None).await;
    assert!(
        matches!(&outcome, Outcome::Transient { code, message } if code == "invalid_json" && message.contains("torn")),
        "{outcome:?}"
    );
    sim.set_faults(Faults {
        throttle_burst: Some(ThrottleBurst {
            every: 2,
            len: 1,
            retry_after_secs: 4,
        }),
        ..Faults::default()
    });
    let outcome = call(jst.as_ref(), &jst_call(1, 10), None).await;
    assert!(
        matches!(outcome, Outcome::Throttled { retry_after: Some(d), .. } if d.as_secs() == 4),
        "{outcome:?}"
    );
    data(call(jst.as_ref(), &jst_call(1, 10), None).await);
    sim.set_faults(Faults {
        vendor_error_rate: 1.0,
        ..Faults::default()
    });
    let outcome = call(jst.as_ref(), &jst_call(1, 10), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code == "199"),
        "{outcome:?}"
    );
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let c = api(
        "jushuitan.refund.list.query",
        HttpMethod::Post,
        json!({"start_time": from, "end_time": to}),
    );
    assert!(matches!(
        call(qm.as_ref(), &c, None).await,
        Outcome::Transient { .. }
    ));
    let stats = sim.stats();
    assert!(stats.vendors["jushuitan"].injected_errors >= 2);
    assert_eq!(stats.vendors["jushuitan"].truncated, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn hang_outlasts_the_client_timeout() {
    let sim = sim().await;
    sim.set_faults(Faults {
        timeout_rate: 1.0,
        hang: Duration::from_secs(3),
        ..Faults::default()
    });
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    let req = wdt
        .prepare(&wdt_call(0, 5, &from, &to), Utc::now(), None)
        .expect("prepare");
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    let result = short
        .post(&req.url)
        .body(req.body.clone().unwrap_or_default())
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    assert_eq!(sim.stats().vendors["wdt"].timeouts, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn drift_makes_a_naive_pager_miss_records() {
    let sim = sim().await;
    sim.set_faults(Faults {
        drift: true,
        ..Faults::default()
    });
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    let mut seen = BTreeSet::new();
    for page in 0..20 {
        let v = data(call(wdt.as_ref(), &wdt_call(page, 5, &from, &to), None).await);
        let page_records = records(&v, "data.order");
        if page_records.is_empty() {
            break;
        }
        seen.extend(ids(&page_records, "refund_id"));
    }
    let truth = truth_ids(&sim, Dataset::WdtRefunds);
    let missed: Vec<&String> = truth.difference(&seen).collect();
    assert!(
        !missed.is_empty(),
        "a naive pager should miss records under drift"
    );
    assert!(sim.stats().drift_bumps > 0);
    // The truth carries the bumped versions: some record is now modified within the run.
    let recent = sim
        .truth(Dataset::WdtRefunds)
        .iter()
        .filter(|r| {
            r["modified"].as_i64().is_some_and(|ms| {
                ms >= (Utc::now() - chrono::Duration::minutes(1)).timestamp_millis()
            })
        })
        .count();
    assert!(recent > 0);
    // A second pass over the same window (the remedy) sees what the first one missed.
    sim.set_faults(Faults::default());
    let mut second = BTreeSet::new();
    for page in 0..20 {
        let v = data(call(wdt.as_ref(), &wdt_call(page, 5, &from, &to), None).await);
        let page_records = records(&v, "data.order");
        if page_records.is_empty() {
            break;
        }
        second.extend(ids(&page_records, "refund_id"));
    }
    assert_eq!(second, truth);
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicates_repeat_records_across_pages() {
    let sim = sim().await;
    sim.set_faults(Faults {
        duplicate_rate: 1.0,
        ..Faults::default()
    });
    let http = connector(&sim, ConnectorKind::Http, &[]);
    let mut all = Vec::new();
    for page in 1..=20 {
        let v = data(call(http.as_ref(), &http_call(page, 10), None).await);
        let page_records = records(&v, "data.items");
        if page_records.is_empty() {
            break;
        }
        all.extend(ids(&page_records, "order_id"));
    }
    let unique: BTreeSet<&String> = all.iter().collect();
    assert!(all.len() > unique.len());
    assert_eq!(unique.len(), RECORDS);
    assert!(sim.stats().duplicates > 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn control_endpoints_serve_truth_stats_and_faults() {
    let sim = sim().await;
    let base = format!("http://{}", sim.addr());
    let truth: Vec<Value> = client()
        .get(format!("{base}/_sim/truth/wdt_refunds"))
        .send()
        .await
        .expect("truth")
        .json()
        .await
        .expect("json");
    assert_eq!(truth, sim.truth(Dataset::WdtRefunds));
    let missing = client()
        .get(format!("{base}/_sim/truth/nope"))
        .send()
        .await
        .expect("truth");
    assert_eq!(missing.status().as_u16(), 404);
    let posted = client()
        .post(format!("{base}/_sim/faults"))
        .json(&json!({"error_rate": 1.0, "latency": 5}))
        .send()
        .await
        .expect("faults");
    assert_eq!(posted.status().as_u16(), 200);
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    assert!(matches!(
        call(wdt.as_ref(), &wdt_call(0, 5, &from, &to), None).await,
        Outcome::Transient { .. }
    ));
    let stats: SimStats = client()
        .get(format!("{base}/_sim/stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats.vendors["wdt"].requests, 1);
    assert_eq!(stats.vendors["wdt"].injected_errors, 1);
    sim.shutdown().await;
}
