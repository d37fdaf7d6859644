//! Jackyun (吉客云) open API (`/open/openapi/do`): form fields with an MD5 `sign`,
//! `subCode` errors under a configurable success `code`, `pageIndex` from 0, and
//! `result.data` shipped as a JSON string.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::{as_str, Fields, WindowCheck};
use super::{check_window, field, form_fields, int_param, rate_limited, respond, within};
use crate::connectors::jikeyun as jky;
use crate::plan::ConnectorKind;
use crate::sim::data::{parse_shanghai, Dataset, PageRequest};
use crate::sim::state::{Inner, Reply, ReplyKind, Shared};
use crate::sim::MAX_PAGE_JIKEYUN;

const JKY: ConnectorKind = ConnectorKind::Jikeyun;

fn jky_error(sim: &Shared, kind: ReplyKind, sub: &str, msg: &str) -> Reply {
    Reply::new(
        kind,
        200,
        json!({"code": sim.config.jikeyun_success_code, "msg": msg, "subCode": sub,
            "result": {"data": null, "contextId": "sim-ctx"}}),
    )
}

/// `POST /jikeyun/open/openapi/do`: method `erp.warehouse.get`.
pub(crate) async fn serve(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let fields = form_fields(query.as_deref(), &body);
    let injected = |sim: &Shared| {
        jky_error(
            sim,
            ReplyKind::Injected,
            jky::SUB_THROTTLED,
            "上游服务繁忙,请稍后重试",
        )
    };
    respond(&sim, JKY, injected, |sim, inner| {
        jky_handle(sim, inner, &fields)
    })
    .await
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
    if rate_limited(sim, inner, JKY, appkey).is_some() {
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
