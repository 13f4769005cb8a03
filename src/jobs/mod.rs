//! Maintenance jobs: one [`Job`] trait, run on a schedule inside `meet serve` and on demand by
//! `meet jobs`, reporting through the same [`Progress`] hook.

mod archive;
mod cleanup;
mod retention;
pub mod scheduler;

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use archive::Archive;
pub use cleanup::Cleanup;
pub use retention::Retention;

use crate::error::Result;
use crate::service::Services;

/// Where a job reports how far it is.
pub trait Progress: Send + Sync {
    /// The number of items this run will go through.
    fn total(&self, n: u64);
    /// One more item done.
    fn advance(&self);
}

/// Reports nowhere (the scheduler logs the outcome instead).
pub struct Silent;

impl Progress for Silent {
    fn total(&self, _: u64) {}
    fn advance(&self) {}
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub job: String,
    /// Items looked at.
    pub examined: u64,
    /// Items changed (meetings ended or archived, recordings or objects deleted); in a dry
    /// run, the items that would be.
    pub changed: u64,
    pub failed: u64,
    /// Nothing was changed: the counts say what a real run would do.
    #[serde(default)]
    pub dry_run: bool,
}

impl Report {
    pub fn new(job: &str, examined: u64, dry_run: bool) -> Self {
        Self {
            job: job.to_owned(),
            examined,
            dry_run,
            ..Self::default()
        }
    }
}

/// A job's last run in this server, for `meet jobs list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LastRun {
    pub at: chrono::DateTime<chrono::Utc>,
    /// `ok`, or the error.
    pub outcome: String,
    pub report: Option<Report>,
}

/// A job as `meet jobs list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    pub name: String,
    pub description: String,
    pub schedule: String,
    /// Whether the server runs it on its schedule (`jobs.enabled`).
    pub scheduled: bool,
    pub last_run: Option<LastRun>,
    pub next_run: Option<chrono::DateTime<chrono::Utc>>,
}

/// The next time `schedule` (six fields, with seconds) fires after `now`, in `tz`.
pub fn next_run(
    schedule: &str,
    tz: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(schedule)
        .ok()?;
    cron.find_next_occurrence(&now.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Runs a job and remembers how it went (not for dry runs, which change nothing).
pub async fn run_and_record(
    job: &dyn Job,
    services: &Services,
    progress: &dyn Progress,
    dry_run: bool,
) -> Result<Report> {
    let result = job.run(services, progress, dry_run).await;
    if !dry_run {
        services.record_job_run(
            job.name(),
            LastRun {
                at: services.now(),
                outcome: match &result {
                    Ok(r) if r.failed > 0 => format!("{} failed", r.failed),
                    Ok(_) => "ok".into(),
                    Err(e) => e.to_string(),
                },
                report: result.as_ref().ok().cloned(),
            },
        );
    }
    result
}

/// Every job with its schedule, last and next run.
pub fn list(services: &Services) -> Vec<JobInfo> {
    let jobs = &services.config.jobs;
    all()
        .into_iter()
        .map(|j| {
            let schedule = j.schedule(jobs).to_owned();
            JobInfo {
                name: j.name().into(),
                description: j.describe().into(),
                next_run: jobs
                    .enabled
                    .then(|| next_run(&schedule, services.config.limits.time_zone, services.now()))
                    .flatten(),
                schedule,
                scheduled: jobs.enabled,
                last_run: services.last_job_run(j.name()),
            }
        })
        .collect()
}

pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<Report>> + Send + 'a>>;

pub trait Job: Send + Sync {
    fn name(&self) -> &'static str;
    fn describe(&self) -> &'static str;
    /// The cron expression (six fields, with seconds) from the configuration.
    fn schedule<'c>(&self, config: &'c crate::config::JobsConfig) -> &'c str;
    /// Does the job; with `dry_run`, changes nothing and counts what it would change.
    fn run<'a>(
        &'a self,
        services: &'a Services,
        progress: &'a dyn Progress,
        dry_run: bool,
    ) -> JobFuture<'a>;
}

/// Every job, in the order `meet jobs all` runs them.
pub fn all() -> Vec<Box<dyn Job>> {
    vec![Box::new(Cleanup), Box::new(Archive), Box::new(Retention)]
}

pub fn by_name(name: &str) -> Option<Box<dyn Job>> {
    all().into_iter().find(|j| j.name() == name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_runs_in_the_time_zone() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let next = super::next_run("0 0 2 * * *", chrono_tz::Europe::Berlin, now).expect("next");
        // 02:00 in Berlin (UTC+1 in March before the switch) is 01:00 UTC, the next day.
        assert_eq!(next.to_rfc3339(), "2026-03-11T01:00:00+00:00");
        assert!(super::next_run("nonsense", chrono_tz::UTC, now).is_none());
    }
}
