//! Meetings and the people in them.

use chrono::{DateTime, Utc};
use surrealdb::types::SurrealValue;

use super::Store;
use super::cache::{Key, Value};
use crate::error::{Error, Result};

const COLS: &str = "record::id(id) AS id, topic, host_id, host_name, status, mode, private_participant_id, \
                    max_participants, max_duration_seconds, participant_count, created_at, start_time, deadline, \
                    end_time, end_reason, recording_id, recording_private, recording_start";

const PCOLS: &str = "meeting_id, user_id, username, role, joined_at, left_at, present, muted";

#[derive(Debug, Clone, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub struct MeetingRow {
    pub id: String,
    pub topic: String,
    pub host_id: String,
    pub host_name: String,
    pub status: String,
    pub mode: String,
    pub private_participant_id: Option<String>,
    pub max_participants: i64,
    pub max_duration_seconds: i64,
    pub participant_count: i64,
    pub created_at: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    pub recording_id: Option<String>,
    pub recording_private: Option<bool>,
    pub recording_start: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub struct ParticipantRow {
    pub meeting_id: String,
    pub user_id: String,
    pub username: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
    pub present: bool,
    pub muted: bool,
}

pub struct NewMeeting {
    pub id: String,
    pub topic: String,
    pub host_id: String,
    pub host_name: String,
    pub max_participants: u32,
    pub max_duration_seconds: u64,
    pub now: DateTime<Utc>,
}

pub(super) fn participant_key(meeting_id: &str, user_id: &str) -> String {
    format!("{meeting_id}.{user_id}")
}

/// Recounts the people present and stores it on the meeting.
const RECOUNT: &str = "UPDATE type::record('meeting', $m) SET participant_count = \
     (SELECT count() AS n FROM participant WHERE meeting_id = $m AND present = true GROUP ALL)[0].n ?? 0 RETURN NONE;";

impl Store {
    pub async fn create_meeting(&self, m: NewMeeting) -> Result<MeetingRow> {
        self.room()?;
        let _writing = self.writing();

        let sql = format!(
            "CREATE type::record('meeting', $id) SET topic = $topic, host_id = $host, host_name = $host_name, \
             status = 'created', mode = 'broadcast', private_participant_id = NONE, max_participants = $maxp, \
             max_duration_seconds = $maxd, participant_count = 0, created_at = $now RETURN NONE; \
             SELECT {COLS} FROM ONLY type::record('meeting', $id);"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("id", m.id))
            .bind(("topic", m.topic))
            .bind(("host", m.host_id))
            .bind(("host_name", m.host_name))
            .bind(("maxp", i64::from(m.max_participants)))
            .bind((
                "maxd",
                i64::try_from(m.max_duration_seconds).unwrap_or(i64::MAX),
            ))
            .bind(("now", m.now))
            .await?
            .check()?;
        let row: Option<MeetingRow> = res.take(1)?;
        row.ok_or_else(|| Error::Database("created meeting not found".into()))
    }

    pub async fn meeting(&self, id: &str) -> Result<Option<MeetingRow>> {
        let fetch = async {
            let sql = format!("SELECT {COLS} FROM ONLY type::record('meeting', $id)");
            Ok(self
                .db
                .query(sql)
                .bind(("id", id.to_owned()))
                .await?
                .take(0)?)
        };
        self.cached(
            Key::Meeting(id.to_owned()),
            fetch,
            |m: Option<MeetingRow>| Value::Meeting(m.map(Box::new)),
            |v| match v {
                Value::Meeting(m) => Some(m.map(|b| *b)),
                _ => None,
            },
        )
        .await
    }

    /// Meetings, newest first, filtered by host and by status.
    pub async fn meetings(
        &self,
        host_id: Option<&str>,
        statuses: Option<&[&str]>,
    ) -> Result<Vec<MeetingRow>> {
        let statuses: Option<Vec<String>> =
            statuses.map(|s| s.iter().map(|x| (*x).to_owned()).collect());
        let key = Key::Meetings(host_id.map(str::to_owned), statuses.clone());
        let fetch = async {
            let mut filters = vec!["true"];
            if host_id.is_some() {
                filters.push("host_id = $host");
            }
            if statuses.is_some() {
                filters.push("status IN $statuses");
            }
            let sql = format!(
                "SELECT {COLS} FROM meeting WHERE {} ORDER BY created_at DESC",
                filters.join(" AND ")
            );
            Ok(self
                .db
                .query(sql)
                .bind(("host", host_id.map(str::to_owned)))
                .bind(("statuses", statuses))
                .await?
                .take(0)?)
        };
        self.cached(key, fetch, Value::Meetings, |v| match v {
            Value::Meetings(m) => Some(m),
            _ => None,
        })
        .await
    }

