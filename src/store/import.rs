//! Rows brought in by `meet admin import`, each written in one transaction with its mark in
//! `import` (the original's collection and id, and the meet id it became), so an interrupted
//! import leaves no row without its mark and a second import finds everything it wrote.

use chrono::{DateTime, Utc};
use surrealdb::types::SurrealValue;

use super::{Store, unique_violation};
use crate::error::Result;

/// Where an imported row came from.
pub struct Origin {
    /// `users`, `meetings` or `recordings`.
    pub collection: &'static str,
    pub source_id: String,
}

impl Origin {
    fn key(&self) -> String {
        format!("{}/{}", self.collection, self.source_id)
    }
}

const MARK: &str = "CREATE type::record('import', $mark) SET collection = $collection, source_id = $source, \
                    meet_id = $id, imported_at = $at RETURN NONE;";

pub struct ImportedUser {
    pub origin: Origin,
    pub id: String,
    pub username: String,
    /// The original's bcrypt hash, upgraded at the first login.
    pub password_hash: String,
    pub role: &'static str,
    pub host_id: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An ended meeting, with the people who were in it.
pub struct ImportedMeeting {
    pub origin: Origin,
    pub id: String,
    pub topic: String,
    pub host_id: String,
    pub host_name: String,
    pub max_participants: i64,
    pub max_duration_seconds: i64,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: DateTime<Utc>,
    pub end_reason: Option<String>,
    pub participants: Vec<ImportedParticipant>,
}

#[derive(Debug, Clone)]
pub struct ImportedParticipant {
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
    pub left_at: DateTime<Utc>,
}

/// A participant row as bound into the query.
#[derive(SurrealValue)]
#[surreal(crate = "surrealdb::types")]
struct ParticipantParam {
    key: String,
    user_id: String,
    username: String,
    role: String,
    joined_at: DateTime<Utc>,
    left_at: DateTime<Utc>,
}

/// A completed recording whose one file stays where the original put it.
pub struct ImportedRecording {
    pub origin: Origin,
    pub id: String,
    pub meeting_id: String,
    pub meeting_topic: String,
    pub host_id: String,
    pub host_name: String,
    pub is_private: bool,
    pub student_id: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub duration: f64,
    pub size: i64,
    pub expires_at: DateTime<Utc>,
    pub object_key: String,
    /// The original's `audio/webm`; meet's own files are `audio/ogg`.
    pub content_type: String,
    pub participant_ids: Vec<String>,
}

impl Store {
    /// The meet id of a document imported before.
    pub async fn imported_as(&self, collection: &str, source_id: &str) -> Result<Option<String>> {
        let origin = format!("{collection}/{source_id}");
        Ok(self
            .db
            .query("SELECT VALUE meet_id FROM ONLY type::record('import', $mark)")
            .bind(("mark", origin))
            .await?
            .take(0)?)
    }

    /// A username already taken is a `username_taken` conflict, and nothing is written.
    pub async fn import_user(&self, u: ImportedUser, at: DateTime<Utc>) -> Result<()> {
        self.room()?;
        let sql = format!(
            "BEGIN;
             CREATE type::record('user', $id) SET username = $username, username_key = $key,
                 password_hash = $hash, role = $role, is_active = $active, host_id = $host_id,
                 token_version = 0, created_at = $created, updated_at = $updated RETURN NONE;
             {MARK}
             COMMIT;"
        );
        let key = crate::domain::users::username_key(&u.username);
        let mut res = self
            .db
            .query(sql)
            .bind(("mark", u.origin.key()))
            .bind(("collection", u.origin.collection))
            .bind(("source", u.origin.source_id))
            .bind(("at", at))
            .bind(("id", u.id))
            .bind(("username", u.username))
            .bind(("key", key))
            .bind(("hash", u.password_hash))
            .bind(("role", u.role))
            .bind(("active", u.is_active))
            .bind(("host_id", u.host_id))
            .bind(("created", u.created_at))
            .bind(("updated", u.updated_at))
            .await?;
        if let Some((_, e)) = res.take_errors().into_iter().next() {
            return Err(unique_violation(
                e,
                "username_taken",
                "That username is already taken",
            ));
        }
        Ok(())
    }

