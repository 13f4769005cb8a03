//! The subcommands. `anyhow` lives here, at the edge.

mod admin;
mod import;
mod jobs;
mod serve;
mod top;

use std::process::ExitCode;

use crate::cli::{Cli, Command, CommonArgs};
use crate::config::{Config, Overrides};
use crate::control::client::{self, ClientError};
use crate::control::proto::Request;

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
            Command::Top(args) => top::run(&args).await,
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                let mut text = Vec::new();
                clap_complete::generate(shell, &mut cmd, "meet", &mut text);
                print_all(&text)
            }
            Command::Man => {
                let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
                let mut text = Vec::new();
                man.render(&mut text)?;
                print_all(&text)
            }
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

/// Writes generated text to stdout; a reader that went away (`| head`) is not an error.
fn print_all(text: &[u8]) -> anyhow::Result<ExitCode> {
    print_out(text)?;
    Ok(ExitCode::SUCCESS)
}

/// A command's report as pretty JSON, for scripts (`--json`), through [`print_out`].
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    print_out(serde_json::to_string_pretty(value)? + "\n")
}

/// Writes a command's whole report to stdout at once. A reader that went away (`| grep -q`)
/// is not an error: the command did its work and nobody reads the rest. Any other failure
/// (a full disk behind `>`) is. `println!` would panic on both.
fn print_out(text: impl AsRef<[u8]>) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_ref())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Where a command's requests go: the running server if its control socket answers, else the
/// database opened by this process (once, for every request of the command). With `create`
/// an empty data dir is made (`meet admin restore`); otherwise an offline command never makes
/// one. The choice is made here, at the edge: `control` knows the protocol, not the start-up.
async fn target(config: &Config, create: bool) -> Result<client::Target, ClientError> {
    let socket = config.control_socket();
    if client::send(&socket, &Request::Ping, &crate::jobs::Silent)
        .await?
        .is_some()
    {
        return Ok(client::Target::Server(socket));
    }
    if !create && !config.data_dir.exists() {
        return Err(ClientError::Offline(format!(
            "no meet server answers on {} and there is no data in {}; start `meet serve` or pass --data-dir",
            socket.display(),
            config.data_dir.display()
        )));
    }
    let services = crate::app::open_services(config)
        .await
        .map_err(|e| match e {
            crate::app::StartError::Store(crate::store::OpenError::Locked(url)) => {
                ClientError::Locked(url)
            }
            other => ClientError::Offline(other.to_string()),
        })?;
    Ok(client::Target::Direct(std::sync::Arc::new(services)))
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