    pub async fn count_meetings_created(
        &self,
        host_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u32> {
        let q = self
            .db
            .query(
                "SELECT count() AS n FROM meeting WHERE host_id = $host AND created_at >= $from \
                 AND created_at < $to GROUP ALL",
            )
            .bind(("host", host_id.to_owned()))
            .bind(("from", from))
            .bind(("to", to));
        Ok(u32::try_from(super::count(q).await?).unwrap_or(u32::MAX))
    }

    pub async fn count_meetings(&self, status: Option<&str>) -> Result<i64> {
        let sql = if status.is_some() {
            "SELECT count() AS n FROM meeting WHERE status = $status GROUP ALL"
        } else {
            "SELECT count() AS n FROM meeting GROUP ALL"
        };
        super::count(
            self.db
                .query(sql)
                .bind(("status", status.map(str::to_owned))),
        )
        .await
    }

    /// Puts a user in the meeting (again): present, joined now, and activates a `created` meeting.
    pub async fn join_meeting(
        &self,
        meeting_id: &str,
        p: &ParticipantRow,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.room()?;
        let _writing = self.writing();

        let sql = format!(
            "BEGIN;
             UPSERT type::record('participant', $key) SET meeting_id = $m, user_id = $u, username = $username,
                 role = $role, joined_at = IF present = true THEN joined_at ELSE $now END, left_at = NONE,
                 present = true, muted = muted ?? false RETURN NONE;
             UPDATE type::record('meeting', $m) SET status = 'active', start_time = $now,
                 deadline = $now + type::duration(string::concat(max_duration_seconds, 's'))
                 WHERE status = 'created' RETURN NONE;
             {RECOUNT}
             COMMIT;"
        );
        self.db
            .query(sql)
            .bind(("key", participant_key(meeting_id, &p.user_id)))
            .bind(("m", meeting_id.to_owned()))
            .bind(("u", p.user_id.clone()))
            .bind(("username", p.username.clone()))
            .bind(("role", p.role.clone()))
            .bind(("now", now))
            .await?
            .check()?;
        Ok(())
    }

    /// Marks a user as gone from the meeting. Returns whether they were present.
    pub async fn leave_meeting(
        &self,
        meeting_id: &str,
        user_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let _writing = self.writing();

        let sql = format!(
            "UPDATE type::record('participant', $key) SET present = false, left_at = $now WHERE present = true
                 RETURN VALUE user_id;
             {RECOUNT}"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("key", participant_key(meeting_id, user_id)))
            .bind(("m", meeting_id.to_owned()))
            .bind(("now", now))
            .await?
            .check()?;
        let changed: Vec<String> = res.take(0)?;
        Ok(!changed.is_empty())
    }

    pub async fn participant(
        &self,
        meeting_id: &str,
        user_id: &str,
    ) -> Result<Option<ParticipantRow>> {
        if self.cache.is_some() {
            let all = self.participants(meeting_id).await?;
            return Ok(all.into_iter().find(|p| p.user_id == user_id));
        }
        let sql = format!("SELECT {PCOLS} FROM ONLY type::record('participant', $key)");
        Ok(self
            .db
            .query(sql)
            .bind(("key", participant_key(meeting_id, user_id)))
            .await?
            .take(0)?)
    }

    /// Everyone who has joined the meeting, present or not, in order of joining.
    pub async fn participants(&self, meeting_id: &str) -> Result<Vec<ParticipantRow>> {
        let fetch = async {
            let sql =
                format!("SELECT {PCOLS} FROM participant WHERE meeting_id = $m ORDER BY joined_at");
            Ok(self
                .db
                .query(sql)
                .bind(("m", meeting_id.to_owned()))
                .await?
                .take(0)?)
        };
        self.cached(
            Key::Participants(meeting_id.to_owned()),
            fetch,
            Value::Participants,
            |v| match v {
                Value::Participants(p) => Some(p),
                _ => None,
            },
        )
        .await
    }

    /// The meetings a user is currently present in.
    pub async fn present_meetings_of(&self, user_id: &str) -> Result<Vec<String>> {
        let sql = "SELECT VALUE meeting_id FROM participant WHERE user_id = $u AND present = true";
        Ok(self
            .db
            .query(sql)
            .bind(("u", user_id.to_owned()))
            .await?
            .take(0)?)
    }

    /// Every `(meeting, user)` marked present, in any meeting.
    pub async fn present_everywhere(&self) -> Result<Vec<(String, String)>> {
        #[derive(SurrealValue)]
        struct Pair {
            meeting_id: String,
            user_id: String,
        }
        let rows: Vec<Pair> = self
            .db
            .query("SELECT meeting_id, user_id FROM participant WHERE present = true")
            .await?
            .take(0)?;
        Ok(rows
            .into_iter()
            .map(|p| (p.meeting_id, p.user_id))
            .collect())
    }

    /// Whether this process alone uses the database (embedded), so its view of who is live is
    /// the whole truth.
    pub fn is_embedded(&self) -> bool {
        self.cache.is_some()
    }

    pub async fn set_muted(&self, meeting_id: &str, user_id: &str, muted: bool) -> Result<()> {
        self.room()?;
        let _writing = self.writing();

        self.db
            .query("UPDATE type::record('participant', $key) SET muted = $muted RETURN NONE")
            .bind(("key", participant_key(meeting_id, user_id)))
            .bind(("muted", muted))
            .await?
            .check()?;
        Ok(())
    }

    /// Ends the meeting if it is open and returns it as it is now (`None` when it does not exist).
    pub async fn end_meeting(
        &self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<MeetingRow>> {
        let _writing = self.writing();

        let sql = format!(
            "BEGIN;
             UPDATE type::record('meeting', $m) SET status = 'ended', end_time = $now, end_reason = $reason,
                 participant_count = 0 WHERE status IN ['created', 'active'] RETURN NONE;
             UPDATE participant SET present = false, left_at = $now WHERE meeting_id = $m AND present = true RETURN NONE;
             COMMIT;
             SELECT {COLS} FROM ONLY type::record('meeting', $m);"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("m", id.to_owned()))
            .bind(("reason", reason.to_owned()))
            .bind(("now", now))
            .await?
            .check()?;
        let last = res.num_statements().saturating_sub(1);
        Ok(res.take(last)?)
    }

    pub async fn set_mode(
        &self,
        id: &str,
        mode: &str,
        private_participant_id: Option<String>,
    ) -> Result<Option<MeetingRow>> {
        self.room()?;
        let _writing = self.writing();

        let sql = format!(
            "UPDATE type::record('meeting', $m) SET mode = $mode, private_participant_id = $pp RETURN NONE; \
             SELECT {COLS} FROM ONLY type::record('meeting', $m);"
        );
        let mut res = self
            .db
            .query(sql)
            .bind(("m", id.to_owned()))
            .bind(("mode", mode.to_owned()))
            .bind(("pp", private_participant_id))
            .await?
            .check()?;
        Ok(res.take(1)?)
    }

    /// The recording a meeting shows as running (`None`: none runs).
    pub async fn set_meeting_recording(
        &self,
        id: &str,
        recording: Option<(String, bool, DateTime<Utc>)>,
    ) -> Result<()> {
        self.room()?;
        let _writing = self.writing();
        let (rid, private, start) = match recording {
            Some((r, p, s)) => (Some(r), Some(p), Some(s)),
            None => (None, None, None),
        };
        self.db
            .query(
                "UPDATE type::record('meeting', $m) SET recording_id = $r, recording_private = $p, \
                 recording_start = $s RETURN NONE",
            )
            .bind(("m", id.to_owned()))
            .bind(("r", rid))
            .bind(("p", private))
            .bind(("s", start))
            .await?
            .check()?;
        Ok(())
    }

    /// Active meetings whose deadline has passed at `now`.
    pub async fn overdue_meetings(&self, now: DateTime<Utc>) -> Result<Vec<MeetingRow>> {
        let sql =
            format!("SELECT {COLS} FROM meeting WHERE status = 'active' AND deadline <= $now");
        Ok(self.db.query(sql).bind(("now", now)).await?.take(0)?)
    }

    /// Ids of meetings that ended before `cutoff` and are not archived yet.
    pub async fn ended_before(&self, cutoff: DateTime<Utc>) -> Result<Vec<String>> {
        let sql = "SELECT VALUE record::id(id) FROM meeting WHERE status = 'ended' AND end_time < $cutoff";
        Ok(self.db.query(sql).bind(("cutoff", cutoff)).await?.take(0)?)
    }

    pub async fn archive_meeting(&self, id: &str) -> Result<bool> {
        let _writing = self.writing();

        let mut res = self
            .db
            .query("UPDATE type::record('meeting', $m) SET status = 'archived' WHERE status = 'ended' RETURN VALUE record::id(id)")
            .bind(("m", id.to_owned()))
            .await?
            .check()?;
        let changed: Vec<String> = res.take(0)?;
        Ok(!changed.is_empty())
    }
}
