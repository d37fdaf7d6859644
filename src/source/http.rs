//! Sending one vendor call: rate limit, token, signing, reqwest, classification, retries.
//!
//! [`HttpSource`] owns, for one spec's source connection: the reqwest client (timeout from
//! the plan), the connector, the shared rate limiter, the token cache and the counters the
//! run summary reports. [`HttpSource::call`] turns an [`ApiCall`] into the decoded payload
//! or a [`SourceError`] naming spec, window, page, vendor code and message and the URL with
//! every secret masked. Paging is `pager`'s job; which failures are retried is
//! [`RetryLogic`]'s.
//!
//! Tokens: the profile's token is used first when the connector has one, else one is
//! fetched; it is cached until shortly before `expires_at`. When the vendor refuses a token
//! it is refreshed once (one refresh for all concurrent requests) and the call repeated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use super::error::SourceError;
use super::rate::RateLimiter;
use super::retry::{retry_after, Backoff, Failure, RetryLogic, VendorRetry};
use crate::connectors::{self, ApiCall, Connector, Outcome, PreparedRequest, Token};
use crate::plan::{human, HttpMethod, RetryPlan};

/// Tokens this close to expiry are replaced before use.
const TOKEN_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Waits at least this long are logged: a run that pauses for a vendor says so.
const LONG_WAIT: Duration = Duration::from_secs(5);

/// Logs a wait before a retry when it is long (the vendor's `Retry-After`, or a long
/// backoff), so that a run holding its lease is never silently asleep.
fn note_long_wait(delay: Duration, retry_after: Option<Duration>, site: &Site, attempt: u32) {
    if delay < LONG_WAIT {
        return;
    }
    let why = if retry_after.is_some_and(|wait| wait >= delay) {
        "as the vendor asks (Retry-After)"
    } else {
        "(backoff)"
    };
    tracing::warn!(spec = %site.spec, window = %site.window, page = %site.page,
        "waiting {} before attempt {} {why}", human(delay), attempt + 1);
}

/// Where a call belongs, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub spec: String,
    /// `2024-01-01 00:00:00 .. 2024-01-02 00:00:00`, or `(no window)`.
    pub window: String,
    /// `page 3`, `offset 200`, `cursor "abc"`.
    pub page: String,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "spec `{}`, window {}, {}",
            self.spec, self.window, self.page
        )
    }
}

/// Counters of one source, read into the run summary.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    pub token_fetches: AtomicU64,
}

#[derive(Debug, Default)]
struct TokenState {
    current: Option<Token>,
    profile_tried: bool,
}

/// One spec's connection to its vendor.
pub struct HttpSource {
    spec: String,
    connection: String,
    connector: Box<dyn Connector>,
    client: reqwest::Client,
    limiter: Arc<RateLimiter>,
    attempts: u32,
    backoff: Backoff,
    logic: Box<dyn RetryLogic>,
    token: tokio::sync::Mutex<TokenState>,
    /// Credentials to mask, the fetched tokens included, and the masker of all their
    /// forms, rebuilt when a token is fetched.
    secrets: Mutex<(Vec<String>, crate::config::Masker)>,
    stats: SourceStats,
    /// Bodies longer than this fail the call while they are read.
    max_response_bytes: u64,
}

impl std::fmt::Debug for HttpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("spec", &self.spec)
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

/// What `HttpSource::new` needs besides the connector.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub spec: String,
    pub connection: String,
    pub timeout: Duration,
    pub retry: RetryPlan,
    /// Profile secrets to mask besides the connector's own.
    pub secrets: Vec<String>,
    /// The largest response body read, in bytes ([`crate::config::Connection::max_response_bytes`]).
    pub max_response_bytes: u64,
}

