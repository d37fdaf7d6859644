//! Alert delivery: the channels of the profile's `alerts:` list and the HTTP that reaches
//! them (DingTalk custom robots, signed; WeCom group robots; generic JSON webhooks).
//!
//! This is qsync's one outbound HTTP that is not a vendor fetch. It lives here, beside
//! `source` (which sends what `connectors` prepare) and `sink` (MySQL), rather than in
//! `serve`, so that the daemon decides *when* to alert and never touches an HTTP client:
//! `serve::alerts` keeps the conditions and the once-then-quiet rule and hands each alert to
//! the [`Channels`] started here. It is not in `source` because nothing here pages, windows
//! or rate-limits by vendor rules; it is not a connector because connectors do no I/O.
//!
//! Owns the profile schema ([`ChannelConfig`]), the payload ([`Alert`]), each robot's
//! signing and answer (`deliver.rs`: the robots answer HTTP 200 and put the verdict in
//! `errcode`), and delivery that never fails the daemon: every channel has its own queue
//! and worker, so a slow or dead channel delays nothing else; failed deliveries are retried
//! a bounded number of times and logged.
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

mod deliver;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::sync::mpsc;

pub use self::deliver::DeliverySettings;

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
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ChannelConfig::Dingtalk { .. } => "dingtalk",
            ChannelConfig::Wecom { .. } => "wecom",
            ChannelConfig::Webhook { .. } => "webhook",
        }
    }

    /// Values never to print: the URL (robot tokens live in it), secrets, header values.
    pub fn secrets(&self) -> Vec<String> {
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

/// The started channels: one queue and worker each, with shared delivery counts.
#[derive(Debug)]
pub struct Channels {
    queues: Vec<mpsc::Sender<Alert>>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    failed: AtomicU64,
}

impl Channels {
    /// Starts one worker per channel on the current runtime.
    pub fn start(channels: Vec<ChannelConfig>, settings: DeliverySettings) -> Channels {
        let counters = Arc::new(Counters::default());
        let client = deliver::client();
        let queues = channels
            .into_iter()
            .enumerate()
            .map(|(index, channel)| {
                let (sender, receiver) = mpsc::channel(256);
                let worker = deliver::Worker::new(
                    format!("{} #{}", channel.kind(), index + 1),
                    channel,
                    client.clone(),
                    settings,
                    counters.clone(),
                );
                tokio::spawn(worker.work(receiver));
                sender
            })
            .collect();
        Channels { queues, counters }
    }

    /// Queues `alert` on every channel; a full or closed queue drops it and counts a failure.
    pub fn send(&self, alert: &Alert) {
        for queue in &self.queues {
            if queue.try_send(alert.clone()).is_err() {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(spec = %alert.spec, event = alert.event,
                    "alert queue full or closed; alert dropped");
            }
        }
    }

    /// How many channels there are.
    pub fn len(&self) -> usize {
        self.queues.len()
    }

    /// Whether there are no channels.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Deliveries that succeeded and that failed for good.
    pub fn delivery_counts(&self) -> (u64, u64) {
        (
            self.counters.sent.load(Ordering::Relaxed),
            self.counters.failed.load(Ordering::Relaxed),
        )
    }
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
}
