//! `cargo bench --bench transform`: flatten + map + convert of Jushuitan after-sales pages,
//! rows per second on one core, beside `jq` doing the same flatten on the same pages.
//! `QSYNC_BENCH_RECORDS` sets the number of records (3 rows each; default 1,000,000).
//! Without `jq` on the PATH the comparison line says so and the qsync figures still print.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use qsync::transform::bench;

#[allow(clippy::cast_precision_loss, reason = "a rate for humans")]
fn rate(rows: usize, secs: f64) -> f64 {
    rows as f64 / secs
}

/// The allocator the `qsync` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let records: usize = std::env::var("QSYNC_BENCH_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);

    // Records already decoded (the transform alone), after a warm-up pass.
    let _ = bench::run(records / 10);
    let (rows, elapsed) = bench::run(records);
    let secs = elapsed.as_secs_f64();
    println!(
        "qsync transform only (decoded records):   {rows:>9} rows {secs:>7.2}s {:>10.0} rows/s",
        rate(rows, secs)
    );

    // From JSON pages: decode + flatten + map + convert.
    let pages = bench::sample_pages(records);
    let (rows, elapsed) = bench::run_pages(&pages);
    let qsync_secs = elapsed.as_secs_f64();
    let qsync_rate = rate(rows, qsync_secs);
    println!(
        "qsync decode + transform (JSON pages):   {rows:>9} rows {qsync_secs:>7.2}s {qsync_rate:>10.0} rows/s  ({} MB of pages)",
        pages.len() >> 20
    );

    match jq(&pages) {
        Ok(jq_secs) => {
            let jq_rate = rate(rows, jq_secs);
            println!(
                "jq flatten only (same pages, 1 process): {rows:>9} rows {jq_secs:>7.2}s {jq_rate:>10.0} rows/s"
            );
            println!("qsync / jq: {:.1}x", qsync_rate / jq_rate);
        }
        Err(why) => println!("jq comparison skipped: {why}"),
    }
}

/// Runs `jq -c` with the flatten program over `pages` (from a file, output to /dev/null so
/// that only jq's work is timed); returns its wall time. A first run on
/// one page checks that jq produces the rows qsync does.
fn jq(pages: &[u8]) -> Result<f64, String> {
    let dir = std::env::temp_dir().join(format!("qsync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = jq_in(&dir, pages);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn jq_in(dir: &std::path::Path, pages: &[u8]) -> Result<f64, String> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(bytes))
            .map(|()| path.clone())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let first_line = pages.split(|b| *b == b'\n').next().unwrap_or_default();
    let probe = write("probe.ndjson", first_line)?;
    let output = Command::new("jq")
        .args(["-c", bench::JQ_FLATTEN])
        .arg(&probe)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run jq: {e}"))?;
    let probe_rows = output.stdout.iter().filter(|b| **b == b'\n').count();
    let expected = bench::RECORDS_PER_PAGE * bench::ITEMS_PER_RECORD;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || probe_rows != expected || !text.contains("\"items_asi_id\"") {
        return Err(format!(
            "jq's flatten of one page gave {probe_rows} rows, expected {expected}"
        ));
    }

    let input = write("pages.ndjson", pages)?;
    let start = Instant::now();
    let status = Command::new("jq")
        .args(["-c", bench::JQ_FLATTEN])
        .arg(&input)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run jq: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("jq exited with {status}"));
    }
    Ok(secs)
}
