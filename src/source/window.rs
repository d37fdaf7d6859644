//! Run ranges and windows: from the stored high-water mark (or `--since`) to now minus the
//! safety lag (or `--until`), split into windows no longer than the vendor allows.

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use serde::Serialize;

use crate::plan::WindowPlan;

/// One request window, in the source time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} .. {}",
            self.start.format("%Y-%m-%d %H:%M:%S"),
            self.end.format("%Y-%m-%d %H:%M:%S")
        )
    }
}

/// What the caller knows when resolving a run's range.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeInputs {
    /// The run's clock, source time zone.
    pub now: Option<NaiveDateTime>,
    /// The stored high-water mark.
    pub last_sync: Option<NaiveDateTime>,
    pub since: Option<NaiveDateTime>,
    pub until: Option<NaiveDateTime>,
    /// `--full`: start from the spec's initial time, ignoring the stored mark.
    pub full: bool,
    /// `--remedy`: re-read this lookback before now.
    pub remedy: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("no start time: nothing is stored for this spec yet and the window has no `initial`; pass --since \"yyyy-MM-dd HH:mm:ss\" or add `initial` to the window")]
    NoStart,
    #[error("the range is empty: start {start} is not before end {end}")]
    Empty {
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
}

fn chrono(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

/// Resolves the run's `[start, end)` range.
pub fn resolve_range(
    window: &WindowPlan,
    inputs: &RangeInputs,
) -> Result<(NaiveDateTime, NaiveDateTime), RangeError> {
    let now = inputs.now.unwrap_or_else(|| chrono::Utc::now().naive_utc());
    let end = inputs.until.unwrap_or(now - chrono(window.lag));
    let start = if let Some(lookback) = inputs.remedy {
        end - chrono(lookback)
    } else if let Some(since) = inputs.since {
        since
    } else if let (Some(mark), false) = (inputs.last_sync, inputs.full) {
        // Re-read a little before the mark: records committed late at the source are caught.
        mark - chrono(window.overlap)
    } else {
        window.initial.ok_or(RangeError::NoStart)?
    };
    if start >= end {
        return Err(RangeError::Empty { start, end });
    }
    Ok((start, end))
}

/// Splits `[start, end)` into consecutive windows of at most `max_span`.
pub fn split(
    start: NaiveDateTime,
    end: NaiveDateTime,
    max_span: std::time::Duration,
) -> Vec<Window> {
    let span = chrono(max_span).max(ChronoDuration::seconds(1));
    let mut windows = Vec::new();
    let mut cursor = start;
    while cursor < end {
        let next = cursor.checked_add_signed(span).unwrap_or(end).min(end);
        windows.push(Window {
            start: cursor,
            end: next,
        });
        cursor = next;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn plan() -> WindowPlan {
        WindowPlan {
            max_span: Duration::from_secs(7 * 86_400),
            lag: Duration::from_secs(60),
            overlap: Duration::from_secs(300),
            initial: Some(t("2024-01-01 00:00:00")),
        }
    }

    #[test]
    fn first_run_starts_at_initial_and_ends_before_lag() {
        let inputs = RangeInputs {
            now: Some(t("2024-01-20 12:00:00")),
            ..RangeInputs::default()
        };
        let (start, end) = resolve_range(&plan(), &inputs).unwrap();
        assert_eq!(start, t("2024-01-01 00:00:00"));
        assert_eq!(end, t("2024-01-20 11:59:00"));
        let windows = split(start, end, plan().max_span);
        assert_eq!(windows.len(), 3);
        assert_eq!(windows[1].start, t("2024-01-08 00:00:00"));
        assert_eq!(windows[2].end, end);
    }

    #[test]
    fn later_runs_overlap_the_stored_mark() {
        let inputs = RangeInputs {
            now: Some(t("2024-01-20 12:00:00")),
            last_sync: Some(t("2024-01-20 10:00:00")),
            ..RangeInputs::default()
        };
        let (start, _) = resolve_range(&plan(), &inputs).unwrap();
        assert_eq!(start, t("2024-01-20 09:55:00"));
    }

    #[test]
    fn remedy_reads_the_lookback() {
        let inputs = RangeInputs {
            now: Some(t("2024-01-20 12:00:00")),
            last_sync: Some(t("2024-01-20 10:00:00")),
            remedy: Some(Duration::from_secs(86_400)),
            ..RangeInputs::default()
        };
        let (start, end) = resolve_range(&plan(), &inputs).unwrap();
        assert_eq!(
            (start, end),
            (t("2024-01-19 11:59:00"), t("2024-01-20 11:59:00"))
        );
    }

    #[test]
    fn no_start_and_empty_ranges_are_errors() {
        let mut p = plan();
        p.initial = None;
        assert_eq!(
            resolve_range(&p, &RangeInputs::default()),
            Err(RangeError::NoStart)
        );
        let inputs = RangeInputs {
            since: Some(t("2024-02-01 00:00:00")),
            until: Some(t("2024-01-01 00:00:00")),
            ..RangeInputs::default()
        };
        assert!(matches!(
            resolve_range(&plan(), &inputs),
            Err(RangeError::Empty { .. })
        ));
    }
}
