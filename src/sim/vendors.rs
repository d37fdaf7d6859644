//! The simulator's vendor handlers: for each vendor, read the raw request the way the
//! vendor would (form, query, JSON body), verify app key, timestamp, signature and token
//! with the vendor's own error answers, enforce rate, page-size and window limits, and
//! answer pages in the vendor's envelope with its paging markers.
//!
//! Signatures are recomputed from the raw received fields with the published algorithms
//! (`connectors::<vendor>::sign`), never from anything the connector computed, so a
//! connector that puts a field in the wrong place fails here. What the simulator does not
//! model: id-list queries and `start_ts` keysets (Jushuitan), status filters.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::data::{parse_shanghai, Dataset, PageRequest};
use super::state::{Inner, Reply, ReplyKind, Shared};
use super::{
    MAX_PAGE_HTTP, MAX_PAGE_JIKEYUN, MAX_PAGE_JST, MAX_PAGE_QIMEN_JST, MAX_PAGE_WDT, MAX_PAGE_YIDA,
};
use crate::connectors::wire;
use crate::connectors::{jikeyun as jky, jushuitan as jst, qimen as qm, wdt as wdt_conn};
use crate::plan::ConnectorKind;

type Fields = Vec<(String, String)>;

fn field<'a>(fields: &'a Fields, key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Query pairs followed by form-body pairs.
fn form_fields(query: Option<&str>, body: &[u8]) -> Fields {
    let mut fields = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    fields.extend(wire::form_decode(body));
    fields
}

/// An integer param given as a number or a numeric string.
fn int_param(value: Option<&Value>) -> Option<Result<i64, ()>> {
    match value? {
        Value::Number(n) => Some(n.as_i64().ok_or(())),
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.trim().parse().map_err(|_| ())),
        Value::Null => None,
        _ => Some(Err(())),
    }
}

fn int_text(value: Option<&str>) -> Option<Result<i64, ()>> {
    let text = value?.trim();
    if text.is_empty() {
        return None;
    }
    Some(text.parse().map_err(|_| ()))
}

fn within(now: DateTime<Utc>, then: DateTime<Utc>, tolerance_secs: i64) -> bool {
    (now - then).num_seconds().abs() <= tolerance_secs
}

