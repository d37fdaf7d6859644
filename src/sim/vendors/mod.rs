//! The simulator's vendor handlers, one file per vendor like `connectors/`: each reads the
//! raw request the way the vendor would (form, query, JSON body), verifies app key,
//! timestamp, signature and token with the vendor's own error answers, enforces rate,
//! page-size and window limits, and answers pages in the vendor's envelope with its paging
//! markers. This file owns what they share: reading form fields and integer params,
//! checking a time window, and the path of one request through the fault gate.
//!
//! Signatures are recomputed from the raw received fields with the published algorithms
//! (`connectors::<vendor>::sign`), never from anything the connector computed, so a
//! connector that puts a field in the wrong place fails here. What the simulator does not
//! model: id-list queries and `start_ts` keysets (Jushuitan), status filters.

pub(crate) mod dingtalk_yida;
pub(crate) mod http;
pub(crate) mod jikeyun;
pub(crate) mod jushuitan;
pub(crate) mod qimen;
pub(crate) mod wdt;

use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::state::{Inner, Reply, Shared};
use crate::connectors::wire;
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

/// Whether a call of `app_key` breaks one of `vendor`'s rate limits (when the simulator
/// enforces them), and which: the index into the vendor's limits, see [`Inner::rate_check`].
fn rate_limited(
    sim: &Shared,
    inner: &mut Inner,
    vendor: ConnectorKind,
    app_key: &str,
) -> Option<usize> {
    let limits = if sim.config.rates {
        sim.config.limits.of(vendor).to_vec()
    } else {
        Vec::new()
    };
    inner.rate_check(vendor, app_key, &limits)
}

/// One request from arrival to answer: the fault gate (latency, hangs, 5xx, 429 bursts),
/// then the vendor's 200-with-error answer `injected` when that fault fires, else `handle`
/// under the simulator's lock; the reply is counted (and maybe torn) by [`Shared::finish`].
async fn respond(
    sim: &Shared,
    vendor: ConnectorKind,
    injected: impl FnOnce(&Shared) -> Reply,
    handle: impl FnOnce(&Shared, &mut Inner) -> Reply,
) -> Response {
    if let Some(answer) = sim.pass_gate(vendor).await {
        return answer;
    }
    if sim.vendor_error_fires(vendor) {
        let reply = injected(sim);
        return sim.finish(vendor, reply);
    }
    let reply = {
        let mut inner = sim.lock();
        handle(sim, &mut inner)
    };
    sim.finish(vendor, reply)
}
