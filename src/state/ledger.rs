//! The window ledger and rejects: what each window did, and the raw records that could not
//! become rows.
//!
//! Owns the row types of `_qsync_windows` and `_qsync_rejects` and the words the status
//! column holds. How they are stored is the sink's (`sink::StateStore`); runs are `run.rs`.

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
