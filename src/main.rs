use clap::Parser;

/// mimalloc: a sync allocates and frees a cell per text value of every row; with glibc's
/// allocator those frees were a third of the writer's CPU (see BENCHMARKS.md, write path).
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
