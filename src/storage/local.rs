//! Recordings in a folder on local disk.

use std::path::{Path, PathBuf};

use super::StorageError;

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub async fn open(root: PathBuf) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(&root).await?;
        Ok(Self { root })
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64, StorageError> {
        let dest = self.path(key);
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        // Copy to a temporary name, then rename: a reader never sees half an object.
        let tmp = dest.with_extension("part");
        let n = tokio::fs::copy(file, &tmp).await?;
        tokio::fs::rename(&tmp, &dest).await?;
        Ok(n)
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn check(&self) -> Result<(), StorageError> {
        // A name of its own per check, so concurrent checks do not remove each other's probe.
        let probe = self
            .root
            .join(format!(".meet-ready-{}", rand::random::<u64>()));
        tokio::fs::write(&probe, b"ok").await?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }
}
