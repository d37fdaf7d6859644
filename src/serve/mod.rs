//! `qsync serve`: the daemon that runs every spec of a folder on its schedule for months.
//!
//! This file owns the daemon's settings, its shared state (`Daemon`), start-up (profile,
//! listener, alert channels, first load) and graceful shutdown. The parts of its work sit
//! beside it: the spec catalogue (`catalogue.rs`: load, re-check on change, keep the last
//! good version of a broken edit), the scheduler (`scheduler.rs`: cron slots in the profile
//! zone, no overlapping runs, missed slots run once, manual triggers, the lag alert), one
//! run (`run.rs`: a global concurrency limit, per-run leases so several instances can share
//! a folder, history and alerts), and what it shows (`views.rs`, rendered by `metrics`,
//! `page` and the JSON API in `http`); alerts are [`alerts`]. It does not own how a run
//! works: that is behind [`runner::Runner`], which production backs with `exec`. Nothing
//! here may take the daemon down: a failing spec, a broken edit, an unreachable MySQL or a
//! dead alert channel is logged, shown and alerted.

pub mod alerts;
mod catalogue;
pub mod clock;
pub mod engine;
mod http;
pub mod lease;
mod listener;
pub mod metrics;
mod page;
mod run;
pub mod runner;
pub mod schedule;
mod scheduler;
mod views;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::AbortHandle;

use crate::config::{self, EnvPolicy, LoadedProfile};

use self::alerts::{AlertSettings, Alerter};
use self::catalogue::SpecEntry;
use self::clock::Clock;
use self::lease::Coordinator;
use self::runner::Runner;

pub use self::listener::HttpLimits;
pub use self::run::RunView;
pub use self::scheduler::TriggerError;
pub use self::views::SpecView;

/// Settings of one daemon.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The folder of `.qsync` specs (searched recursively).
    pub folder: PathBuf,
    /// The profile; default `qsync.yaml` in the folder, then in the working directory.
    pub profile: Option<PathBuf>,
    pub listen: SocketAddr,
    /// This instance's name: the owner of its leases.
    pub instance: String,
    /// Runs in progress at once, across all specs.
    pub max_concurrent: usize,
    /// After a shutdown request, how long running runs get to stop on their own.
    pub grace: Duration,
    pub alerts: AlertSettings,
    /// Lease lifetime; renewed every third of it while a run goes on.
    pub lease_ttl: Duration,
    /// How often the folder is checked for changed specs.
    pub watch_interval: Duration,
    /// The HTTP server's header-read timeout and connection cap.
    pub http: HttpLimits,
}

impl ServeConfig {
    /// Defaults for `folder`: loopback port 9187, 4 concurrent runs, 30 s grace.
    pub fn new(folder: PathBuf) -> ServeConfig {
        ServeConfig {
            folder,
            profile: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            instance: default_instance(),
            max_concurrent: 4,
            grace: Duration::from_secs(30),
            alerts: AlertSettings::default(),
            lease_ttl: Duration::from_secs(60),
            watch_interval: Duration::from_secs(2),
            http: HttpLimits::default(),
        }
    }
}

/// `<hostname>-<pid>`.
pub fn default_instance() -> String {
    format!("{}-{}", crate::state::host_name(), std::process::id())
}

/// What the daemon is plugged into.
#[derive(Clone)]
pub struct Services {
    pub clock: Arc<dyn Clock>,
    pub runner: Arc<dyn Runner>,
    pub coordinator: Arc<dyn Coordinator>,
}

/// Why the daemon could not start. Once started, it does not fail.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("`{path}` is not a folder of specs")]
    Folder { path: String },
    #[error(transparent)]
    Profile(#[from] config::ProfileError),
    #[error("{0}")]
    Alerts(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "listening on {addr}, which is not loopback, needs `api_token` in the profile: the API \
         can start runs"
    )]
    TokenRequired { addr: SocketAddr },
}

