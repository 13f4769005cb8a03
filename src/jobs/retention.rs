//! Deletes recordings past their retention (3 days by default), bytes first (daily at 02:00).

use super::{Job, JobFuture, Progress, Report};
use crate::service::Services;

pub struct Retention;

impl Job for Retention {
    fn name(&self) -> &'static str {
        "retention"
    }

    fn describe(&self) -> &'static str {
        "delete recordings older than recordings.retention_days"
    }

    fn schedule<'c>(&self, config: &'c crate::config::JobsConfig) -> &'c str {
        &config.retention_schedule
    }

    fn run<'a>(&'a self, services: &'a Services, progress: &'a dyn Progress) -> JobFuture<'a> {
        Box::pin(async move {
            let expired = services.expired_recordings().await?;
            progress.total(expired.len() as u64);
            let mut report = Report {
                job: self.name().into(),
                examined: expired.len() as u64,
                ..Report::default()
            };
            for rec in expired {
                match services.remove_recording(&rec).await {
                    Ok(()) => report.changed += 1,
                    Err(e) => {
                        // The row stays, so the next run tries again.
                        tracing::warn!(recording = %rec.id, error = %e, "could not delete an expired recording");
                        report.failed += 1;
                    }
                }
                progress.advance();
            }
            Ok(report)
        })
    }
}
