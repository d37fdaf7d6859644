//! Retry decisions and backoff for vendor calls.
//!
//! Decisions sit behind [`RetryLogic`]: [`RetryLogic::should_retry_response`] turns a
//! connector's classified answer into data or a [`Failure`] (vendors answer HTTP 200 with an
//! error body, so the status alone decides nothing), and [`RetryLogic::is_retriable`] says
//! whether a failure is worth another attempt. [`Backoff`] spaces attempts: exponential from
//! the plan's base, capped, with jitter so concurrent requests do not retry in lockstep,
//! and never sooner than the vendor's `Retry-After`.
//!
//! It does not send requests or count attempts against errors (`http`).

use std::time::{Duration, SystemTime};

use rand::Rng;
use serde_json::Value;

use crate::connectors::wire::RetryAfter;
use crate::connectors::Outcome;
use crate::plan::RetryPlan;

/// Why one attempt did not produce data.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Connection refused or reset, timeout, a body that could not be read.
    Transport { message: String },
    /// The vendor throttled us (HTTP 429 or its own throttle code).
    Throttled {
        code: String,
        message: String,
        retry_after: Option<Duration>,
    },
    /// HTTP 5xx, torn or non-JSON body, the vendor's "busy, try again".
    Transient { code: String, message: String },
    /// The token was refused: refresh it, then try again.
    AuthExpired { code: String, message: String },
    /// Bad signature, no permission, bad parameters: retrying cannot help.
    Fatal { code: String, message: String },
}

impl Failure {
    /// The vendor's code, or `transport` for failures below HTTP.
    pub fn code(&self) -> &str {
        match self {
            Failure::Transport { .. } => "transport",
            Failure::Throttled { code, .. }
            | Failure::Transient { code, .. }
            | Failure::AuthExpired { code, .. }
            | Failure::Fatal { code, .. } => code,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Failure::Transport { message }
            | Failure::Throttled { message, .. }
            | Failure::Transient { message, .. }
            | Failure::AuthExpired { message, .. }
            | Failure::Fatal { message, .. } => message,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport { message } => write!(f, "transport error: {message}"),
            Failure::Throttled { code, message, .. } => {
                write!(f, "throttled (code {code}): {message}")
            }
            Failure::Transient { code, message } => write!(f, "code {code}: {message}"),
            Failure::AuthExpired { code, message } => {
                write!(f, "token refused (code {code}): {message}")
            }
            Failure::Fatal { code, message } => write!(f, "code {code}: {message}"),
        }
    }
}

/// How vendor answers and failures are judged.
pub trait RetryLogic: Send + Sync {
    /// Whether `failure` is worth another attempt (after backoff).
    fn is_retriable(&self, failure: &Failure) -> bool;

    /// Data, or the failure a classified answer stands for.
    fn should_retry_response(&self, outcome: Outcome) -> Result<Value, Failure>;
}

/// The rules every vendor shares once its connector has classified the answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct VendorRetry;

impl RetryLogic for VendorRetry {
    fn is_retriable(&self, failure: &Failure) -> bool {
        match failure {
            Failure::Transport { .. } | Failure::Throttled { .. } | Failure::Transient { .. } => {
                true
            }
            // Retried once after a token refresh, by the caller; not with backoff.
            Failure::AuthExpired { .. } | Failure::Fatal { .. } => false,
        }
    }

    fn should_retry_response(&self, outcome: Outcome) -> Result<Value, Failure> {
        match outcome {
            Outcome::Data(value) => Ok(value),
            Outcome::Throttled {
                code,
                message,
                retry_after,
            } => Err(Failure::Throttled {
                code,
                message,
                retry_after,
            }),
            Outcome::Transient { code, message } => Err(Failure::Transient { code, message }),
            Outcome::AuthExpired { code, message } => Err(Failure::AuthExpired { code, message }),
            Outcome::Fatal { code, message } => Err(Failure::Fatal { code, message }),
        }
    }
}

/// Spacing between attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(plan: &RetryPlan) -> Backoff {
        Backoff {
            base: plan.base,
            max: plan.max.max(plan.base),
        }
    }

    /// The longest pause the spec allows (`@retry ... max`): a vendor asking for a longer
    /// one fails the call instead.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The pause after failed attempt number `attempt` (1 = the first), at least
    /// `retry_after` when the vendor said so. Jitter draws from the upper half of the
    /// exponential step, so the pause never collapses to zero.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        let step = self
            .base
            .checked_mul(1 << exponent)
            .unwrap_or(self.max)
            .min(self.max);
        let nanos = u64::try_from(step.as_nanos()).unwrap_or(u64::MAX);
        let jittered = if nanos < 2 {
            step
        } else {
            Duration::from_nanos(rand::thread_rng().gen_range(nanos / 2..=nanos))
        };
        match retry_after {
            Some(after) => jittered.max(after),
            None => jittered,
        }
    }
}

/// How long a `Retry-After` header asks to wait from now, in either of its forms (read by
/// [`RetryAfter`], the one parser).
pub fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    RetryAfter::parse(headers)?.wait(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> RetryPlan {
        RetryPlan {
            attempts: 6,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }

    #[test]
    fn delays_grow_exponentially_with_jitter_and_a_cap() {
        let backoff = Backoff::new(&plan());
        for _ in 0..50 {
            let first = backoff.delay(1, None);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff.delay(3, None);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = backoff.delay(20, None);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let backoff = Backoff::new(&plan());
        assert!(backoff.delay(1, Some(Duration::from_secs(3))) >= Duration::from_secs(3));
        let headers = vec![("Retry-After".to_owned(), "2".to_owned())];
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&[("retry-after".into(), "soon".into())]), None);
    }

    #[test]
    fn classification_decides_what_is_retried() {
        let logic = VendorRetry;
        let throttled = logic
            .should_retry_response(Outcome::Throttled {
                code: "199".into(),
                message: "too fast".into(),
                retry_after: None,
            })
            .unwrap_err();
        assert!(logic.is_retriable(&throttled));
        let transient = logic
            .should_retry_response(Outcome::Transient {
                code: "http_500".into(),
                message: "x".into(),
            })
            .unwrap_err();
        assert!(logic.is_retriable(&transient));
        let fatal = logic
            .should_retry_response(Outcome::Fatal {
                code: "10".into(),
                message: "bad sign".into(),
            })
            .unwrap_err();
        assert!(!logic.is_retriable(&fatal));
        assert_eq!(fatal.to_string(), "code 10: bad sign");
        assert!(logic.is_retriable(&Failure::Transport {
            message: "reset".into()
        }));
        assert_eq!(
            logic.should_retry_response(Outcome::Data(Value::Null)),
            Ok(Value::Null)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_sleeps_pass_in_virtual_time() {
        let backoff = Backoff::new(&plan());
        let start = tokio::time::Instant::now();
        for attempt in 1..=5 {
            tokio::time::sleep(backoff.delay(attempt, None)).await;
        }
        let slept = start.elapsed();
        // 50+100+200+400+500 ms at least, 100+200+400+800+1000 at most.
        assert!(slept >= Duration::from_millis(1250) && slept <= Duration::from_millis(2500));
    }
}
