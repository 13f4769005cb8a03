//! `meet jobs list`: the jobs, their schedules and runs; `meet jobs run`: maintenance now, with
//! a progress bar per job.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{JobsArgs, JobsCommand};
use crate::control::proto::Request;
use crate::jobs::{JobInfo, Progress, Report, Silent};

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
    let (job, dry_run) = match &args.command {
        JobsCommand::List => return list(&config, args.json).await,
        JobsCommand::Run { job, dry_run } => (job.clone(), *dry_run),
    };
    let names: Vec<&'static str> = if job == "all" {
        crate::jobs::all().iter().map(|j| j.name()).collect()
    } else if let Some(j) = crate::jobs::by_name(&job) {
        vec![j.name()]
    } else {
        let known: Vec<_> = crate::jobs::all().iter().map(|j| j.name()).collect();
        eprintln!(
            "meet jobs: unknown job `{job}` (known: {}, all)",
            known.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let target = match super::target(&config, false).await {
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
            .run(
                Request::JobRun {
                    name: name.into(),
                    dry_run,
                },
                &Bar(bar.clone()),
            )
            .await
        {
            Ok(v) => {
                let report: Report = serde_json::from_value(v).unwrap_or_default();
                let changed = if report.dry_run {
                    "would change"
                } else {
                    "changed"
                };
                bar.finish_with_message(format!(
                    "examined {}, {changed} {}, failed {}",
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
        super::print_json(&reports)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `meet jobs list`: a table (or JSON) of the jobs.
async fn list(config: &crate::config::Config, json: bool) -> anyhow::Result<ExitCode> {
    let target = match super::target(config, false).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meet jobs: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let result = target.run(Request::JobList, &Silent).await;
    target.close().await;
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("meet jobs: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if json {
        super::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let jobs: Vec<JobInfo> = serde_json::from_value(value)?;
    let mut out = String::new();
    writeln!(
        out,
        "{:<10} {:<16} {:<26} {:<20} {:<26} WHAT",
        "JOB", "SCHEDULE", "LAST RUN", "OUTCOME", "NEXT RUN"
    )?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    for j in &jobs {
        let next = if j.scheduled {
            time(j.next_run)
        } else {
            "not scheduled".to_owned()
        };
        writeln!(
            out,
            "{:<10} {:<16} {:<26} {:<20} {:<26} {}",
            j.name,
            j.schedule,
            time(j.last_run.as_ref().map(|r| r.at)),
            j.last_run.as_ref().map_or("-", |r| r.outcome.as_str()),
            next,
            j.description
        )?;
    }
    super::print_out(out)?;
    Ok(ExitCode::SUCCESS)
}