/// A parsed and limited time window, or the vendor's complaint.
enum WindowCheck {
    Ok(Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    Missing,
    BadFormat(String),
    TooWide,
}

fn check_window(
    from: Option<&str>,
    to: Option<&str>,
    max: Option<chrono::Duration>,
    required: bool,
    parse: fn(&str) -> Option<DateTime<Utc>>,
) -> WindowCheck {
    let from = from.filter(|s| !s.trim().is_empty());
    let to = to.filter(|s| !s.trim().is_empty());
    let (from, to) = match (from, to) {
        (None, None) if !required => return WindowCheck::Ok(None, None),
        (Some(f), Some(t)) => (f, t),
        (f, t) if !required => {
            let pf = match f.map(parse) {
                Some(None) => return WindowCheck::BadFormat(f.unwrap_or_default().to_owned()),
                other => other.flatten(),
            };
            let pt = match t.map(parse) {
                Some(None) => return WindowCheck::BadFormat(t.unwrap_or_default().to_owned()),
                other => other.flatten(),
            };
            return WindowCheck::Ok(pf, pt);
        }
        _ => return WindowCheck::Missing,
    };
    let (Some(pf), Some(pt)) = (parse(from), parse(to)) else {
        return WindowCheck::BadFormat(format!("{from} / {to}"));
    };
    if pt < pf {
        return WindowCheck::BadFormat(format!("{from} > {to}"));
    }
    if max.is_some_and(|max| pt - pf > max) {
        return WindowCheck::TooWide;
    }
    WindowCheck::Ok(Some(pf), Some(pt))
}

fn as_str(value: Option<&Value>) -> Option<String> {
    value.filter(|v| !v.is_null()).map(wire::scalar_text)
}

// ───────────────────────────── Jushuitan ─────────────────────────────

const JST: ConnectorKind = ConnectorKind::Jushuitan;

fn jst_error(kind: ReplyKind, code: i64, msg: &str) -> Reply {
    Reply::new(kind, 200, json!({"code": code, "msg": msg, "data": null}))
}

pub(crate) async fn jushuitan(
    State(sim): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(answer) = sim.pass_gate(JST).await {
        return answer;
    }
    if sim.vendor_error_fires(JST) {
        let reply = jst_error(ReplyKind::Injected, 199, "调用频次超过限制!请稍后再试");
        return sim.finish(JST, reply);
    }
    let fields = form_fields(query.as_deref(), &body);
    let reply = {
        let mut inner = sim.lock();
        jst_handle(&sim, &mut inner, &path, &fields)
    };
    sim.finish(JST, reply)
}

fn jst_handle(sim: &Shared, inner: &mut Inner, path: &str, fields: &Fields) -> Reply {
    let c = &sim.config.credentials;
    let now = Utc::now();
    if field(fields, "app_key") != Some(c.app_key.as_str()) {
        return jst_error(ReplyKind::Rejected, 10, "app_key 无效");
    }
    let ts = field(fields, "timestamp").and_then(|t| t.parse::<i64>().ok());
    let fresh = ts
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .is_some_and(|t| within(now, t, 900));
    if !fresh {
        return jst_error(
            ReplyKind::Rejected,
            140,
            "timestamp 无效,请求最大时间误差15分钟",
        );
    }
    let expected = jst::sign(&c.app_secret, fields);
    if field(fields, "sign").map(str::to_ascii_lowercase) != Some(expected) {
        return jst_error(ReplyKind::Rejected, 10, "签名错误");
    }
    let ttl = inner
        .faults
        .token_ttl
        .unwrap_or(Duration::from_secs(2_592_000));
    match path {
        "openWeb/auth/getInitToken" | "openWeb/auth/refreshToken" => {
            if path.ends_with("refreshToken") {
                let refresh = field(fields, "refresh_token").unwrap_or_default();
                if field(fields, "grant_type") != Some("refresh_token")
                    || !inner.refresh_valid(JST, refresh)
                {
                    return jst_error(ReplyKind::Rejected, 100, "refresh_token 无效");
                }
            } else if field(fields, "grant_type") != Some("authorization_code")
                || field(fields, "code").map(|c| c.chars().count()) != Some(6)
            {
                return jst_error(ReplyKind::Rejected, 130, "grant_type 或 code 参数缺失");
            }
            let (access, refresh) = inner.issue_token(JST, ttl);
            Reply::new(
                ReplyKind::Token,
                200,
                json!({"code": 0, "msg": "执行成功", "data": {
                    "access_token": access, "expires_in": ttl.as_secs().max(1),
                    "refresh_token": refresh, "scope": "all"}}),
            )
        }
        "open/refund/single/query" | "open/orders/out/simple/query" => {
            let token = field(fields, "access_token").unwrap_or_default();
            if !inner.token_valid(JST, token) {
                return jst_error(ReplyKind::Rejected, 100, "access_token 无效或已过期");
            }
            let limits = if sim.config.rates {
                sim.config.limits.of(JST).to_vec()
            } else {
                Vec::new()
            };
            match inner.rate_check(JST, &c.app_key, &limits) {
                Some(0) => {
                    return jst_error(ReplyKind::Throttled, 199, "调用频次超过限制!请稍后再试")
                }
                Some(_) => return jst_error(ReplyKind::Throttled, 200, "调用频次超过限制"),
                None => {}
            }
            let biz: Map<String, Value> =
                match serde_json::from_str(field(fields, "biz").unwrap_or("{}")) {
                    Ok(Value::Object(map)) => map,
                    _ => return jst_error(ReplyKind::Rejected, 170, "biz 不是合法的JSON对象"),
                };
            let dataset = if path.contains("refund") {
                Dataset::JstRefunds
            } else {
                Dataset::JstOrders
            };
            jst_page(
                inner,
                dataset,
                &biz,
                ("modified_begin", "modified_end"),
                MAX_PAGE_JST,
            )
            .unwrap_or_else(|e| e)
        }
        _ => jst_error(ReplyKind::Rejected, 190, "无此接口权限"),
    }
}

/// A Jushuitan data page (`{code:0, data:{..., datas}}`), or the error reply.
fn jst_page(
    inner: &mut Inner,
    dataset: Dataset,
    biz: &Map<String, Value>,
    window_keys: (&str, &str),
    max_page: usize,
) -> Result<Reply, Reply> {
    let rejected = |code, msg: &str| jst_error(ReplyKind::Rejected, code, msg);
    let page_index = match int_param(biz.get("page_index")) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return Err(rejected(170, "page_index 必须为大于0的整数")),
    };
    let page_size = match int_param(biz.get("page_size")) {
        None => 30,
        Some(Ok(n)) if n >= 1 && n as usize <= max_page => n,
        _ => return Err(rejected(170, &format!("page_size 必须在1到{max_page}之间"))),
    };
    let from = as_str(biz.get(window_keys.0));
    let to = as_str(biz.get(window_keys.1));
    let (from, to) = match check_window(
        from.as_deref(),
        to.as_deref(),
        Some(chrono::Duration::days(7)),
        true,
        parse_shanghai,
    ) {
        WindowCheck::Ok(f, t) => (f, t),
        WindowCheck::Missing => {
            return Err(rejected(
                130,
                &format!("{} 和 {} 必须同时传入", window_keys.0, window_keys.1),
            ))
        }
        WindowCheck::BadFormat(text) => {
            return Err(rejected(170, &format!("时间格式错误: {text}")))
        }
        WindowCheck::TooWide => return Err(rejected(170, "修改开始时间和结束时间间隔不能超过7天")),
    };
    let size = page_size as usize;
    let page = inner.page(
        dataset,
        PageRequest {
            from,
            to,
            page: (page_index - 1) as usize,
            size,
            drift: false,
            duplicate: false,
        },
        Utc::now(),
    );
    let with_total = !matches!(biz.get("is_get_total"), Some(Value::Bool(false)))
        && as_str(biz.get("is_get_total")).as_deref() != Some("false");
    let page_count = page.total.div_ceil(size);
    let mut data = json!({
        "page_index": page_index,
        "page_size": page_size,
        "has_next": (page_index as usize) < page_count,
        "datas": page.records,
    });
    if with_total {
        data["data_count"] = json!(page.total);
        data["page_count"] = json!(page_count);
    }
    Ok(Reply::new(
        ReplyKind::Served,
        200,
        json!({"code": 0, "msg": "执行成功", "data": data}),
    ))
}