    pub async fn import_meeting(&self, m: ImportedMeeting, at: DateTime<Utc>) -> Result<()> {
        self.room()?;
        let _writing = self.writing();
        let participants: Vec<ParticipantParam> = m
            .participants
            .into_iter()
            .map(|p| ParticipantParam {
                key: super::meetings::participant_key(&m.id, &p.user_id),
                user_id: p.user_id,
                username: p.username,
                role: p.role,
                joined_at: p.joined_at,
                left_at: p.left_at,
            })
            .collect();
        let sql = format!(
            "BEGIN;
             CREATE type::record('meeting', $id) SET topic = $topic, host_id = $host, host_name = $host_name,
                 status = 'ended', mode = 'broadcast', private_participant_id = NONE, max_participants = $maxp,
                 max_duration_seconds = $maxd, participant_count = 0, created_at = $created,
                 start_time = $start, deadline = NONE, end_time = $end, end_reason = $reason,
                 recording_id = NONE, recording_private = NONE, recording_start = NONE RETURN NONE;
             FOR $p IN $participants {{
                 CREATE type::record('participant', $p.key) SET meeting_id = $id, user_id = $p.user_id,
                     username = $p.username, role = $p.role, joined_at = $p.joined_at,
                     left_at = $p.left_at, present = false, muted = false RETURN NONE;
             }};
             {MARK}
             COMMIT;"
        );
        self.db
            .query(sql)
            .bind(("mark", m.origin.key()))
            .bind(("collection", m.origin.collection))
            .bind(("source", m.origin.source_id))
            .bind(("at", at))
            .bind(("id", m.id))
            .bind(("topic", m.topic))
            .bind(("host", m.host_id))
            .bind(("host_name", m.host_name))
            .bind(("maxp", m.max_participants))
            .bind(("maxd", m.max_duration_seconds))
            .bind(("created", m.created_at))
            .bind(("start", m.start_time))
            .bind(("end", m.end_time))
            .bind(("reason", m.end_reason))
            .bind(("participants", participants))
            .await?
            .check()?;
        Ok(())
    }

    pub async fn import_recording(&self, r: ImportedRecording, at: DateTime<Utc>) -> Result<()> {
        self.room()?;
        let sql = format!(
            "BEGIN;
             CREATE type::record('recording', $id) SET meeting_id = $meeting, meeting_topic = $topic,
                 host_id = $host, host_name = $host_name, is_private = $private, student_id = $student,
                 status = 'completed', start_time = $start, end_time = $end, duration = $duration,
                 size = $size, expires_at = $expires, object_key = $key, content_type = $type,
                 participant_ids = $participants, tracks = [], failure = NONE RETURN NONE;
             {MARK}
             COMMIT;"
        );
        self.db
            .query(sql)
            .bind(("mark", r.origin.key()))
            .bind(("collection", r.origin.collection))
            .bind(("source", r.origin.source_id))
            .bind(("at", at))
            .bind(("id", r.id))
            .bind(("meeting", r.meeting_id))
            .bind(("topic", r.meeting_topic))
            .bind(("host", r.host_id))
            .bind(("host_name", r.host_name))
            .bind(("private", r.is_private))
            .bind(("student", r.student_id))
            .bind(("start", r.start_time))
            .bind(("end", r.end_time))
            .bind(("duration", r.duration))
            .bind(("size", r.size))
            .bind(("expires", r.expires_at))
            .bind(("key", r.object_key))
            .bind(("type", r.content_type))
            .bind(("participants", r.participant_ids))
            .await?
            .check()?;
        Ok(())
    }
}
