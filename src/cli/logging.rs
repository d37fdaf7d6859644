//! Logs on stderr for `run`, `replay` and `serve`: the `tracing` subscriber, whether it may
//! colour its output, and a writer that keeps log lines and the progress bar apart.
//!
//! Colour is for a person at a terminal only: ANSI escapes in a log file or a journal are
//! noise (`\x1b[2m2024-…\x1b[0m \x1b[32m INFO\x1b[0m`), so they are written only when stderr
//! is a terminal and `NO_COLOR` (<https://no-color.org>) is unset or empty.

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use super::{progress, LogFormat};

/// Whether stderr output may carry ANSI colour: on a terminal, unless `NO_COLOR` says no.
pub(super) fn colour() -> bool {
    colour_for(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    )
}

/// The rule behind [`colour`]: a terminal, and `NO_COLOR` absent or empty.
fn colour_for(terminal: bool, no_color: Option<&OsStr>) -> bool {
    terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the subscriber: level from `QSYNC_LOG` (else `default_level`), text or JSON on
/// stderr, colour only where [`colour`] allows.
pub(super) fn init(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LogWriter)
        .with_ansi(colour());
    // A second init (tests calling `cli::run` twice) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// stderr, with the progress bar (when one is drawn) cleared while a line is written, so
/// the line lands above the bar instead of being drawn over. The formatter hands over each
/// event in one write.
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        progress::suspended(|| std::io::stderr().write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_for(true, None));
        assert!(colour_for(true, Some(OsStr::new(""))));
        assert!(!colour_for(true, Some(OsStr::new("1"))));
        assert!(!colour_for(false, None));
        assert!(!colour_for(false, Some(OsStr::new(""))));
    }
}
