//! Prometheus metrics: per-spec counters kept by the daemon and their text exposition.
//!
//! Owns the counters a run adds to ([`SpecStats`]) and rendering `GET /metrics` in the
//! Prometheus text format 0.0.4. It does not own when runs happen or how lag is measured
//! (the daemon passes the gauges in).

use std::fmt::Write as _;
use std::time::Duration;

use crate::state::RunSummary;

/// Upper bounds (seconds) of the run-duration histogram buckets.
pub const DURATION_BUCKETS: [f64; 11] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// How a run ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Finished with rejected records.
    Partial,
    Failed,
    /// Stopped by shutdown or a lost lease before it finished.
    Stopped,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Success,
        Outcome::Partial,
        Outcome::Failed,
        Outcome::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Stopped => "stopped",
        }
    }
}

/// Why a due run did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The same job was still running at its next slot.
    Overlap,
    /// Another instance holds the spec's lease.
    Lease,
}

/// Counters of one spec since the daemon started.
#[derive(Debug, Clone, Default)]
pub struct SpecStats {
    pub runs: [u64; 4],
    pub skipped_overlap: u64,
    pub skipped_lease: u64,
    pub records: u64,
    pub rows_written: u64,
    pub rejects: u64,
    pub retries: u64,
    pub throttled: u64,
    pub duration_buckets: [u64; DURATION_BUCKETS.len()],
    pub duration_count: u64,
    pub duration_sum: f64,
}

