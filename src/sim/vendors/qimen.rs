//! Qimen (Taobao's TOP gateway) routing to Jushuitan and WDT: system params signed with
//! MD5 or HMAC, `error_response` answers, and the routed methods wrapped in `response`
//! (the Jushuitan page from `jushuitan.rs`, the WDT page from `wdt.rs` with its own
//! `wdt_sign`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::jushuitan::jst_page;
use super::wdt::{wdt_error, wdt_page};
use super::{field, form_fields, int_param, rate_limited, respond, within, Fields};
use crate::connectors::qimen as qm;
use crate::plan::ConnectorKind;
use crate::sim::data::{parse_shanghai, Dataset};
use crate::sim::state::{Inner, Reply, ReplyKind, Shared};
use crate::sim::MAX_PAGE_QIMEN_JST;

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

/// `GET`/`POST /qimen/router/qimen/service`: the routed Jushuitan and WDT methods.
pub(crate) async fn serve(
    State(sim): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let fields = form_fields(query.as_deref(), &body);
    let injected = |_: &Shared| {
        top_error(
            ReplyKind::Injected,
            15,
            "Remote service error",
            "isp.remote-service-timeout",
            "simulated upstream timeout",
        )
    };
    respond(&sim, QIMEN, injected, |sim, inner| {
        qimen_handle(sim, inner, &fields)
    })
    .await
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
    if rate_limited(sim, inner, QIMEN, &c.app_key).is_some() {
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
