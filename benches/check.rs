//! `cargo bench --bench check`: `qsync check`'s front end (parse + check + plan) on generated
//! specs with many map columns, the size the check must stay linear in. Prints the time of
//! a ~1 MB spec (target: under a second) and of larger ones, so a return of a quadratic
//! step shows as a time that grows faster than the size. `QSYNC_BENCH_COLUMNS` sets the
//! column counts (a comma list; default `3000,30000,300000`).

use std::fmt::Write as _;
use std::time::Instant;

/// The allocator the `qsync` binary uses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A valid spec with `columns` typed map columns, each reading its own nested field.
fn spec(columns: usize) -> String {
    let mut text = String::from(
        "sync \"wide\"\n\nsource http \"/wide\" {\n    connection api\n    records data\n    id id\n}\n\n\
         target mysql \"wide\" {\n    connection bi\n    mode replace\n    key id\n    create\n}\n\nmap {\n    id = id : bigint\n",
    );
    for n in 0..columns {
        let _ = writeln!(text, "    c_{n:06} = detail.f_{n:06} : string(32)");
    }
    text.push_str("}\n");
    text
}

fn main() {
    let counts: Vec<usize> = std::env::var("QSYNC_BENCH_COLUMNS")
        .ok()
        .map(|list| {
            list.split(',')
                .filter_map(|n| n.trim().parse().ok())
                .collect()
        })
        .unwrap_or_else(|| vec![3_000, 30_000, 300_000]);
    for columns in counts {
        let text = spec(columns);
        // Best of three: the machine is shared.
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let started = Instant::now();
            let checked =
                qsync::check::check("wide.qsync", &text, qsync::check::CheckContext::default())
                    .unwrap_or_else(|e| {
                        panic!("the generated spec checks: {:?}", e.diagnostics.first())
                    });
            best = best.min(started.elapsed().as_secs_f64());
            assert_eq!(checked.plan.columns.len(), columns + 1);
        }
        #[allow(clippy::cast_precision_loss, reason = "a rate for humans")]
        let mb = text.len() as f64 / 1_048_576.0;
        println!(
            "check, {columns:>7} columns, {mb:>6.2} MB: {best:>7.3}s  ({:>6.2} s/MB)",
            best / mb
        );
    }
}
