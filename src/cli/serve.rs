//! `qsync serve`: the daemon ([`crate::serve`]) with the production services (system
//! clock, the `exec` runner, MySQL leases), logs on stderr, a graceful shutdown on the
//! first SIGTERM or Ctrl-C and an immediate exit on the second.

use std::path::PathBuf;

use super::{parse_span, LogFormat, Outcome};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The folder of `.qsync` specs; changed files are re-checked and swapped in.
    pub folder: PathBuf,
    /// Connection profile; default `qsync.yaml` in the folder, then in the working directory.
    #[arg(long, env = "QSYNC_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Address of the status page, `/metrics` and the API. Anything but loopback requires
    /// the profile's `api_token` as a bearer token.
    #[arg(long, env = "QSYNC_LISTEN", default_value = "127.0.0.1:9187")]
    pub listen: std::net::SocketAddr,
    /// This instance's name in leases (default `<hostname>-<pid>`); instances sharing a
    /// folder and database need distinct names.
    #[arg(long, env = "QSYNC_INSTANCE")]
    pub instance: Option<String>,
    /// Runs in progress at once, across all specs.
    #[arg(long, default_value_t = 4)]
    pub max_concurrent: usize,
    /// On SIGTERM / Ctrl-C, how long running runs get to commit their batch and stop.
    #[arg(long, value_parser = parse_span, default_value = "30s")]
    pub grace: std::time::Duration,
    /// After an alert, how long the same condition stays quiet (recoveries always alert).
    #[arg(long, value_parser = parse_span, default_value = "1h")]
    pub alert_quiet: std::time::Duration,
    /// Lifetime of a spec's lease; renewed every third of it while the run goes on.
    #[arg(long, value_parser = parse_span, default_value = "60s")]
    pub lease_ttl: std::time::Duration,
    /// How often the folder is checked for changed specs.
    #[arg(long, value_parser = parse_span, default_value = "2s")]
    pub watch_interval: std::time::Duration,
    /// Log format on stderr (level from `QSYNC_LOG`, e.g. `debug`, default `info`).
    #[arg(long, value_enum, default_value = "text", env = "QSYNC_LOG_FORMAT")]
    pub log_format: LogFormat,
}

pub(super) fn serve(args: ServeArgs) -> Outcome {
    super::logging::init(args.log_format, "info");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Outcome::Failed;
        }
    };
    let mut config = crate::serve::ServeConfig::new(args.folder);
    config.profile = args.profile;
    config.listen = args.listen;
    if let Some(instance) = args.instance {
        config.instance = instance;
    }
    config.max_concurrent = args.max_concurrent;
    config.grace = args.grace;
    config.alerts.quiet = args.alert_quiet;
    config.lease_ttl = args.lease_ttl;
    config.watch_interval = args.watch_interval;
    runtime.block_on(async move {
        let services = crate::serve::Services {
            clock: std::sync::Arc::new(crate::serve::clock::SystemClock),
            runner: std::sync::Arc::new(crate::serve::engine::ExecRunner::new()),
            coordinator: std::sync::Arc::new(crate::serve::lease::MysqlCoordinator::new()),
        };
        let handle = match crate::serve::start(config, services).await {
            Ok(handle) => handle,
            Err(e) => {
                eprintln!("error: {e}");
                return Outcome::Failed;
            }
        };
        let stopper = handle.stopper();
        let mut signals = super::signals::Signals::listen();
        tokio::spawn(async move {
            let signal = signals.next().await;
            tracing::warn!(
                "{}: shutdown requested; send the signal again to exit at once",
                signal.name()
            );
            stopper.shutdown();
            signals.next().await;
            tracing::error!("second signal: exiting now; running runs' leases will expire");
            std::process::exit(130);
        });
        let report = handle.wait().await;
        if report.unfinished == 0 {
            Outcome::Ok
        } else {
            Outcome::Failed
        }
    })
}