// ───────────────────────────── Qimen ─────────────────────────────

const QIMEN: ConnectorKind = ConnectorKind::Qimen;
const QIMEN_SYSTEM: &[&str] = &[
    "app_key",
    "target_app_key",
    "timestamp",
    "format",
    "v",
    "sign_method",
    "session",
    "sign",
    "customerId",
];

fn top_error(kind: ReplyKind, code: i64, msg: &str, sub_code: &str, sub_msg: &str) -> Reply {
    Reply::new(
        kind,
        200,
        json!({"error_response": {"code": code, "msg": msg, "sub_code": sub_code,
            "sub_msg": sub_msg, "request_id": "sim-request"}}),
    )
}

pub(crate) async fn qimen(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(answer) = sim.pass_gate(QIMEN).await {
        return answer;
    }
    if sim.vendor_error_fires(QIMEN) {
        let reply = top_error(
            ReplyKind::Injected,
            15,
            "Remote service error",
            "isp.remote-service-timeout",
            "simulated upstream timeout",
        );
        return sim.finish(QIMEN, reply);
    }
    let fields = form_fields(query.as_deref(), &body);
    let reply = {
        let mut inner = sim.lock();
        qimen_handle(&sim, &mut inner, &fields)
    };
    sim.finish(QIMEN, reply)
}

