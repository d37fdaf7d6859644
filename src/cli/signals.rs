//! The signals that stop `run`, `replay` and `serve`: Ctrl-C (SIGINT) and SIGTERM (what
//! systemd, Kubernetes and `kill` send), told apart so `run` can exit with the code that
//! names the signal (130 and 143 by the shell's 128 + n convention).

use std::sync::atomic::{AtomicU8, Ordering};

/// A signal that asks qsync to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopSignal {
    /// SIGINT: Ctrl-C at a terminal.
    Interrupt,
    /// SIGTERM: a service manager or `kill`.
    Terminate,
}

impl StopSignal {
    /// The name operators know it by.
    pub(super) fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// The first stop signal received, for the exit code: 0 none, 2 SIGINT, 15 SIGTERM.
static RECEIVED: AtomicU8 = AtomicU8::new(0);

/// The first stop signal this process received, if any.
pub(super) fn received() -> Option<StopSignal> {
    match RECEIVED.load(Ordering::SeqCst) {
        2 => Some(StopSignal::Interrupt),
        15 => Some(StopSignal::Terminate),
        _ => None,
    }
}

/// Resolves with the next Ctrl-C or SIGTERM, and remembers the first for [`received`].
pub(super) async fn next() -> StopSignal {
    let signal = wait().await;
    let number = match signal {
        StopSignal::Interrupt => 2,
        StopSignal::Terminate => 15,
    };
    let _ = RECEIVED.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
    signal
}

#[cfg(unix)]
async fn wait() -> StopSignal {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => StopSignal::Interrupt,
                _ = term.recv() => StopSignal::Terminate,
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Interrupt
        }
    }
}

#[cfg(not(unix))]
async fn wait() -> StopSignal {
    let _ = tokio::signal::ctrl_c().await;
    StopSignal::Interrupt
}
