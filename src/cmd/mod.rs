//! The subcommands. `anyhow` lives here, at the edge.

mod admin;
mod import;
mod jobs;
mod serve;
mod top;

use std::process::ExitCode;

use crate::cli::{Cli, Command, CommonArgs};
use crate::config::{Config, Overrides};

pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("meet: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Jobs(args) => jobs::run(args).await,
            Command::Top(args) => top::run(&args),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("meet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration for a command that talks to a server.
fn load_config(common: &CommonArgs) -> anyhow::Result<Config> {
    let overrides = Overrides {
        config: common.config.clone(),
        data_dir: common.data_dir.clone(),
        listen: None,
    };
    Ok(Config::load(&overrides)?)
}
