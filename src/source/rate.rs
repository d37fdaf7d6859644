//! Client-side rate limits: one limiter per profile connection (the vendor counts calls per
//! app key), shared by every request of every window and, in `serve`, of every spec.
//!
//! The vendor counts a call when it *arrives*, which is somewhere between our send and the
//! response. So a call holds its slot while in flight and is logged at the time its answer
//! came back; a new call may go only when, for every limit of the plan (Jushuitan: 5/s
//! *and* 100/min), the calls in flight plus those answered within the last interval leave
//! room. Any two calls `n` apart then arrive at least one interval apart whatever the
//! network or server delays, so the vendor never sees more than `n` in *any* interval (a
//! fixed-window or GCRA bucket with a burst can reach twice the rate across a boundary). A
//! small margin absorbs clock granularity.
//!
//! It does not decide what to do when the vendor throttles anyway (`retry`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::plan::RateLimit;

/// Extra spacing per limit interval.
fn margin(per: Duration) -> Duration {
    (per / 100).clamp(Duration::from_millis(2), Duration::from_millis(100))
}

#[derive(Debug, Default)]
struct Log {
    in_flight: usize,
    /// When answered calls came back, oldest first, kept for the longest interval.
    done: VecDeque<Instant>,
}

/// Every limit of one connection, applied at once.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Vec<RateLimit>,
    log: Mutex<Log>,
    /// Waiters take turns in arrival order, so no request starves.
    turn: tokio::sync::Mutex<()>,
    freed: Notify,
}

/// A slot held by one call; dropping it logs the call as answered now.
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        {
            let mut log = self.limiter.lock();
            log.in_flight = log.in_flight.saturating_sub(1);
            log.done.push_back(Instant::now());
        }
        self.limiter.freed.notify_waiters();
    }
}

/// What the next call must wait for.
enum Wait {
    Go,
    For(Duration),
    /// Every slot is held by a call in flight.
    Completion,
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
            log: Mutex::new(Log::default()),
            turn: tokio::sync::Mutex::new(()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn check(&self, log: &mut Log, now: Instant) -> Wait {
        let longest = self
            .limits
            .iter()
            .map(|l| l.per + margin(l.per))
            .max()
            .unwrap_or_default();
        while log
            .done
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= longest)
        {
            log.done.pop_front();
        }
        let mut wait = Wait::Go;
        for limit in &self.limits {
            let n = limit.requests as usize;
            let span = limit.per + margin(limit.per);
            let recent: Vec<Instant> = log
                .done
                .iter()
                .copied()
                .filter(|t| now.saturating_duration_since(*t) < span)
                .collect();
            let occupied = log.in_flight + recent.len();
            if occupied < n {
                continue;
            }
            // This many answered calls must leave the interval first.
            let leave = occupied - n + 1;
            if leave > recent.len() {
                return Wait::Completion;
            }
            let free_at = recent[leave - 1] + span;
            let d = free_at.saturating_duration_since(now);
            wait = match wait {
                Wait::For(w) => Wait::For(w.max(d)),
                _ => Wait::For(d),
            };
        }
        wait
    }

    /// Waits until a call may be sent and holds its slot until the permit is dropped
    /// (after the answer arrived).
    pub async fn acquire(&self) -> Permit<'_> {
        if self.limits.is_empty() {
            self.lock().in_flight += 1;
            return Permit { limiter: self };
        }
        let _turn = self.turn.lock().await;
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wait = {
                let mut log = self.lock();
                match self.check(&mut log, Instant::now()) {
                    Wait::Go => {
                        log.in_flight += 1;
                        return Permit { limiter: self };
                    }
                    other => other,
                }
            };
            match wait {
                Wait::For(d) => tokio::time::sleep(d).await,
                Wait::Completion | Wait::Go => notified.await,
            }
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
            drop(limiter.acquire().await);
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
                    let permit = limiter.acquire().await;
                    let at = Instant::now() - start;
                    drop(permit);
                    at
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
    async fn calls_in_flight_hold_their_slot_until_answered() {
        let limiter = Arc::new(RateLimiter::new(&[rate(2, 1)]));
        let start = Instant::now();
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        let waiter = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                drop(limiter.acquire().await);
                Instant::now() - start
            })
        };
        // Slow answers: the vendor may count them as late as they come back.
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(a);
        drop(b);
        let third = waiter.await.expect("task");
        assert!(third >= Duration::from_secs(4), "{third:?}");
        assert!(third < Duration::from_millis(4100), "{third:?}");
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