impl SpecStats {
    /// Counts a finished run.
    pub fn record(&mut self, outcome: Outcome, report: Option<&RunSummary>, duration: Duration) {
        let index = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.runs[index] += 1;
        if let Some(report) = report {
            self.records += report.records;
            self.rows_written += report.rows_written;
            self.rejects += report.rejects;
            self.retries += report.retries;
            self.throttled += report.throttled;
        }
        let seconds = duration.as_secs_f64();
        for (bucket, bound) in self.duration_buckets.iter_mut().zip(DURATION_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.duration_count += 1;
        self.duration_sum += seconds;
    }

    pub fn skipped(&mut self, reason: SkipReason) {
        match reason {
            SkipReason::Overlap => self.skipped_overlap += 1,
            SkipReason::Lease => self.skipped_lease += 1,
        }
    }

    pub fn runs_of(&self, outcome: Outcome) -> u64 {
        Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .map_or(0, |i| self.runs[i])
    }
}

/// One spec's line in the exposition.
#[derive(Debug)]
pub struct SpecMetrics<'a> {
    pub spec: &'a str,
    pub stats: &'a SpecStats,
    pub running: bool,
    pub broken: bool,
    pub seconds_since_last_success: Option<f64>,
    pub lag_seconds: Option<f64>,
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Renders every spec's metrics.
pub fn render(specs: &[SpecMetrics<'_>], alerts_sent: u64, alerts_failed: u64) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "qsync_runs_total",
        "counter",
        "Finished runs by outcome.",
    );
    for s in specs {
        for outcome in Outcome::ALL {
            let _ = writeln!(
                out,
                "qsync_runs_total{{spec=\"{}\",outcome=\"{}\"}} {}",
                label(s.spec),
                outcome.as_str(),
                s.stats.runs_of(outcome)
            );
        }
    }
    family(
        &mut out,
        "qsync_runs_skipped_total",
        "counter",
        "Due runs not started: still running (overlap) or leased by another instance (lease).",
    );
    for s in specs {
        for (reason, n) in [
            ("overlap", s.stats.skipped_overlap),
            ("lease", s.stats.skipped_lease),
        ] {
            let _ = writeln!(
                out,
                "qsync_runs_skipped_total{{spec=\"{}\",reason=\"{reason}\"}} {n}",
                label(s.spec)
            );
        }
    }
    type Counter = (&'static str, &'static str, fn(&SpecStats) -> u64);
    let counters: [Counter; 5] = [
        (
            "qsync_records_total",
            "Records read from the source.",
            |s| s.records,
        ),
        (
            "qsync_rows_written_total",
            "Rows written to the target.",
            |s| s.rows_written,
        ),
        (
            "qsync_rejects_total",
            "Records rejected into _qsync_rejects.",
            |s| s.rejects,
        ),
        ("qsync_retries_total", "Requests retried.", |s| s.retries),
        (
            "qsync_throttled_requests_total",
            "Requests the vendor throttled (429 or throttle error codes).",
            |s| s.throttled,
        ),
    ];
    for (name, help, get) in counters {
        family(&mut out, name, "counter", help);
        for s in specs {
            let _ = writeln!(out, "{name}{{spec=\"{}\"}} {}", label(s.spec), get(s.stats));
        }
    }
    family(
        &mut out,
        "qsync_run_duration_seconds",
        "histogram",
        "Wall time of finished runs.",
    );
    for s in specs {
        let spec = label(s.spec);
        for (count, bound) in s.stats.duration_buckets.iter().zip(DURATION_BUCKETS) {
            let _ = writeln!(
                out,
                "qsync_run_duration_seconds_bucket{{spec=\"{spec}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "qsync_run_duration_seconds_bucket{{spec=\"{spec}\",le=\"+Inf\"}} {}",
            s.stats.duration_count
        );
        let _ = writeln!(
            out,
            "qsync_run_duration_seconds_sum{{spec=\"{spec}\"}} {}",
            s.stats.duration_sum
        );
        let _ = writeln!(
            out,
            "qsync_run_duration_seconds_count{{spec=\"{spec}\"}} {}",
            s.stats.duration_count
        );
    }
    family(
        &mut out,
        "qsync_seconds_since_last_success",
        "gauge",
        "Seconds since the spec last finished a run successfully (absent if never).",
    );
    for s in specs {
        if let Some(v) = s.seconds_since_last_success {
            let _ = writeln!(
                out,
                "qsync_seconds_since_last_success{{spec=\"{}\"}} {v}",
                label(s.spec)
            );
        }
    }
    family(
        &mut out,
        "qsync_data_lag_seconds",
        "gauge",
        "Now minus the spec's committed high-water mark (absent if unknown).",
    );
    for s in specs {
        if let Some(v) = s.lag_seconds {
            let _ = writeln!(
                out,
                "qsync_data_lag_seconds{{spec=\"{}\"}} {v}",
                label(s.spec)
            );
        }
    }
    family(
        &mut out,
        "qsync_spec_running",
        "gauge",
        "1 while a run of the spec is in progress.",
    );
    for s in specs {
        let _ = writeln!(
            out,
            "qsync_spec_running{{spec=\"{}\"}} {}",
            label(s.spec),
            u8::from(s.running)
        );
    }
    family(
        &mut out,
        "qsync_spec_broken",
        "gauge",
        "1 when the spec file on disk fails check (the last good version keeps running).",
    );
    for s in specs {
        let _ = writeln!(
            out,
            "qsync_spec_broken{{spec=\"{}\"}} {}",
            label(s.spec),
            u8::from(s.broken)
        );
    }
    family(
        &mut out,
        "qsync_alerts_total",
        "counter",
        "Alert deliveries by result.",
    );
    let _ = writeln!(out, "qsync_alerts_total{{result=\"sent\"}} {alerts_sent}");
    let _ = writeln!(
        out,
        "qsync_alerts_total{{result=\"failed\"}} {alerts_failed}"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let mut stats = SpecStats::default();
        let report = RunSummary {
            records: 10,
            rows_written: 12,
            rows_replaced: 0,
            ..RunSummary::default()
        };
        stats.record(Outcome::Success, Some(&report), Duration::from_millis(300));
        stats.record(Outcome::Failed, None, Duration::from_secs(20));
        let text = render(
            &[SpecMetrics {
                spec: "a\"b",
                stats: &stats,
                running: false,
                broken: false,
                seconds_since_last_success: Some(5.0),
                lag_seconds: None,
            }],
            1,
            0,
        );
        assert!(text.contains("qsync_runs_total{spec=\"a\\\"b\",outcome=\"success\"} 1"));
        assert!(text.contains("qsync_runs_total{spec=\"a\\\"b\",outcome=\"failed\"} 1"));
        assert!(text.contains("qsync_rows_written_total{spec=\"a\\\"b\"} 12"));
        assert!(text.contains("qsync_run_duration_seconds_bucket{spec=\"a\\\"b\",le=\"0.5\"} 1"));
        assert!(text.contains("qsync_run_duration_seconds_bucket{spec=\"a\\\"b\",le=\"30\"} 2"));
        assert!(text.contains("qsync_run_duration_seconds_count{spec=\"a\\\"b\"} 2"));
        assert!(!text.contains("qsync_data_lag_seconds{"));
    }
}
