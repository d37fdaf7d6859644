//! The window ledger, run history and rejects: what each window and run did, and the raw
//! records that could not become rows.
//!
//! Owns the row types of `_qsync_windows`, `_qsync_runs` and `_qsync_rejects` and the words
//! their status columns hold. How they are stored is the sink's (`sink::StateStore`).

use std::time::Duration;

use chrono::NaiveDateTime;

/// Where a window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStatus {
    /// Being fetched and written.
    Running,
    /// Rows and cursor committed.
    Done,
    /// Gave up after retries; the cursor did not move past it.
    Failed,
}

impl WindowStatus {
    /// The stored word: `running`, `done` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowStatus::Running => "running",
            WindowStatus::Done => "done",
            WindowStatus::Failed => "failed",
        }
    }

    /// Reads a stored word back; anything unknown reads as `Running` (not finished).
    pub fn parse(text: &str) -> WindowStatus {
        match text {
            "done" => WindowStatus::Done,
            "failed" => WindowStatus::Failed,
            _ => WindowStatus::Running,
        }
    }
}

/// One row of the window ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRecord {
    pub spec: String,
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub pages: u64,
    /// The vendor's total for the window, when it reports one.
    pub reported_total: Option<u64>,
    pub fetched: u64,
    pub written: u64,
    pub rejects: u64,
    pub status: WindowStatus,
    pub attempts: u32,
}

/// A record that failed conversion, kept with its raw JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub spec: String,
    pub window_start: Option<NaiveDateTime>,
    pub window_end: Option<NaiveDateTime>,
    /// The record as received.
    pub raw: String,
    pub reason: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    /// Finished, but some records were rejected.
    Partial,
    Failed,
}

impl RunOutcome {
    /// The stored word: `success`, `partial` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Partial => "partial",
            RunOutcome::Failed => "failed",
        }
    }

    /// Reads a stored word back; anything unknown reads as `Failed`.
    pub fn parse(text: &str) -> RunOutcome {
        match text {
            "success" => RunOutcome::Success,
            "partial" => RunOutcome::Partial,
            _ => RunOutcome::Failed,
        }
    }
}

/// One row of the run history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub spec: String,
    pub range_start: Option<NaiveDateTime>,
    pub range_end: Option<NaiveDateTime>,
    pub pages: u64,
    pub records: u64,
    pub rows_written: u64,
    pub rejects: u64,
    pub retries: u64,
    pub duration: Duration,
    pub outcome: RunOutcome,
    pub error: Option<String>,
    pub started_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}
