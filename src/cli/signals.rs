//! The signals that stop `run`, `replay` and `serve`: Ctrl-C (SIGINT) and SIGTERM (what
//! systemd, Kubernetes and `kill` send), told apart so `run` can exit with the code that
//! names the signal (130 and 143 by the shell's 128 + n convention).
//!
//! The handlers are installed when [`Signals::listen`] returns, not when a task first
//! waits: until then a signal keeps its default action and ends the process unrecorded.

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

/// Installed handlers for Ctrl-C and SIGTERM.
#[derive(Debug)]
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers now; call inside the tokio runtime. A handler the system
    /// refuses leaves that signal its default action.
    pub(super) fn listen() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Signals {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Resolves with the next Ctrl-C or SIGTERM, and remembers the first for [`received`].
    pub(super) async fn next(&mut self) -> StopSignal {
        let signal = self.wait().await;
        let number = match signal {
            StopSignal::Interrupt => 2,
            StopSignal::Terminate => 15,
        };
        let _ = RECEIVED.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst);
        signal
    }

    #[cfg(unix)]
    async fn wait(&mut self) -> StopSignal {
        async fn on(signal: Option<&mut tokio::signal::unix::Signal>) {
            let Some(signal) = signal else {
                return std::future::pending().await;
            };
            // `None` once the handler is gone: never resolve rather than spin.
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        tokio::select! {
            () = on(self.interrupt.as_mut()) => StopSignal::Interrupt,
            () = on(self.terminate.as_mut()) => StopSignal::Terminate,
        }
    }

    #[cfg(not(unix))]
    async fn wait(&mut self) -> StopSignal {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        StopSignal::Interrupt
    }
}
