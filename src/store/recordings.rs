//! Recording metadata. The bytes live in `storage`.

use chrono::{DateTime, Utc};
use surrealdb::types::SurrealValue;

use super::Store;
use crate::error::{Error, Result};

const COLS: &str = "record::id(id) AS id, meeting_id, meeting_topic, host_id, host_name, is_private, student_id, \
                    status, start_time, end_time, duration, size, expires_at, object_key, participant_ids, \
                    (tracks ?? []) AS tracks, failure, content_type";

#[derive(Debug, Clone, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub struct RecordingRow {
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
    pub object_key: String,
    pub participant_ids: Vec<String>,
    /// The speakers' files, once stored.
    pub tracks: Vec<TrackRow>,
    /// Why a `failed` recording failed.
    pub failure: Option<String>,
    /// The audio's type when it is not meet's Ogg Opus (recordings imported from the
    /// original server are WebM).
    pub content_type: Option<String>,
}

/// One speaker's file of a recording.
#[derive(Debug, Clone, PartialEq, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub struct TrackRow {
    pub user_id: String,
    pub username: String,
    pub duration: f64,
    pub size: i64,
    pub object_key: String,
}

pub struct NewRecording {
    pub id: String,
    pub meeting_id: String,
    pub meeting_topic: String,
    pub host_id: String,
    pub host_name: String,
    pub is_private: bool,
    pub student_id: Option<String>,
    pub start_time: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub object_key: String,
    pub participant_ids: Vec<String>,
}

impl Store {
    pub async fn create_recording(&self, r: NewRecording) -> Result<RecordingRow> {
        self.room()?;
        let sql = format!(
            "CREATE type::record('recording', $id) SET meeting_id = $meeting, meeting_topic = $topic, host_id = $host, \
             host_name = $host_name, is_private = $private, student_id = $student, status = 'recording', \
             start_time = $start, end_time = NONE, duration = 0.0, size = 0, expires_at = $expires, \
             object_key = $key, participant_ids = $participants, tracks = [], failure = NONE RETURN NONE; \
             SELECT {COLS} FROM ONLY type::record('recording', $id);"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("id", r.id))
            .bind(("meeting", r.meeting_id))
            .bind(("topic", r.meeting_topic))
            .bind(("host", r.host_id))
            .bind(("host_name", r.host_name))
            .bind(("private", r.is_private))
            .bind(("student", r.student_id))
            .bind(("start", r.start_time))
            .bind(("expires", r.expires_at))
            .bind(("key", r.object_key))
            .bind(("participants", r.participant_ids))
            .await?
            .check()?;
        let row: Option<RecordingRow> = res.take(1)?;
        row.ok_or_else(|| Error::Database("created recording not found".into()))
    }

    pub async fn recording(&self, id: &str) -> Result<Option<RecordingRow>> {
        let sql = format!("SELECT {COLS} FROM ONLY type::record('recording', $id)");
        Ok(self
            .db
            .query(sql)
            .bind(("id", id.to_owned()))
            .await?
            .take(0)?)
    }

    /// All recordings, or one host's; newest first.
    pub async fn recordings(&self, host_id: Option<&str>) -> Result<Vec<RecordingRow>> {
        let filter = if host_id.is_some() {
            "WHERE host_id = $host"
        } else {
            ""
        };
        let sql = format!("SELECT {COLS} FROM recording {filter} ORDER BY start_time DESC");
        Ok(self
            .db
            .query(sql)
            .bind(("host", host_id.map(str::to_owned)))
            .await?
            .take(0)?)
    }

