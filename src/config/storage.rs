//! `[storage]`: where finished recordings are kept, on local disk or in S3.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, secret_or_file, within};
use crate::secret::Secret;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub backend: Option<Text>,
    pub local_dir: Option<PathBuf>,
    pub s3: RawS3,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawS3 {
    pub bucket: Option<Text>,
    pub region: Option<Text>,
    pub endpoint: Option<Text>,
    pub access_key_id: Option<Text>,
    pub secret_access_key: Option<Text>,
    pub secret_access_key_file: Option<PathBuf>,
    pub path_style: Option<bool>,
    pub prefix: Option<Text>,
    pub presign_seconds: Option<u32>,
    pub multipart_threshold_mib: Option<u32>,
    pub timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone)]
pub enum StorageConfig {
    Local { dir: PathBuf },
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub path_style: bool,
    pub prefix: String,
    pub presign_seconds: u32,
    /// Files larger than this go up in parts of this size (S3's minimum part is 5 MiB).
    pub multipart_bytes: usize,
    /// How long one request to S3 may take before it fails (and an upload is retried).
    pub timeout: std::time::Duration,
}

pub(super) fn validate(raw: RawStorage, data_dir: &Path) -> Result<StorageConfig, ConfigError> {
    let s3_bucket = raw.s3.bucket.clone();
    let backend = raw.storage_backend(s3_bucket.is_some());
    match backend.as_str() {
        "local" => Ok(StorageConfig::Local {
            dir: raw.local_dir.unwrap_or_else(|| data_dir.join("recordings")),
        }),
        "s3" => {
            let s3 = raw.s3;
            let bucket = s3
                .bucket
                .ok_or_else(|| {
                    key_err(
                        "storage.s3.bucket",
                        "required when storage.backend = \"s3\"",
                    )
                })?
                .0;
            if bucket.is_empty() {
                return Err(key_err("storage.s3.bucket", "must not be empty"));
            }
            let secret_access_key = secret_or_file(
                s3.secret_access_key,
                s3.secret_access_key_file.as_deref(),
                "storage.s3.secret_access_key",
            )?;
            let endpoint = s3.endpoint.map(|t| t.0.trim_end_matches('/').to_owned());
            if endpoint
                .as_ref()
                .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")))
            {
                return Err(key_err("storage.s3.endpoint", "must be an http(s) URL"));
            }
            let presign_seconds = s3.presign_seconds.unwrap_or(3600);
            if !(1..=604_800).contains(&presign_seconds) {
                return Err(key_err(
                    "storage.s3.presign_seconds",
                    "must be between 1 and 604800",
                ));
            }
            Ok(StorageConfig::S3(S3Config {
                bucket,
                region: s3.region.map_or_else(|| "us-east-1".to_owned(), |t| t.0),
                path_style: s3.path_style.unwrap_or(endpoint.is_some()),
                endpoint,
                access_key_id: s3.access_key_id.map(|t| t.0),
                secret_access_key,
                prefix: s3.prefix.map_or_else(|| "recordings/".to_owned(), |t| t.0),
                presign_seconds,
                multipart_bytes: within(
                    s3.multipart_threshold_mib,
                    16,
                    5..=4096,
                    "storage.s3.multipart_threshold_mib",
                )? as usize
                    * 1024
                    * 1024,
                timeout: std::time::Duration::from_secs(u64::from(within(
                    s3.timeout_seconds,
                    60,
                    1..=3600,
                    "storage.s3.timeout_seconds",
                )?)),
            }))
        }
        other => Err(key_err(
            "storage.backend",
            format!("`{other}`: expected \"local\" or \"s3\""),
        )),
    }
}

impl RawStorage {
    fn storage_backend(&self, has_bucket: bool) -> String {
        match &self.backend {
            Some(t) => t.0.clone(),
            None if has_bucket => "s3".into(),
            None => "local".into(),
        }
    }
}
