//! `qsync run`'s progress on stderr: an indicatif bar on a terminal (windows n/N, records,
//! rows written, rejects, rate, ETA), else one plain line per committed window with the
//! same figures, for log files and CI output, where a redrawn bar is noise.
//!
//! Owns drawing only; `exec` counts (`exec::Progress`). While a bar is drawn, log lines and
//! messages go through [`suspended`] so they land above the bar instead of over it.

use std::sync::Mutex;
use std::time::Duration;

use crate::exec::{Progress, ProgressReport};
use crate::plan::human;

/// The bar being drawn, if any: what [`suspended`] clears around a log line.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Runs `write` with the progress bar (if one is drawn) cleared, then redraws it.
pub(super) fn suspended<T>(write: impl FnOnce() -> T) -> T {
    let bar = BAR.lock().ok().and_then(|bar| bar.clone());
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// How progress is shown.
#[derive(Debug)]
pub(super) enum Reporter {
    /// A bar redrawn in place, for a person at a terminal.
    Bar(indicatif::ProgressBar),
    /// One line per window on stderr.
    Lines,
}

impl Reporter {
    /// The bar on a terminal, lines otherwise.
    pub(super) fn for_stderr() -> Reporter {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Reporter::Bar(indicatif::ProgressBar::hidden())
        } else {
            Reporter::Lines
        }
    }
}

impl ProgressReport for Reporter {
    fn start(&self, spec: &str, windows: u64) {
        let Reporter::Bar(bar) = self else {
            return;
        };
        // No colour in the template: the bar is the same with or without NO_COLOR. Short
        // enough for 80 columns; `wide_msg` cuts the figures rather than wrap the line.
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:12}] {pos}/{len} windows  {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_length(windows);
        bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        bar.println(format!("{spec}: {windows} windows to sync"));
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = BAR.lock() {
            *slot = Some(bar.clone());
        }
    }

    fn window(&self, progress: &Progress) {
        match self {
            Reporter::Bar(bar) => {
                bar.set_position(progress.windows_done);
                bar.set_message(bar_figures(progress));
            }
            Reporter::Lines => eprintln!("{}", line(progress)),
        }
    }

    fn finish(&self) {
        if let Reporter::Bar(bar) = self {
            if let Ok(mut slot) = BAR.lock() {
                *slot = None;
            }
            bar.finish_and_clear();
        }
    }
}

/// The ETA in whole seconds, `-` when there is none.
fn eta(progress: &Progress) -> String {
    progress.eta().map_or_else(
        || "-".to_owned(),
        |eta| human(Duration::from_secs(eta.as_secs())),
    )
}

/// The bar's figures, terse for a terminal line: records, rows, rejects, rate, ETA.
fn bar_figures(progress: &Progress) -> String {
    format!(
        "{} records  {} rows  {} rejects  {:.0}/s  ETA {}",
        progress.records,
        progress.rows_written,
        progress.rejects,
        progress.records_per_second(),
        eta(progress)
    )
}

/// The figures after the window count: records, rows written, rejects, rate, ETA.
fn figures(progress: &Progress) -> String {
    let eta = eta(progress);
    format!(
        "{} records, {} rows written, {} rejects, {:.0} records/s, ETA {eta}",
        progress.records,
        progress.rows_written,
        progress.rejects,
        progress.records_per_second(),
    )
}

/// The plain line for a committed window:
/// `jst-refunds: window 3/12 2024-03-01 00:00:00 .. 2024-03-02 00:00:00 committed: 1200
/// records, 2400 rows written, 0 rejects, 410 records/s, ETA 22s`.
pub(super) fn line(progress: &Progress) -> String {
    let window = progress
        .window
        .map_or_else(String::new, |w| format!(" {w}"));
    format!(
        "{}: window {}/{}{window} committed: {}",
        progress.spec,
        progress.windows_done,
        progress.windows_total,
        figures(progress)
    )
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;

    use super::*;
    use crate::source::Window;

    fn time(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").expect("a time")
    }

    #[test]
    fn a_window_line_names_the_window_and_every_figure() {
        let progress = Progress {
            spec: "jst-refunds".into(),
            window: Some(Window {
                start: time("2024-03-01 00:00:00"),
                end: time("2024-03-02 00:00:00"),
            }),
            windows_done: 3,
            windows_total: 12,
            records: 1200,
            rows_written: 2400,
            rejects: 2,
            elapsed: Duration::from_millis(3_100),
        };
        assert_eq!(
            line(&progress),
            "jst-refunds: window 3/12 2024-03-01 00:00:00 .. 2024-03-02 00:00:00 committed: \
             1200 records, 2400 rows written, 2 rejects, 387 records/s, ETA 9s"
        );
        // The last window: nothing left to wait for; a source without windows.
        let last = Progress {
            window: None,
            windows_done: 1,
            windows_total: 1,
            records: 0,
            rows_written: 0,
            rejects: 0,
            ..progress
        };
        assert_eq!(
            line(&last),
            "jst-refunds: window 1/1 committed: 0 records, 0 rows written, 0 rejects, \
             0 records/s, ETA -"
        );
    }
}
