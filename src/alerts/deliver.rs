//! Sending one alert to one channel: the HTTP request each robot takes, how its answer is
//! judged, and the worker loop around it (rate per minute, bounded retries with backoff).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;

use super::{dingtalk_sign, Alert, ChannelConfig, Counters};

/// How a channel delivers.
#[derive(Debug, Clone, Copy)]
pub struct DeliverySettings {
    /// Retries after a failed delivery.
    pub retries: u32,
    /// First retry delay; doubles each time.
    pub backoff: Duration,
    /// Messages per minute per channel (DingTalk robots allow 20).
    pub per_minute: usize,
}

/// The client every channel shares: a robot that does not answer in 10 s counts as failed
/// (and is retried).
pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// One channel's worker: takes alerts off its queue, within its rate, retrying failures.
pub(super) struct Worker {
    name: String,
    channel: ChannelConfig,
    client: reqwest::Client,
    settings: DeliverySettings,
    counters: Arc<Counters>,
    sent_at: VecDeque<Instant>,
}

/// Why one delivery attempt failed, and whether trying again can help.
struct DeliveryError {
    message: String,
    retriable: bool,
}

impl Worker {
    pub(super) fn new(
        name: String,
        channel: ChannelConfig,
        client: reqwest::Client,
        settings: DeliverySettings,
        counters: Arc<Counters>,
    ) -> Worker {
        Worker {
            name,
            channel,
            client,
            settings,
            counters,
            sent_at: VecDeque::new(),
        }
    }

    pub(super) async fn work(mut self, mut receiver: mpsc::Receiver<Alert>) {
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
