//! `qsync sim`: the vendor API simulator ([`crate::sim`]) on loopback with the faults the
//! flags ask for, until Ctrl-C; the base URL of each vendor goes to stderr.

use super::Outcome;

#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: std::net::SocketAddr,
    /// Seed of the generated datasets.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Records per dataset.
    #[arg(long, default_value_t = 500)]
    pub records: usize,
    /// Modified times spread over this many days before now.
    #[arg(long, default_value_t = 10)]
    pub span_days: i64,
    /// Enforce the vendors' rate limits.
    #[arg(long)]
    pub rates: bool,
    /// Added latency per request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered with HTTP 500/502 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Modify records while windows are being paged (the page-shift that loses orders).
    #[arg(long)]
    pub drift: bool,
    /// Share of requests answered 200 with the vendor's retryable error body (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub vendor_error_rate: f64,
    /// Throttle bursts: every N requests, answer the next few with the vendor's throttle
    /// code (429 with Retry-After for plain HTTP).
    #[arg(long)]
    pub throttle_every: Option<u32>,
    /// Share of requests that hang for 30 s before a 504 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Share of answers cut in half (torn bodies) (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub truncate_rate: f64,
    /// Share of pages that repeat the previous page's last record (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_rate: f64,
    /// Lifetime of issued tokens in seconds (tokens expire mid-run).
    #[arg(long)]
    pub token_ttl_secs: Option<u64>,
}

pub(super) fn sim(args: &SimArgs) -> Outcome {
    let rates = [
        ("--error-rate", args.error_rate),
        ("--vendor-error-rate", args.vendor_error_rate),
        ("--timeout-rate", args.timeout_rate),
        ("--truncate-rate", args.truncate_rate),
        ("--duplicate-rate", args.duplicate_rate),
    ];
    if let Some((flag, value)) = rates.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
        eprintln!("error: {flag} is a share of requests between 0 and 1, not {value}");
        return Outcome::Usage;
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "error: the simulator listens on loopback only, not {}",
            args.listen
        );
        return Outcome::Usage;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return Outcome::Failed;
        }
    };
    runtime.block_on(async {
        let config = crate::sim::SimConfig {
            seed: args.seed,
            records: args.records,
            span_days: args.span_days,
            rates: args.rates,
            faults: crate::sim::Faults {
                latency: std::time::Duration::from_millis(args.latency_ms),
                error_rate: args.error_rate,
                drift: args.drift,
                vendor_error_rate: args.vendor_error_rate,
                throttle_burst: args.throttle_every.map(|every| crate::sim::ThrottleBurst {
                    every,
                    len: 2,
                    retry_after_secs: 1,
                }),
                timeout_rate: args.timeout_rate,
                truncate_rate: args.truncate_rate,
                duplicate_rate: args.duplicate_rate,
                token_ttl: args.token_ttl_secs.map(std::time::Duration::from_secs),
                ..crate::sim::Faults::default()
            },
            ..crate::sim::SimConfig::default()
        };
        let handle = match crate::sim::start(config, args.listen).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot start the simulator on {}: {e}", args.listen);
                return Outcome::Failed;
            }
        };
        eprintln!(
            "qsync sim: serving every vendor on http://{} (Ctrl-C to stop)",
            handle.addr()
        );
        for kind in crate::plan::ConnectorKind::ALL {
            eprintln!("  {:<14} {}", kind.keyword(), handle.base_url(kind));
        }
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
        Outcome::Ok
    })
}
