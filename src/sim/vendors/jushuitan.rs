//! Jushuitan open platform (`/open/...`, `/openWeb/auth/...`): form fields with an MD5
//! `sign`, access tokens issued and refreshed, `{code, msg, data}` envelopes, and the data
//! page (`page_index` from 1, `has_next`, `data_count`) that Qimen's Jushuitan method
//! reuses.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{as_str, check_window, field, form_fields, int_param, rate_limited, respond, within};
use super::{Fields, WindowCheck};
use crate::connectors::jushuitan as jst;
use crate::plan::ConnectorKind;
use crate::sim::data::{parse_shanghai, Dataset, PageRequest};
use crate::sim::state::{Inner, Reply, ReplyKind, Shared};
use crate::sim::MAX_PAGE_JST;

const JST: ConnectorKind = ConnectorKind::Jushuitan;

fn jst_error(kind: ReplyKind, code: i64, msg: &str) -> Reply {
    Reply::new(kind, 200, json!({"code": code, "msg": msg, "data": null}))
}

/// `POST /jushuitan/*path`: the token endpoints and the refund and order queries.
pub(crate) async fn serve(
    State(sim): State<Arc<Shared>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let fields = form_fields(query.as_deref(), &body);
    let injected = |_: &Shared| jst_error(ReplyKind::Injected, 199, "调用频次超过限制!请稍后再试");
    respond(&sim, JST, injected, |sim, inner| {
        jst_handle(sim, inner, &path, &fields)
    })
    .await
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
            match rate_limited(sim, inner, JST, &c.app_key) {
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
pub(super) fn jst_page(
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