fn qimen_handle(sim: &Shared, inner: &mut Inner, fields: &Fields) -> Reply {
    let c = &sim.config.credentials;
    let rejected = |code, msg: &str, sub: &str| top_error(ReplyKind::Rejected, code, msg, sub, "");
    if field(fields, "app_key") != Some(c.app_key.as_str()) {
        return rejected(29, "Invalid app Key", "isv.appkey-not-exists");
    }
    let fresh = field(fields, "timestamp")
        .and_then(parse_shanghai)
        .is_some_and(|t| within(Utc::now(), t, 600));
    if !fresh {
        return rejected(31, "Invalid timestamp", "isv.invalid-timestamp");
    }
    let Some(method) = qm::SignMethod::parse(field(fields, "sign_method").unwrap_or("md5")) else {
        return rejected(41, "Invalid arguments:sign_method", "isv.invalid-parameter");
    };
    let expected = qm::sign(method, &c.app_secret, fields);
    if field(fields, "sign").map(str::to_ascii_uppercase) != Some(expected) {
        return rejected(25, "Invalid signature", "isv.invalid-signature");
    }
    if field(fields, "target_app_key") != Some(c.qimen_target_app_key.as_str()) {
        return rejected(
            41,
            "Invalid arguments:target_app_key",
            "isv.invalid-parameter",
        );
    }
    let limits = if sim.config.rates {
        sim.config.limits.of(QIMEN).to_vec()
    } else {
        Vec::new()
    };
    if inner.rate_check(QIMEN, &c.app_key, &limits).is_some() {
        return top_error(
            ReplyKind::Throttled,
            7,
            "App Call Limited",
            "accesscontrol.limited-by-app-access-count",
            "This ban will last for 1 more seconds",
        );
    }
    match field(fields, "method").unwrap_or_default() {
        "jushuitan.refund.list.query" => {
            if field(fields, "customer_id") != Some(c.qimen_customer_id.as_str()) {
                return Reply::new(
                    ReplyKind::Rejected,
                    200,
                    json!({"response": {"flag": "failure", "code": "invalid-customer-id",
                        "message": "customer_id 无效"}}),
                );
            }
            let biz: Map<String, Value> = fields
                .iter()
                .filter(|(k, _)| !QIMEN_SYSTEM.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let reply = jst_page(
                inner,
                Dataset::JstRefunds,
                &biz,
                ("start_time", "end_time"),
                MAX_PAGE_QIMEN_JST,
            )
            .unwrap_or_else(|e| e);
            Reply::new(reply.kind, reply.status, json!({"response": reply.body}))
        }
        "wdt.aftersales.refund.refund.search" => qimen_wdt(sim, inner, fields),
        other => rejected(
            22,
            &format!("Invalid method: {other}"),
            "isv.invalid-method",
        ),
    }
}

fn wdt_error(kind: ReplyKind, status: i64, message: &str) -> Reply {
    Reply::new(kind, 200, json!({"status": status, "message": message}))
}

fn qimen_wdt(sim: &Shared, inner: &mut Inner, fields: &Fields) -> Reply {
    let c = &sim.config.credentials;
    let wrap = |reply: Reply| Reply::new(reply.kind, reply.status, json!({"response": reply.body}));
    if field(fields, "wdt_appkey") != Some(c.wdt_app_key.as_str())
        || field(fields, "wdt_salt") != Some(c.wdt_salt.as_str())
    {
        return wrap(wdt_error(
            ReplyKind::Rejected,
            1,
            "wdt_appkey 或 wdt_salt 无效",
        ));
    }
    let business: Fields = fields
        .iter()
        .filter(|(k, _)| !QIMEN_SYSTEM.contains(&k.as_str()) && k != "wdt_sign")
        .cloned()
        .collect();
    if field(fields, "wdt_sign").map(str::to_ascii_lowercase)
        != Some(qm::wdt_sign(&c.wdt_secret, &business))
    {
        return wrap(wdt_error(ReplyKind::Rejected, 1, "wdt_sign 验证失败"));
    }
    let pager: Map<String, Value> = match serde_json::from_str(field(fields, "pager").unwrap_or(""))
    {
        Ok(Value::Object(map)) => map,
        _ => return wrap(wdt_error(ReplyKind::Rejected, 100, "此方法仅支持分页查询")),
    };
    let params: Map<String, Value> =
        match serde_json::from_str(field(fields, "params").unwrap_or("{}")) {
            Ok(Value::Object(map)) => map,
            _ => return wrap(wdt_error(ReplyKind::Rejected, 2, "params 不是合法的JSON")),
        };
    let page_no = match int_param(pager.get("page_no")) {
        Some(Ok(n)) if n >= 1 => n - 1,
        _ => return wrap(wdt_error(ReplyKind::Rejected, 100, "page_no 必须从1开始")),
    };
    wrap(wdt_page(inner, &pager, page_no, &params, true).unwrap_or_else(|e| e))
}

/// A WDT refund page `{status:0, data:{total_count, order}}` for zero-based `page_no`.
fn wdt_page(
    inner: &mut Inner,
    pager: &Map<String, Value>,
    page_no: i64,
    params: &Map<String, Value>,
    calc_total: bool,
) -> Result<Reply, Reply> {
    let page_size = match int_param(pager.get("page_size")) {
        Some(Ok(n)) if n >= 1 && n as usize <= MAX_PAGE_WDT => n as usize,
        None => return Err(wdt_error(ReplyKind::Rejected, 100, "此方法仅支持分页查询")),
        _ => {
            return Err(wdt_error(
                ReplyKind::Rejected,
                100,
                &format!("page_size 不能大于{MAX_PAGE_WDT}"),
            ))
        }
    };
    let from = as_str(params.get("modified_from"));
    let to = as_str(params.get("modified_to"));
    let (from, to) = match check_window(
        from.as_deref(),
        to.as_deref(),
        Some(chrono::Duration::days(30)),
        true,
        parse_shanghai,
    ) {
        WindowCheck::Ok(f, t) => (f, t),
        WindowCheck::Missing => {
            return Err(wdt_error(
                ReplyKind::Rejected,
                100,
                "参数中必须包含起止时间",
            ))
        }
        WindowCheck::BadFormat(text) => {
            return Err(wdt_error(
                ReplyKind::Rejected,
                100,
                &format!("时间格式错误: {text}"),
            ))
        }
        WindowCheck::TooWide => {
            return Err(wdt_error(ReplyKind::Rejected, 100, "查询时间不能大于30天"))
        }
    };
    let page = inner.page(
        Dataset::WdtRefunds,
        PageRequest {
            from,
            to,
            page: page_no as usize,
            size: page_size,
            drift: false,
            duplicate: false,
        },
        Utc::now(),
    );
    let mut data = json!({"order": page.records});
    if calc_total {
        data["total_count"] = json!(page.total);
    }
    Ok(Reply::new(
        ReplyKind::Served,
        200,
        json!({"status": 0, "data": data}),
    ))
}

// ───────────────────────────── Jackyun ─────────────────────────────

const JKY: ConnectorKind = ConnectorKind::Jikeyun;

fn jky_error(sim: &Shared, kind: ReplyKind, sub: &str, msg: &str) -> Reply {
    Reply::new(
        kind,
        200,
        json!({"code": sim.config.jikeyun_success_code, "msg": msg, "subCode": sub,
            "result": {"data": null, "contextId": "sim-ctx"}}),
    )
}

pub(crate) async fn jikeyun(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(answer) = sim.pass_gate(JKY).await {
        return answer;
    }
    if sim.vendor_error_fires(JKY) {
        let reply = jky_error(
            &sim,
            ReplyKind::Injected,
            jky::SUB_THROTTLED,
            "上游服务繁忙,请稍后重试",
        );
        return sim.finish(JKY, reply);
    }
    let fields = form_fields(query.as_deref(), &body);
    let reply = {
        let mut inner = sim.lock();
        jky_handle(&sim, &mut inner, &fields)
    };
    sim.finish(JKY, reply)
}

fn jky_handle(sim: &Shared, inner: &mut Inner, fields: &Fields) -> Reply {
    let c = &sim.config.credentials;
    let rejected = |sub: &str, msg: &str| jky_error(sim, ReplyKind::Rejected, sub, msg);
    let appkey = field(fields, "appkey").unwrap_or_default();
    if appkey != c.app_key {
        return rejected(jky::SUB_APPKEY_UNKNOWN, "appkey 不存在");
    }
    let fresh = field(fields, "timestamp")
        .and_then(parse_shanghai)
        .is_some_and(|t| within(Utc::now(), t, 600));
    if !fresh {
        return rejected(jky::SUB_PARAM_ERROR, "timestamp 超出允许误差");
    }
    if field(fields, "sign").map(str::to_ascii_lowercase) != Some(jky::sign(&c.app_secret, fields))
    {
        return rejected(jky::SUB_SIGN_ERROR, "签名错误");
    }
    let method = field(fields, "method").unwrap_or_default();
    if method != "erp.warehouse.get" {
        return rejected(
            jky::SUB_NOT_SUBSCRIBED,
            &format!("appKey={appkey},method={method},未查询到应用或应用未订阅此API"),
        );
    }
    let limits = if sim.config.rates {
        sim.config.limits.of(JKY).to_vec()
    } else {
        Vec::new()
    };
    if inner.rate_check(JKY, appkey, &limits).is_some() {
        return jky_error(
            sim,
            ReplyKind::Throttled,
            jky::SUB_THROTTLED,
            "调用过于频繁,请稍后重试",
        );
    }
    let biz: Map<String, Value> =
        match serde_json::from_str(field(fields, "bizcontent").unwrap_or("{}")) {
            Ok(Value::Object(map)) => map,
            _ => return rejected(jky::SUB_PARAM_ERROR, "bizcontent 不是合法的JSON"),
        };
    let page_index = match int_param(biz.get("pageIndex")) {
        None => 0,
        Some(Ok(n)) if n >= 0 => n,
        _ => return rejected(jky::SUB_PARAM_ERROR, "pageIndex 必须为非负整数"),
    };
    let page_size = match int_param(biz.get("pageSize")) {
        None => 50,
        Some(Ok(n)) if n >= 1 && n as usize <= MAX_PAGE_JIKEYUN => n as usize,
        _ => {
            return rejected(
                jky::SUB_PARAM_ERROR,
                &format!("pageSize 必须在1到{MAX_PAGE_JIKEYUN}之间"),
            )
        }
    };
    let from = as_str(biz.get("gmtModifiedStart"));
    let to = as_str(biz.get("gmtModifiedEnd"));
    let (from, to) = match check_window(from.as_deref(), to.as_deref(), None, false, parse_shanghai)
    {
        WindowCheck::Ok(f, t) => (f, t),
        _ => {
            return rejected(
                jky::SUB_PARAM_ERROR,
                "gmtModifiedStart/gmtModifiedEnd 格式错误",
            )
        }
    };
    let page = inner.page(
        Dataset::JikeyunWarehouses,
        PageRequest {
            from,
            to,
            page: page_index as usize,
            size: page_size,
            drift: false,
            duplicate: false,
        },
        Utc::now(),
    );
    // Jackyun often ships `result.data` as a JSON string; the simulator always does.
    let data = json!({"warehouseInfo": page.records}).to_string();
    Reply::new(
        ReplyKind::Served,
        200,
        json!({"code": sim.config.jikeyun_success_code, "msg": "执行成功", "subCode": null,
            "result": {"data": data, "contextId": "sim-ctx"}}),
    )
}

// ───────────────────────────── WDT direct ─────────────────────────────

const WDT: ConnectorKind = ConnectorKind::Wdt;

pub(crate) async fn wdt(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if let Some(answer) = sim.pass_gate(WDT).await {
        return answer;
    }
    if sim.vendor_error_fires(WDT) {
        let reply = wdt_error(ReplyKind::Injected, 100, "超过每分钟最大并发次数限制");
        return sim.finish(WDT, reply);
    }
    let query = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let reply = {
        let mut inner = sim.lock();
        wdt_handle(&sim, &mut inner, &query, &body)
    };
    sim.finish(WDT, reply)
}

fn wdt_handle(sim: &Shared, inner: &mut Inner, query: &Fields, body: &str) -> Reply {
    let c = &sim.config.credentials;
    let rejected = |status, msg: &str| wdt_error(ReplyKind::Rejected, status, msg);
    if field(query, "sid") != Some(c.wdt_sid.as_str()) {
        return rejected(1, "sid不存在");
    }
    if field(query, "key") != Some(c.wdt_app_key.as_str()) {
        return rejected(1, "key 无效");
    }
    if field(query, "salt") != Some(c.wdt_salt.as_str()) {
        return rejected(1, "salt 无效");
    }
    let fresh = field(query, "timestamp")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t + wdt_conn::EPOCH_OFFSET, 0))
        .is_some_and(|t| within(Utc::now(), t, 120));
    if !fresh {
        return rejected(7, "时间戳超出范围");
    }
    let mut signed: Fields = query.iter().filter(|(k, _)| k != "sign").cloned().collect();
    signed.push(("body".to_owned(), body.to_owned()));
    if field(query, "sign").map(str::to_ascii_lowercase)
        != Some(wdt_conn::sign(&c.wdt_secret, &signed))
    {
        return rejected(1, "签名验证失败");
    }
    let method = field(query, "method").unwrap_or_default();
    if method != "aftersales.refund.Refund.search" {
        return rejected(99, &format!("方法 {method} 不存在"));
    }
    let limits = if sim.config.rates {
        sim.config.limits.of(WDT).to_vec()
    } else {
        Vec::new()
    };
    if inner.rate_check(WDT, &c.wdt_app_key, &limits).is_some() {
        return wdt_error(
            ReplyKind::Throttled,
            100,
            "超过每分钟最大调用频率限制，请稍后重试",
        );
    }
    let params = match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(args)) => match args.into_iter().next() {
            Some(Value::Object(map)) => map,
            None => Map::new(),
            Some(_) => return rejected(2, "第1个参数必须是对象"),
        },
        _ => return rejected(2, "请求体必须是JSON数组"),
    };
    let mut pager = Map::new();
    for key in ["page_size", "page_no"] {
        if let Some(v) = field(query, key) {
            pager.insert(key.to_owned(), Value::String(v.to_owned()));
        }
    }
    let page_no = match int_text(field(query, "page_no")) {
        Some(Ok(n)) if n >= 0 => n,
        None => return rejected(100, "此方法仅支持分页查询"),
        _ => return rejected(100, "page_no 必须从0开始"),
    };
    let calc_total = field(query, "calc_total") == Some("1");
    wdt_page(inner, &pager, page_no, &params, calc_total).unwrap_or_else(|e| e)
}

