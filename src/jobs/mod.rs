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
pub struct Report {
    pub job: String,
    /// Items looked at.
    pub examined: u64,
    /// Items changed (meetings ended or archived, recordings deleted).
    pub changed: u64,
    pub failed: u64,
}

pub type JobFuture<'a> = Pin<Box<dyn Future<Output = Result<Report>> + Send + 'a>>;

pub trait Job: Send + Sync {
    fn name(&self) -> &'static str;
    fn describe(&self) -> &'static str;
    /// The cron expression (six fields, with seconds) from the configuration.
    fn schedule<'c>(&self, config: &'c crate::config::JobsConfig) -> &'c str;
    fn run<'a>(&'a self, services: &'a Services, progress: &'a dyn Progress) -> JobFuture<'a>;
}

/// Every job, in the order `meet jobs all` runs them.
pub fn all() -> Vec<Box<dyn Job>> {
    vec![Box::new(Cleanup), Box::new(Archive), Box::new(Retention)]
}

pub fn by_name(name: &str) -> Option<Box<dyn Job>> {
    all().into_iter().find(|j| j.name() == name)
}
