//! Client-side rate limits: one limiter per profile connection (the vendor counts calls per
//! app key), shared by every request of every window and, in `serve`, of every spec.
//!
//! A new call may go only when, for every limit of the plan (Jushuitan: 5/s *and* 100/min),
//! the calls logged within the last interval leave room; a small margin absorbs clock
//! granularity. Logged calls form a sliding log, not a bucket: a fixed-window or GCRA bucket
//! with a burst can reach twice the rate across a boundary.
//!
//! The vendor counts a call when it *arrives*, somewhere between our send and its answer,
//! and we cannot see when. Two ways to log a call:
//! - at its **answer** time, holding its slot while in flight (`by answer`): any two calls
//!   `n` apart then arrive at least one interval apart whatever the delays, at the price of
//!   one round trip per interval (5% at 50 ms and 1/s). The default where the vendor
//!   punishes an overrun (Qimen bans the app key for a while, WDT asks to wait 5–10 minutes);
//! - at its **send** time (`by send`): the vendor sees exactly the limit when delays are
//!   steady, and a rate-bound sync runs at the limit; a send delayed by a busy machine can
//!   land one call over it. The default where an overrun costs one refused call
//!   (Jushuitan, Jikeyun, Yida, plain HTTP APIs): see `connectors::spaces_rate_by_send`.
//!
//! A `by send` limiter switches to answer-time spacing for good the first time the vendor
//! throttles one of its calls ([`RateLimiter::throttled`]): uneven delays made the vendor
//! see more than we sent, so from then on we leave it no chance. It does not decide what
//! to do with the throttled call itself (`retry`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::plan::RateLimit;

/// Extra spacing per limit interval. Answer-time spacing needs only to absorb clock
/// granularity (1%); send-time spacing also a send delayed by a busy machine (the permit is
/// logged a little before the request leaves), hence 2.5%.
fn margin(per: Duration, by_answer: bool) -> Duration {
    let share = if by_answer { 100 } else { 40 };
    (per / share).clamp(Duration::from_millis(2), Duration::from_millis(250))
}

#[derive(Debug, Default)]
struct Log {
    /// Calls sent and not yet answered that are not in `done` (answer-time spacing).
    in_flight: usize,
    /// When logged calls were sent or answered, oldest first, kept for the longest interval.
    done: VecDeque<Instant>,
}

impl Log {
    /// Logs a call at `at`, keeping `done` in order (answers can come back out of order
    /// with the send times logged before a switch to answer-time spacing).
    fn log(&mut self, at: Instant) {
        let position = self.done.partition_point(|t| *t <= at);
        self.done.insert(position, at);
    }
}

/// Every limit of one connection, applied at once.
#[derive(Debug)]
pub struct RateLimiter {
    limits: Vec<RateLimit>,
    log: Mutex<Log>,
    /// Log calls at their answer, holding the slot while in flight (after a throttle).
    by_answer: AtomicBool,
    /// Waiters take turns in arrival order, so no request starves.
    turn: tokio::sync::Mutex<()>,
    freed: Notify,
}