/// Which job of a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// The regular incremental run (`@schedule`).
    Regular,
    /// The omission remedy (`@remedy`).
    Remedy,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Regular => "regular",
            RunKind::Remedy => "remedy",
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    /// A slot missed while the daemon was down, run once at start.
    Missed,
    /// `POST /api/specs/<name>/run`.
    Manual,
}

/// The state every task of one daemon shares.
struct Daemon {
    config: ServeConfig,
    services: Services,
    zone: Tz,
    profile_path: Option<PathBuf>,
    api_token: Option<String>,
    /// The per-process token the status page's "Run now" button sends: a page of another
    /// site cannot read it, so cannot start runs (`http::guard`).
    run_token: String,
    /// Every form of every secret (`config::Masker`), for the page, `/api/*` and logs.
    masker: crate::config::Masker,
    alerter: Alerter,
    specs: Mutex<BTreeMap<String, SpecEntry>>,
    permits: Arc<Semaphore>,
    wake: Notify,
    /// `true` once shutdown began: no new runs; running ones are told to stop.
    stop: watch::Sender<bool>,
    running: watch::Sender<usize>,
    tasks: Mutex<Vec<AbortHandle>>,
    started_at: DateTime<Utc>,
    unfinished: AtomicUsize,
}

impl Daemon {
    fn specs(&self) -> MutexGuard<'_, BTreeMap<String, SpecEntry>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than stopping the daemon would, so keep serving.
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    fn spawn<F>(self: &Arc<Self>, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(future);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle.abort_handle());
        }
    }

    fn now_local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.zone).naive_local()
    }

    fn to_utc(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        Some(crate::plan::time::instant(local, self.zone))
    }

    fn mask(&self, text: &str) -> String {
        self.masker.mask(text)
    }
}

/// How shutdown went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Runs still going when the grace period ended (abandoned; their leases expire).
    pub unfinished: usize,
}

/// A running daemon.
pub struct ServeHandle {
    daemon: Arc<Daemon>,
    addr: SocketAddr,
    main: tokio::task::JoinHandle<ShutdownReport>,
}

impl std::fmt::Debug for ServeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeHandle")
            .field("addr", &self.addr)
            .field("instance", &self.daemon.config.instance)
            .finish_non_exhaustive()
    }
}

impl ServeHandle {
    /// Where the HTTP server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts a graceful shutdown: no new runs; running ones stop after their current batch.
    pub fn shutdown(&self) {
        self.daemon.stop.send_replace(true);
    }

