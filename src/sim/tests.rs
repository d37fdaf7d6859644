//! End-to-end tests: every connector's `prepare` output is sent with reqwest to a started
//! simulator on 127.0.0.1:0 and its answer classified by the same connector. Covers real
//! data, paging to exactly the truth, rejected signatures / timestamps / tokens, rate
//! limits, injected faults, drift and duplicates, and the control endpoints.

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

#[tokio::test]
async fn jushuitan_pages_exactly_the_truth() {
    let sim = sim().await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    let token = jst.profile_token(Utc::now());
    let mut seen = Vec::new();
    let mut pages = 0;
    for page in 1..=50 {
        let v = data(call(jst.as_ref(), &jst_call(page, 10), token.as_ref()).await);
        assert_eq!(v["data"]["data_count"], json!(RECORDS));
        seen.extend(records(&v, "data.datas"));
        pages += 1;
        if v["data"]["has_next"] != json!(true) {
            break;
        }
    }
    assert_eq!(pages, RECORDS.div_ceil(10));
    assert_eq!(seen.len(), RECORDS);
    let mut got = seen.clone();
    got.sort_by_key(|r| r["as_id"].as_u64());
    assert_eq!(got, sim.truth(Dataset::JstRefunds));
    // Sorted by modified ascending while paging.
    let modified: Vec<String> = seen
        .iter()
        .map(|r| wire::scalar_text(&r["modified"]))
        .collect();
    let mut sorted = modified.clone();
    sorted.sort();
    assert_eq!(modified, sorted);
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_orders_endpoint_serves_orders() {
    let sim = sim().await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    let (from, to) = window();
    let v = data(
        call(
            jst.as_ref(),
            &api(
                "/open/orders/out/simple/query",
                HttpMethod::Post,
                json!({"modified_begin": from, "modified_end": to, "page_size": 50}),
            ),
            None,
        )
        .await,
    );
    let got: BTreeSet<String> = ids(&records(&v, "data.datas"), "io_id")
        .into_iter()
        .collect();
    assert_eq!(got, truth_ids(&sim, Dataset::JstOrders));
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_rejects_bad_sign_stale_timestamp_expired_token_and_limits() {
    let sim = sim().await;
    let good = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    let wrong = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[
            ("access_token", "sim-jst-access-token"),
            ("app_secret", "nope"),
        ],
    );
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &jst_call(1, 10), None).await),
        "10"
    );
    let stale = Utc::now() - chrono::Duration::hours(1);
    assert_eq!(
        fatal_code(&call_at(good.as_ref(), &jst_call(1, 10), stale, None).await),
        "140"
    );
    assert_eq!(
        fatal_code(&call(good.as_ref(), &jst_call(1, 51), None).await),
        "170"
    );
    let (from, _) = window();
    let too_wide = api(
        "/open/refund/single/query",
        HttpMethod::Post,
        json!({"modified_begin": from, "modified_end": shanghai(Utc::now() + chrono::Duration::days(3))}),
    );
    let outcome = call(good.as_ref(), &too_wide, None).await;
    assert!(
        matches!(&outcome, Outcome::Fatal { code, message } if code == "170" && message.contains("7天")),
        "{outcome:?}"
    );
    // Expired profile token → AuthExpired → refresh through the connector's token request.
    sim.expire_tokens();
    let profile = good.profile_token(Utc::now()).expect("profile token");
    let outcome = call(good.as_ref(), &jst_call(1, 10), Some(&profile)).await;
    assert!(
        matches!(&outcome, Outcome::AuthExpired { code, .. } if code == "100"),
        "{outcome:?}"
    );
    let fresh = fetch_token(good.as_ref(), Some(&profile)).await;
    assert_ne!(fresh.access_token, profile.access_token);
    data(call(good.as_ref(), &jst_call(1, 10), Some(&fresh)).await);
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_without_profile_token_fetches_one() {
    let sim = sim().await;
    let jst = connector(&sim, ConnectorKind::Jushuitan, &[]);
    assert!(jst.profile_token(Utc::now()).is_none());
    assert!(jst.prepare(&jst_call(1, 10), Utc::now(), None).is_err());
    let token = fetch_token(jst.as_ref(), None).await;
    assert!(token.refresh_token.is_some());
    let v = data(call(jst.as_ref(), &jst_call(1, 10), Some(&token)).await);
    assert_eq!(records(&v, "data.datas").len(), 10);
    assert_eq!(sim.stats().vendors["jushuitan"].tokens_issued, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn jushuitan_rate_limits_answer_199_then_200() {
    let limits = Limits {
        jushuitan: vec![(2, Duration::from_secs(1)), (3, Duration::from_secs(60))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let jst = connector(
        &sim,
        ConnectorKind::Jushuitan,
        &[("access_token", "sim-jst-access-token")],
    );
    data(call(jst.as_ref(), &jst_call(1, 5), None).await);
    data(call(jst.as_ref(), &jst_call(1, 5), None).await);
    let outcome = call(jst.as_ref(), &jst_call(1, 5), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, retry_after: Some(d), .. } if code == "199" && d.as_secs() == 1),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    data(call(jst.as_ref(), &jst_call(1, 5), None).await);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let outcome = call(jst.as_ref(), &jst_call(1, 5), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code == "200"),
        "{outcome:?}"
    );
    assert!(sim.stats().vendors["jushuitan"].throttled >= 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_jushuitan_refunds_page_to_truth() {
    let sim = sim().await;
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(
            call(
                qm.as_ref(),
                &api(
                    "jushuitan.refund.list.query",
                    HttpMethod::Post,
                    json!({"start_time": from, "end_time": to, "page_index": page, "page_size": 15}),
                ),
                None,
            )
            .await,
        );
        seen.extend(records(&v, "data.datas"));
        if v["data"]["has_next"] != json!(true) {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "as_id").into_iter().collect();
    assert_eq!(seen.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::JstRefunds));
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_wdt_refunds_page_from_one_to_truth() {
    let sim = sim().await;
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(
            call(
                qm.as_ref(),
                &api(
                    "wdt.aftersales.refund.refund.search",
                    HttpMethod::Post,
                    json!({"pager": {"page_size": 10, "page_no": page},
                           "params": {"modified_from": from, "modified_to": to}}),
                ),
                None,
            )
            .await,
        );
        assert_eq!(v["data"]["total_count"], json!(RECORDS));
        let page_records = records(&v, "data.order");
        let short = page_records.len() < 10;
        seen.extend(page_records);
        if short {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "refund_id").into_iter().collect();
    assert_eq!(got.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::WdtRefunds));
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_rejects_bad_sign_stale_timestamp_and_bad_wdt_sign() {
    let sim = sim().await;
    let (from, to) = window();
    let refunds = api(
        "jushuitan.refund.list.query",
        HttpMethod::Post,
        json!({"start_time": from, "end_time": to}),
    );
    let wrong = connector(&sim, ConnectorKind::Qimen, &[("app_secret", "nope")]);
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &refunds, None).await),
        "25/isv.invalid-signature"
    );
    let good = connector(
        &sim,
        ConnectorKind::Qimen,
        &[("sign_method", "hmac-sha256")],
    );
    data(call(good.as_ref(), &refunds, None).await);
    let stale = Utc::now() - chrono::Duration::minutes(30);
    assert_eq!(
        fatal_code(&call_at(good.as_ref(), &refunds, stale, None).await),
        "31/isv.invalid-timestamp"
    );
    let wrong_wdt = connector(&sim, ConnectorKind::Qimen, &[("wdt_secret", "nope")]);
    let wdt_call = api(
        "wdt.aftersales.refund.refund.search",
        HttpMethod::Post,
        json!({"pager": {"page_size": 10, "page_no": 1}, "params": {"modified_from": from, "modified_to": to}}),
    );
    assert_eq!(
        fatal_code(&call(wrong_wdt.as_ref(), &wdt_call, None).await),
        "1"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn qimen_throttles_with_code_7() {
    let limits = Limits {
        qimen: vec![(1, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let qm = connector(&sim, ConnectorKind::Qimen, &[]);
    let (from, to) = window();
    let c = api(
        "jushuitan.refund.list.query",
        HttpMethod::Post,
        json!({"start_time": from, "end_time": to}),
    );
    data(call(qm.as_ref(), &c, None).await);
    let outcome = call(qm.as_ref(), &c, None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code.starts_with("7/accesscontrol")),
        "{outcome:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn jikeyun_pages_from_zero_until_short_page() {
    let sim = sim().await;
    let jky = connector(&sim, ConnectorKind::Jikeyun, &[]);
    let mut seen = Vec::new();
    for page in 0..20 {
        let v = data(
            call(
                jky.as_ref(),
                &api(
                    "erp.warehouse.get",
                    HttpMethod::Post,
                    json!({"pageIndex": page, "pageSize": 8}),
                ),
                None,
            )
            .await,
        );
        let page_records = records(&v, "result.data.warehouseInfo");
        let short = page_records.len() < 8;
        seen.extend(page_records);
        if short {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "warehouseId").into_iter().collect();
    assert_eq!(seen.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::JikeyunWarehouses));
    let wrong = connector(&sim, ConnectorKind::Jikeyun, &[("app_secret", "nope")]);
    let one = api(
        "erp.warehouse.get",
        HttpMethod::Post,
        json!({"pageIndex": 0}),
    );
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &one, None).await),
        "0858030801"
    );
    let other = api("erp.goods.get", HttpMethod::Post, json!({}));
    assert_eq!(
        fatal_code(&call(jky.as_ref(), &other, None).await),
        "0130020310"
    );
    let stale = Utc::now() - chrono::Duration::hours(2);
    assert_eq!(
        fatal_code(&call_at(jky.as_ref(), &one, stale, None).await),
        "0050030002"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn jikeyun_throttles_with_0859999999() {
    let limits = Limits {
        jikeyun: vec![(1, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let jky = connector(&sim, ConnectorKind::Jikeyun, &[]);
    let one = api(
        "erp.warehouse.get",
        HttpMethod::Post,
        json!({"pageIndex": 0}),
    );
    data(call(jky.as_ref(), &one, None).await);
    let outcome = call(jky.as_ref(), &one, None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code == "0859999999"),
        "{outcome:?}"
    );
    sim.shutdown().await;
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
async fn wdt_pages_from_zero_with_total_count() {
    let sim = sim().await;
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    let mut seen = Vec::new();
    let mut total = None;
    for page in 0..20 {
        let v = data(call(wdt.as_ref(), &wdt_call(page, 9, &from, &to), None).await);
        total = v["data"]["total_count"].as_u64();
        seen.extend(records(&v, "data.order"));
        if total.is_some_and(|t| seen.len() as u64 >= t) {
            break;
        }
    }
    assert_eq!(total, Some(RECORDS as u64));
    let mut got = seen.clone();
    got.sort_by_key(|r| r["refund_id"].as_u64());
    assert_eq!(got, sim.truth(Dataset::WdtRefunds));
    sim.shutdown().await;
}

#[tokio::test]
async fn wdt_rejects_bad_sign_stale_timestamp_and_wide_window() {
    let sim = sim().await;
    let (from, to) = window();
    let wrong = connector(&sim, ConnectorKind::Wdt, &[("secret", "nope")]);
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &wdt_call(0, 10, &from, &to), None).await),
        "1"
    );
    let good = connector(&sim, ConnectorKind::Wdt, &[]);
    let stale = Utc::now() - chrono::Duration::minutes(5);
    assert_eq!(
        fatal_code(&call_at(good.as_ref(), &wdt_call(0, 10, &from, &to), stale, None).await),
        "7"
    );
    let far = shanghai(Utc::now() - chrono::Duration::days(40));
    let outcome = call(good.as_ref(), &wdt_call(0, 10, &far, &to), None).await;
    assert_eq!(
        outcome,
        Outcome::Fatal {
            code: "100".to_owned(),
            message: "查询时间不能大于30天".to_owned()
        }
    );
    let no_window = api(
        "aftersales.refund.Refund.search",
        HttpMethod::Post,
        json!({"pager": {"page_size": 10, "page_no": 0}, "params": {}}),
    );
    let outcome = call(good.as_ref(), &no_window, None).await;
    assert!(
        matches!(&outcome, Outcome::Fatal { message, .. } if message == "参数中必须包含起止时间")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wdt_throttles_with_status_100() {
    let limits = Limits {
        wdt: vec![(1, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    let wdt = connector(&sim, ConnectorKind::Wdt, &[]);
    let (from, to) = window();
    data(call(wdt.as_ref(), &wdt_call(0, 5, &from, &to), None).await);
    let outcome = call(wdt.as_ref(), &wdt_call(0, 5, &from, &to), None).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, retry_after: Some(d), .. } if code == "100" && d.as_secs() == 3),
        "{outcome:?}"
    );
    sim.shutdown().await;
}

fn yida_call(page: i64, size: i64) -> ApiCall {
    let c = SimCredentials::default();
    api(
        "/v1.0/yida/processes/instances",
        HttpMethod::Post,
        json!({"appType": c.yida_app_type, "systemToken": c.yida_system_token,
               "formUuid": c.yida_form_uuid, "userId": "manager01", "language": "zh_CN",
               "searchFieldJson": {}, "pageNumber": page, "pageSize": size}),
    )
}

#[tokio::test]
async fn yida_pages_by_total_count_and_refreshes_expired_tokens() {
    let sim = sim().await;
    let yida = connector(&sim, ConnectorKind::DingtalkYida, &[]);
    let token = fetch_token(yida.as_ref(), None).await;
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(call(yida.as_ref(), &yida_call(page, 10), Some(&token)).await);
        seen.extend(records(&v, "data"));
        let total = v["totalCount"].as_i64().expect("totalCount");
        if total <= page * 10 {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "processInstanceId").into_iter().collect();
    assert_eq!(seen.len(), RECORDS);
    assert_eq!(got, truth_ids(&sim, Dataset::YidaInstances));
    sim.expire_tokens();
    let outcome = call(yida.as_ref(), &yida_call(1, 10), Some(&token)).await;
    assert!(
        matches!(&outcome, Outcome::AuthExpired { code, .. } if code == "InvalidAuthentication"),
        "{outcome:?}"
    );
    let fresh = fetch_token(yida.as_ref(), Some(&token)).await;
    data(call(yida.as_ref(), &yida_call(1, 10), Some(&fresh)).await);
    let wrong = connector(&sim, ConnectorKind::DingtalkYida, &[("app_secret", "nope")]);
    let req = wrong
        .token_request(Utc::now(), None)
        .expect("ok")
        .expect("some");
    let (status, _, body) = send(&req).await;
    assert_eq!(status, 400);
    assert!(wrong.parse_token(Utc::now(), &body).is_err());
    let outcome = call(yida.as_ref(), &yida_call(1, 101), Some(&fresh)).await;
    assert_eq!(fatal_code(&outcome), "InvalidParameter");
    sim.shutdown().await;
}

#[tokio::test]
async fn yida_token_ttl_expires_mid_run_and_qps_limit_throttles() {
    let limits = Limits {
        dingtalk: vec![(2, Duration::from_secs(5))],
        ..Limits::default()
    };
    let sim = sim_with(true, limits).await;
    sim.set_faults(Faults {
        token_ttl: Some(Duration::from_millis(300)),
        ..Faults::default()
    });
    let yida = connector(&sim, ConnectorKind::DingtalkYida, &[]);
    let token = fetch_token(yida.as_ref(), None).await;
    data(call(yida.as_ref(), &yida_call(1, 10), Some(&token)).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let outcome = call(yida.as_ref(), &yida_call(1, 10), Some(&token)).await;
    assert!(
        matches!(outcome, Outcome::AuthExpired { .. }),
        "{outcome:?}"
    );
    let fresh = fetch_token(yida.as_ref(), None).await;
    data(call(yida.as_ref(), &yida_call(1, 10), Some(&fresh)).await);
    let outcome = call(yida.as_ref(), &yida_call(1, 10), Some(&fresh)).await;
    assert!(
        matches!(&outcome, Outcome::Throttled { code, .. } if code.contains("QpsLimitForAppkeyAndApi")),
        "{outcome:?}"
    );
    sim.shutdown().await;
}

fn http_call(page: i64, per_page: i64) -> ApiCall {
    let (from, to) = window();
    api(
        "/api/v1/orders",
        HttpMethod::Get,
        json!({"updated_since": from, "updated_until": to, "page": page, "per_page": per_page}),
    )
}

#[tokio::test]
async fn http_connector_signs_with_a_template_and_pages_to_truth() {
    let sim = sim().await;
    let http = connector(
        &sim,
        ConnectorKind::Http,
        &[("error_path", "code"), ("success_value", "0")],
    );
    let mut seen = Vec::new();
    for page in 1..=20 {
        let v = data(call(http.as_ref(), &http_call(page, 10), None).await);
        let page_records = records(&v, "data.items");
        let short = page_records.len() < 10;
        seen.extend(page_records);
        if short {
            break;
        }
    }
    let got: BTreeSet<String> = ids(&seen, "order_id").into_iter().collect();
    assert_eq!(got, truth_ids(&sim, Dataset::HttpOrders));
    assert_eq!(seen.len(), RECORDS);
    let wrong = connector(&sim, ConnectorKind::Http, &[("secret", "nope")]);
    assert_eq!(
        fatal_code(&call(wrong.as_ref(), &http_call(1, 10), None).await),
        "http_401"
    );
    sim.shutdown().await;
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
