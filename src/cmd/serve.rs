//! `meet serve`.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::ServeArgs;
use crate::config::{Config, Overrides, StorageConfig};

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        config: args.common.config.clone(),
        data_dir: args.common.data_dir.clone(),
        listen: args.listen.clone(),
    };
    let config = Config::load(&overrides)?;
    if args.check_config {
        super::print_out(summary(&config)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::telemetry::init(&config.logging);
    let app = crate::app::start(config).await.context("cannot start")?;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    wait_for_signal().await?;
    tracing::info!("shutting down");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    app.shutdown().await;
    // The embedded database closes in the background once its last handle is gone.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// `--check-config`: what the server would run with.
fn summary(c: &Config) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    writeln!(out, "configuration is valid")?;
    writeln!(out, "  listen            {}", c.listen)?;
    writeln!(out, "  data dir          {}", c.data_dir.display())?;
    writeln!(out, "  database          {}", c.database.url)?;
    writeln!(out, "  socket.io path    {}", c.socketio_path)?;
    match &c.storage {
        StorageConfig::Local { dir } => {
            writeln!(out, "  storage           local: {}", dir.display())?
        }
        StorageConfig::S3(s) => writeln!(
            out,
            "  storage           s3: bucket {} in {}{}",
            s.bucket,
            s.region,
            s.endpoint
                .as_deref()
                .map(|e| format!(" at {e}"))
                .unwrap_or_default()
        )?,
    }
    writeln!(
        out,
        "  limits            {} participants, {} s, {} meetings/host/day ({})",
        c.limits.max_participants,
        c.limits.max_duration_seconds,
        c.limits.daily_limit,
        c.limits.time_zone
    )?;
    writeln!(out, "  retention         {} days", c.retention.num_days())?;
    writeln!(
        out,
        "  jwt secret        {}",
        if c.auth.jwt_secret.is_some() {
            "configured"
        } else {
            "generated in the data dir"
        }
    )?;
    writeln!(
        out,
        "  cors origins      {}",
        if c.http.cors_origins.is_empty() {
            "(none)".into()
        } else {
            c.http.cors_origins.join(", ")
        }
    )?;
    Ok(out)
}
