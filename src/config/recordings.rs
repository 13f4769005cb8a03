//! `[recordings]`: the recorder, and how long recordings are kept.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::values::{positive, within};

/// The mix encoder's default complexity: the cost and quality of each are in bench/README.md.
pub const DEFAULT_MIX_COMPLEXITY: u8 = 0;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecordings {
    pub retention_days: Option<u64>,
    pub auto_start: Option<bool>,
    pub mix_bitrate: Option<u32>,
    pub mix_complexity: Option<u8>,
    pub spool_dir: Option<PathBuf>,
}

/// The recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingsConfig {
    /// Start recording when a meeting becomes active (its first join).
    pub auto_start: bool,
    /// Bits per second of the mixed file's Opus.
    pub mix_bitrate: u32,
    /// The Opus encoder's effort (0–10) for the mix and the relay speakers' files.
    pub mix_complexity: u8,
    /// Where recordings are written while they run and until they are stored.
    pub spool_dir: PathBuf,
}

/// The recorder, and the retention of its recordings.
pub(super) fn validate(
    raw: RawRecordings,
    data_dir: &Path,
) -> Result<(RecordingsConfig, chrono::Duration), ConfigError> {
    let retention_days = positive(raw.retention_days, 3, "recordings.retention_days")?;
    let recordings = RecordingsConfig {
        auto_start: raw.auto_start.unwrap_or(false),
        mix_bitrate: within(
            raw.mix_bitrate,
            32_000,
            6_000..=256_000,
            "recordings.mix_bitrate",
        )?,
        mix_complexity: within(
            raw.mix_complexity,
            DEFAULT_MIX_COMPLEXITY,
            0..=10,
            "recordings.mix_complexity",
        )?,
        spool_dir: raw.spool_dir.unwrap_or_else(|| data_dir.join("spool")),
    };
    let retention = chrono::Duration::days(i64::try_from(retention_days.min(36_500)).unwrap_or(3));
    Ok((recordings, retention))
}
