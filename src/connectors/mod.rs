//! Vendor connectors: one file per vendor, one `Connector` trait.
//!
//! A connector owns, for its vendor: where business params go, signing, the token
//! lifecycle (as data: which request fetches a token and how to read the answer), decoding
//! the envelope and classifying errors. Connectors do no I/O; `source` sends what they
//! prepare, so every connector is testable with pure unit tests and the published vectors.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::Connection;
use crate::plan::{ConnectorKind, HttpMethod};

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
    pub records_path: Option<Vec<String>>,
    pub total_path: Option<Vec<String>>,
    pub has_next_path: Option<Vec<String>>,
    /// The vendor's published request rate, per connection (app key).
    pub rate: Option<(u32, Duration)>,
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
    /// vendors that need one; `None` when the vendor signs every request instead.
    fn token_request(
        &self,
        now: DateTime<Utc>,
        current: Option<&Token>,
    ) -> Result<Option<PreparedRequest>, ConnectorError>;

    /// Reads a token response.
    fn parse_token(&self, now: DateTime<Utc>, body: &[u8]) -> Result<Token, ConnectorError>;

    /// What this connector knows of `endpoint`.
    fn endpoint_info(&self, endpoint: &str) -> EndpointInfo;

    /// Credential values to mask in plan output, logs and errors.
    fn secrets(&self) -> Vec<String>;
}

/// Builds the connector of `kind` from a profile connection.
pub fn build(
    kind: ConnectorKind,
    name: &str,
    connection: &Connection,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let _ = (kind, name, connection);
    unimplemented_connectors()
}

fn unimplemented_connectors() -> Result<Box<dyn Connector>, ConnectorError> {
    Err(ConnectorError::BadSetting {
        connection: String::new(),
        message: "connectors are being built".to_owned(),
    })
}

/// What connector `kind` knows of `endpoint`, without credentials (used by `check`).
pub fn endpoint_info(kind: ConnectorKind, endpoint: &str) -> EndpointInfo {
    let _ = (kind, endpoint);
    EndpointInfo::default()
}
