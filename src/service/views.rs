//! The resources of the API, built from store rows.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::meetings::{ActiveRecording, EndReason, Meeting, Mode, Status};
use crate::domain::users::Role;
use crate::store::{MeetingRow, ParticipantRow, RecordingRow, UserRow};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub role: Role,
    pub is_active: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub host_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            role: Role::parse(&r.role).unwrap_or(Role::Student),
            host_id: r.host_id.filter(|_| r.role == "student"),
            id: r.id,
            username: r.username,
            is_active: r.is_active,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostRef {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub online: bool,
    pub muted: bool,
    /// A request for a private talk is waiting for the host.
    pub requested_private: bool,
}

impl From<ParticipantRow> for Participant {
    fn from(r: ParticipantRow) -> Self {
        Self {
            role: Role::parse(&r.role).unwrap_or(Role::Student),
            id: r.user_id,
            username: r.username,
            joined_at: r.joined_at,
            online: r.present,
            muted: r.muted,
            requested_private: false,
        }
    }
}

impl From<MeetingRow> for Meeting {
    fn from(r: MeetingRow) -> Self {
        let mode = Mode::parse(&r.mode).unwrap_or(Mode::Broadcast);
        let recording = match (r.recording_id, r.recording_start) {
            (Some(id), Some(start_time)) => Some(ActiveRecording {
                id,
                is_private: r.recording_private.unwrap_or(false),
                start_time,
            }),
            _ => None,
        };
        Self {
            status: Status::parse(&r.status).unwrap_or(Status::Ended),
            is_private: mode == Mode::Private,
            mode,
            private_participant_id: r.private_participant_id.filter(|_| mode == Mode::Private),
            max_participants: u32::try_from(r.max_participants).unwrap_or(u32::MAX),
            max_duration_seconds: u64::try_from(r.max_duration_seconds).unwrap_or(0),
            participant_count: u32::try_from(r.participant_count).unwrap_or(0),
            end_reason: r.end_reason.as_deref().and_then(EndReason::parse),
            id: r.id,
            topic: r.topic,
            host_id: r.host_id,
            host_name: r.host_name,
            created_at: r.created_at,
            start_time: r.start_time,
            end_time: r.end_time,
            recording,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Playback {
    pub url: String,
    #[serde(rename = "type")]
    pub content_type: String,
    pub title: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recording {
    #[serde(rename = "_id")]
    pub id: String,
    pub meeting_id: String,
    pub meeting_topic: String,
    pub host_id: String,
    pub host_name: String,
    pub is_private: bool,
    pub student_id: Option<String>,
    pub status: String,
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub duration: f64,
    pub size: i64,
    pub expires_at: DateTime<Utc>,
    pub playback: Playback,
    /// The speakers' own files, once stored: `GET /api/recordings/:id/audio?track=USER_ID`.
    pub tracks: Vec<Track>,
}

/// A speaker's file of a recording.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Track {
    pub user_id: String,
    pub username: String,
    pub duration: f64,
    pub size: i64,
}

impl From<RecordingRow> for Recording {
    fn from(r: RecordingRow) -> Self {
        let title = format!(
            "{} — {}",
            r.meeting_topic,
            r.start_time.format("%Y-%m-%d %H:%M UTC")
        );
        Self {
            playback: Playback {
                url: format!("/api/recordings/{}/audio", r.id),
                content_type: r.content_type.clone().unwrap_or_else(|| "audio/ogg".into()),
                title,
            },
            id: r.id,
            meeting_id: r.meeting_id,
            meeting_topic: r.meeting_topic,
            host_id: r.host_id,
            host_name: r.host_name,
            is_private: r.is_private,
            student_id: r.student_id,
            status: r.status,
            start_time: r.start_time,
            end_time: r.end_time,
            duration: r.duration,
            size: r.size,
            expires_at: r.expires_at,
            tracks: r
                .tracks
                .into_iter()
                .map(|t| Track {
                    user_id: t.user_id,
                    username: t.username,
                    duration: t.duration,
                    size: t.size,
                })
                .collect(),
        }
    }
}
