//! Deletes recordings past their retention (3 days by default), bytes first, and stored objects
//! no recording refers to (daily at 02:00).

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

    fn run<'a>(
        &'a self,
        services: &'a Services,
        progress: &'a dyn Progress,
        dry_run: bool,
    ) -> JobFuture<'a> {
        Box::pin(async move {
            let expired = services.expired_recordings().await?;
            let orphans = services.orphan_objects().await?;
            let n = (expired.len() + orphans.len()) as u64;
            progress.total(n);
            let mut report = Report::new(self.name(), n, dry_run);
            for rec in expired {
                if dry_run {
                    report.changed += 1;
                } else {
                    match services.remove_recording(&rec).await {
                        Ok(()) => report.changed += 1,
                        Err(e) => {
                            // The row stays, so the next run tries again.
                            tracing::warn!(recording = %rec.id, error = %e, "could not delete an expired recording");
                            report.failed += 1;
                        }
                    }
                }
                progress.advance();
            }
            for key in orphans {
                if dry_run {
                    report.changed += 1;
                } else {
                    match services.delete_object(&key).await {
                        Ok(()) => {
                            tracing::info!(%key, "deleted an object no recording refers to");
                            report.changed += 1;
                        }
                        Err(e) => {
                            tracing::warn!(%key, error = %e, "could not delete an orphan object");
                            report.failed += 1;
                        }
                    }
                }
                progress.advance();
            }
            Ok(report)
        })
    }
}
