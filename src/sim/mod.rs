//! The vendor API simulator: one loopback HTTP server that behaves, as far as qsync can
//! tell, like every supported vendor at once — signatures and timestamps verified, tokens
//! issued and expired, page-size and window limits enforced with each vendor's own error
//! bodies, rate limits, and injectable faults (latency, 5xx, 200-with-error, 429 bursts,
//! hangs, torn bodies, drift, duplicates). Tests and demos (`qsync sim`) use it; it owns
//! no connector logic beyond reusing the published signing functions on what it receives.
//!
//! URL layout (`base_url` of each profile connection, see [`SimHandle::base_url`]):
//!
//! | vendor | base_url | paths served |
//! |---|---|---|
//! | jushuitan | `http://HOST/jushuitan` | `/open/refund/single/query`, `/open/orders/out/simple/query`, `/openWeb/auth/getInitToken`, `/openWeb/auth/refreshToken` |
//! | qimen | `http://HOST/qimen/router/qimen/service` | methods `jushuitan.refund.list.query`, `wdt.aftersales.refund.refund.search` |
//! | jikeyun | `http://HOST/jikeyun/open/openapi/do` | method `erp.warehouse.get` |
//! | wdt | `http://HOST/wdt/openapi` | method `aftersales.refund.Refund.search` |
//! | dingtalk_yida | `http://HOST/dingtalk` | `/v1.0/oauth2/accessToken`, `/v1.0/yida/processes/instances` |
//! | http | `http://HOST/http` | `GET /api/v1/orders?updated_since&updated_until&page&per_page&ts&sign` |
//!
//! Control: `GET /_sim/truth/<dataset>` (JSON array, see [`Dataset::name`]),
//! `POST /_sim/faults` (a [`Faults`] as JSON), `GET /_sim/stats` ([`SimStats`]).

mod data;
mod state;
mod vendors;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use data::Dataset;

use crate::plan::ConnectorKind;
use state::Shared;

/// The signing template that the `http` connector needs for the simulator's generic API
/// (`sign_algorithm: md5`, `sign_case: upper`, `sign_param: sign`, `timestamp_param: ts`).
pub const HTTP_SIGN_TEMPLATE: &str =
    "{% for p in params %}{{ p[0] }}={{ p[1] }}&{% endfor %}key={{ secret }}";

/// Credentials the simulator accepts. Defaults are fixed so profiles can be written once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimCredentials {
    /// Jushuitan, Qimen, Jackyun, DingTalk and http share one app key and secret.
    pub app_key: String,
    pub app_secret: String,
    /// A pre-issued Jushuitan token and its refresh token (profile `access_token`).
    pub jst_access_token: String,
    pub jst_refresh_token: String,
    /// Qimen: the routed app key and the Jushuitan merchant link id.
    pub qimen_target_app_key: String,
    pub qimen_customer_id: String,
    /// WDT direct (and the inner WDT credentials of Qimen WDT calls).
    pub wdt_sid: String,
    pub wdt_app_key: String,
    pub wdt_secret: String,
    pub wdt_salt: String,
    /// Yida body credentials.
    pub yida_app_type: String,
    pub yida_system_token: String,
    pub yida_form_uuid: String,
}

impl Default for SimCredentials {
    fn default() -> Self {
        SimCredentials {
            app_key: "sim-app".to_owned(),
            app_secret: "sim-secret".to_owned(),
            jst_access_token: "sim-jst-access-token".to_owned(),
            jst_refresh_token: "sim-jst-refresh-token".to_owned(),
            qimen_target_app_key: "23060081".to_owned(),
            qimen_customer_id: "sim-customer".to_owned(),
            wdt_sid: "sim-sid".to_owned(),
            wdt_app_key: "sim-wdt-key".to_owned(),
            wdt_secret: "sim-wdt-secret".to_owned(),
            wdt_salt: "sim-wdt-salt".to_owned(),
            yida_app_type: "APP_SIM".to_owned(),
            yida_system_token: "sim-system-token".to_owned(),
            yida_form_uuid: "FORM-SIM-EXPENSE".to_owned(),
        }
    }
}

/// A run of HTTP 429 answers: of every `every` requests (per vendor), the first `len`
/// are answered 429 with `Retry-After: retry_after_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ThrottleBurst {
    pub every: u32,
    pub len: u32,
    pub retry_after_secs: u64,
}

