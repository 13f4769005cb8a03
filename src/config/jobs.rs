//! `[jobs]`: the maintenance jobs' cron schedules.

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, text_or};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJobs {
    pub enabled: Option<bool>,
    pub cleanup_schedule: Option<Text>,
    pub retention_schedule: Option<Text>,
    pub archive_schedule: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub enabled: bool,
    pub cleanup_schedule: String,
    pub retention_schedule: String,
    pub archive_schedule: String,
}

pub(super) fn validate(raw: RawJobs) -> Result<JobsConfig, ConfigError> {
    Ok(JobsConfig {
        enabled: raw.enabled.unwrap_or(true),
        cleanup_schedule: cron(
            raw.cleanup_schedule,
            "0 */5 * * * *",
            "jobs.cleanup_schedule",
        )?,
        retention_schedule: cron(
            raw.retention_schedule,
            "0 0 2 * * *",
            "jobs.retention_schedule",
        )?,
        archive_schedule: cron(raw.archive_schedule, "0 0 1 * * *", "jobs.archive_schedule")?,
    })
}

fn cron(value: Option<Text>, default: &str, key: &str) -> Result<String, ConfigError> {
    let expr = text_or(value, default);
    if expr.split_whitespace().count() != 6 {
        return Err(key_err(
            key,
            "expected six cron fields: sec min hour day-of-month month day-of-week",
        ));
    }
    if tokio_cron_scheduler::Job::new_async(expr.as_str(), |_, _| Box::pin(async {})).is_err() {
        return Err(key_err(
            key,
            format!("`{expr}` is not a valid cron expression"),
        ));
    }
    Ok(expr)
}
