//! Alerts: channels from the profile, deduplication, and delivery that never fails the daemon.
//!
//! Owns the profile's `alerts:` schema, the once-then-quiet rule per (spec, condition), and
//! sending to DingTalk custom robots (signed), WeCom group robots and generic JSON webhooks.
//! Every channel has its own queue and worker, so a slow or dead channel delays nothing
//! else; failed deliveries are retried a bounded number of times and logged. It does not
//! decide which conditions hold (the daemon does).
//!
//! Profile schema (`qsync.yaml`):
//!
//! ```yaml
//! alerts:
//!   - kind: dingtalk          # DingTalk custom robot
//!     url: https://oapi.dingtalk.com/robot/send?access_token=...
//!     secret: SEC...          # optional: the robot's signing secret ("加签")
//!   - kind: wecom             # WeCom (企业微信) group robot
//!     url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
//!   - kind: webhook           # any endpoint taking a JSON POST
//!     url: https://ops.example.com/hooks/qsync
//!     headers: { X-Token: ... }   # optional extra headers
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::clock::Clock;
/// The one secret masker (`config::mask`), re-exported for serve's callers.
pub use crate::config::mask;

/// One entry of the profile's `alerts:` list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChannelConfig {
    Dingtalk {
        url: String,
        #[serde(default)]
        secret: Option<String>,
    },
    Wecom {
        url: String,
    },
    Webhook {
        url: String,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

impl ChannelConfig {
    fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Dingtalk { .. } => "dingtalk",
            ChannelConfig::Wecom { .. } => "wecom",
            ChannelConfig::Webhook { .. } => "webhook",
        }
    }

    /// Values never to print: the URL (robot tokens live in it), secrets, header values.
    fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            ChannelConfig::Dingtalk { url, secret } => {
                out.extend(query_values(url));
                out.extend(secret.clone());
            }
            ChannelConfig::Wecom { url } => out.extend(query_values(url)),
            ChannelConfig::Webhook { url, headers } => {
                out.extend(query_values(url));
                out.extend(headers.values().cloned());
            }
        }
        out.retain(|s| s.len() >= 4);
        out
    }
}

fn query_values(url: &str) -> Vec<String> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().map(|(_, v)| v.into_owned()).collect())
        .unwrap_or_default()
}

/// Parses the profile's `alerts:` list; the error names the entry and what is wrong.
pub fn parse_channels(values: &[serde_yaml::Value]) -> Result<Vec<ChannelConfig>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let channel: ChannelConfig = serde_yaml::from_value(value.clone()).map_err(|e| {
                format!(
                    "alert channel #{} is not valid: {e} (expected `kind: dingtalk | wecom | \
                     webhook` with `url`, and `secret` for signed DingTalk robots)",
                    i + 1
                )
            })?;
            let url = match &channel {
                ChannelConfig::Dingtalk { url, .. }
                | ChannelConfig::Wecom { url }
                | ChannelConfig::Webhook { url, .. } => url,
            };
            if url::Url::parse(url).is_err() {
                return Err(format!("alert channel #{} has a bad `url`", i + 1));
            }
            Ok(channel)
        })
        .collect()
}

/// The DingTalk signature of `timestamp_ms`: base64(HMAC-SHA256(secret, "ts\nsecret")),
/// URL-encoded.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    let to_sign = format!("{timestamp_ms}\n{secret}");
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC accepts keys of any length; unreachable in practice.
        return String::new();
    };
    mac.update(to_sign.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    form_urlencoded::byte_serialize(signature.as_bytes()).collect()
}

/// A condition that alerts once, stays quiet, and announces its recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    RunFailed,
    SpecBroken,
    Lag,
    Rejects,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::RunFailed => "run_failed",
            Condition::SpecBroken => "spec_broken",
            Condition::Lag => "lag",
            Condition::Rejects => "rejects",
        }
    }
}

/// One alert as sent to webhooks (DingTalk and WeCom get `text`).
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `run_failed`, `spec_broken`, `lag`, `rejects` or `recovered`.
    pub event: &'static str,
    pub condition: Condition,
    pub spec: String,
    pub instance: String,
    pub message: String,
    pub time: DateTime<Utc>,
    /// The one-line text for chat robots.
    pub text: String,
}

/// Delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct AlertSettings {
    /// After an alert, the same condition stays quiet this long.
    pub quiet: Duration,
    /// Retries after a failed delivery.
    pub retries: u32,
    /// First retry delay; doubles each time.
    pub backoff: Duration,
    /// Messages per minute per channel (DingTalk robots allow 20).
    pub per_minute: usize,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            quiet: Duration::from_secs(3600),
            retries: 3,
            backoff: Duration::from_secs(2),
            per_minute: 20,
        }
    }
}

