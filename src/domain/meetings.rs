//! Meetings: the state machine `created → active → ended → archived`, the limits, and the modes.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What one meeting and one host may use (`[meetings]` in meet.toml).
#[derive(Debug, Clone, Copy)]
pub struct MeetingLimits {
    pub max_participants: u32,
    pub max_duration_seconds: u64,
    pub daily_limit: u32,
    /// The day of the daily limit starts at midnight here.
    pub time_zone: chrono_tz::Tz,
}

impl Default for MeetingLimits {
    fn default() -> Self {
        Self {
            max_participants: 50,
            max_duration_seconds: 18_000,
            daily_limit: 25,
            time_zone: chrono_tz::UTC,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Active,
    Ended,
    Archived,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Broadcast,
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    HostEnded,
    DurationExceeded,
    AdminEnded,
}

macro_rules! string_enum {
    ($ty:ty { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
    };
}

string_enum!(Status { Created = "created", Active = "active", Ended = "ended", Archived = "archived" });
string_enum!(Mode { Broadcast = "broadcast", Private = "private" });
string_enum!(EndReason { HostEnded = "host_ended", DurationExceeded = "duration_exceeded", AdminEnded = "admin_ended" });

impl Status {
    pub fn is_open(self) -> bool {
        matches!(self, Status::Created | Status::Active)
    }
}

/// The recording running in a meeting, as shown on the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveRecording {
    #[serde(rename = "_id")]
    pub id: String,
    pub is_private: bool,
    pub start_time: DateTime<Utc>,
}

/// A meeting, in the shape of the API.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Meeting {
    #[serde(rename = "_id")]
    pub id: String,
    pub topic: String,
    pub host_id: String,
    pub host_name: String,
    pub status: Status,
    pub mode: Mode,
    pub private_participant_id: Option<String>,
    pub is_private: bool,
    pub max_participants: u32,
    pub max_duration_seconds: u64,
    pub participant_count: u32,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub end_reason: Option<EndReason>,
    pub recording: Option<ActiveRecording>,
}

impl Meeting {
    /// When an active meeting must end.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        let secs = i64::try_from(self.max_duration_seconds).unwrap_or(i64::MAX);
        self.start_time
            .and_then(|s| s.checked_add_signed(Duration::try_seconds(secs)?))
    }

    /// True when the meeting is active and past its duration limit at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::Active && self.deadline().is_some_and(|d| now >= d)
    }
}

pub const TOPIC_MAX: usize = 200;

pub fn validate_topic(topic: &str) -> Result<String> {
    let t = topic.trim();
    let len = t.chars().count();
    if len == 0 || len > TOPIC_MAX {
        return Err(Error::invalid(
            "topic",
            format!("must be 1 to {TOPIC_MAX} characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(Error::invalid(
            "topic",
            "must not contain control characters",
        ));
    }
    Ok(t.to_owned())
}

/// Why a join is refused, checked in this order: ended, past its duration, full.
/// `present` counts the people in the meeting now; `already_in` says the joiner is one of them.
pub fn check_join(
    meeting: &Meeting,
    now: DateTime<Utc>,
    present: u32,
    already_in: bool,
) -> Result<()> {
    if !meeting.status.is_open() {
        return Err(Error::conflict("meeting_ended", "This meeting has ended"));
    }
    if meeting.is_overdue(now) {
        return Err(Error::conflict(
            "meeting_ended",
            "This meeting has reached its duration limit",
        ));
    }
    if !already_in && present >= meeting.max_participants {
        return Err(Error::conflict(
            "meeting_full",
            format!(
                "Meeting participant limit ({}) reached",
                meeting.max_participants
            ),
        ));
    }
    Ok(())
}

/// The daily-limit check: `created_today` meetings already created by this host today.
pub fn check_daily_limit(limits: &MeetingLimits, created_today: u32) -> Result<()> {
    if created_today >= limits.daily_limit {
        return Err(Error::DailyLimit(limits.daily_limit));
    }
    Ok(())
}

/// The calendar day containing `now` in the configured time zone, as a UTC half-open range.
pub fn day_bounds(now: DateTime<Utc>, limits: &MeetingLimits) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz = limits.time_zone;
    let local_day = now.with_timezone(&tz).date_naive();
    let start_of = |d: chrono::NaiveDate| {
        let naive = d.and_time(NaiveTime::MIN);
        // A day that starts in a DST gap starts at the first valid instant after it.
        tz.from_local_datetime(&naive)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(naive + Duration::hours(1)))
                    .earliest()
            })
            .map_or(now, |t| t.with_timezone(&Utc))
    };
    let next = local_day.succ_opt().unwrap_or(local_day);
    (start_of(local_day), start_of(next))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn meeting_for_tests() -> Meeting {
        meeting(Status::Active, Some(Utc::now()))
    }

    fn meeting(status: Status, start: Option<DateTime<Utc>>) -> Meeting {
        Meeting {
            id: "m".into(),
            topic: "t".into(),
            host_id: "h".into(),
            host_name: "host".into(),
            status,
            mode: Mode::Broadcast,
            private_participant_id: None,
            is_private: false,
            max_participants: 50,
            max_duration_seconds: 18_000,
            participant_count: 0,
            created_at: Utc::now(),
            start_time: start,
            end_time: None,
            end_reason: None,
            recording: None,
        }
    }

    #[test]
    fn join_rules_at_the_boundaries() {
        let now = Utc::now();
        let m = meeting(Status::Active, Some(now));
        assert!(check_join(&m, now, 49, false).is_ok());
        assert!(matches!(
            check_join(&m, now, 50, false),
            Err(Error::Conflict {
                code: "meeting_full",
                ..
            })
        ));
        assert!(
            check_join(&m, now, 50, true).is_ok(),
            "a rejoin is not counted twice"
        );
        let later = now + Duration::seconds(18_000);
        assert!(check_join(&m, later - Duration::seconds(1), 1, false).is_ok());
        assert!(matches!(
            check_join(&m, later, 1, false),
            Err(Error::Conflict {
                code: "meeting_ended",
                ..
            })
        ));
        let ended = meeting(Status::Ended, Some(now));
        assert!(matches!(
            check_join(&ended, now, 0, false),
            Err(Error::Conflict {
                code: "meeting_ended",
                ..
            })
        ));
    }

    #[test]
    fn daily_limit() {
        let limits = MeetingLimits::default();
        assert!(check_daily_limit(&limits, 24).is_ok());
        assert!(matches!(
            check_daily_limit(&limits, 25),
            Err(Error::DailyLimit(25))
        ));
    }

    #[test]
    fn day_bounds_follow_the_time_zone() {
        let now = DateTime::parse_from_rfc3339("2026-03-10T23:30:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let utc = day_bounds(now, &MeetingLimits::default());
        assert_eq!(utc.0.to_rfc3339(), "2026-03-10T00:00:00+00:00");
        assert_eq!(utc.1.to_rfc3339(), "2026-03-11T00:00:00+00:00");
        let tokyo = MeetingLimits {
            time_zone: chrono_tz::Asia::Tokyo,
            ..MeetingLimits::default()
        };
        let (start, end) = day_bounds(now, &tokyo);
        assert_eq!(start.to_rfc3339(), "2026-03-10T15:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-03-11T15:00:00+00:00");
    }
}
