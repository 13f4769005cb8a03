//! Recordings in an S3-compatible bucket (AWS, MinIO, Garage, moto...).
//!
//! rust-s3 is built without `fail-on-err`, so an S3 error comes back as `Ok` with a status code:
//! every call checks it.

use std::path::Path;

use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};

use super::StorageError;
use crate::config::S3Config;

#[derive(Debug, Clone)]
pub struct S3Storage {
    bucket: Box<Bucket>,
    prefix: String,
    presign_seconds: u32,
    multipart_bytes: usize,
}

fn s3_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::S3(e.to_string())
}

fn status_ok(status: u16, what: &str) -> Result<(), StorageError> {
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(StorageError::S3(format!("{what}: HTTP {status}")))
    }
}

impl S3Storage {
    pub async fn open(c: &S3Config) -> Result<Self, StorageError> {
        let region = match &c.endpoint {
            Some(endpoint) => Region::Custom {
                region: c.region.clone(),
                endpoint: endpoint.clone(),
            },
            None => c.region.parse().map_err(s3_err)?,
        };
        let credentials = match (&c.access_key_id, &c.secret_access_key) {
            (Some(k), Some(s)) => {
                Credentials::new(Some(k), Some(s.expose()), None, None, None).map_err(s3_err)?
            }
            _ => Credentials::default().map_err(s3_err)?,
        };
        let mut bucket =
            Bucket::new(&c.bucket, region.clone(), credentials.clone()).map_err(s3_err)?;
        if c.path_style {
            bucket = bucket.with_path_style();
        }
        // Every request, the bucket check below included: a server that accepts and never
        // answers costs `timeout` (twice: rust-s3 retries once), not rust-s3's minute. (The
        // client is built with it: `set_request_timeout` would not reach the tokio backend.)
        bucket = bucket.with_request_timeout(c.timeout).map_err(s3_err)?;
        let storage = Self {
            bucket,
            prefix: c.prefix.clone(),
            presign_seconds: c.presign_seconds,
            multipart_bytes: c.multipart_bytes.max(5 * 1024 * 1024),
        };
        // Create the bucket when it is missing (a fresh MinIO or test server); where listing buckets
        // is not allowed, carry on and let readiness report the problem.
        match storage.bucket.exists().await {
            Ok(true) => {}
            Ok(false) => {
                let create = if c.path_style {
                    Bucket::create_with_path_style(
                        &c.bucket,
                        region,
                        credentials,
                        BucketConfiguration::default(),
                    )
                    .await
                } else {
                    Bucket::create(
                        &c.bucket,
                        region,
                        credentials,
                        BucketConfiguration::default(),
                    )
                    .await
                };
                match create {
                    Ok(r) if r.success() => {
                        tracing::info!(bucket = %c.bucket, "created the recordings bucket")
                    }
                    Ok(r) => {
                        tracing::warn!(bucket = %c.bucket, status = r.response_code, "could not create the bucket")
                    }
                    Err(e) => {
                        tracing::warn!(bucket = %c.bucket, error = %e, "could not create the bucket")
                    }
                }
            }
            Err(e) => tracing::warn!(bucket = %c.bucket, error = %e, "could not list buckets"),
        }
        Ok(storage)
    }

    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub async fn put_file(
        &self,
        key: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<u64, StorageError> {
        let len = tokio::fs::metadata(file).await?.len();
        if len > self.multipart_bytes as u64 {
            return self.put_parts(key, file, content_type).await.map(|()| len);
        }
        let bytes = tokio::fs::read(file).await?;
        let r = self
            .bucket
            .put_object_with_content_type(self.object(key), &bytes, content_type)
            .await
            .map_err(s3_err)?;
        status_ok(r.status_code(), "put")?;
        Ok(bytes.len() as u64)
    }

    /// A multipart upload, a part of `multipart_bytes` at a time (the last one shorter);
    /// aborted when a part or the completion fails, so no half object is left to pay for.
    async fn put_parts(
        &self,
        key: &str,
        file: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncReadExt;
        let path = self.object(key);
        let upload = self
            .bucket
            .initiate_multipart_upload(&path, content_type)
            .await
            .map_err(s3_err)?;
        let id = upload.upload_id;
        let mut f = tokio::fs::File::open(file).await?;
        let mut parts = Vec::new();
        let result: Result<(), StorageError> = async {
            loop {
                let mut chunk = Vec::with_capacity(self.multipart_bytes);
                (&mut f)
                    .take(self.multipart_bytes as u64)
                    .read_to_end(&mut chunk)
                    .await?;
                if chunk.is_empty() {
                    break;
                }
                let number = u32::try_from(parts.len() + 1).unwrap_or(u32::MAX);
                // rust-s3 checks the status of a part and aborts the upload itself.
                let part = self
                    .bucket
                    .put_multipart_chunk(chunk, &path, number, &id, content_type)
                    .await
                    .map_err(s3_err)?;
                parts.push(part);
            }
            let r = self
                .bucket
                .complete_multipart_upload(&path, &id, parts)
                .await
                .map_err(s3_err)?;
            status_ok(r.status_code(), "complete multipart upload")
        }
        .await;
        if result.is_err() {
            let _ = self.bucket.abort_upload(&path, &id).await;
        }
        result
    }

    /// Every key under the prefix (the prefix taken off).
    pub async fn list(&self) -> Result<Vec<String>, StorageError> {
        let pages = self
            .bucket
            .list(self.prefix.clone(), None)
            .await
            .map_err(s3_err)?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.contents)
            .filter_map(|o| o.key.strip_prefix(&self.prefix).map(str::to_owned))
            .collect())
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let r = self
            .bucket
            .delete_object(self.object(key))
            .await
            .map_err(s3_err)?;
        if r.status_code() == 404 {
            Ok(())
        } else {
            status_ok(r.status_code(), "delete")
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        let (_, status) = self
            .bucket
            .head_object(self.object(key))
            .await
            .map_err(s3_err)?;
        match status {
            404 => Ok(false),
            s => status_ok(s, "head").map(|()| true),
        }
    }

    pub async fn presign(&self, key: &str) -> Result<String, StorageError> {
        self.bucket
            .presign_get(self.object(key), self.presign_seconds, None)
            .await
            .map_err(s3_err)
    }

    /// Reachable and allowed: a HEAD of a probe key answers 200 or 404.
    pub async fn check(&self) -> Result<(), StorageError> {
        let probe = format!("{}.meet-ready", self.prefix);
        let (_, status) = self.bucket.head_object(probe).await.map_err(s3_err)?;
        if status == 404 {
            Ok(())
        } else {
            status_ok(status, "head")
        }
    }
}
