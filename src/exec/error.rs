//! Why a run failed, and what it had committed before: [`RunError`].

use chrono::NaiveDateTime;

use crate::config::ProfileError;
use crate::sink::SinkError;
use crate::source::window::RangeError;
use crate::source::SourceError;

use super::RunSummary;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunErrorKind {
    /// `connection bi` missing from the profile, not `kind: mysql`, or without a `url`.
    #[error("spec `{spec}`: {source}")]
    Profile { spec: String, source: ProfileError },
    /// `--remedy` on a spec without `@remedy`, or an empty range.
    #[error("spec `{spec}`: {message}")]
    Usage { spec: String, message: String },
    /// The first run of a window without `initial` and without `--since`.
    #[error("spec `{spec}`: {source}")]
    Range { spec: String, source: RangeError },
    /// Fetching failed: vendor error, retries exhausted, paging guard.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// MySQL refused or lost the connection for good.
    #[error("spec `{spec}`, window {window}: {source}")]
    Sink {
        spec: String,
        window: String,
        source: SinkError,
    },
    /// The vendor's total and the records fetched disagree on every re-read.
    #[error(
        "spec `{spec}`, window {window}: the vendor reported {reported} records but {fetched} \
         were fetched, on each of {attempts} reads; the window was not committed"
    )]
    Incomplete {
        spec: String,
        window: String,
        reported: u64,
        fetched: u64,
        attempts: u32,
    },
    /// `@on_duplicate_key fail` and two rows of a window with the same target key.
    #[error(
        "spec `{spec}`, window {window}: two rows have the key {key} \
         (`@on_duplicate_key fail`; the window was not committed)"
    )]
    KeyCollision {
        spec: String,
        window: String,
        key: String,
    },
    /// `@on_error fail` and a record whose value does not convert.
    #[error(
        "spec `{spec}`, window {window}: record {record} cannot become a row: {reason} \
         (`@on_error fail`; the window was not committed)"
    )]
    Rejected {
        spec: String,
        window: String,
        record: String,
        reason: String,
    },
    /// A plan the transformer cannot compile (normally caught by `check`).
    #[error("spec `{spec}`: {message}")]
    Transform { spec: String, message: String },
    /// A fetch task that panicked or was cancelled.
    #[error("spec `{spec}`, window {window}: the fetch task ended abnormally: {message}")]
    Task {
        spec: String,
        window: String,
        message: String,
    },
    /// Told to stop (Ctrl-C, SIGTERM, a daemon shutdown, a lost lease) before the range was
    /// done: the window being written committed, the ones after it were not read.
    #[error("spec `{spec}`: stopped before the range{} was done", range.map(|r| format!(" {r}")).unwrap_or_default())]
    Stopped {
        spec: String,
        /// The range the run was asked to sync.
        range: Option<crate::source::Window>,
    },
    /// Another run of the spec holds its lease.
    #[error(
        "spec `{spec}` is already running: `{owner}` holds its lease until {until} (MySQL \
         server time); wait for that run to end, or for the lease to expire if it died \
         on another machine"
    )]
    Busy {
        spec: String,
        owner: String,
        until: NaiveDateTime,
    },
}

/// A failed run: what went wrong and what had been committed before.
#[derive(Debug)]
pub struct RunError {
    pub(super) kind: Box<RunErrorKind>,
    pub(super) summary: Option<Box<RunSummary>>,
}

impl RunError {
    pub fn kind(&self) -> &RunErrorKind {
        &self.kind
    }

    /// Progress made before the failure, when the run got as far as reading its state.
    pub fn summary(&self) -> Option<&RunSummary> {
        self.summary.as_deref()
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(summary) = &self.summary {
            write!(
                f,
                ". {} window{} committed before {}; the high-water mark is {}",
                summary.windows,
                if summary.windows == 1 {
                    " was"
                } else {
                    "s were"
                },
                if matches!(*self.kind, RunErrorKind::Stopped { .. }) {
                    "it stopped"
                } else {
                    "the failure"
                },
                summary.high_water_mark.map_or_else(
                    || "not set".to_owned(),
                    |m| m.format("%Y-%m-%d %H:%M:%S").to_string()
                )
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.kind)
    }
}

impl From<RunErrorKind> for RunError {
    fn from(kind: RunErrorKind) -> RunError {
        RunError {
            kind: Box::new(kind),
            summary: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn run_errors_name_the_window_and_what_was_committed() {
        let error = RunError {
            kind: Box::new(RunErrorKind::Incomplete {
                spec: "refunds".into(),
                window: "2024-01-01 00:00:00 .. 2024-01-02 00:00:00".into(),
                reported: 105,
                fetched: 100,
                attempts: 3,
            }),
            summary: Some(Box::new(RunSummary {
                spec: "refunds".into(),
                range: None,
                windows: 2,
                pages: 0,
                records: 0,
                rows_written: 0,
                key_collisions: 0,
                colliding_keys: Vec::new(),
                rows_replaced: 0,
                rejects: 0,
                retries: 0,
                throttled: 0,
                duration: Duration::ZERO,
                high_water_mark: NaiveDateTime::parse_from_str(
                    "2024-01-01 00:00:00",
                    "%Y-%m-%d %H:%M:%S",
                )
                .ok(),
            })),
        };
        assert_eq!(
            error.to_string(),
            "spec `refunds`, window 2024-01-01 00:00:00 .. 2024-01-02 00:00:00: the vendor \
             reported 105 records but 100 were fetched, on each of 3 reads; the window was not \
             committed. 2 windows were committed before the failure; the high-water mark is \
             2024-01-01 00:00:00"
        );
    }
}