/// Raises and resolves conditions and feeds the channel workers.
pub struct Alerter {
    clock: Arc<dyn Clock>,
    instance: String,
    settings: AlertSettings,
    secrets: Vec<String>,
    queues: Vec<mpsc::Sender<Alert>>,
    /// When each active condition last alerted.
    active: Mutex<HashMap<(String, Condition), DateTime<Utc>>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("channels", &self.queues.len())
            .finish_non_exhaustive()
    }
}

impl Alerter {
    /// Starts one worker per channel on the current runtime. `secrets` are masked in every
    /// message.
    pub fn start(
        channels: Vec<ChannelConfig>,
        clock: Arc<dyn Clock>,
        instance: String,
        settings: AlertSettings,
        mut secrets: Vec<String>,
    ) -> Alerter {
        let counters = Arc::new(Counters::default());
        secrets.extend(channels.iter().flat_map(ChannelConfig::secrets));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let queues = channels
            .into_iter()
            .enumerate()
            .map(|(index, channel)| {
                let (sender, receiver) = mpsc::channel(256);
                let worker = Worker {
                    name: format!("{} #{}", channel.kind(), index + 1),
                    channel,
                    client: client.clone(),
                    settings,
                    counters: counters.clone(),
                    sent_at: VecDeque::new(),
                };
                tokio::spawn(worker.work(receiver));
                sender
            })
            .collect();
        Alerter {
            clock,
            instance,
            settings,
            secrets,
            queues,
            active: Mutex::new(HashMap::new()),
            counters,
        }
    }

    /// Deliveries that succeeded and that failed for good.
    pub fn delivery_counts(&self) -> (u64, u64) {
        (
            self.counters.sent.load(Ordering::Relaxed),
            self.counters.failed.load(Ordering::Relaxed),
        )
    }

    /// Replaces every secret in `text` with `***`.
    pub fn mask(&self, text: &str) -> String {
        mask(text, &self.secrets)
    }

    /// `condition` holds for `spec`: alerts unless it already did within the quiet period.
    /// Returns whether an alert was queued.
    pub fn raise(&self, spec: &str, condition: Condition, message: &str) -> bool {
        let now = self.clock.now();
        let quiet = chrono::Duration::from_std(self.settings.quiet).unwrap_or_default();
        {
            let Ok(mut active) = self.active.lock() else {
                return false;
            };
            let key = (spec.to_owned(), condition);
            if let Some(last) = active.get(&key) {
                if now - *last < quiet {
                    return false;
                }
            }
            active.insert(key, now);
        }
        self.send(condition.as_str(), condition, spec, message);
        true
    }

    /// `condition` no longer holds for `spec`: announces the recovery if it had alerted.
    pub fn resolve(&self, spec: &str, condition: Condition, message: &str) -> bool {
        let was_active = self
            .active
            .lock()
            .map(|mut active| active.remove(&(spec.to_owned(), condition)).is_some())
            .unwrap_or(false);
        if was_active {
            self.send("recovered", condition, spec, message);
        }
        was_active
    }

    /// Whether `condition` is currently alerting for `spec`.
    pub fn is_active(&self, spec: &str, condition: Condition) -> bool {
        self.active
            .lock()
            .map(|active| active.contains_key(&(spec.to_owned(), condition)))
            .unwrap_or(false)
    }

    fn send(&self, event: &'static str, condition: Condition, spec: &str, message: &str) {
        let message = self.mask(message);
        let headline = match event {
            "recovered" => format!("recovered ({})", condition.as_str().replace('_', " ")),
            other => other.replace('_', " "),
        };
        let text = format!("[qsync] {spec}: {headline} on {}\n{message}", self.instance);
        let alert = Alert {
            event,
            condition,
            spec: spec.to_owned(),
            instance: self.instance.clone(),
            message,
            time: self.clock.now(),
            text,
        };
        tracing::warn!(spec, event, "alert: {}", alert.message);
        for queue in &self.queues {
            if queue.try_send(alert.clone()).is_err() {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(spec, event, "alert queue full or closed; alert dropped");
            }
        }
    }
}

struct Worker {
    name: String,
    channel: ChannelConfig,
    client: reqwest::Client,
    settings: AlertSettings,
    counters: Arc<Counters>,
    sent_at: VecDeque<Instant>,
}

/// Why one delivery attempt failed, and whether trying again can help.
struct DeliveryError {
    message: String,
    retriable: bool,
}

