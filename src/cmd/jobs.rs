//! `meet jobs`: runs maintenance now, with a progress bar per job.

use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::JobsArgs;
use crate::control::client;
use crate::control::proto::Request;
use crate::jobs::{Progress, Report};

struct Bar(ProgressBar);

impl Progress for Bar {
    fn total(&self, n: u64) {
        self.0.set_length(n);
    }
    fn advance(&self) {
        self.0.inc(1);
    }
}

pub async fn run(args: JobsArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_minimal();
    let config = super::load_config(&args.common)?;
    let names: Vec<&'static str> = if args.job == "all" {
        crate::jobs::all().iter().map(|j| j.name()).collect()
    } else if let Some(job) = crate::jobs::by_name(&args.job) {
        vec![job.name()]
    } else {
        let known: Vec<_> = crate::jobs::all().iter().map(|j| j.name()).collect();
        eprintln!(
            "meet jobs: unknown job `{}` (known: {}, all)",
            args.job,
            known.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let target = match client::Target::connect(&config).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meet jobs: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut failed = false;
    let mut reports = Vec::new();
    for name in names {
        let bar = ProgressBar::new(0)
            .with_style(style.clone())
            .with_prefix(name);
        if args.json {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        match target
            .run(Request::JobRun { name: name.into() }, &Bar(bar.clone()))
            .await
        {
            Ok(v) => {
                let report: Report = serde_json::from_value(v).unwrap_or_default();
                bar.finish_with_message(format!(
                    "examined {}, changed {}, failed {}",
                    report.examined, report.changed, report.failed
                ));
                failed |= report.failed > 0;
                reports.push(report);
            }
            Err(e) => {
                bar.abandon_with_message(format!("error: {e}"));
                failed = true;
            }
        }
    }
    target.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
