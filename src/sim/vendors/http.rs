//! The generic HTTP API (`/http/api/v1/orders`) that the `http` connector is configured
//! for: a query signed with `upper(md5(...&key=secret))`, a `ts` timestamp, HTTP status
//! errors with `{code, message}`, 429 with `Retry-After`, `page` from 1.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{check_window, field, int_text, rate_limited, respond, within, Fields, WindowCheck};
use crate::connectors::wire;
use crate::plan::ConnectorKind;
use crate::sim::data::{parse_shanghai, Dataset, PageRequest};
use crate::sim::state::{Inner, Reply, ReplyKind, Shared};
use crate::sim::MAX_PAGE_HTTP;

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

/// `GET /http/api/v1/orders`.
pub(crate) async fn orders(State(sim): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let query = query
        .map(|q| wire::form_decode(q.as_bytes()))
        .unwrap_or_default();
    let injected = |_: &Shared| http_error(ReplyKind::Injected, 503, 50300, "服务繁忙,请稍后重试");
    respond(&sim, HTTP, injected, |sim, inner| {
        http_handle(sim, inner, &query)
    })
    .await
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
    if rate_limited(sim, inner, HTTP, &c.app_key).is_some() {
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
