//! Client-side rate limits: one limiter per profile connection (the vendor counts calls per
//! app key), shared by every request of every window and, in `serve`, of every spec.
//!
//! A limiter keeps the send times of recent requests and lets a request go only when every
//! limit of the plan (Jushuitan: 5/s *and* 100/min) still has room in the sliding interval
//! ending now. A sliding log never exceeds a limit in *any* interval, which a fixed-window
//! or GCRA bucket with a burst can (up to twice the rate across a boundary). A small margin
//! absorbs network jitter between our send time and the vendor's arrival time.
//!
//! It does not decide what to do when the vendor throttles anyway (`retry`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::plan::RateLimit;

/// Extra spacing per limit interval, against the vendor seeing our requests closer
/// together than we sent them.
fn margin(per: Duration) -> Duration {
    (per / 50).clamp(Duration::from_millis(5), Duration::from_millis(250))
}

/// Every limit of one connection, applied at once.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Vec<RateLimit>,
    /// Send times, oldest first, kept for the longest interval.
    sent: tokio::sync::Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    /// A limiter for `limits`; none means unlimited.
    pub fn new(limits: &[RateLimit]) -> RateLimiter {
        RateLimiter {
            limits: limits
                .iter()
                .copied()
                .filter(|l| l.requests > 0 && !l.per.is_zero())
                .collect(),
            sent: tokio::sync::Mutex::new(VecDeque::new()),
        }
    }

    /// The limits this limiter applies.
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// Requests that may usefully be in flight at once: the tightest limit's count, so a
    /// full interval's worth can be pipelined, bounded to keep memory and sockets modest.
    pub fn concurrency(&self) -> usize {
        self.limits
            .iter()
            .map(|l| l.requests as usize)
            .min()
            .unwrap_or(8)
            .clamp(1, 8)
    }

    /// Waits until a request may be sent, and counts it as sent. Waiters are served in
    /// arrival order (the lock is fair), so no request starves.
    pub async fn acquire(&self) {
        if self.limits.is_empty() {
            return;
        }
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            let longest = self
                .limits
                .iter()
                .map(|l| l.per + margin(l.per))
                .max()
                .unwrap_or_default();
            while sent
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= longest)
            {
                sent.pop_front();
            }
            let mut wait = Duration::ZERO;
            for limit in &self.limits {
                let n = limit.requests as usize;
                if sent.len() >= n {
                    // The n-th most recent send must have left the interval.
                    let oldest = sent[sent.len() - n];
                    let free_at = oldest + limit.per + margin(limit.per);
                    wait = wait.max(free_at.saturating_duration_since(now));
                }
            }
            if wait.is_zero() {
                sent.push_back(now);
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Shared per-connection limiters, created on first use from the first plan that asks.
/// `serve` shares one across specs so that specs on one app key share its budget.
#[derive(Debug, Default)]
pub struct Limiters {
    by_connection: Mutex<HashMap<String, Arc<RateLimiter>>>,
}

impl Limiters {
    pub fn new() -> Limiters {
        Limiters::default()
    }

    /// The limiter of `connection`, created from `rates` when it does not exist yet.
    pub fn get(&self, connection: &str, rates: &[RateLimit]) -> Arc<RateLimiter> {
        let mut map = self
            .by_connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(connection.to_owned())
            .or_insert_with(|| Arc::new(RateLimiter::new(rates)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32, secs: u64) -> RateLimit {
        RateLimit {
            requests,
            per: Duration::from_secs(secs),
        }
    }

    /// Sends `count` requests through `limiter` and returns their (virtual) send times.
    async fn send_times(limiter: &RateLimiter, count: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..count {
            limiter.acquire().await;
            times.push(Instant::now() - start);
        }
        times
    }

    fn max_in_any(times: &[Duration], per: Duration) -> usize {
        times
            .iter()
            .map(|t| times.iter().filter(|u| **u >= *t && **u < *t + per).count())
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn every_limit_applies_at_once() {
        let limiter = RateLimiter::new(&[rate(5, 1), rate(20, 60)]);
        let times = send_times(&limiter, 30).await;
        assert!(max_in_any(&times, Duration::from_secs(1)) <= 5);
        assert!(max_in_any(&times, Duration::from_secs(60)) <= 20);
        // The first five go at once; the 21st waits for the minute to pass.
        assert_eq!(times[4], Duration::ZERO);
        assert!(times[20] >= Duration::from_secs(60), "{:?}", times[20]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_one_budget() {
        let limiter = Arc::new(RateLimiter::new(&[rate(4, 1)]));
        let start = Instant::now();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    limiter.acquire().await;
                    Instant::now() - start
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.expect("task"));
        }
        times.sort();
        assert!(max_in_any(&times, Duration::from_secs(1)) <= 4);
        assert!(times[11] >= Duration::from_secs(2));
        assert!(times[11] < Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_never_wait() {
        let limiter = RateLimiter::new(&[]);
        let times = send_times(&limiter, 100).await;
        assert!(times.iter().all(|t| t.is_zero()));
        assert_eq!(limiter.concurrency(), 8);
    }

    #[test]
    fn limiters_are_shared_per_connection() {
        let limiters = Limiters::new();
        let a = limiters.get("jst", &[rate(5, 1)]);
        let b = limiters.get("jst", &[rate(50, 1)]);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.limits()[0].requests, 5);
        let c = limiters.get("wdt", &[rate(50, 1)]);
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