// ───────────────────────────── DingTalk / Yida ─────────────────────────────

const DT: ConnectorKind = ConnectorKind::DingtalkYida;

fn dt_error(kind: ReplyKind, status: u16, code: &str, message: &str) -> Reply {
    Reply::new(
        kind,
        status,
        json!({"code": code, "message": message, "requestid": "sim-request"}),
    )
}

pub(crate) async fn dingtalk_token(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(answer) = sim.pass_gate(DT).await {
        return answer;
    }
    let c = &sim.config.credentials;
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = if request.get("appKey").and_then(Value::as_str) != Some(c.app_key.as_str())
        || request.get("appSecret").and_then(Value::as_str) != Some(c.app_secret.as_str())
    {
        dt_error(
            ReplyKind::Rejected,
            400,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        )
    } else {
        let mut inner = sim.lock();
        let ttl = inner.faults.token_ttl.unwrap_or(Duration::from_secs(7200));
        let (access, _) = inner.issue_token(DT, ttl);
        Reply::new(
            ReplyKind::Token,
            200,
            json!({"accessToken": access, "expireIn": ttl.as_secs().max(1)}),
        )
    };
    sim.finish(DT, reply)
}

pub(crate) async fn yida_instances(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(answer) = sim.pass_gate(DT).await {
        return answer;
    }
    if sim.vendor_error_fires(DT) {
        let reply = dt_error(
            ReplyKind::Injected,
            403,
            "Forbidden.AccessDenied.QpsLimitForApi",
            "当前API的QPS已超限",
        );
        return sim.finish(DT, reply);
    }
    let query = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    let token = headers
        .get(crate::connectors::dingtalk_yida::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let reply = {
        let mut inner = sim.lock();
        yida_handle(&sim, &mut inner, &query, &token, &body)
    };
    sim.finish(DT, reply)
}

/// Yida window bounds are GMT dates (`yyyy-MM-dd`, the whole day) or datetimes.
fn parse_gmt(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn yida_handle(sim: &Shared, inner: &mut Inner, query: &Fields, token: &str, body: &[u8]) -> Reply {
    let c = &sim.config.credentials;
    if !inner.token_valid(DT, token) {
        return dt_error(
            ReplyKind::Rejected,
            401,
            "InvalidAuthentication",
            "不合法的access_token",
        );
    }
    let limits = if sim.config.rates {
        sim.config.limits.of(DT).to_vec()
    } else {
        Vec::new()
    };
    if inner.rate_check(DT, &c.app_key, &limits).is_some() {
        return dt_error(
            ReplyKind::Throttled,
            403,
            "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
            "应用调用该接口的QPS超限",
        );
    }
    let bad = |message: &str| dt_error(ReplyKind::Rejected, 400, "InvalidParameter", message);
    let request: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => return bad("请求体必须是JSON对象"),
    };
    let text = |k: &str| request.get(k).and_then(Value::as_str).unwrap_or_default();
    if text("appType") != c.yida_app_type {
        return bad("appType 不正确");
    }
    if text("systemToken") != c.yida_system_token {
        return bad("systemToken 不正确");
    }
    if text("formUuid") != c.yida_form_uuid {
        return bad("formUuid 不存在");
    }
    if text("userId").is_empty() {
        return bad("userId 不能为空");
    }
    if let Some(search) = request.get("searchFieldJson") {
        if !search.is_string() {
            return bad("searchFieldJson 必须是字符串");
        }
    }
    let page_number = match int_text(field(query, "pageNumber")) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return bad("pageNumber 必须为正整数"),
    };
    let page_size = match int_text(field(query, "pageSize")) {
        None => 10,
        Some(Ok(n)) if n >= 1 && n as usize <= MAX_PAGE_YIDA => n as usize,
        _ => return bad(&format!("pageSize 不能大于{MAX_PAGE_YIDA}")),
    };
    let from = request.get("modifiedFromTimeGMT").and_then(Value::as_str);
    let to = request.get("modifiedToTimeGMT").and_then(Value::as_str);
    let (from, mut to) = match check_window(from, to, None, false, parse_gmt) {
        WindowCheck::Ok(f, t) => (f, t),
        _ => return bad("modifiedFromTimeGMT/modifiedToTimeGMT 格式错误"),
    };
    // A bare end date means the whole day.
    if let (Some(t), Some(raw)) = (to, request.get("modifiedToTimeGMT").and_then(Value::as_str)) {
        if raw.trim().len() == 10 {
            to = Some(t + chrono::Duration::days(1) - chrono::Duration::seconds(1));
        }
    }
    let page = inner.page(
        Dataset::YidaInstances,
        PageRequest {
            from,
            to,
            page: (page_number - 1) as usize,
            size: page_size,
            drift: false,
            duplicate: false,
        },
        Utc::now(),
    );
    Reply::new(
        ReplyKind::Served,
        200,
        json!({"pageNumber": page_number, "totalCount": page.total, "data": page.records}),
    )
}

