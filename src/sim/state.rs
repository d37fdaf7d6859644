//! The simulator's mutable state behind one lock: faults and their seeded dice, per-app-key
//! rate windows, issued tokens, the data store and the counters; plus the vendor-neutral
//! request gate (latency, hangs, 5xx, 429 bursts, torn bodies) every vendor handler
//! passes through. Vendor rules live in `vendors`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use super::data::{Dataset, Page, PageRequest, Store};
use super::{Faults, SimConfig, SimStats, VendorStats};
use crate::plan::ConnectorKind;

/// What a vendor handler decided.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) kind: ReplyKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    Served,
    Rejected,
    Throttled,
    Injected,
    Token,
}

impl Reply {
    pub(crate) fn new(kind: ReplyKind, status: u16, body: Value) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
            kind,
        }
    }
}

#[derive(Debug, Clone)]
struct Issued {
    vendor: ConnectorKind,
    expires: Option<Instant>,
    /// The pre-issued profile token: its expiry follows `token_ttl` when faults change.
    preissued: bool,
}

pub(crate) struct Inner {
    pub(crate) faults: Faults,
    rng: StdRng,
    pub(crate) store: Store,
    windows: HashMap<(ConnectorKind, String), VecDeque<Instant>>,
    tokens: HashMap<String, Issued>,
    refresh_tokens: HashMap<String, ConnectorKind>,
    stats: BTreeMap<&'static str, VendorStats>,
    drift_bumps: u64,
    duplicates: u64,
    burst_counters: HashMap<ConnectorKind, u64>,
    token_counter: u64,
}

pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    inner: Mutex<Inner>,
}

/// What the gate decided before the vendor handler runs.
pub(crate) enum Gate {
    Pass,
    /// Answer with this now.
    Answer(Response),
    /// Hang for this long, then answer 504.
    Hang(Duration),
}

impl Shared {
    pub(crate) fn new(config: SimConfig) -> Shared {
        let anchor = config.anchor.unwrap_or_else(Utc::now);
        let store = Store::generate(config.seed, config.records, config.span_days, anchor);
        let mut inner = Inner {
            faults: config.faults.clone(),
            rng: StdRng::seed_from_u64(config.seed ^ 0xF417_5EED),
            store,
            windows: HashMap::new(),
            tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            stats: BTreeMap::new(),
            drift_bumps: 0,
            duplicates: 0,
            burst_counters: HashMap::new(),
            token_counter: 0,
        };
        let expires = inner
            .faults
            .token_ttl
            .and_then(|ttl| Instant::now().checked_add(ttl));
        inner.tokens.insert(
            config.credentials.jst_access_token.clone(),
            Issued {
                vendor: ConnectorKind::Jushuitan,
                expires,
                preissued: true,
            },
        );
        inner.refresh_tokens.insert(
            config.credentials.jst_refresh_token.clone(),
            ConnectorKind::Jushuitan,
        );
        Shared {
            config,
            inner: Mutex::new(inner),
        }
    }