/// Injected faults; all off by default. Changeable at run time ([`SimHandle::set_faults`],
/// `POST /_sim/faults`). Probabilities are per request, drawn from the seeded generator.
/// In JSON, `latency` and `hang` are milliseconds and `token_ttl` seconds (fractions
/// allowed); missing fields take their defaults, e.g. `{"error_rate": 0.1, "drift": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Added before every answer.
    #[serde(with = "millis")]
    pub latency: Duration,
    /// HTTP 500/502 with a plain-text body.
    pub error_rate: f64,
    /// HTTP 200 (DingTalk 403, http 503) with the vendor's retryable error body.
    pub vendor_error_rate: f64,
    pub throttle_burst: Option<ThrottleBurst>,
    /// Requests that hang for `hang` (longer than any sane client timeout), then 504.
    pub timeout_rate: f64,
    #[serde(with = "millis")]
    pub hang: Duration,
    /// 200 answers cut in half (a torn body).
    pub truncate_rate: f64,
    /// Page shift: see the module doc of `data` and [`SimStats::drift_bumps`].
    pub drift: bool,
    /// A later page repeats the previous page's last record.
    pub duplicate_rate: f64,
    /// Lifetime of issued tokens (and of the pre-issued Jushuitan token, counted from
    /// when it is set); vendor default when `None`.
    #[serde(with = "opt_secs")]
    pub token_ttl: Option<Duration>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            latency: Duration::ZERO,
            error_rate: 0.0,
            vendor_error_rate: 0.0,
            throttle_burst: None,
            timeout_rate: 0.0,
            hang: Duration::from_secs(30),
            truncate_rate: 0.0,
            drift: false,
            duplicate_rate: 0.0,
            token_ttl: None,
        }
    }
}

/// Per-vendor request limits enforced when [`SimConfig::rates`] is on: `(requests, per)`;
/// every limit applies at once. Defaults are the published figures where known.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub jushuitan: Vec<(u32, Duration)>,
    pub qimen: Vec<(u32, Duration)>,
    pub jikeyun: Vec<(u32, Duration)>,
    pub wdt: Vec<(u32, Duration)>,
    pub dingtalk: Vec<(u32, Duration)>,
    pub http: Vec<(u32, Duration)>,
}

impl Default for Limits {
    fn default() -> Self {
        let sec = Duration::from_secs(1);
        let min = Duration::from_secs(60);
        Limits {
            jushuitan: vec![(5, sec), (100, min)],
            qimen: vec![(40, sec)],
            jikeyun: vec![(10, sec)],
            wdt: vec![(600, min)],
            dingtalk: vec![(20, sec)],
            http: vec![(10, sec)],
        }
    }
}

impl Limits {
    pub fn of(&self, vendor: ConnectorKind) -> &[(u32, Duration)] {
        match vendor {
            ConnectorKind::Jushuitan => &self.jushuitan,
            ConnectorKind::Qimen => &self.qimen,
            ConnectorKind::Jikeyun => &self.jikeyun,
            ConnectorKind::Wdt => &self.wdt,
            ConnectorKind::DingtalkYida => &self.dingtalk,
            ConnectorKind::Http => &self.http,
        }
    }
}

/// Page-size caps the simulator enforces (vendor error above them).
pub const MAX_PAGE_JST: usize = 50;
pub const MAX_PAGE_QIMEN_JST: usize = 100;
pub const MAX_PAGE_WDT: usize = 200;
pub const MAX_PAGE_JIKEYUN: usize = 200;
pub const MAX_PAGE_YIDA: usize = 100;
pub const MAX_PAGE_HTTP: usize = 100;

/// The simulator's configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds the datasets and every fault draw.
    pub seed: u64,
    /// Records per dataset.
    pub records: usize,
    /// Modified times spread over this many days before `anchor`.
    pub span_days: i64,
    /// The time the data is generated relative to (default: the start time).
    pub anchor: Option<DateTime<Utc>>,
    pub credentials: SimCredentials,
    pub faults: Faults,
    /// Enforce `limits`.
    pub rates: bool,
    pub limits: Limits,
    /// Jackyun success `code` (200 or 0).
    pub jikeyun_success_code: i64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            records: 120,
            span_days: 5,
            anchor: None,
            credentials: SimCredentials::default(),
            faults: Faults::default(),
            rates: false,
            limits: Limits::default(),
            jikeyun_success_code: 200,
        }
    }
}

