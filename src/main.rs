use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = qsync::cli::Cli::parse();
    std::process::ExitCode::from(match qsync::cli::run(cli) {
        qsync::cli::Outcome::Ok => 0,
        qsync::cli::Outcome::Failed => 1,
        qsync::cli::Outcome::Usage => 2,
    })
}
