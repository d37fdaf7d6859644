//! `cargo bench --bench transform`: flatten + map + convert throughput on one core.
//! `QSYNC_BENCH_RECORDS` sets the number of sample records (3 rows each).

fn main() {
    let records = std::env::var("QSYNC_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400_000);
    // A warm-up pass so allocator and caches settle before the measured pass.
    let _ = qsync::transform::bench::run(records / 10);
    let (rows, elapsed) = qsync::transform::bench::run(records);
    let secs = elapsed.as_secs_f64();
    #[allow(clippy::cast_precision_loss, reason = "a rate for humans")]
    let rate = rows as f64 / secs;
    println!(
        "transform: {rows} rows (33 columns, @flatten items) in {secs:.3}s = {rate:.0} rows/s"
    );
}
