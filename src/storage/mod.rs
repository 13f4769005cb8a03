//! Recording bytes: on local disk or in an S3-compatible bucket.

mod local;
mod s3;

use std::path::PathBuf;

pub use local::LocalStorage;
pub use s3::S3Storage;

use crate::config::StorageConfig;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("S3: {0}")]
    S3(String),
    #[error("invalid object key `{0}`")]
    BadKey(String),
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// How long the readiness check waits for the storage.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Where a client can read an object from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A file served by this server.
    File(PathBuf),
    /// A short-lived presigned URL.
    Url(String),
}

#[derive(Debug, Clone)]
pub enum Storage {
    Local(LocalStorage),
    S3(S3Storage),
}

impl Storage {
    pub async fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        match config {
            StorageConfig::Local { dir } => Ok(Self::Local(LocalStorage::open(dir.clone()).await?)),
            StorageConfig::S3(c) => Ok(Self::S3(S3Storage::open(c).await?)),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::S3(_) => "s3",
        }
    }

    /// Stores a finished object, read from a local file.
    pub async fn put_file(
        &self,
        key: &str,
        file: &std::path::Path,
        content_type: &str,
    ) -> Result<u64, StorageError> {
        check_key(key)?;
        match self {
            Self::Local(s) => s.put_file(key, file).await,
            Self::S3(s) => s.put_file(key, file, content_type).await,
        }
    }

    /// Deletes an object; deleting one that is not there succeeds.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        check_key(key)?;
        match self {
            Self::Local(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    /// Every key in the storage.
    pub async fn list(&self) -> Result<Vec<String>, StorageError> {
        match self {
            Self::Local(s) => s.list().await,
            Self::S3(s) => s.list().await,
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        check_key(key)?;
        match self {
            Self::Local(s) => Ok(s.path(key).is_file()),
            Self::S3(s) => s.exists(key).await,
        }
    }

    pub async fn location(&self, key: &str) -> Result<Location, StorageError> {
        check_key(key)?;
        match self {
            Self::Local(s) => Ok(Location::File(s.path(key))),
            Self::S3(s) => Ok(Location::Url(s.presign(key).await?)),
        }
    }

    /// Readiness: the storage answers and is writable (local) or reachable (S3).
    /// Readiness: writable (local) or reachable (S3), within 2 seconds, as the database's own
    /// check: a storage that accepts and never answers makes `/readyz` fail, not hang.
    pub async fn check(&self) -> Result<(), StorageError> {
        let check = async {
            match self {
                Self::Local(s) => s.check().await,
                Self::S3(s) => s.check().await,
            }
        };
        tokio::time::timeout(READY_WITHIN, check)
            .await
            .unwrap_or(Err(StorageError::Timeout(READY_WITHIN)))
    }
}

/// Keys are relative, `/`-separated, of `A-Z a-z 0-9 . _ -` segments, never `..`.
fn check_key(key: &str) -> Result<(), StorageError> {
    let ok = !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err(StorageError::BadKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("recordings/m1/r1.ogg").is_ok());
        assert!(check_key("../etc/passwd").is_err());
        assert!(check_key("/abs").is_err());
        assert!(check_key("a//b").is_err());
        assert!(check_key("a/b c").is_err());
    }
}
