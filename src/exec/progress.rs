//! How far a run has got, told to whoever watches it: [`Progress`], reported after each
//! committed window through a [`ProgressReport`].
//!
//! `exec` only counts; drawing is the caller's. `qsync run` draws a bar on a terminal and
//! prints a plain line per window otherwise (`cli::progress`); `serve` watches nothing
//! (its status page reads the run's summary).

use std::time::Duration;

use crate::source::Window;

/// A run's figures after a window committed; counters are for the whole run so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub spec: String,
    /// The window just committed; `None` for a source without windows.
    pub window: Option<Window>,
    /// Windows committed so far, this one included.
    pub windows_done: u64,
    /// Windows the run's range was split into.
    pub windows_total: u64,
    /// Records received (duplicates and re-reads included), as in the run summary.
    pub records: u64,
    pub rows_written: u64,
    pub rejects: u64,
    /// Since the run started (connecting and reading the mark included).
    pub elapsed: Duration,
}

impl Progress {
    /// Records received per second of the run so far; 0 before any time has passed.
    pub fn records_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.records as f64 / secs
        } else {
            0.0
        }
    }

    /// The time left if the remaining windows take as long as the committed ones did on
    /// average; `None` before the first window or once all are done.
    pub fn eta(&self) -> Option<Duration> {
        if self.windows_done == 0 || self.windows_done >= self.windows_total {
            return None;
        }
        let left = self.windows_total - self.windows_done;
        let per_window = self.elapsed.as_secs_f64() / self.windows_done as f64;
        Some(Duration::from_secs_f64(per_window * left as f64))
    }
}

/// Where a run reports its progress. Implementations must be cheap: they are called on the
/// run's task between windows.
pub trait ProgressReport: Send + Sync + std::fmt::Debug {
    /// The range is split into `windows` windows (0 when there is nothing to sync).
    fn start(&self, spec: &str, windows: u64);
    /// A window committed.
    fn window(&self, progress: &Progress);
    /// The run ended, whether it finished, stopped or failed; called once, before the run
    /// is recorded and its summary returned.
    fn finish(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64, total: u64, secs: u64, records: u64) -> Progress {
        Progress {
            spec: "s".into(),
            window: None,
            windows_done: done,
            windows_total: total,
            records,
            rows_written: 0,
            rejects: 0,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn eta_and_rate_follow_the_committed_windows() {
        let p = at(2, 10, 20, 500);
        assert_eq!(p.eta(), Some(Duration::from_secs(80)));
        assert!((p.records_per_second() - 25.0).abs() < 1e-9);
        assert_eq!(at(0, 10, 0, 0).eta(), None);
        assert_eq!(at(10, 10, 20, 0).eta(), None);
        assert!(at(1, 1, 0, 5).records_per_second().abs() < 1e-9);
    }
}
