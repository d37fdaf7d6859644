//! Vendor connectors: one file per vendor, one `Connector` trait.
//!
//! A connector owns, for its vendor: where business params go, signing, the token
//! lifecycle (as data: which request fetches a token and how to read the answer), decoding
//! the envelope and classifying errors. Connectors do no I/O; `source` sends what they
//! prepare, so every connector is testable with pure unit tests and the published vectors.
//!
//! `Data` outcomes carry the response body with the vendor's outer wrapper removed (Qimen's
//! `response`) and JSON-string payloads parsed (Jikeyun's `result.data`), so the records
//! paths in [`EndpointInfo`] (`data.datas`, `result.data.warehouseInfo`, ...) apply to it.
//!
//! Interface extensions made here (all pure): [`EndpointInfo::rates`] lists every published
//! limit (Jushuitan has two), and [`Connector::profile_token`] hands the engine a token
//! written in the profile (Jushuitan `access_token`) so that an expired one can be replaced
//! through [`Connector::token_request`] like a fetched one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Connection;
use crate::plan::{ConnectorKind, FieldPath, HttpMethod};

pub mod dingtalk_yida;
pub mod http;
pub mod jikeyun;
pub mod jushuitan;
pub mod qimen;
pub mod wdt;
pub mod wire;

#[cfg(test)]
mod samples;

/// One API call as the spec describes it, with every template already rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    /// Method name (`jushuitan.refund.list.query`) or path (`/open/orders/out/simple/query`).
    pub endpoint: String,
    pub http_method: HttpMethod,
    /// Business parameters, nested objects and arrays allowed, in declaration order.
    pub params: serde_json::Map<String, Value>,
    /// Extra query-string parameters (`query` lines of the spec, paging for Yida).
    pub query: Vec<(String, String)>,
    /// Extra headers (`header` lines of the spec).
    pub headers: Vec<(String, String)>,
}

/// A request ready to send: signed, every byte decided.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRequest {
    pub method: HttpMethod,
    /// Absolute URL including the query string.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// The form content type Jikeyun and Qimen take (Jushuitan spells the charset in capitals).
pub const FORM_UTF8: &str = "application/x-www-form-urlencoded;charset=utf-8";

impl PreparedRequest {
    /// A POST of `body` as `content_type` to `url`, then the spec's own `headers`.
    pub fn post(
        content_type: &str,
        url: String,
        body: String,
        headers: &[(String, String)],
    ) -> PreparedRequest {
        let mut all = vec![("Content-Type".to_owned(), content_type.to_owned())];
        all.extend(headers.iter().cloned());
        PreparedRequest {
            method: HttpMethod::Post,
            url,
            headers: all,
            body: Some(body),
        }
    }
}

/// A bearer-like credential obtained from the vendor and valid until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// What a response means, decided by the connector from status and body.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success: the decoded payload (envelope unwrapped where the vendor nests it,
    /// JSON-string payloads such as Jikeyun's `result.data` parsed).
    Data(Value),
    /// The vendor throttled us: retry after backoff (at least `retry_after` when known).
    Throttled {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// A transient server-side failure (HTTP 5xx, `isp.*`): retry after backoff.
    Transient { code: String, message: String },
    /// Token invalid or expired: fetch a new token, then retry once.
    AuthExpired { code: String, message: String },
    /// Bad signature, no permission, IP not whitelisted, bad params: do not retry.
    Fatal { code: String, message: String },
}

/// What a connector knows about one of its endpoints, so specs need not repeat it and
/// `check` can warn when a spec asks for more than the vendor allows.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndpointInfo {
    pub max_page_size: Option<u32>,
    pub max_window: Option<Duration>,
    /// First page number (Jushuitan 1, WDT direct 0).
    pub page_base: Option<i64>,
    pub records_path: Option<FieldPath>,
    pub total_path: Option<FieldPath>,
    pub has_next_path: Option<FieldPath>,
    /// The vendor's published request rate, per connection (app key): the tightest of
    /// `rates`, kept for callers that honour a single limit.
    pub rate: Option<(u32, Duration)>,
    /// Every published limit; all apply at once (Jushuitan: 5/s and 100/min).
    pub rates: Vec<(u32, Duration)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectorError {
    #[error("connection `{connection}` has no `{key}` (needed by the {vendor} connector)")]
    MissingSetting {
        connection: String,
        vendor: &'static str,
        key: String,
    },
    #[error("connection `{connection}`: {message}")]
    BadSetting { connection: String, message: String },
    #[error("{vendor} token response is not valid: {message}")]
    BadToken {
        vendor: &'static str,
        message: String,
    },
}

