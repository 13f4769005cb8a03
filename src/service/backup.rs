//! `meet admin backup` and `restore`: the database as SurrealQL, through the running server or
//! on a stopped server's data dir. The recordings' audio is not in a backup (it lives in the
//! storage: back that up with the storage's own tools).

use serde::Serialize;

use super::{Services, Stats, new_id};
use crate::error::{Error, Result};

/// What a restore brought back.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub stats: Stats,
    /// Bytes of the backup read.
    pub bytes: usize,
}

impl Services {
    /// The whole database as SurrealQL text.
    pub async fn backup(&self) -> Result<String> {
        self.store.export().await
    }

    /// Replaces the database with a backup. Refused (`409 not_empty`) when the database holds
    /// more than its administrators, unless `replace`.
    pub async fn restore(&self, text: &str, replace: bool) -> Result<Restored> {
        if !text.trim_start().starts_with("--") && !text.contains("DEFINE TABLE") {
            return Err(Error::invalid(
                "file",
                "is not a meet backup (SurrealQL from meet admin backup)",
            ));
        }
        if !replace && !self.store.holds_only_admins().await? {
            return Err(Error::conflict(
                "not_empty",
                "The database holds data: pass --replace to replace all of it with the backup",
            ));
        }
        let scratch = self
            .config
            .data_dir
            .join(format!("restore-{}.surql", new_id()));
        self.store.restore(text, &scratch).await?;
        self.identities.clear();
        tracing::warn!(bytes = text.len(), "the database was replaced by a backup");
        Ok(Restored {
            stats: self.stats().await?,
            bytes: text.len(),
        })
    }
}
