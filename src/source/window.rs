//! Run ranges and windows: from the stored high-water mark (or `--since`) to now minus the
//! safety lag (or `--until`), split into windows no longer than the vendor allows. Bounds
//! are wall-clock times of the profile's zone; the arithmetic on them is on instants
//! ([`crate::plan::time`]), so daylight-saving changes neither break nor skip a window.

use chrono::{Duration as ChronoDuration, NaiveDateTime};
use chrono_tz::Tz;

use crate::plan::{time, WindowPlan};

/// One request window, in the source time zone (the plan's vocabulary, re-exported here
/// beside what makes windows).
pub use crate::plan::Window;

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

/// Resolves the run's `[start, end)` range, wall-clock times in `tz` (the profile's zone).
/// Lag, overlap and lookback are elapsed time, computed on instants ([`time::shift`]); a
/// bound that falls in a spring-forward gap moves to the end of the gap, so every bound
/// exists.
pub fn resolve_range(
    window: &WindowPlan,
    inputs: &RangeInputs,
    tz: Tz,
) -> Result<(NaiveDateTime, NaiveDateTime), RangeError> {
    let now = inputs
        .now
        .unwrap_or_else(|| time::local(chrono::Utc::now(), tz));
    let end = inputs
        .until
        .unwrap_or_else(|| time::shift(now, -chrono(window.lag), tz));
    let start = if let Some(lookback) = inputs.remedy {
        time::shift(end, -chrono(lookback), tz)
    } else if let Some(since) = inputs.since {
        since
    } else if let (Some(mark), false) = (inputs.last_sync, inputs.full) {
        // Re-read a little before the mark: records committed late at the source are caught.
        time::shift(mark, -chrono(window.overlap), tz)
    } else {
        window.initial.ok_or(RangeError::NoStart)?
    };
    let (start, end) = (time::existing(start, tz), time::existing(end, tz));
    if start >= end {
        return Err(RangeError::Empty { start, end });
    }
    Ok((start, end))
}

/// Splits `[start, end)` (wall-clock times in `tz`) into consecutive windows of at most
/// `max_span` of elapsed time. The steps are taken on instants, so a window never starts or
/// ends at a time the clocks skipped. Where clocks go back, a step can end at the wall-clock
/// time it started from (01:00 summer time to 01:00 winter time): that window is merged
/// into the next, so the repeated hour is read once, in one window whose wall-clock bounds
/// cover both of its occurrences (its elapsed span is then up to an hour over `max_span`).
pub fn split(
    start: NaiveDateTime,
    end: NaiveDateTime,
    max_span: std::time::Duration,
    tz: Tz,
) -> Vec<Window> {
    let span = chrono(max_span).max(ChronoDuration::seconds(1));
    let (start, end) = (time::existing(start, tz), time::existing(end, tz));
    let last = time::instant(end, tz);
    let mut windows = Vec::new();
    let mut lower = start;
    let mut at = time::instant(start, tz);
    while at < last {
        let next = at.checked_add_signed(span).unwrap_or(last).min(last);
        let upper = if next == last {
            end
        } else {
            time::local(next, tz)
        };
        if upper > lower {
            windows.push(Window {
                start: lower,
                end: upper,
            });
            lower = upper;
        }
        at = next;
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;
    const NEW_YORK: Tz = chrono_tz::America::New_York;

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
        let (start, end) = resolve_range(&plan(), &inputs, SHANGHAI).unwrap();
        assert_eq!(start, t("2024-01-01 00:00:00"));
        assert_eq!(end, t("2024-01-20 11:59:00"));
        let windows = split(start, end, plan().max_span, SHANGHAI);
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
        let (start, _) = resolve_range(&plan(), &inputs, SHANGHAI).unwrap();
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
        let (start, end) = resolve_range(&plan(), &inputs, SHANGHAI).unwrap();
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
            resolve_range(&p, &RangeInputs::default(), SHANGHAI),
            Err(RangeError::NoStart)
        );
        let inputs = RangeInputs {
            since: Some(t("2024-02-01 00:00:00")),
            until: Some(t("2024-01-01 00:00:00")),
            ..RangeInputs::default()
        };
        assert!(matches!(
            resolve_range(&plan(), &inputs, SHANGHAI),
            Err(RangeError::Empty { .. })
        ));
    }

    fn hourly(start: &str, end: &str) -> Vec<(String, String)> {
        split(t(start), t(end), Duration::from_secs(3600), NEW_YORK)
            .iter()
            .map(|w| {
                let f = |x: NaiveDateTime| x.format("%H:%M").to_string();
                (f(w.start), f(w.end))
            })
            .collect()
    }

    #[test]
    fn windows_step_over_the_skipped_hour_and_read_the_repeated_hour_once() {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        };
        // 2024-03-10: 02:00 does not exist in New York. No window bound is in the gap, and
        // each window is an hour of elapsed time.
        assert_eq!(
            hourly("2024-03-10 00:00:00", "2024-03-10 05:00:00"),
            pairs(&[
                ("00:00", "01:00"),
                ("01:00", "03:00"),
                ("03:00", "04:00"),
                ("04:00", "05:00")
            ])
        );
        // 2024-11-03: 01:00-02:00 happens twice; one window covers both, none is empty.
        assert_eq!(
            hourly("2024-11-03 00:00:00", "2024-11-03 03:00:00"),
            pairs(&[("00:00", "01:00"), ("01:00", "02:00"), ("02:00", "03:00")])
        );
        // A range that starts or ends in the gap starts or ends where the gap ends.
        assert_eq!(
            hourly("2024-03-10 02:30:00", "2024-03-10 04:00:00"),
            pairs(&[("03:00", "04:00")])
        );
        // Lag and overlap are elapsed time: five minutes before 03:02 is 01:57.
        let window = WindowPlan {
            max_span: Duration::from_secs(3600),
            lag: Duration::from_secs(60),
            overlap: Duration::from_secs(300),
            initial: None,
        };
        let inputs = RangeInputs {
            now: Some(t("2024-03-10 03:00:30")),
            last_sync: Some(t("2024-03-10 01:58:00")),
            ..RangeInputs::default()
        };
        assert_eq!(
            resolve_range(&window, &inputs, NEW_YORK),
            Ok((t("2024-03-10 01:53:00"), t("2024-03-10 01:59:30")))
        );
        let inputs = RangeInputs {
            now: Some(t("2024-03-10 03:30:00")),
            last_sync: Some(t("2024-03-10 03:02:00")),
            ..RangeInputs::default()
        };
        assert_eq!(
            resolve_range(&window, &inputs, NEW_YORK),
            Ok((t("2024-03-10 01:57:00"), t("2024-03-10 03:29:00")))
        );
    }
}