/// One vendor protocol. Implementations are pure: no I/O, no clock (time is passed in).
pub trait Connector: Send + Sync {
    fn kind(&self) -> ConnectorKind;

    /// Builds and signs the request for `call` at time `now`.
    fn prepare(
        &self,
        call: &ApiCall,
        now: DateTime<Utc>,
        token: Option<&Token>,
    ) -> Result<PreparedRequest, ConnectorError>;

    /// Classifies a response. HTTP 200 with an error body is an error.
    fn classify(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome;

    /// The request that obtains (or refreshes, when `current` is given) a token, for
    /// vendors that need one; `None` (the default) when the vendor signs every request.
    fn token_request(
        &self,
        now: DateTime<Utc>,
        current: Option<&Token>,
    ) -> Result<Option<PreparedRequest>, ConnectorError> {
        let _ = (now, current);
        Ok(None)
    }

    /// Reads a token response; vendors without tokens never get here.
    fn parse_token(&self, now: DateTime<Utc>, body: &[u8]) -> Result<Token, ConnectorError> {
        let _ = (now, body);
        Err(ConnectorError::BadToken {
            vendor: self.kind().keyword(),
            message: "this vendor signs every request and issues no tokens".to_owned(),
        })
    }

    /// A token written in the profile (Jushuitan `access_token`), used before any token is
    /// fetched. When the vendor rejects it (`AuthExpired`), pass it to `token_request` as
    /// `current` to obtain a replacement. `None` for vendors without such a setting.
    fn profile_token(&self, now: DateTime<Utc>) -> Option<Token> {
        let _ = now;
        None
    }

    /// What this connector knows of `endpoint`.
    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo;

    /// Credential values to mask in plan output, logs and errors.
    fn secrets(&self) -> Vec<String>;
}

/// Builds the connector of `kind` from a profile connection named `name`.
pub fn build(
    kind: ConnectorKind,
    name: &str,
    connection: &Connection,
) -> Result<Box<dyn Connector>, ConnectorError> {
    Ok(match kind {
        ConnectorKind::Jushuitan => Box::new(jushuitan::Jushuitan::new(name, connection)?),
        ConnectorKind::Qimen => Box::new(qimen::Qimen::new(name, connection)?),
        ConnectorKind::Jikeyun => Box::new(jikeyun::Jikeyun::new(name, connection)?),
        ConnectorKind::Wdt => Box::new(wdt::Wdt::new(name, connection)?),
        ConnectorKind::DingtalkYida => {
            Box::new(dingtalk_yida::DingtalkYida::new(name, connection)?)
        }
        ConnectorKind::Http => Box::new(http::Http::new(name, connection)?),
    })
}

/// A sample answer of vendor `kind` (`samples/<spec>.json`) as a run would see it, decided
/// by the connector's own envelope logic as for a live HTTP 200: the payload unwrapped, or
/// the vendor's error `(code, message)` when the sample is an error answer. A sample that
/// is an array, or only the data part without an envelope, is taken as it is.
pub fn decode_sample(
    kind: ConnectorKind,
    connection: Option<(&str, &Connection)>,
    body: &Value,
) -> Result<Value, (String, String)> {
    if body.is_array() {
        return Ok(body.clone());
    }
    let (code, message) = match classify_answer(kind, connection, body) {
        Outcome::Data(value) => return Ok(value),
        Outcome::Throttled { code, message, .. }
        | Outcome::Transient { code, message }
        | Outcome::AuthExpired { code, message }
        | Outcome::Fatal { code, message } => (code, message),
    };
    // The codes connectors give a body without their envelope.
    if matches!(code.as_str(), "missing_code" | "missing_status") {
        return Ok(body.clone());
    }
    Err((code, message))
}

/// What an answer `body` means to connector `kind`: built from the profile's entry when
/// it builds (an `http` connection's `error_path`, Jikeyun's `success_code`), else from
/// stand-in credentials, since decoding an envelope needs none.
fn classify_answer(
    kind: ConnectorKind,
    connection: Option<(&str, &Connection)>,
    body: &Value,
) -> Outcome {
    let built = connection.and_then(|(name, entry)| build(kind, name, entry).ok());
    let connector = built.or_else(|| {
        let settings = [
            ("base_url", "http://127.0.0.1"),
            ("app_key", "k"),
            ("app_secret", "s:s"),
            ("sid", "s"),
            ("target_app_key", "t"),
        ];
        let stand_in = Connection {
            kind: kind.keyword().to_owned(),
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_yaml::Value::from(*v)))
                .collect(),
        };
        build(kind, "sample", &stand_in).ok()
    });
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    match connector {
        Some(connector) => connector.classify(200, &[], &bytes),
        None => Outcome::Data(body.clone()),
    }
}

