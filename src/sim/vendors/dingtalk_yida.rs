//! DingTalk and Yida: app key and secret traded for an access token, the token in a
//! header, JSON bodies with Yida's form credentials, HTTP 400/401/403 answers with
//! `{code, message}`, and windows as GMT dates or datetimes.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{check_window, field, int_text, rate_limited, respond, Fields, WindowCheck};
use crate::connectors::wire;
use crate::plan::ConnectorKind;
use crate::sim::data::{Dataset, PageRequest};
use crate::sim::state::{Inner, Reply, ReplyKind, Shared};
use crate::sim::MAX_PAGE_YIDA;

const DT: ConnectorKind = ConnectorKind::DingtalkYida;

fn dt_error(kind: ReplyKind, status: u16, code: &str, message: &str) -> Reply {
    Reply::new(
        kind,
        status,
        json!({"code": code, "message": message, "requestid": "sim-request"}),
    )
}

/// `POST /dingtalk/v1.0/oauth2/accessToken`.
pub(crate) async fn token(State(sim): State<Arc<Shared>>, body: Bytes) -> Response {
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

/// `POST /dingtalk/v1.0/yida/processes/instances`.
pub(crate) async fn instances(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    let token = headers
        .get(crate::connectors::dingtalk_yida::TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let injected = |_: &Shared| {
        dt_error(
            ReplyKind::Injected,
            403,
            "Forbidden.AccessDenied.QpsLimitForApi",
            "当前API的QPS已超限",
        )
    };
    respond(&sim, DT, injected, |sim, inner| {
        yida_handle(sim, inner, &query, &token, &body)
    })
    .await
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
    if rate_limited(sim, inner, DT, &c.app_key).is_some() {
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
