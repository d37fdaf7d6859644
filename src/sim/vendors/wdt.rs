//! WDT (旺店通) direct API (`/openapi`): `sid`/`key`/`salt` and a signed query over a JSON
//! array body, `{status, message}` answers, `page_no` from 0, and the refund page that
//! Qimen's WDT method reuses (there `page_no` starts at 1).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{as_str, check_window, field, int_param, int_text, rate_limited, respond, within};
use super::{Fields, WindowCheck};
use crate::connectors::{wdt as wdt_conn, wire};
use crate::plan::ConnectorKind;
use crate::sim::data::{parse_shanghai, Dataset, PageRequest};
use crate::sim::state::{Inner, Reply, ReplyKind, Shared};
use crate::sim::MAX_PAGE_WDT;

const WDT: ConnectorKind = ConnectorKind::Wdt;

/// `POST /wdt/openapi`: method `aftersales.refund.Refund.search`.
pub(crate) async fn serve(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    let injected = |_: &Shared| wdt_error(ReplyKind::Injected, 100, "超过每分钟最大并发次数限制");
    respond(&sim, WDT, injected, |sim, inner| {
        wdt_handle(sim, inner, &query, &body)
    })
    .await
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
    if rate_limited(sim, inner, WDT, &c.wdt_app_key).is_some() {
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

pub(super) fn wdt_error(kind: ReplyKind, status: i64, message: &str) -> Reply {
    Reply::new(kind, 200, json!({"status": status, "message": message}))
}

/// A WDT refund page `{status:0, data:{total_count, order}}` for zero-based `page_no`.
pub(super) fn wdt_page(
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