impl Worker {
    async fn work(mut self, mut receiver: mpsc::Receiver<Alert>) {
        while let Some(alert) = receiver.recv().await {
            self.throttle().await;
            let mut delay = self.settings.backoff;
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.deliver(&alert).await {
                    Ok(()) => {
                        self.counters.sent.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(channel = %self.name, spec = %alert.spec, event = alert.event, "alert delivered");
                        break;
                    }
                    Err(error) if error.retriable && attempt <= self.settings.retries => {
                        tracing::warn!(channel = %self.name, attempt, "alert delivery failed, retrying: {}", error.message);
                        tokio::time::sleep(delay).await;
                        delay = delay.saturating_mul(2);
                    }
                    Err(error) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(channel = %self.name, attempt, spec = %alert.spec, "alert not delivered: {}", error.message);
                        break;
                    }
                }
            }
        }
    }

    /// Waits until sending stays within `per_minute` over the last minute.
    async fn throttle(&mut self) {
        let minute = Duration::from_secs(60);
        while let Some(first) = self.sent_at.front() {
            if first.elapsed() >= minute {
                self.sent_at.pop_front();
            } else {
                break;
            }
        }
        if self.settings.per_minute > 0 && self.sent_at.len() >= self.settings.per_minute {
            if let Some(first) = self.sent_at.front() {
                tokio::time::sleep(minute.saturating_sub(first.elapsed())).await;
            }
            self.sent_at.pop_front();
        }
        self.sent_at.push_back(Instant::now());
    }

    async fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let request = match &self.channel {
            ChannelConfig::Dingtalk { url, secret } => {
                let url = match secret {
                    Some(secret) => {
                        let timestamp = Utc::now().timestamp_millis();
                        let sign = dingtalk_sign(secret, timestamp);
                        let joiner = if url.contains('?') { '&' } else { '?' };
                        format!("{url}{joiner}timestamp={timestamp}&sign={sign}")
                    }
                    None => url.clone(),
                };
                self.client.post(url).json(&serde_json::json!({
                    "msgtype": "text",
                    "text": { "content": alert.text },
                    "at": { "atMobiles": [], "isAtAll": false },
                }))
            }
            ChannelConfig::Wecom { url } => self.client.post(url).json(&serde_json::json!({
                "msgtype": "text",
                "text": { "content": alert.text },
            })),
            ChannelConfig::Webhook { url, headers } => {
                let mut request = self.client.post(url).json(alert);
                for (key, value) in headers {
                    request = request.header(key, value);
                }
                request
            }
        };
        let response = request.send().await.map_err(|e| DeliveryError {
            message: format!("request failed: {}", e.without_url()),
            retriable: true,
        })?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(DeliveryError {
                message: format!("HTTP {status}: {}", truncate(&body)),
                retriable: status.is_server_error() || status.as_u16() == 429,
            });
        }
        if matches!(
            self.channel,
            ChannelConfig::Dingtalk { .. } | ChannelConfig::Wecom { .. }
        ) {
            // Both robots answer HTTP 200 and put the verdict in `errcode`.
            let verdict: serde_json::Value =
                serde_json::from_str(&body).map_err(|_| DeliveryError {
                    message: format!("answer is not JSON: {}", truncate(&body)),
                    retriable: true,
                })?;
            let code = verdict
                .get("errcode")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(-1);
            if code != 0 {
                let errmsg = verdict
                    .get("errmsg")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                return Err(DeliveryError {
                    message: format!("errcode {code}: {errmsg}"),
                    // 310000 (bad sign, keyword, IP whitelist) will not fix itself; over
                    // limit (90030, 130101, WeCom 45009) and unknown codes may.
                    retriable: code != 310_000 && code != 93_000,
                });
            }
        }
        Ok(())
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dingtalk_signature_matches_the_protocol_vector() {
        assert_eq!(
            dingtalk_sign("SECxxxxxxxx", 1_700_000_000_000),
            "wdiikfA5ejCHGq%2B0qIy%2BJmIKPDM2cLfvaZZ5oc3nV5o%3D"
        );
    }

    #[test]
    fn channels_parse_and_reject_unknown_kinds() {
        let values: Vec<serde_yaml::Value> = serde_yaml::from_str(
            "- kind: dingtalk\n  url: http://127.0.0.1/robot/send?access_token=abcd\n  secret: SEC1\n\
             - kind: wecom\n  url: http://127.0.0.1/cgi-bin/webhook/send?key=k123\n\
             - kind: webhook\n  url: http://127.0.0.1/hook\n",
        )
        .unwrap();
        let channels = parse_channels(&values).unwrap();
        assert_eq!(channels.len(), 3);
        assert_eq!(
            channels[0].secrets(),
            vec!["abcd".to_owned(), "SEC1".to_owned()]
        );
        let bad: Vec<serde_yaml::Value> =
            serde_yaml::from_str("- kind: slack\n  url: http://x\n").unwrap();
        let err = parse_channels(&bad).unwrap_err();
        assert!(err.contains("alert channel #1"), "{err}");
    }

    #[test]
    fn masking_replaces_secrets() {
        assert_eq!(
            mask("token abc123 in url", &["abc123".to_owned()]),
            "token *** in url"
        );
    }
}