/// Counters of one vendor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VendorStats {
    pub requests: u64,
    /// Answered with data.
    pub served: u64,
    /// Refused: bad sign, stale timestamp, bad token, bad app key, bad params.
    pub rejected: u64,
    /// Refused by a rate limit or a 429 burst.
    pub throttled: u64,
    /// 5xx and 200-with-error faults injected.
    pub injected_errors: u64,
    pub timeouts: u64,
    pub truncated: u64,
    pub tokens_issued: u64,
}

/// Counters of the whole simulator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SimStats {
    /// Keyed by vendor keyword (`jushuitan`, `qimen`, ...).
    pub vendors: BTreeMap<String, VendorStats>,
    /// Records whose modified time was bumped while their window was being paged.
    pub drift_bumps: u64,
    /// Records repeated across a page boundary.
    pub duplicates: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("simulator cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running simulator. Dropping it leaves the server running until the runtime ends;
/// call [`SimHandle::shutdown`] to stop it.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts the simulator on `listen` (use `127.0.0.1:0` for a free port).
pub async fn start(config: SimConfig, listen: SocketAddr) -> Result<SimHandle, SimError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SimError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        addr: listen,
        source,
    })?;
    let shared = Arc::new(Shared::new(config));
    let app = router(shared.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, app).with_graceful_shutdown(async {
            let _ = stopped.await;
        });
        if let Err(e) = server.await {
            tracing::error!("simulator stopped: {e}");
        }
    });
    Ok(SimHandle {
        addr,
        shared,
        stop,
        task,
    })
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `base_url` a profile connection of `vendor` should use.
    pub fn base_url(&self, vendor: ConnectorKind) -> String {
        let prefix = match vendor {
            ConnectorKind::Jushuitan => "/jushuitan",
            ConnectorKind::Qimen => "/qimen/router/qimen/service",
            ConnectorKind::Jikeyun => "/jikeyun/open/openapi/do",
            ConnectorKind::Wdt => "/wdt/openapi",
            ConnectorKind::DingtalkYida => "/dingtalk",
            ConnectorKind::Http => "/http",
        };
        format!("http://{}{prefix}", self.addr)
    }

    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// Every record's latest version (drift bumps included), ordered by id.
    pub fn truth(&self, dataset: Dataset) -> Vec<serde_json::Value> {
        self.shared.truth(dataset)
    }

    pub fn stats(&self) -> SimStats {
        self.shared.stats()
    }

    /// Expires every issued token now (the next call with one gets the vendor's
    /// expired-token answer).
    pub fn expire_tokens(&self) {
        self.shared.expire_tokens();
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/jushuitan/*path", post(vendors::jushuitan::serve))
        .route(
            "/qimen/router/qimen/service",
            post(vendors::qimen::serve).get(vendors::qimen::serve),
        )
        .route("/jikeyun/open/openapi/do", post(vendors::jikeyun::serve))
        .route("/wdt/openapi", post(vendors::wdt::serve))
        .route(
            "/dingtalk/v1.0/oauth2/accessToken",
            post(vendors::dingtalk_yida::token),
        )
        .route(
            "/dingtalk/v1.0/yida/processes/instances",
            post(vendors::dingtalk_yida::instances),
        )
        .route("/http/api/v1/orders", get(vendors::http::orders))
        .route("/_sim/truth/:dataset", get(control_truth))
        .route("/_sim/faults", post(control_faults).get(control_get_faults))
        .route("/_sim/stats", get(control_stats))
        .with_state(shared)
}

async fn control_truth(State(sim): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match Dataset::from_name(&name) {
        Some(dataset) => Json(sim.truth(dataset)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            format!(
                "unknown dataset `{name}`; known: {}",
                Dataset::ALL.map(Dataset::name).join(", ")
            ),
        )
            .into_response(),
    }
}

async fn control_faults(State(sim): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Response {
    sim.set_faults(faults.clone());
    Json(faults).into_response()
}

async fn control_get_faults(State(sim): State<Arc<Shared>>) -> Response {
    Json(sim.faults()).into_response()
}

async fn control_stats(State(sim): State<Arc<Shared>>) -> Response {
    Json(sim.stats()).into_response()
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(d)?;
        Ok(secs
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e12)
            .map(Duration::from_secs_f64))
    }
}
