use clap::Parser;

/// mimalloc: a sync allocates and frees a cell per text value of every row. With glibc's
/// allocator, malloc/free were about a third of the write benchmark's CPU samples; mimalloc
/// made decode + transform 1.33x faster (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = qsync::cli::Cli::parse();
    std::process::ExitCode::from(match qsync::cli::run(cli) {
        qsync::cli::Outcome::Ok => 0,
        qsync::cli::Outcome::Failed => 1,
        qsync::cli::Outcome::Usage => 2,
    })
}
