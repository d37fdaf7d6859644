//! The daemon's HTTP surface: `/metrics`, the status page and the JSON API.
//!
//! - `GET /`: the status page (HTML, refreshes every 30 s).
//! - `GET /metrics`: Prometheus text exposition.
//! - `GET /api/specs`: every spec ([`super::SpecView`]) as JSON.
//! - `GET /api/runs?spec=NAME&limit=N`: finished runs, newest first ([`super::RunView`]);
//!   all specs when `spec` is absent; 404 for an unknown spec.
//! - `POST /api/specs/NAME/run[?remedy=true]`: queue a run now; 202, or 404 / 409 / 503.
//!
//! Owns routing and the bearer-token check required on non-loopback listeners. It does
//! not own what is shown (the daemon's views, `page` for HTML).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::{page, Daemon, RunKind, TriggerError};

pub(super) fn router(daemon: Arc<Daemon>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/api/specs", get(specs))
        .route("/api/runs", get(runs))
        .route("/api/specs/:name/run", post(trigger))
        .layer(middleware::from_fn_with_state(daemon.clone(), authorize))
        .with_state(daemon)
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