/// Every profile key a connection of `kind` takes besides `kind` (which [`build`] reads or
/// may read, depending on the others, e.g. `token` with `auth: bearer`).
pub fn profile_keys(kind: ConnectorKind) -> &'static [&'static str] {
    match kind {
        ConnectorKind::Jushuitan => jushuitan::PROFILE_KEYS,
        ConnectorKind::Qimen => qimen::PROFILE_KEYS,
        ConnectorKind::Jikeyun => jikeyun::PROFILE_KEYS,
        ConnectorKind::Wdt => wdt::PROFILE_KEYS,
        ConnectorKind::DingtalkYida => dingtalk_yida::PROFILE_KEYS,
        ConnectorKind::Http => http::PROFILE_KEYS,
    }
}

/// What connector `kind` knows of `endpoint`, without credentials (used by `check`).
pub fn endpoint_info(kind: ConnectorKind, endpoint: &str) -> EndpointInfo {
    match kind {
        ConnectorKind::Jushuitan => jushuitan::endpoint_info(endpoint),
        ConnectorKind::Qimen => qimen::endpoint_info(endpoint),
        ConnectorKind::Jikeyun => jikeyun::endpoint_info(endpoint),
        ConnectorKind::Wdt => wdt::endpoint_info(endpoint),
        ConnectorKind::DingtalkYida => dingtalk_yida::endpoint_info(endpoint),
        ConnectorKind::Http => EndpointInfo::default(),
    }
}

/// How `@rate` spaces calls to vendor `kind` when the spec does not say (see
/// `source::rate`). By send (at the limit) where one call over it costs one refused call
/// that is retried: Jushuitan's code 199, Jikeyun's upstream throttling, Yida's 403 QPS
/// limit, a plain API's 429. By answer (never over it, one round trip slower per interval)
/// where the vendor bans the app key for a while: Qimen's "This ban will last N more
/// seconds", WDT's advice to wait 5-10 minutes.
pub fn spaces_rate_by_send(kind: ConnectorKind) -> bool {
    match kind {
        ConnectorKind::Jushuitan
        | ConnectorKind::Jikeyun
        | ConnectorKind::DingtalkYida
        | ConnectorKind::Http => true,
        ConnectorKind::Qimen | ConnectorKind::Wdt => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_info_knows_each_vendor() {
        let jst = endpoint_info(ConnectorKind::Jushuitan, "/open/refund/single/query");
        assert_eq!(jst.max_page_size, Some(50));
        assert_eq!(jst.rates.len(), 2);
        let wdt = endpoint_info(ConnectorKind::Wdt, "aftersales.refund.Refund.search");
        assert_eq!(wdt.page_base, Some(0));
        let yida = endpoint_info(
            ConnectorKind::DingtalkYida,
            "/v1.0/yida/processes/instances",
        );
        assert_eq!(yida.records_path, Some(FieldPath::parse("data")));
        assert_eq!(
            endpoint_info(ConnectorKind::Http, "/x"),
            EndpointInfo::default()
        );
    }
}