// ───────────────────────────── generic http ─────────────────────────────

const HTTP: ConnectorKind = ConnectorKind::Http;

/// The generic API's signature: `upper(md5("k1=v1&k2=v2&...&key=<secret>"))` over every
/// query param but `sign`, sorted by key.
pub(crate) fn http_signature(secret: &str, query: &Fields) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().filter(|(k, _)| k != "sign").collect();
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.cmp(&b.1)));
    let mut text = String::new();
    for (k, v) in pairs {
        text.push_str(&format!("{k}={v}&"));
    }
    text.push_str(&format!("key={secret}"));
    wire::md5_hex(text.as_bytes()).to_ascii_uppercase()
}

fn http_error(kind: ReplyKind, status: u16, code: i64, message: &str) -> Reply {
    Reply::new(kind, status, json!({"code": code, "message": message}))
}

pub(crate) async fn http_orders(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(answer) = sim.pass_gate(HTTP).await {
        return answer;
    }
    if sim.vendor_error_fires(HTTP) {
        let reply = http_error(ReplyKind::Injected, 503, 50300, "服务繁忙,请稍后重试");
        return sim.finish(HTTP, reply);
    }
    let query = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    let reply = {
        let mut inner = sim.lock();
        http_handle(&sim, &mut inner, &query)
    };
    sim.finish(HTTP, reply)
}

