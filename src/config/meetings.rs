//! `[meetings]`: the limits of [`MeetingLimits`] and when ended meetings are archived.

use std::str::FromStr;

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, positive, within};
use crate::domain::meetings::MeetingLimits;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMeetings {
    pub max_participants: Option<u32>,
    pub max_duration_seconds: Option<u64>,
    pub daily_limit: Option<u32>,
    pub time_zone: Option<Text>,
    pub archive_after_hours: Option<u64>,
}

/// The longest `archive_after_hours`: a hundred years.
pub const MAX_ARCHIVE_AFTER_HOURS: u64 = 876_000;

/// The limits, and how long after its end a meeting is archived.
pub(super) fn validate(raw: RawMeetings) -> Result<(MeetingLimits, chrono::Duration), ConfigError> {
    let defaults = MeetingLimits::default();
    let time_zone = match raw.time_zone {
        Some(t) => chrono_tz::Tz::from_str(&t.0)
            .map_err(|_| key_err("meetings.time_zone", "unknown IANA time zone"))?,
        None => defaults.time_zone,
    };
    let limits = MeetingLimits {
        max_participants: positive(
            raw.max_participants,
            defaults.max_participants,
            "meetings.max_participants",
        )?,
        max_duration_seconds: positive(
            raw.max_duration_seconds,
            defaults.max_duration_seconds,
            "meetings.max_duration_seconds",
        )?,
        daily_limit: positive(
            raw.daily_limit,
            defaults.daily_limit,
            "meetings.daily_limit",
        )?,
        time_zone,
    };
    // Bounded (a hundred years): `chrono::Duration::hours` panics past about 2.5e12 hours, and
    // the fuzz tests found `meet serve` dying on such a value instead of naming it.
    let archive_hours = within(
        raw.archive_after_hours,
        24,
        1..=MAX_ARCHIVE_AFTER_HOURS,
        "meetings.archive_after_hours",
    )?;
    let archive_after = chrono::Duration::hours(i64::try_from(archive_hours).unwrap_or(24));
    Ok((limits, archive_after))
}