impl HttpSource {
    pub fn new(
        connector: Box<dyn Connector>,
        limiter: Arc<RateLimiter>,
        options: SourceOptions,
    ) -> Result<HttpSource, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| SourceError::Connector {
                spec: options.spec.clone(),
                connection: options.connection.clone(),
                message: format!(
                    "connection `{}`: cannot build the HTTP client: {e}",
                    options.connection
                ),
            })?;
        let mut secrets = options.secrets;
        secrets.extend(connector.secrets());
        Ok(HttpSource {
            spec: options.spec,
            connection: options.connection,
            connector,
            client,
            limiter,
            attempts: options.retry.attempts.max(1),
            backoff: Backoff::new(&options.retry),
            logic: Box::new(VendorRetry),
            token: tokio::sync::Mutex::new(TokenState::default()),
            secrets: Mutex::new({
                let masker = crate::config::Masker::new(&secrets);
                (secrets, masker)
            }),
            stats: SourceStats::default(),
            max_response_bytes: options.max_response_bytes,
        })
    }

    pub fn stats(&self) -> &SourceStats {
        &self.stats
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// `text` with every known secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        secrets.1.mask(text)
    }

    fn remember_secret(&self, token: &Token) {
        let mut secrets = self
            .secrets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let known = secrets.0.len();
        for token in std::iter::once(&token.access_token).chain(&token.refresh_token) {
            if !secrets.0.contains(token) {
                secrets.0.push(token.clone());
            }
        }
        if secrets.0.len() != known {
            secrets.1 = crate::config::Masker::new(&secrets.0);
        }
    }

    /// Sends `call` until it yields data, retrying per the plan.
    pub async fn call(&self, call: &ApiCall, site: &Site) -> Result<Value, SourceError> {
        self.call_accepting(call, site, &|_| None).await
    }

    /// Sends `call` until it yields data that `suspect` finds nothing wrong with, retrying
    /// per the plan. `suspect` names what is wrong with an answer the connector took for
    /// data (a page without its records path may be an error envelope qsync does not know);
    /// such an answer is retried like a busy one, and fails the call when it persists.
    pub async fn call_accepting(
        &self,
        call: &ApiCall,
        site: &Site,
        suspect: &(dyn Fn(&Value) -> Option<Failure> + Sync),
    ) -> Result<Value, SourceError> {
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            attempt += 1;
            let token = self.token(site).await?;
            let request = self
                .connector
                .prepare(call, Utc::now(), token.as_ref())
                .map_err(|e| SourceError::Request {
                    at: Box::new(site.clone()),
                    message: self.mask(&e.to_string()),
                })?;
            let failure = match self.send_within_limit(&request).await {
                Ok((status, headers, body)) => {
                    let outcome = self.connector.classify(status, &headers, &body);
                    match self.logic.should_retry_response(outcome) {
                        Ok(value) => match suspect(&value) {
                            None => return Ok(value),
                            Some(failure) => failure,
                        },
                        Err(Failure::Throttled {
                            code,
                            message,
                            retry_after: None,
                        }) => Failure::Throttled {
                            code,
                            message,
                            retry_after: retry_after(&headers),
                        },
                        Err(failure) => failure,
                    }
                }
                Err(failure) => failure,
            };
            let url = || self.mask(&request.url);
            match &failure {
                Failure::AuthExpired { code, message } => {
                    if refreshed {
                        return Err(SourceError::TokenRefused {
                            at: Box::new(site.clone()),
                            code: code.clone(),
                            message: self.mask(message),
                            url: url(),
                        });
                    }
                    refreshed = true;
                    // A refusal is not a failed attempt: the call is repeated with a new token.
                    attempt -= 1;
                    self.refresh(token.as_ref(), site).await?;
                    continue;
                }
                Failure::Fatal { code, message } if !self.logic.is_retriable(&failure) => {
                    return Err(SourceError::Vendor {
                        at: Box::new(site.clone()),
                        code: code.clone(),
                        message: self.mask(message),
                        url: url(),
                    });
                }
                _ => {}
            }
            let retry_after = self.note_throttled(&failure, site);
            if !self.logic.is_retriable(&failure) || attempt >= self.attempts {
                return Err(SourceError::GaveUp {
                    at: Box::new(site.clone()),
                    attempts: attempt,
                    last: self.mask(&failure.to_string()),
                    url: url(),
                });
            }
            if let Some(wait) = retry_after.filter(|wait| *wait > self.backoff.max()) {
                return Err(SourceError::WaitTooLong {
                    at: Box::new(site.clone()),
                    wait: human(wait),
                    max: human(self.backoff.max()),
                    last: self.mask(&failure.to_string()),
                    url: url(),
                });
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let delay = self.backoff.delay(attempt, retry_after);
            note_long_wait(delay, retry_after, site, attempt);
            tracing::debug!(
                spec = %site.spec, window = %site.window, page = %site.page, attempt,
                delay_ms = delay.as_millis() as u64, "retrying: {}", self.mask(&failure.to_string())
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends a prepared request; transport failures (timeouts included) are `Failure`s.
    async fn send(
        &self,
        request: &PreparedRequest,
    ) -> Result<(u16, Vec<(String, String)>, Vec<u8>), Failure> {
        let method = match request.method {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
        };
        let mut builder = self.client.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let transport = |e: reqwest::Error| Failure::Transport {
            message: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                // reqwest's message can contain the URL; strip it, the caller adds it masked.
                e.without_url().to_string()
            },
        };
        let mut response = builder.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        // Read piece by piece against the limit: a huge body fails as soon as it passes the
        // limit, and never sits in memory whole.
        let limit = self.max_response_bytes;
        let too_large = |read: String| Failure::Fatal {
            code: "response_too_large".to_owned(),
            message: format!(
                "the response body is larger than the connection's limit of {} MiB ({read}); \
                 raise `max_response_mb` of connection `{}` in the profile, or ask for \
                 smaller pages",
                limit >> 20,
                self.connection
            ),
        };
        if let Some(length) = response.content_length().filter(|&l| l > limit) {
            return Err(too_large(format!("Content-Length {length} bytes")));
        }
        let mut body: Vec<u8> = Vec::new();
        while let Some(piece) = response.chunk().await.map_err(transport)? {
            if (body.len() + piece.len()) as u64 > limit {
                return Err(too_large(format!(
                    "{} bytes read so far",
                    body.len() + piece.len()
                )));
            }
            body.extend_from_slice(&piece);
        }
        Ok((status, headers, body))
    }

    /// The token to sign with, fetching one when needed; `None` for vendors without.
    async fn token(&self, site: &Site) -> Result<Option<Token>, SourceError> {
        let mut state = self.token.lock().await;
        let now = Utc::now();
        if let Some(token) = &state.current {
            if token.expires_at > now + TOKEN_MARGIN {
                return Ok(Some(token.clone()));
            }
        }
        if !state.profile_tried {
            state.profile_tried = true;
            if let Some(token) = self.connector.profile_token(now) {
                state.current = Some(token.clone());
                return Ok(Some(token));
            }
        }
        let current = state.current.take();
        let fresh = self.fetch_token(current.as_ref(), site).await?;
        state.current.clone_from(&fresh);
        Ok(fresh)
    }

    /// Replaces `stale` unless another request already did.
    async fn refresh(&self, stale: Option<&Token>, site: &Site) -> Result<(), SourceError> {
        let mut state = self.token.lock().await;
        if state.current.as_ref() != stale {
            return Ok(());
        }
        let fresh = self.fetch_token(stale, site).await?;
        if fresh.is_none() {
            // The vendor has no token lifecycle, yet refused: nothing to refresh.
            return Err(SourceError::Token {
                spec: self.spec.clone(),
                connection: self.connection.clone(),
                message: "the vendor refused the credentials and offers no token to refresh"
                    .to_owned(),
            });
        }
        state.current = fresh;
        Ok(())
    }

    /// Obtains a token: a refresh of `current` first, a new one when that fails.
    async fn fetch_token(
        &self,
        current: Option<&Token>,
        site: &Site,
    ) -> Result<Option<Token>, SourceError> {
        match self.fetch_token_once(current, site).await {
            Err(error) if current.is_some() => {
                tracing::warn!(spec = %self.spec, "token refresh failed ({error}); fetching a new token");
                self.fetch_token_once(None, site).await
            }
            other => other,
        }
    }

    async fn fetch_token_once(
        &self,
        current: Option<&Token>,
        site: &Site,
    ) -> Result<Option<Token>, SourceError> {
        let token_error = |message: String| SourceError::Token {
            spec: self.spec.clone(),
            connection: self.connection.clone(),
            message: self.mask(&message),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let now = Utc::now();
            let Some(request) = self
                .connector
                .token_request(now, current)
                .map_err(|e| token_error(e.to_string()))?
            else {
                return Ok(None);
            };
            self.stats.token_fetches.fetch_add(1, Ordering::Relaxed);
            // The vendor counts token calls per app key like any other call.
            let failure = match self.send_within_limit(&request).await {
                // Token endpoints throttle too (Jushuitan answers 199 from getInitToken):
                // a throttled or busy answer is retried like any other request.
                Ok((status, headers, body)) if (200..300).contains(&status) => {
                    match self.retriable(self.connector.classify(status, &headers, &body)) {
                        Some(failure) => failure,
                        None => {
                            return match self.connector.parse_token(now, &body) {
                                Ok(token) => {
                                    self.remember_secret(&token);
                                    Ok(Some(token))
                                }
                                Err(e) => Err(token_error(format!(
                                    "{e} (request {})",
                                    self.mask(&request.url)
                                ))),
                            };
                        }
                    }
                }
                Ok((status, _, body)) if status == 429 || status >= 500 => Failure::Transient {
                    code: format!("http_{status}"),
                    message: connectors::wire::snippet(&body),
                },
                Ok((status, _, body)) => {
                    return Err(token_error(format!(
                        "HTTP {status}: {} (request {})",
                        connectors::wire::snippet(&body),
                        self.mask(&request.url)
                    )))
                }
                Err(failure) => failure,
            };
            if attempt >= self.attempts {
                return Err(token_error(format!(
                    "gave up after {attempt} attempts: {failure} (window {}, {})",
                    site.window, site.page
                )));
            }
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
            let retry_after = self.note_throttled(&failure, site);
            if let Some(wait) = retry_after.filter(|wait| *wait > self.backoff.max()) {
                return Err(token_error(format!(
                    "the vendor asks to wait {} (Retry-After) before the next attempt, longer \
                     than `@retry ... max {}`: {failure} (window {}, {})",
                    human(wait),
                    human(self.backoff.max()),
                    site.window,
                    site.page
                )));
            }
            let delay = self.backoff.delay(attempt, retry_after);
            note_long_wait(delay, retry_after, site, attempt);
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends `request` holding a rate-limit permit, and counts it.
    async fn send_within_limit(
        &self,
        request: &PreparedRequest,
    ) -> Result<(u16, Vec<(String, String)>, Vec<u8>), Failure> {
        let permit = self.limiter.acquire().await;
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let sent = self.send(request).await;
        drop(permit);
        sent
    }

    /// Counts a throttled answer and tells the limiter (which may switch to answer-time
    /// spacing); returns the vendor's `Retry-After`, if any.
    fn note_throttled(&self, failure: &Failure, site: &Site) -> Option<Duration> {
        let Failure::Throttled { retry_after, .. } = failure else {
            return None;
        };
        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        if self.limiter.throttled() && !self.limiter.limits().is_empty() {
            tracing::warn!(spec = %site.spec,
                "the vendor throttled a call within the rate limit: calls are spaced by their answers from now on");
        }
        *retry_after
    }

    /// The failure to retry for a throttled or busy answer, `None` for anything else.
    fn retriable(&self, outcome: Outcome) -> Option<Failure> {
        match self.logic.should_retry_response(outcome) {
            Err(failure @ (Failure::Throttled { .. } | Failure::Transient { .. })) => Some(failure),
            _ => None,
        }
    }
}
