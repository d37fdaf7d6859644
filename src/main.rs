use clap::Parser;

/// mimalloc: a sync allocates and frees per record and row (decoded JSON trees, row vectors,
/// text cells longer than 24 bytes), the frees mostly on another thread. With glibc's
/// allocator, malloc/free were about a third of the write benchmark's CPU samples (measured
/// before short text cells went inline); mimalloc made decode + transform 1.33x faster (see
/// BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = qsync::cli::Cli::parse();
    std::process::ExitCode::from(match qsync::cli::run(cli) {
        qsync::cli::Outcome::Ok => 0,
        qsync::cli::Outcome::Failed => 1,
        qsync::cli::Outcome::Usage => 2,
        // 128 + the signal's number, as a shell reports a process the signal ended.
        qsync::cli::Outcome::Interrupted => 130,
        qsync::cli::Outcome::Terminated => 143,
    })
}
