//! What a run did: the one run-result type, and the history row derived from it.
//!
//! [`RunSummary`] is what `exec::run` and `exec::replay` return, what `qsync run` prints,
//! what `serve`'s runners report and the status page and `/api/runs` show. Its range is
//! typed ([`Window`]: two wall-clock times of the profile's zone), never a string to parse
//! back. [`RunRecord`] is the `_qsync_runs` row: the summary's counters plus how the run
//! ended and when, built by [`RunRecord::of`]; how it is stored is the sink's
//! (`sink::StateStore`).

use std::time::Duration;

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};

use crate::plan::Window;

/// What a run did; every counter counts this run only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// The spec's name (the status page and the API name the spec beside the summary).
    #[serde(skip)]
    pub spec: String,
    /// The range read; `None` for a source without a window. Serialized as its printed form.
    #[serde(serialize_with = "printed")]
    pub range: Option<Window>,
    /// Windows committed.
    pub windows: u64,
    pub pages: u64,
    /// Records received (duplicates and re-reads included).
    pub records: u64,
    /// Rows the server stored (new, replaced or updated), as it counted them, windows that
    /// later failed included: not the rows sent. See `sink::WriteStats::written`.
    pub rows_written: u64,
    /// Rows that collapsed onto a key another row of their window has: MySQL keeps one, so
    /// the table holds that many fewer rows than `rows_written`.
    pub key_collisions: u64,
    /// The first few colliding keys (`trade_no=T1, goods_no=G1`).
    pub colliding_keys: Vec<String>,
    /// Of `rows_written`, rows that replaced or updated a different row with the same key
    /// (updated records, or ids the key's collation takes for one); a row rewritten
    /// unchanged is not counted (the server does not report it).
    pub rows_replaced: u64,
    pub rejects: u64,
    /// Request retries plus window re-reads.
    pub retries: u64,
    /// Requests slowed down by the vendor (429 and its kin).
    pub throttled: u64,
    /// How long the run took (the status page shows the daemon's own measure).
    #[serde(skip)]
    pub duration: Duration,
    /// The stored mark after the run, in the profile zone.
    pub high_water_mark: Option<NaiveDateTime>,
}

fn printed<S: Serializer>(range: &Option<Window>, serializer: S) -> Result<S::Ok, S::Error> {
    match range {
        Some(window) => serializer.collect_str(window),
        None => serializer.serialize_none(),
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let time = |t: NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
        writeln!(f, "spec            {}", self.spec)?;
        match self.range {
            Some(range) => writeln!(f, "range           {range}")?,
            None => writeln!(f, "range           (no window)")?,
        }
        writeln!(f, "windows         {}", self.windows)?;
        writeln!(f, "pages           {}", self.pages)?;
        writeln!(f, "records         {}", self.records)?;
        if self.rows_replaced > 0 {
            writeln!(
                f,
                "rows written    {} ({} replaced a different row with the same key)",
                self.rows_written, self.rows_replaced
            )?;
        } else {
            writeln!(f, "rows written    {}", self.rows_written)?;
        }
        if self.key_collisions > 0 {
            writeln!(
                f,
                "key collisions  {} (rows sharing a key with another row of their window; \
                 one of each is kept; first: {})",
                self.key_collisions,
                self.colliding_keys.join("; ")
            )?;
        }
        writeln!(f, "rejects         {}", self.rejects)?;
        writeln!(f, "retries         {}", self.retries)?;
        writeln!(f, "throttled       {}", self.throttled)?;
        writeln!(f, "duration        {:.1}s", self.duration.as_secs_f64())?;
        match self.high_water_mark {
            Some(mark) => writeln!(f, "high-water mark {}", time(mark)),
            None => writeln!(f, "high-water mark (none)"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Success,
    /// Finished, but some records were rejected.
    Partial,
    Failed,
    /// Told to stop (a signal, a daemon shutdown, a lost lease) before its range was done:
    /// the history row's range is what it committed.
    Stopped,
}

impl RunOutcome {
    /// The stored word: `success`, `partial`, `failed` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Partial => "partial",
            RunOutcome::Failed => "failed",
            RunOutcome::Stopped => "stopped",
        }
    }

    /// Reads a stored word back; anything unknown reads as `Failed`.
    pub fn parse(text: &str) -> RunOutcome {
        match text {
            "success" => RunOutcome::Success,
            "partial" => RunOutcome::Partial,
            "stopped" => RunOutcome::Stopped,
            _ => RunOutcome::Failed,
        }
    }
}

/// One row of the run history (`_qsync_runs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub spec: String,
    /// The range read; stored as two columns, both set or both null.
    pub range: Option<Window>,
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

impl RunRecord {
    /// The history row of a run that did `summary` and ended as `outcome` (with `error`
    /// when it failed), between `started_at` and `finished_at` (profile zone).
    pub fn of(
        summary: &RunSummary,
        outcome: RunOutcome,
        error: Option<String>,
        started_at: NaiveDateTime,
        finished_at: NaiveDateTime,
    ) -> RunRecord {
        RunRecord {
            spec: summary.spec.clone(),
            range: summary.range,
            pages: summary.pages,
            records: summary.records,
            rows_written: summary.rows_written,
            rejects: summary.rejects,
            retries: summary.retries,
            duration: summary.duration,
            outcome,
            error,
            started_at,
            finished_at: Some(finished_at),
        }
    }
}
