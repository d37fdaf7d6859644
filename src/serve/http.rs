//! The daemon's HTTP surface: `/metrics`, the status page and the JSON API.
//!
//! - `GET /`: the status page (HTML, refreshes every 30 s).
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /api/specs`: every spec ([`super::SpecView`]) as JSON.
//! - `GET /api/runs?spec=NAME&limit=N`: finished runs, newest first ([`super::RunView`]);
//!   all specs when `spec` is absent; 404 for an unknown spec.
//! - `POST /api/specs/NAME/run[?remedy=true]`: queue a run now; 202, or 404 / 409 / 503.
//!
//! Owns routing and who may ask: the bearer-token check required on non-loopback
//! listeners, and on every listener the checks a browser needs against other sites
//! ([`guard`]): a `Host` that names this daemon (DNS rebinding), no state change from a
//! foreign `Origin`, and the per-process token the page's "Run now" button sends. It does
//! not own what is shown (the daemon's views, `page` for HTML).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{page, Daemon, RunKind, TriggerError};

/// The header carrying the run token on `POST /api/specs/NAME/run`.
pub(super) const RUN_TOKEN_HEADER: &str = "x-qsync-run-token";

/// The routes, behind [`authorize`] and then [`guard`]. `addr` is the bound listener.
pub(super) fn router(daemon: Arc<Daemon>, addr: SocketAddr) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/api/specs", get(specs))
        .route("/api/runs", get(runs))
        .route("/api/specs/:name/run", post(trigger))
        .layer(middleware::from_fn_with_state(daemon.clone(), authorize))
        .layer(middleware::from_fn_with_state(
            (daemon.clone(), addr),
            guard,
        ))
        .with_state(daemon)
}

/// What a browser on another site must not do:
/// - reach a loopback daemon under another name: a page of `evil.example` whose DNS
///   answer turns into 127.0.0.1 sends `Host: evil.example:PORT` (DNS rebinding); the
///   `Host` must be `localhost`, a loopback address or the listen address, with its port;
/// - change state from another origin: a `POST` whose `Origin` is not this daemon's (or
///   whose `Sec-Fetch-Site` is `cross-site`) is refused;
/// - start a run without the page: `POST /api/specs/NAME/run` needs the per-process token
///   the page embeds (header `X-Qsync-Run-Token`), or the profile's `api_token` as bearer.
async fn guard(
    State((daemon, addr)): State<(Arc<Daemon>, SocketAddr)>,
    request: Request,
    next: Next,
) -> Response {
    let refuse = |status: StatusCode, message: String| (status, message).into_response();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if addr.ip().is_loopback() && !host_is_this_daemon(host, addr) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            format!("`Host: {host}` does not name this daemon (listening on {addr})\n"),
        );
    }
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        let cross_site = request
            .headers()
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        let foreign = origin.is_some_and(|o| {
            o.split_once("://")
                .is_none_or(|(_, o)| !o.eq_ignore_ascii_case(host))
        });
        if cross_site || foreign {
            return refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "a request from another origin (`{}`) cannot change anything here\n",
                    origin.unwrap_or("cross-site")
                ),
            );
        }
        let bearer_ok = daemon.api_token.is_some(); // `authorize` has checked it
        let given = request
            .headers()
            .get(RUN_TOKEN_HEADER)
            .map_or(&b""[..], |v| v.as_bytes());
        if !bearer_ok && !constant_time_eq(given, daemon.run_token.as_bytes()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "starting a run needs the status page's run token (header \
                 `X-Qsync-Run-Token`, in the page's `qsync-run-token` meta tag)\n"
                    .to_owned(),
            );
        }
    }
    next.run(request).await
}

/// Whether `host` (a `Host` header) names the loopback daemon listening on `addr`.
fn host_is_this_daemon(host: &str, addr: SocketAddr) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => (name, Some(port)),
        _ => (host, None),
    };
    let port_ok = port.map_or(addr.port() == 80, |p| p.parse() == Ok(addr.port()));
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let name_ok = name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip == addr.ip());
    port_ok && name_ok
}

/// On non-loopback listeners every request needs `Authorization: Bearer <api_token>`.
async fn authorize(State(daemon): State<Arc<Daemon>>, request: Request, next: Next) -> Response {
    if let Some(token) = &daemon.api_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token (the profile's `api_token`) is required\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn status_page(State(daemon): State<Arc<Daemon>>) -> Html<String> {
    let specs = daemon.spec_views();
    let history: HashMap<String, Vec<super::RunView>> = specs
        .iter()
        .map(|s| {
            let runs = daemon.runs(Some(&s.name), 30).unwrap_or_default();
            (s.name.clone(), runs)
        })
        .collect();
    let failures: Vec<super::RunView> = daemon
        .runs(None, 500)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.error.is_some())
        .take(10)
        .collect();
    Html(page::render(&page::PageData {
        instance: &daemon.config.instance,
        folder: &daemon.config.folder.display().to_string(),
        zone: daemon.zone,
        now: daemon.services.clock.now(),
        started_at: daemon.started_at,
        specs: &specs,
        history: &history,
        failures: &failures,
        run_token: &daemon.run_token,
    }))
}

async fn metrics(State(daemon): State<Arc<Daemon>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        daemon.metrics(),
    )
}

async fn specs(State(daemon): State<Arc<Daemon>>) -> impl IntoResponse {
    Json(daemon.spec_views())
}

async fn runs(
    State(daemon): State<Arc<Daemon>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(50usize);
    match daemon.runs(query.get("spec").map(String::as_str), limit) {
        Some(runs) => Json(runs).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such spec" })),
        )
            .into_response(),
    }
}

async fn trigger(
    State(daemon): State<Arc<Daemon>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let kind = match query.get("remedy").map(String::as_str) {
        Some("1" | "true" | "yes") => RunKind::Remedy,
        _ => RunKind::Regular,
    };
    match daemon.trigger(&name, kind) {
        Ok(behind) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({
                "spec": name,
                "kind": kind,
                "queued": true,
                "after_current_run": behind,
            })),
        )
            .into_response(),
        Err(error) => {
            let status = match error {
                TriggerError::NotFound => StatusCode::NOT_FOUND,
                TriggerError::Broken | TriggerError::NoRemedy => StatusCode::CONFLICT,
                TriggerError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            };
            (
                status,
                Json(serde_json::json!({ "spec": name, "error": error.to_string() })),
            )
                .into_response()
        }
    }
}
