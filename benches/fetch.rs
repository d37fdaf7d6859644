//! `cargo bench --bench fetch`: the fetch path when the vendor's rate limit is the
//! bottleneck. The simulator (in process, loopback) serves Jushuitan after-sales pages with
//! 50 ms of latency and enforces 20 requests/s per app key; qsync syncs ~2,000 pages of 50
//! into a fresh database under `@rate 20/s`. The figure is total time ÷ (pages ÷ rate): 1.00
//! is the limit itself. Two spacings run: `@rate 20/s` (Jushuitan's default: by send) and
//! `@rate 20/s by answer`. `QSYNC_BENCH_PAGES` sets the page count (default 2,000),
//! `QSYNC_BENCH_SPACING` the spacings (default "default,answer"; also "send").

use std::time::{Duration, Instant};

use chrono::Utc;
use qsync::config::EnvPolicy;
use qsync::exec::{self, RunOptions};
use qsync::plan::ConnectorKind;
use qsync::sim::{self, Faults, Limits, SimConfig, SimCredentials};
use qsync::sink::testing::fresh_database;

const RATE: u32 = 20;
const PAGE: usize = 50;
const SPAN_DAYS: i64 = 7;

/// The allocator the `qsync` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QSYNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let pages: usize = std::env::var("QSYNC_BENCH_PAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let spacings = std::env::var("QSYNC_BENCH_SPACING").unwrap_or_else(|_| "default,answer".into());
    for spacing in spacings.split(',').map(str::trim) {
        if let Err(why) = run(pages, spacing).await {
            eprintln!("fetch benchmark failed: {why}");
            std::process::exit(1);
        }
    }
}

async fn run(pages: usize, spacing: &str) -> Result<(), String> {
    let sim = sim::start(
        SimConfig {
            seed: 7,
            records: pages * PAGE,
            span_days: SPAN_DAYS,
            rates: true,
            limits: Limits {
                jushuitan: vec![(RATE, Duration::from_secs(1))],
                ..Limits::default()
            },
            faults: Faults {
                latency: Duration::from_millis(50),
                ..Faults::default()
            },
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
    )
    .await
    .map_err(|e| format!("simulator: {e}"))?;
    let (url, _db) = fresh_database().await;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let c = SimCredentials::default();
    let profile = format!(
        "timezone: Asia/Shanghai\nconnections:\n  jst:\n    kind: jushuitan\n    base_url: {}\n    app_key: {}\n    app_secret: {}\n    access_token: {}\n  bi:\n    kind: mysql\n    url: \"{url}\"\n",
        sim.base_url(ConnectorKind::Jushuitan),
        c.app_key,
        c.app_secret,
        c.jst_access_token,
    );
    let initial = (Utc::now().with_timezone(&chrono_tz::Asia::Shanghai)
        - chrono::Duration::days(SPAN_DAYS)
        - chrono::Duration::minutes(1))
    .format("%Y-%m-%d %H:%M:%S");
    let rate = match spacing {
        "default" => format!("@rate {RATE}/s"),
        spacing => format!("@rate {RATE}/s by {spacing}"),
    };
    let spec = format!(
        r#"sync "fetch bench"

source jushuitan "/open/refund/single/query" {{
    connection jst
    window max 1d lag 0s initial "{initial}"
    param modified_begin = "{{{{ window.start | datetime }}}}"
    param modified_end = "{{{{ window.end | datetime }}}}"
    @paginate page_index size {PAGE}
    {rate}
    @retry 5 backoff 200ms max 2s
    records data.datas
    id as_id
    modified modified
}}

@flatten items

target mysql "refunds" {{
    connection bi
    mode replace
    key id
    create
}}

map {{
    id = "<as_id>-<items_asi_id>"
    as_id = as_id : bigint
    items_qty = items_qty : int
    modified = modified : datetime
    refund = refund : decimal(12,2)
}}
"#
    );
    std::fs::write(dir.path().join("qsync.yaml"), profile).map_err(|e| e.to_string())?;
    let spec_path = dir.path().join("fetch.qsync");
    std::fs::write(&spec_path, spec).map_err(|e| e.to_string())?;
    let loaded = qsync::frontend::load(
        &spec_path,
        Some(&dir.path().join("qsync.yaml")),
        EnvPolicy::Require,
        None,
    )
    .map_err(|e| format!("{e:?}"))?;
    let profile = loaded.profile.ok_or("no profile")?;

    let started = Instant::now();
    let summary = exec::run(&loaded.plan, &profile, RunOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let took = started.elapsed().as_secs_f64();
    let stats = sim.stats();
    let jst = &stats.vendors["jushuitan"];
    #[allow(clippy::cast_precision_loss, reason = "a ratio for humans")]
    let ideal = summary.pages as f64 / f64::from(RATE);
    let spacing = if loaded.plan.source.rate_by_send {
        "send"
    } else {
        "answer"
    };
    println!(
        "fetch, `{rate}` (by {spacing}): {} pages ({} windows, {} rows) at {RATE}/s with 50 ms latency: {took:.2}s; pages / rate = {ideal:.2}s; ratio {:.3}",
        summary.pages,
        summary.windows,
        summary.rows_written,
        took / ideal
    );
    println!(
        "simulator: {} requests, {} served, {} throttled (over its {RATE}/s limit)",
        jst.requests, jst.served, jst.throttled
    );
    sim.shutdown().await;
    Ok(())
}
