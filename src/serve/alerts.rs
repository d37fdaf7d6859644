//! Alerts as the daemon sees them: which conditions hold, the once-then-quiet rule per
//! (spec, condition), recovery announcements, and the secrets masked in every message.
//!
//! Owns [`Alerter`]. It does not decide which conditions hold (the daemon does) and does
//! not send anything itself: delivery to DingTalk, WeCom and webhooks, with its HTTP
//! client, queues and retries, is `crate::alerts`, qsync's outbound alert wing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::clock::Clock;
pub use crate::alerts::{parse_channels, Alert, ChannelConfig, Condition};
use crate::alerts::{Channels, DeliverySettings};
/// The one secret masker (`config::mask`), re-exported for serve's callers.
pub use crate::config::mask;

/// Alert settings: the quiet period, and how channels deliver.
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
    masker: crate::config::Masker,
    channels: Channels,
    /// When each active condition last alerted.
    active: Mutex<HashMap<(String, Condition), DateTime<Utc>>>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("channels", &self.channels.len())
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
        secrets.extend(channels.iter().flat_map(ChannelConfig::secrets));
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        let delivery = DeliverySettings {
            retries: settings.retries,
            backoff: settings.backoff,
            per_minute: settings.per_minute,
        };
        let channels = Channels::start(channels, delivery);
        Alerter {
            clock,
            instance,
            settings,
            masker: crate::config::Masker::new(&secrets),
            channels,
            active: Mutex::new(HashMap::new()),
        }
    }

    /// Deliveries that succeeded and that failed for good.
    pub fn delivery_counts(&self) -> (u64, u64) {
        self.channels.delivery_counts()
    }

    /// Replaces every secret in `text` with `***`.
    pub fn mask(&self, text: &str) -> String {
        self.masker.mask(text)
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
        self.channels.send(&alert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_replaces_secrets() {
        assert_eq!(
            mask("token abc123 in url", &["abc123".to_owned()]),
            "token *** in url"
        );
    }
}