    /// The state lock; a handler that panicked cannot leave the data half-written in a
    /// way that matters to a simulator, so a poisoned lock is simply taken over.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        let mut inner = self.lock();
        let expires = faults
            .token_ttl
            .and_then(|ttl| Instant::now().checked_add(ttl));
        for issued in inner.tokens.values_mut().filter(|t| t.preissued) {
            issued.expires = expires;
        }
        inner.faults = faults;
    }

    pub(crate) fn faults(&self) -> Faults {
        self.lock().faults.clone()
    }

    pub(crate) fn truth(&self, dataset: Dataset) -> Vec<Value> {
        self.lock().store.truth(dataset)
    }

    pub(crate) fn stats(&self) -> SimStats {
        let inner = self.lock();
        SimStats {
            vendors: inner
                .stats
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            drift_bumps: inner.drift_bumps,
            duplicates: inner.duplicates,
        }
    }

    pub(crate) fn expire_tokens(&self) {
        let now = Instant::now();
        for issued in self.lock().tokens.values_mut() {
            issued.expires = Some(now);
        }
    }

    /// Vendor-neutral faults, decided under the lock; sleeping happens in `pass_gate`.
    fn gate(&self, vendor: ConnectorKind) -> (Duration, Gate) {
        let mut inner = self.lock();
        let faults = inner.faults.clone();
        inner.stats_mut(vendor).requests += 1;
        if faults.timeout_rate > 0.0 && inner.rng.gen_bool(faults.timeout_rate.min(1.0)) {
            inner.stats_mut(vendor).timeouts += 1;
            return (faults.latency, Gate::Hang(faults.hang));
        }
        if faults.error_rate > 0.0 && inner.rng.gen_bool(faults.error_rate.min(1.0)) {
            inner.stats_mut(vendor).injected_errors += 1;
            let status = if inner.rng.gen_bool(0.5) {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::BAD_GATEWAY
            };
            let answer = (status, "simulated upstream failure").into_response();
            return (faults.latency, Gate::Answer(answer));
        }
        if let Some(burst) = faults.throttle_burst.filter(|b| b.every > 0 && b.len > 0) {
            let counter = inner.burst_counters.entry(vendor).or_insert(0);
            let position = *counter % u64::from(burst.every);
            *counter += 1;
            if position < u64::from(burst.len) {
                inner.stats_mut(vendor).throttled += 1;
                let mut answer =
                    (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
                if let Ok(value) = HeaderValue::from_str(&burst.retry_after_secs.to_string()) {
                    answer.headers_mut().insert("retry-after", value);
                }
                return (faults.latency, Gate::Answer(answer));
            }
        }
        (faults.latency, Gate::Pass)
    }

    /// Runs the gate: sleeps for latency (and hangs), returns an answer when a fault fires.
    pub(crate) async fn pass_gate(&self, vendor: ConnectorKind) -> Option<Response> {
        let (latency, gate) = self.gate(vendor);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match gate {
            Gate::Pass => None,
            Gate::Answer(response) => Some(response),
            Gate::Hang(hang) => {
                tokio::time::sleep(hang).await;
                Some((StatusCode::GATEWAY_TIMEOUT, "simulated hang").into_response())
            }
        }
    }

    /// Whether a 200-with-error fault fires for this request.
    pub(crate) fn vendor_error_fires(&self, vendor: ConnectorKind) -> bool {
        let mut inner = self.lock();
        let rate = inner.faults.vendor_error_rate;
        if rate > 0.0 && inner.rng.gen_bool(rate.min(1.0)) {
            inner.stats_mut(vendor).injected_errors += 1;
            return true;
        }
        false
    }

    /// Turns a reply into a response, counting it and maybe tearing its body.
    pub(crate) fn finish(&self, vendor: ConnectorKind, reply: Reply) -> Response {
        let mut bytes = reply.body.to_string().into_bytes();
        {
            let mut inner = self.lock();
            let truncate = inner.faults.truncate_rate;
            let stats = inner.stats_mut(vendor);
            match reply.kind {
                ReplyKind::Served => stats.served += 1,
                ReplyKind::Rejected => stats.rejected += 1,
                ReplyKind::Throttled => stats.throttled += 1,
                ReplyKind::Injected => {}
                ReplyKind::Token => stats.tokens_issued += 1,
            }
            if reply.status == 200
                && reply.kind == ReplyKind::Served
                && truncate > 0.0
                && inner.rng.gen_bool(truncate.min(1.0))
            {
                inner.stats_mut(vendor).truncated += 1;
                bytes.truncate(bytes.len() / 2);
            }
        }
        let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
        let mut response = (status, bytes).into_response();
        response.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/json;charset=utf-8"),
        );
        for (name, value) in reply.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl Inner {
    pub(crate) fn stats_mut(&mut self, vendor: ConnectorKind) -> &mut VendorStats {
        self.stats.entry(vendor.keyword()).or_default()
    }

    /// Records a call of `app_key` and answers which limit (index into `limits`) it breaks,
    /// if any. Refused calls are not counted against the window.
    pub(crate) fn rate_check(
        &mut self,
        vendor: ConnectorKind,
        app_key: &str,
        limits: &[(u32, Duration)],
    ) -> Option<usize> {
        if limits.is_empty() {
            return None;
        }
        let now = Instant::now();
        let longest = limits.iter().map(|(_, per)| *per).max().unwrap_or_default();
        let window = self
            .windows
            .entry((vendor, app_key.to_owned()))
            .or_default();
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) > longest)
        {
            window.pop_front();
        }
        for (i, (requests, per)) in limits.iter().enumerate() {
            let recent = window
                .iter()
                .filter(|t| now.duration_since(**t) < *per)
                .count();
            if recent >= *requests as usize {
                return Some(i);
            }
        }
        window.push_back(now);
        None
    }

    /// Issues a token of `vendor` living `ttl`; returns (access, refresh).
    pub(crate) fn issue_token(&mut self, vendor: ConnectorKind, ttl: Duration) -> (String, String) {
        self.token_counter += 1;
        let salt: u32 = self.rng.gen();
        let access = format!("{}-tok-{}-{salt:08x}", vendor.keyword(), self.token_counter);
        let refresh = format!("{}-ref-{}-{salt:08x}", vendor.keyword(), self.token_counter);
        self.tokens.insert(
            access.clone(),
            Issued {
                vendor,
                // A lifetime too long to represent never expires.
                expires: Instant::now().checked_add(ttl),
                preissued: false,
            },
        );
        self.refresh_tokens.insert(refresh.clone(), vendor);
        (access, refresh)
    }

    pub(crate) fn token_valid(&self, vendor: ConnectorKind, token: &str) -> bool {
        self.tokens.get(token).is_some_and(|issued| {
            issued.vendor == vendor && issued.expires.is_none_or(|e| Instant::now() < e)
        })
    }

    pub(crate) fn refresh_valid(&self, vendor: ConnectorKind, token: &str) -> bool {
        self.refresh_tokens.get(token) == Some(&vendor)
    }

    /// Pages a dataset, counting drift bumps and duplicates, with the duplicate dice drawn
    /// here.
    pub(crate) fn page(
        &mut self,
        dataset: Dataset,
        mut req: PageRequest,
        now: DateTime<Utc>,
    ) -> Page {
        req.drift = self.faults.drift;
        let rate = self.faults.duplicate_rate;
        req.duplicate = rate > 0.0 && self.rng.gen_bool(rate.min(1.0));
        let page = self.store.page(dataset, req, now);
        if page.drift_bumped {
            self.drift_bumps += 1;
        }
        if page.duplicated {
            self.duplicates += 1;
        }
        page
    }
}
