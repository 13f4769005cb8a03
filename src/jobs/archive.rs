//! Archives meetings that ended more than a day ago (daily at 01:00 by default).

use super::{Job, JobFuture, Progress, Report};
use crate::service::Services;

pub struct Archive;

impl Job for Archive {
    fn name(&self) -> &'static str {
        "archive"
    }

    fn describe(&self) -> &'static str {
        "archive meetings that ended more than meetings.archive_after_hours ago"
    }

    fn schedule<'c>(&self, config: &'c crate::config::JobsConfig) -> &'c str {
        &config.archive_schedule
    }

    fn run<'a>(
        &'a self,
        services: &'a Services,
        progress: &'a dyn Progress,
        dry_run: bool,
    ) -> JobFuture<'a> {
        Box::pin(async move {
            let cutoff = services.now() - services.config.archive_after;
            let ids = services.store.ended_before(cutoff).await?;
            progress.total(ids.len() as u64);
            let mut report = Report::new(self.name(), ids.len() as u64, dry_run);
            for id in ids {
                if dry_run {
                    report.changed += 1;
                } else {
                    match services.store.archive_meeting(&id).await {
                        Ok(true) => report.changed += 1,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(meeting = %id, error = %e, "could not archive a meeting");
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
