//! Ends meetings that have run past their duration limit (every 5 minutes by default).

use super::{Job, JobFuture, Progress, Report};
use crate::domain::meetings::EndReason;
use crate::service::Services;

pub struct Cleanup;

impl Job for Cleanup {
    fn name(&self) -> &'static str {
        "cleanup"
    }

    fn describe(&self) -> &'static str {
        "end meetings past their duration limit"
    }

    fn schedule<'c>(&self, config: &'c crate::config::JobsConfig) -> &'c str {
        &config.cleanup_schedule
    }

    fn run<'a>(
        &'a self,
        services: &'a Services,
        progress: &'a dyn Progress,
        dry_run: bool,
    ) -> JobFuture<'a> {
        Box::pin(async move {
            let overdue = services.store.overdue_meetings(services.now()).await?;
            progress.total(overdue.len() as u64);
            let mut report = Report::new(self.name(), overdue.len() as u64, dry_run);
            for m in overdue {
                if dry_run {
                    report.changed += 1;
                } else {
                    match services
                        .end_meeting_as(&m.id, EndReason::DurationExceeded)
                        .await
                    {
                        Ok(_) => report.changed += 1,
                        Err(e) => {
                            tracing::warn!(meeting = %m.id, error = %e, "could not end an overdue meeting");
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
