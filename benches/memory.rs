//! `cargo bench --bench memory`: peak RSS of `qsync run` for a 1M-row and a 5M-row sync.
//!
//! The source is a plain JSON API served by this process on loopback: Jushuitan-shaped
//! after-sales records (3 items each, flattened to ~30 columns), modified at evenly spaced
//! times, so every hour window holds the same number of records whatever the dataset size.
//! Records are generated per request, not held, so the server's own memory does not grow
//! either. The release `qsync` binary runs as a child process into a fresh database; its
//! peak RSS is the kernel's high-water mark (`VmHWM` in /proc), read until it exits.
//! `QSYNC_BENCH_ROWS` sets the row counts (default "1000000,5000000").

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{NaiveDateTime, TimeDelta};
use mysql_async::prelude::Queryable;
use serde_json::{json, Value};

use qsync::sink::testing::fresh_database;
use qsync::transform::bench::{sample_columns, sample_record, ITEMS_PER_RECORD};

/// Records per hour window.
const PER_WINDOW: i64 = 6000;
const PAGE: usize = 100;
const TIME: &str = "%Y-%m-%d %H:%M:%S";

/// The generated dataset: record `i` is modified at `start + i × step`.
struct Dataset {
    records: i64,
    start: NaiveDateTime,
    step: TimeDelta,
}

impl Dataset {
    fn new(rows: usize) -> Dataset {
        let records = i64::try_from(rows / ITEMS_PER_RECORD).unwrap_or(i64::MAX);
        let step = TimeDelta::milliseconds(3_600_000 / PER_WINDOW);
        // Ends an hour before now so the whole dataset is behind the run's clock.
        let now = chrono::Utc::now()
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .naive_local();
        let start = now - TimeDelta::hours(1) - step * i32::try_from(records).unwrap_or(i32::MAX);
        let start =
            start - TimeDelta::nanoseconds(i64::from(start.and_utc().timestamp_subsec_nanos()));
        Dataset {
            records,
            start,
            step,
        }
    }

    /// The first record index at or after `t`.
    fn index_at(&self, t: NaiveDateTime) -> i64 {
        let ms = (t - self.start).num_milliseconds();
        let step = self.step.num_milliseconds();
        ms.div_euclid(step) + i64::from(ms.rem_euclid(step) != 0)
    }

    fn record(&self, i: i64) -> Value {
        let mut record = sample_record(u64::try_from(i).unwrap_or_default());
        let modified = self.start + self.step * i32::try_from(i).unwrap_or_default();
        record["modified"] = json!(modified.format(TIME).to_string());
        record
    }
}

async fn page(
    State(data): State<Arc<Dataset>>,
    Query(params): Query<HashMap<String, String>>,
) -> Json<Value> {
    let time = |name: &str| {
        params
            .get(name)
            .and_then(|t| NaiveDateTime::parse_from_str(t, TIME).ok())
    };
    let (Some(from), Some(until)) = (time("updated_since"), time("updated_until")) else {
        return Json(json!({"code": 1, "message": "updated_since and updated_until are required"}));
    };
    let first = data.index_at(from).clamp(0, data.records);
    let end = data.index_at(until).clamp(first, data.records);
    let number: i64 = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let size: i64 = params
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100);
    let lo = (first + (number - 1) * size).min(end);
    let hi = (lo + size).min(end);
    let items: Vec<Value> = (lo..hi).map(|i| data.record(i)).collect();
    Json(json!({"code": 0, "data": {"total": end - first, "items": items}}))
}

/// The map of the sample table (`transform::bench::sample_columns`) as spec text, so the
/// run writes the same 33 columns as the write and transform benchmarks.
fn map_lines() -> String {
    sample_columns()
        .iter()
        .map(|c| format!("    {} = {} : {}\n", c.name, c.expr, c.ty))
        .collect()
}

fn spec_text(start: NaiveDateTime) -> String {
    format!(
        r#"sync "memory bench"

source http "/after_sales" {{
    connection api
    method GET
    window max 1h lag 0s initial "{initial}"
    param updated_since = "{{{{ window.start | datetime }}}}"
    param updated_until = "{{{{ window.end | datetime }}}}"
    @paginate page size {PAGE} per per_page until short
    @rate 1000/s
    records data.items
    total data.total
    id as_id
    modified modified
}}

@flatten items

target mysql "after_sales" {{
    connection bi
    mode replace
    key id
    create
}}

map {{
{map}}}
"#,
        initial = start.format(TIME),
        map = map_lines(),
    )
}

/// Peak RSS in KiB of the process `pid` so far (its `VmHWM`).
fn peak_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn measure(rows: usize, binary: &Path) -> Result<(), String> {
    let data = Arc::new(Dataset::new(rows));
    let app = Router::new()
        .route("/after_sales", get(page))
        .with_state(Arc::clone(&data));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let (url, _db) = fresh_database().await;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(
        dir.path().join("qsync.yaml"),
        format!(
            "timezone: Asia/Shanghai\nconnections:\n  api:\n    kind: http\n    base_url: http://{address}\n    error_path: code\n    success_value: \"0\"\n  bi:\n    kind: mysql\n    url: \"{url}\"\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let spec = dir.path().join("memory.qsync");
    std::fs::write(&spec, spec_text(data.start)).map_err(|e| e.to_string())?;

    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("run")
        .arg(&spec)
        .env("QSYNC_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut peak = 0;
    let status = loop {
        if let Some(kib) = peak_kib(child.id()) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    server.abort();
    if !status.success() {
        return Err(format!("qsync run exited with {status}"));
    }
    let mut conn = mysql_async::Conn::from_url(url.as_str())
        .await
        .map_err(|e| e.to_string())?;
    let written: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM after_sales")
        .await
        .map_err(|e| e.to_string())?;
    drop(conn);
    let expected = u64::try_from(data.records).unwrap_or_default() * ITEMS_PER_RECORD as u64;
    #[allow(clippy::cast_precision_loss, reason = "figures for humans")]
    let mib = peak as f64 / 1024.0;
    println!(
        "{expected:>8} rows: peak RSS {mib:>7.1} MiB, {secs:>6.1}s, {} rows in the table",
        written.unwrap_or_default()
    );
    if written != Some(expected) {
        return Err(format!("expected {expected} rows in the table"));
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let counts: Vec<usize> = std::env::var("QSYNC_BENCH_ROWS")
        .unwrap_or_else(|_| "1000000,5000000".to_owned())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/qsync");
    let binary = std::env::var_os("QSYNC_BIN").map_or(binary, Into::into);
    for rows in counts {
        if let Err(why) = measure(rows, &binary).await {
            eprintln!("memory benchmark ({rows} rows) failed: {why}");
            std::process::exit(1);
        }
    }
}
