//! `cargo bench --bench write`: the qsync writer against LOAD DATA and multi-row statements
//! on the test server (`QSYNC_TEST_MYSQL_URL`), in a fresh database.
//! `QSYNC_BENCH_ROWS` sets the row count (default 1,000,000); `QSYNC_BENCH_SECTIONS` the
//! scenarios (comma-separated `insert`, `replace`, `upsert`; default all; `tls`, only when
//! named, inserts by socket, TCP and TCP with TLS on a MariaDB of the bench's own);
//! `QSYNC_BENCH_PAIRS` how many alternated LOAD DATA / qsync insert pairs end the run
//! (default 0), and how many alternations the `tls` section makes (at least 1).

/// The allocator the `qsync` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let rows = std::env::var("QSYNC_BENCH_ROWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let sections = std::env::var("QSYNC_BENCH_SECTIONS").unwrap_or_default();
    let sections: Vec<&str> = sections.split(',').filter(|s| !s.is_empty()).collect();
    let pairs = std::env::var("QSYNC_BENCH_PAIRS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let (url, _guard) = qsync::sink::testing::fresh_database().await;
    if let Err(error) = qsync::sink::bench::run(&url, rows, &sections, pairs).await {
        eprintln!("write benchmark failed: {error}");
        std::process::exit(1);
    }
}
