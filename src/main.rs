use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = meet::cli::Cli::parse();
    meet::cmd::run(cli)
}
