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

    /// Every stored key (files being copied in, `*.part`, and readiness probes left out).
    pub async fn list(&self) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            while let Some(entry) = entries.next_entry().await? {
                let path = entry.path();
                if entry.file_type().await?.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".part") || name.starts_with(".meet-ready-") {
                    continue;
                }
                if let Ok(rel) = path.strip_prefix(&self.root) {
                    keys.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        keys.sort();
        Ok(keys)
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
