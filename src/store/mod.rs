//! The store: the only code that speaks SurrealQL. Every query binds its parameters.
//!
//! One [`Store`] wraps a SurrealDB connection made through `engine::any`: `surrealkv://DIR` on
//! disk (the default), `mem://` in tests, or a remote `ws://`/`wss://` server.

mod backup;
mod cache;
mod import;
mod meetings;
mod recordings;
mod schema;
mod users;

use std::time::Duration;

use surrealdb::Surreal;
use surrealdb::engine::any::Any;
use surrealdb::opt::auth::Root;

pub use import::{ImportedMeeting, ImportedParticipant, ImportedRecording, ImportedUser, Origin};
pub use meetings::{MeetingRow, NewMeeting, ParticipantRow};
pub use recordings::{NewRecording, RecordingRow, TrackRow};
pub use users::{NewUser, UserRow, UserUpdate};

use crate::config::DatabaseConfig;
use crate::error::{Error, Result};

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the database at {0} is locked by another process (is `meet serve` running? use `meet admin` against it)"
    )]
    Locked(String),
    #[error("cannot open the database at {url}: {message}")]
    Open { url: String, message: String },
    #[error("cannot apply the schema: {0}")]
    Schema(String),
}

/// Writes that add to the database are refused (`disk_full`) while its folder's file system
/// has less than this free, so that the database does not meet a full disk in the middle of a
/// write: on one, SurrealDB fails some writes at once and lets others wait for ever.
pub const MIN_FREE_BYTES: u64 = 8 << 20;

#[derive(Clone)]
pub struct Store {
    db: Surreal<Any>,
    /// The database's folder (`surrealkv://DIR`), whose free space [`Store::room`] checks.
    dir: Option<std::path::PathBuf>,
    /// Present when this process is the database's only writer.
    cache: Option<std::sync::Arc<cache::ReadCache>>,
}

impl Store {
    /// Connects, signs in when credentials are set, selects the namespace and applies the schema.
    pub async fn open(config: &DatabaseConfig) -> Result<Self, OpenError> {
        let url = config.url.clone();
        if let Some(dir) = url.strip_prefix("surrealkv://") {
            std::fs::create_dir_all(dir).map_err(|e| OpenError::Open {
                url: url.clone(),
                message: e.to_string(),
            })?;
        }
        let open_err = |e: surrealdb::Error| {
            let message = e.to_string();
            if message.contains("lock") || message.contains("Resource temporarily unavailable") {
                OpenError::Locked(url.clone())
            } else {
                OpenError::Open {
                    url: url.clone(),
                    message,
                }
            }
        };
        let db = surrealdb::engine::any::connect(url.as_str())
            .await
            .map_err(open_err)?;
        if let Some((username, password)) = &config.credentials {
            db.signin(Root {
                username: username.clone(),
                password: password.expose().to_owned(),
            })
            .await
            .map_err(open_err)?;
        }
        db.use_ns(config.namespace.as_str())
            .use_db(config.database.as_str())
            .await
            .map_err(open_err)?;
        let owned = url.starts_with("surrealkv://") || url.starts_with("mem://");
        let store = Self {
            db,
            dir: url
                .strip_prefix("surrealkv://")
                .map(std::path::PathBuf::from),
            cache: owned.then(std::sync::Arc::default),
        };
        schema::apply(&store.db)
            .await
            .map_err(|e| OpenError::Schema(e.to_string()))?;
        Ok(store)
    }

    /// An in-memory store (tests, benchmarks).
    pub async fn memory() -> Result<Self, OpenError> {
        Self::open(&DatabaseConfig {
            url: "mem://".into(),
            namespace: "meet".into(),
            database: "meet".into(),
            credentials: None,
        })
        .await
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<()> {
        let fut = self.db.query("RETURN 1");
        match tokio::time::timeout(Duration::from_secs(2), fut).await {
            Ok(r) => r?.check().map(|_| ()).map_err(Error::from),
            Err(_) => Err(Error::Database("timed out".into())),
        }
    }

    /// Schema version applied.
    pub async fn schema_version(&self) -> Result<i64> {
        schema::version(&self.db).await
    }
}

impl Store {
    /// Serves `key` from the cache, or reads it with `fetch` and keeps it.
    async fn cached<T, F>(
        &self,
        key: cache::Key,
        fetch: F,
        wrap: fn(T) -> cache::Value,
        unwrap: fn(cache::Value) -> Option<T>,
    ) -> Result<T>
    where
        T: Clone,
        F: std::future::Future<Output = Result<T>>,
    {
        let Some(cache) = &self.cache else {
            return fetch.await;
        };
        if let Some(v) = cache.get(&key).and_then(unwrap) {
            return Ok(v);
        }
        let generation = cache.generation();
        let value = fetch.await?;
        cache.put(key, generation, wrap(value.clone()));
        Ok(value)
    }

    /// Taken before every write to meetings or participants: when it drops — after the write,
    /// after an error, or when the caller's future is dropped mid-query — nothing read before
    /// is served again.
    /// `Err(disk_full)` when the database's file system is nearly full ([`MIN_FREE_BYTES`]).
    fn room(&self) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        match nix::sys::statvfs::statvfs(dir.as_path()) {
            Ok(fs) if fs.blocks_available().saturating_mul(fs.fragment_size()) < MIN_FREE_BYTES => {
                Err(Error::Unavailable {
                    code: "disk_full",
                    message: crate::error::DISK_FULL.into(),
                })
            }
            _ => Ok(()),
        }
    }

    fn writing(&self) -> WriteGuard<'_> {
        WriteGuard(self)
    }
}

struct WriteGuard<'a>(&'a Store);

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(cache) = &self.0.cache {
            cache.invalidate();
        }
    }
}

/// Runs `SELECT count() AS n FROM …` and reads the number (0 for no rows).
async fn count(res: surrealdb::method::Query<'_, Any>) -> Result<i64> {
    let mut res = res.await?;
    let n: Option<i64> = res.take((0, "n"))?;
    Ok(n.unwrap_or(0))
}

/// Maps a unique-index violation to a conflict with `code`, anything else to a database error.
fn unique_violation(e: surrealdb::Error, code: &'static str, message: &str) -> Error {
    let text = e.to_string();
    if text.contains("already contains") || text.contains("already exists") {
        Error::conflict(code, message)
    } else {
        Error::Database(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_on_empty_and_filled_tables() {
        let store = Store::memory().await.expect("open");
        assert_eq!(store.count_recordings().await.expect("count"), 0);
        assert_eq!(store.count_users("host").await.expect("count"), 0);
        assert_eq!(store.count_meetings(None).await.expect("count"), 0);
        assert_eq!(
            store.count_meetings(Some("active")).await.expect("count"),
            0
        );
        let now = chrono::Utc::now();
        for (i, role) in ["host", "host", "admin"].iter().enumerate() {
            store
                .create_user(NewUser {
                    id: format!("u{i}"),
                    username: format!("user{i}"),
                    password_hash: "x".into(),
                    role,
                    host_id: None,
                    now,
                })
                .await
                .expect("create");
        }
        assert_eq!(store.count_users("host").await.expect("count"), 2);
        let dup = store
            .create_user(NewUser {
                id: "u9".into(),
                username: "USER0".into(),
                password_hash: "x".into(),
                role: "host",
                host_id: None,
                now,
            })
            .await;
        assert!(
            matches!(
                dup,
                Err(crate::error::Error::Conflict {
                    code: "username_taken",
                    ..
                })
            ),
            "{dup:?}"
        );
        assert_eq!(store.schema_version().await.expect("version"), 2);
    }
}