    /// Completed, unexpired recordings a student may hear: `private` selects the student's private
    /// recordings, otherwise the normal recordings of meetings the student was in while they ran.
    pub async fn student_recordings(
        &self,
        student_id: &str,
        private: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<RecordingRow>> {
        let filter = if private {
            "is_private = true AND student_id = $s"
        } else {
            "is_private = false AND participant_ids CONTAINS $s"
        };
        let sql = format!(
            "SELECT {COLS} FROM recording WHERE status = 'completed' AND expires_at > $now AND {filter} \
             ORDER BY start_time DESC"
        );
        Ok(self
            .db
            .query(sql)
            .bind(("s", student_id.to_owned()))
            .bind(("now", now))
            .await?
            .take(0)?)
    }

    pub async fn count_recordings(&self) -> Result<i64> {
        super::count(
            self.db
                .query("SELECT count() AS n FROM recording GROUP ALL"),
        )
        .await
    }

    /// Adds a listener to a running recording's audience.
    pub async fn add_recording_participant(&self, id: &str, user_id: &str) -> Result<()> {
        self.room()?;
        self.db
            .query("UPDATE type::record('recording', $id) SET participant_ids = array::union(participant_ids, [$u]) RETURN NONE")
            .bind(("id", id.to_owned()))
            .bind(("u", user_id.to_owned()))
            .await?
            .check()?;
        Ok(())
    }

    /// Records how a recording ended.
    pub async fn finish_recording(
        &self,
        id: &str,
        status: &str,
        end_time: DateTime<Utc>,
        duration: f64,
        size: i64,
    ) -> Result<Option<RecordingRow>> {
        let sql = format!(
            "UPDATE type::record('recording', $id) SET status = $status, end_time = $end, duration = $duration, \
             size = $size RETURN NONE; SELECT {COLS} FROM ONLY type::record('recording', $id);"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("id", id.to_owned()))
            .bind(("status", status.to_owned()))
            .bind(("end", end_time))
            .bind(("duration", duration))
            .bind(("size", size))
            .await?
            .check()?;
        Ok(res.take(1)?)
    }

    /// Recordings of one status, or of a meeting in one status; oldest first.
    pub async fn recordings_in(
        &self,
        status: &str,
        meeting_id: Option<&str>,
    ) -> Result<Vec<RecordingRow>> {
        let filter = if meeting_id.is_some() {
            "AND meeting_id = $m"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLS} FROM recording WHERE status = $status {filter} ORDER BY start_time ASC"
        );
        Ok(self
            .db
            .query(sql)
            .bind(("status", status.to_owned()))
            .bind(("m", meeting_id.map(str::to_owned)))
            .await?
            .take(0)?)
    }

    /// The recording stopped: its files are being finished and stored.
    pub async fn recording_stopped(
        &self,
        id: &str,
        end_time: DateTime<Utc>,
        duration: f64,
    ) -> Result<Option<RecordingRow>> {
        let sql = format!(
            "UPDATE type::record('recording', $id) SET status = 'processing', end_time = $end, \
             duration = $duration WHERE status = 'recording' RETURN NONE; \
             SELECT {COLS} FROM ONLY type::record('recording', $id);"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("id", id.to_owned()))
            .bind(("end", end_time))
            .bind(("duration", duration))
            .await?
            .check()?;
        Ok(res.take(1)?)
    }

    /// The files are stored: the recording can be played.
    pub async fn recording_completed(
        &self,
        id: &str,
        duration: f64,
        size: i64,
        tracks: Vec<TrackRow>,
    ) -> Result<()> {
        self.db
            .query(
                "UPDATE type::record('recording', $id) SET status = 'completed', duration = $duration, \
                 size = $size, tracks = $tracks, failure = NONE RETURN NONE",
            )
            .bind(("id", id.to_owned()))
            .bind(("duration", duration))
            .bind(("size", size))
            .bind(("tracks", tracks))
            .await?
            .check()?;
        Ok(())
    }

    /// Nothing usable is left of the recording.
    pub async fn recording_failed(&self, id: &str, reason: &str) -> Result<()> {
        self.db
            .query(
                "UPDATE type::record('recording', $id) SET status = 'failed', failure = $reason RETURN NONE",
            )
            .bind(("id", id.to_owned()))
            .bind(("reason", reason.to_owned()))
            .await?
            .check()?;
        Ok(())
    }

    pub async fn delete_recording(&self, id: &str) -> Result<()> {
        self.db
            .query("DELETE type::record('recording', $id)")
            .bind(("id", id.to_owned()))
            .await?
            .check()?;
        Ok(())
    }

    /// Recordings whose retention has run out at `now`.
    pub async fn expired_recordings(&self, now: DateTime<Utc>) -> Result<Vec<RecordingRow>> {
        let sql = format!(
            "SELECT {COLS} FROM recording WHERE expires_at <= $now AND status != 'recording'"
        );
        Ok(self.db.query(sql).bind(("now", now)).await?.take(0)?)
    }
}
