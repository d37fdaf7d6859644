//! The daemon's HTTP/1 server loop: accepting, the connection cap, the header-read timeout
//! and graceful shutdown.
//!
//! By hand over hyper rather than `axum::serve`, because `axum::serve` (axum 0.7) sets no
//! timer, so hyper's header-read timeout never runs: a client that sends half a header, or
//! opens connections and says nothing, keeps them forever. Here every connection gets
//! [`HttpLimits::header_read_timeout`] for each request head (an idle keep-alive
//! connection included), and at most [`HttpLimits::max_connections`] are open at once;
//! one more is **refused**: accepted and closed at once, so a flood cannot queue behind
//! the status page's own requests. Routing is `http`'s.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// Bounds on what HTTP clients may hold.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// How long a client has to send a whole request head, from the connection's start or
    /// the end of its previous response; then the connection is closed. Default 10 s.
    pub header_read_timeout: Duration,
    /// Open connections at once; the next is closed as soon as it is accepted. Default 64.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// Serves `app` on `listener` until `stop` turns true; then stops accepting, lets every
/// connection finish its request in flight, and returns when all are closed.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!("cannot accept an HTTP connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(
                "HTTP connection refused: {} already open",
                limits.max_connections
            );
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Until `stop` turns true (or its sender is gone), without holding its value.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