fn http_handle(sim: &Shared, inner: &mut Inner, query: &Fields) -> Reply {
    let c = &sim.config.credentials;
    let fresh = field(query, "ts")
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .is_some_and(|t| within(Utc::now(), t, 300));
    if !fresh {
        return http_error(
            ReplyKind::Rejected,
            401,
            40002,
            "timestamp expired or missing",
        );
    }
    if field(query, "sign").map(str::to_ascii_uppercase)
        != Some(http_signature(&c.app_secret, query))
    {
        return http_error(ReplyKind::Rejected, 401, 40001, "invalid signature");
    }
    let limits = if sim.config.rates {
        sim.config.limits.of(HTTP).to_vec()
    } else {
        Vec::new()
    };
    if inner.rate_check(HTTP, &c.app_key, &limits).is_some() {
        let mut reply = http_error(ReplyKind::Throttled, 429, 42900, "rate limit exceeded");
        reply.headers.push(("retry-after", "1".to_owned()));
        return reply;
    }
    let bad = |message: &str| http_error(ReplyKind::Rejected, 400, 40003, message);
    let page = match int_text(field(query, "page")) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        _ => return bad("page must be a positive integer"),
    };
    let per_page = match int_text(field(query, "per_page")) {
        None => 20,
        Some(Ok(n)) if n >= 1 && n as usize <= MAX_PAGE_HTTP => n as usize,
        _ => return bad(&format!("per_page must be between 1 and {MAX_PAGE_HTTP}")),
    };
    let (from, to) = match check_window(
        field(query, "updated_since"),
        field(query, "updated_until"),
        None,
        false,
        parse_shanghai,
    ) {
        WindowCheck::Ok(f, t) => (f, t),
        _ => return bad("updated_since/updated_until must be yyyy-MM-dd HH:mm:ss"),
    };
    let cut = inner.page(
        Dataset::HttpOrders,
        PageRequest {
            from,
            to,
            page: (page - 1) as usize,
            size: per_page,
            drift: false,
            duplicate: false,
        },
        Utc::now(),
    );
    Reply::new(
        ReplyKind::Served,
        200,
        json!({"code": 0, "message": "ok", "data": {
            "items": cut.records, "total": cut.total, "page": page, "per_page": per_page}}),
    )
}