/// The right to send one call. Under answer-time spacing it holds a slot until dropped
/// (after the answer arrived), which logs the call then.
#[derive(Debug)]
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
    holds_slot: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.holds_slot {
            return;
        }
        {
            let mut log = self.limiter.lock();
            log.in_flight = log.in_flight.saturating_sub(1);
            log.log(Instant::now());
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
    /// A limiter for `limits` (none means unlimited), logging calls at their send when
    /// `by_send`, else at their answer.
    pub fn new(limits: &[RateLimit], by_send: bool) -> RateLimiter {
        RateLimiter {
            limits: limits
                .iter()
                .copied()
                .filter(|l| l.requests > 0 && !l.per.is_zero())
                .collect(),
            log: Mutex::new(Log::default()),
            by_answer: AtomicBool::new(!by_send),
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

    /// The vendor throttled a call despite the limits: log calls at their answer from now
    /// on. Returns whether this call made the switch (only a `by send` limiter switches).
    pub fn throttled(&self) -> bool {
        !self.by_answer.swap(true, Ordering::Relaxed)
    }

    /// Whether calls are logged at their answer (after a throttle) rather than their send.
    pub fn spaces_by_answer(&self) -> bool {
        self.by_answer.load(Ordering::Relaxed)
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
        let by_answer = self.spaces_by_answer();
        let longest = self
            .limits
            .iter()
            .map(|l| l.per + margin(l.per, by_answer))
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
            let span = limit.per + margin(limit.per, by_answer);
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

    /// Waits until a call may be sent; drop the permit once its answer arrived.
    pub async fn acquire(&self) -> Permit<'_> {
        if self.limits.is_empty() {
            return Permit {
                limiter: self,
                holds_slot: false,
            };
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
                        let holds_slot = self.spaces_by_answer();
                        if holds_slot {
                            log.in_flight += 1;
                        } else {
                            log.log(Instant::now());
                        }
                        return Permit {
                            limiter: self,
                            holds_slot,
                        };
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

    /// The limiter of `connection`, created from `rates` and `by_send` when it does not
    /// exist yet.
    pub fn get(&self, connection: &str, rates: &[RateLimit], by_send: bool) -> Arc<RateLimiter> {
        let mut map = self
            .by_connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(connection.to_owned())
            .or_insert_with(|| Arc::new(RateLimiter::new(rates, by_send)))
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
        let limiter = RateLimiter::new(&[rate(5, 1), rate(20, 60)], false);
        let times = send_times(&limiter, 30).await;
        assert!(max_in_any(&times, Duration::from_secs(1)) <= 5);
        assert!(max_in_any(&times, Duration::from_secs(60)) <= 20);
        // The first five go at once; the 21st waits for the minute to pass.
        assert_eq!(times[4], Duration::ZERO);
        assert!(times[20] >= Duration::from_secs(60), "{:?}", times[20]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_share_one_budget() {
        let limiter = Arc::new(RateLimiter::new(&[rate(4, 1)], false));
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
    async fn slow_answers_do_not_slow_send_time_spacing() {
        let limiter = Arc::new(RateLimiter::new(&[rate(2, 1)], true));
        let start = Instant::now();
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        // Both calls are still in flight; the third goes one interval after they were sent.
        let third = limiter.acquire().await;
        let at = Instant::now() - start;
        assert!(at >= Duration::from_secs(1), "{at:?}");
        assert!(at < Duration::from_millis(1050), "{at:?}");
        drop((a, b, third));
        assert!(!limiter.spaces_by_answer());
    }

    #[tokio::test(start_paused = true)]
    async fn by_answer_calls_in_flight_hold_their_slot_until_answered() {
        let limiter = Arc::new(RateLimiter::new(&[rate(2, 1)], false));
        assert!(limiter.spaces_by_answer());
        assert!(
            !limiter.throttled(),
            "answer spacing has nothing to switch to"
        );
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
        assert!(third < Duration::from_millis(4050), "{third:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn by_send_switches_to_answer_spacing_after_a_throttle() {
        let limiter = Arc::new(RateLimiter::new(&[rate(2, 1)], true));
        assert!(!limiter.spaces_by_answer());
        assert!(limiter.throttled(), "the first throttle switches");
        assert!(!limiter.throttled(), "later ones do not switch again");
        let start = Instant::now();
        let a = limiter.acquire().await;
        let b = limiter.acquire().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop((a, b));
        // The two calls were logged when answered (at 2 s), not when sent.
        drop(limiter.acquire().await);
        assert!(Instant::now() - start >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_never_wait() {
        let limiter = RateLimiter::new(&[], false);
        let times = send_times(&limiter, 100).await;
        assert!(times.iter().all(|t| t.is_zero()));
        assert_eq!(limiter.concurrency(), 8);
    }

    #[test]
    fn limiters_are_shared_per_connection() {
        let limiters = Limiters::new();
        let a = limiters.get("jst", &[rate(5, 1)], false);
        let b = limiters.get("jst", &[rate(50, 1)], true);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.limits()[0].requests, 5);
        assert!(b.spaces_by_answer(), "the first plan decides");
        let c = limiters.get("wdt", &[rate(50, 1)], true);
        assert!(!c.spaces_by_answer());
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