    /// A cheap handle that can start a shutdown from elsewhere (a signal handler).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            daemon: self.daemon.clone(),
        }
    }

    /// Queues a run now, as `POST /api/specs/<name>/run` does; true when it waits for a
    /// run in progress.
    pub fn trigger(&self, spec: &str, kind: RunKind) -> Result<bool, TriggerError> {
        self.daemon.trigger(spec, kind)
    }

    /// Every spec as `/api/specs` shows it.
    pub fn specs(&self) -> Vec<SpecView> {
        self.daemon.spec_views()
    }

    /// Waits until the daemon has shut down.
    pub async fn wait(self) -> ShutdownReport {
        match self.main.await {
            Ok(report) => report,
            Err(_) => ShutdownReport {
                unfinished: self.daemon.unfinished.load(Ordering::Relaxed),
            },
        }
    }

    /// Stops every task at once without releasing anything, as a crash would: for tests of
    /// lease expiry and for a second Ctrl-C.
    pub fn kill(self) {
        self.main.abort();
        if let Ok(tasks) = self.daemon.tasks.lock() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

/// Starts a graceful shutdown of its daemon.
#[derive(Clone)]
pub struct Stopper {
    daemon: Arc<Daemon>,
}

impl Stopper {
    pub fn shutdown(&self) {
        self.daemon.stop.send_replace(true);
    }
}

/// Loads the folder, binds the listener and starts the daemon on the current runtime.
pub async fn start(config: ServeConfig, services: Services) -> Result<ServeHandle, ServeError> {
    if !config.folder.is_dir() {
        return Err(ServeError::Folder {
            path: config.folder.display().to_string(),
        });
    }
    let profile_path = config.profile.clone().or_else(|| {
        [
            config.folder.join("qsync.yaml"),
            PathBuf::from("qsync.yaml"),
        ]
        .into_iter()
        .find(|p| p.is_file())
    });
    let profile = match &profile_path {
        Some(path) => Some(config::load(
            path,
            EnvPolicy::Require,
            &config::process_env,
        )?),
        None => None,
    };
    let zone = profile
        .as_ref()
        .map_or(chrono_tz::Asia::Shanghai, LoadedProfile::timezone);
    let channels = alerts::parse_channels(
        profile
            .as_ref()
            .map_or(&[][..], |p| p.profile.alerts.as_slice()),
    )
    .map_err(ServeError::Alerts)?;
    let api_token = profile
        .as_ref()
        .and_then(|p| p.profile.api_token.clone())
        .filter(|t| !t.is_empty());
    let loopback = config.listen.ip().is_loopback();
    if !loopback && api_token.is_none() {
        return Err(ServeError::TokenRequired {
            addr: config.listen,
        });
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    // Secrets under four characters would turn every message into asterisks and reveal
    // next to nothing; they are left as they are.
    let mut secrets = profile
        .as_ref()
        .map(LoadedProfile::secrets)
        .unwrap_or_default();
    secrets.retain(|s| s.chars().count() >= 4);
    let alerter = Alerter::start(
        channels,
        services.clock.clone(),
        config.instance.clone(),
        config.alerts,
        secrets.clone(),
    );
    let now = services.clock.now();
    let daemon = Arc::new(Daemon {
        permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
        config,
        services,
        zone,
        profile_path,
        api_token: if loopback { None } else { api_token },
        run_token: {
            use rand::Rng as _;
            let bytes: [u8; 16] = rand::thread_rng().gen();
            hex::encode(bytes)
        },
        masker: crate::config::Masker::new(&secrets),
        alerter,
        specs: Mutex::new(BTreeMap::new()),
        wake: Notify::new(),
        stop: watch::Sender::new(false),
        running: watch::Sender::new(0),
        tasks: Mutex::new(Vec::new()),
        started_at: now,
        unfinished: AtomicUsize::new(0),
    });
    {
        let loader = daemon.clone();
        tokio::task::spawn_blocking(move || loader.sync_folder(true))
            .await
            .map_err(|e| ServeError::Alerts(format!("loading specs failed: {e}")))?;
    }
    let count = daemon.specs().len();
    tracing::info!(
        instance = %daemon.config.instance,
        "serving {count} specs from `{}` on http://{addr}",
        daemon.config.folder.display()
    );
    daemon.recover_history().await;
    let app = http::router(daemon.clone(), addr);
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        daemon.config.http,
        daemon.stop.subscribe(),
    ));
    daemon.spawn(daemon.clone().watch_loop());
    let scheduler = tokio::spawn(daemon.clone().schedule_loop());
    if let Ok(mut tasks) = daemon.tasks.lock() {
        tasks.push(server.abort_handle());
        tasks.push(scheduler.abort_handle());
    }
    let main = {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let mut stop = daemon.stop.subscribe();
            let _ = stop.wait_for(|s| *s).await;
            tracing::info!(
                "shutting down: no new runs; waiting up to {}s for running ones",
                daemon.config.grace.as_secs()
            );
            let mut running = daemon.running.subscribe();
            let drained = tokio::time::timeout(daemon.config.grace, running.wait_for(|n| *n == 0))
                .await
                .is_ok();
            let unfinished = if drained { 0 } else { *daemon.running.borrow() };
            if unfinished > 0 {
                tracing::error!(
                    "{unfinished} runs did not stop within the grace period; abandoning them"
                );
            }
            daemon.unfinished.store(unfinished, Ordering::Relaxed);
            let _ = scheduler.await;
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
            ShutdownReport { unfinished }
        })
    };
    Ok(ServeHandle { daemon, addr, main })
}
