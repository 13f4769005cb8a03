//! Runs every job on its cron schedule inside `meet serve`.

use std::sync::Arc;

use tokio_cron_scheduler::{Job as CronJob, JobScheduler};

use super::Silent;
use crate::service::Services;

#[derive(Debug, thiserror::Error)]
#[error("job scheduler: {0}")]
pub struct SchedulerError(String);

/// Starts the scheduler; drop or `shutdown` the returned handle to stop it.
pub async fn start(services: Arc<Services>) -> Result<JobScheduler, SchedulerError> {
    let err = |e: tokio_cron_scheduler::JobSchedulerError| SchedulerError(e.to_string());
    let sched = JobScheduler::new().await.map_err(err)?;
    for job in super::all() {
        let name = job.name();
        let schedule = job.schedule(&services.config.jobs).to_owned();
        let services = Arc::clone(&services);
        let job: Arc<dyn super::Job> = Arc::from(job);
        let cron = CronJob::new_async_tz(
            schedule.as_str(),
            services.config.limits.time_zone,
            move |_, _| {
                let services = Arc::clone(&services);
                let job = Arc::clone(&job);
                Box::pin(async move {
                    match super::run_and_record(job.as_ref(), &services, &Silent, false).await {
                        Ok(r) if r.changed > 0 || r.failed > 0 => {
                            tracing::info!(
                                job = r.job,
                                examined = r.examined,
                                changed = r.changed,
                                failed = r.failed,
                                "job ran"
                            );
                        }
                        Ok(r) => tracing::debug!(job = r.job, "job ran; nothing to do"),
                        Err(e) => tracing::error!(job = job.name(), error = %e, "job failed"),
                    }
                })
            },
        )
        .map_err(err)?;
        sched.add(cron).await.map_err(err)?;
        tracing::debug!(job = name, %schedule, "job scheduled");
    }
    sched.start().await.map_err(err)?;
    Ok(sched)
}
