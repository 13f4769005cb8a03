//! Recording metadata: who may list, hear and delete which recording, and retention.

use serde::Serialize;

use super::users::require;
use super::{Recording, Services, check_id};
use crate::domain::access::{self, Identity, RecordingAccess};
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::storage::Location;
use crate::store::RecordingRow;

#[derive(Debug, Clone, Serialize)]
pub struct MeetingCounts {
    pub active: i64,
    pub total: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub hosts: i64,
    pub students: i64,
    pub meetings: MeetingCounts,
    pub recordings: i64,
}

fn may_hear(who: &Identity, r: &RecordingRow) -> bool {
    access::may_hear_recording(
        who,
        &RecordingAccess {
            host_id: &r.host_id,
            is_private: r.is_private,
            student_id: r.student_id.as_deref(),
            participant_ids: &r.participant_ids,
        },
    )
}

impl Services {
    pub async fn host_recordings(&self, host: &Identity) -> Result<Vec<Recording>> {
        require(host, Role::Host)?;
        Ok(self
            .store
            .recordings(Some(&host.id))
            .await?
            .into_iter()
            .map(Recording::from)
            .collect())
    }

    /// `private`: the student's own private recordings; otherwise the meetings they were in.
    pub async fn student_recordings(
        &self,
        student: &Identity,
        private: bool,
    ) -> Result<Vec<Recording>> {
        require(student, Role::Student)?;
        let rows = self
            .store
            .student_recordings(&student.id, private, self.now())
            .await?;
        Ok(rows.into_iter().map(Recording::from).collect())
    }

    pub async fn admin_recordings(&self, admin: &Identity) -> Result<Vec<Recording>> {
        require(admin, Role::Admin)?;
        Ok(self
            .store
            .recordings(None)
            .await?
            .into_iter()
            .map(Recording::from)
            .collect())
    }

    /// A recording the caller may hear. Students see only completed, unexpired ones.
    pub(super) async fn audible_recording(&self, who: &Identity, id: &str) -> Result<RecordingRow> {
        check_id(id, "Recording")?;
        let row = self
            .store
            .recording(id)
            .await?
            .ok_or(Error::NotFound("Recording"))?;
        let student_hidden = who.role == Role::Student
            && (row.status != "completed" || row.expires_at <= self.now());
        if !may_hear(who, &row) || student_hidden {
            return Err(Error::NotFound("Recording"));
        }
        Ok(row)
    }

    pub async fn recording(&self, who: &Identity, id: &str) -> Result<Recording> {
        Ok(self.audible_recording(who, id).await?.into())
    }

    /// Where the audio of a completed recording the caller may hear can be read: the mix, or
    /// one speaker's file (`?track=USER_ID`).
    pub async fn recording_audio(
        &self,
        who: &Identity,
        id: &str,
        track: Option<&str>,
    ) -> Result<Location> {
        let row = self.audible_recording(who, id).await?;
        self.located(&row, track).await
    }

    /// Where a completed recording's mix, or one speaker's file, is.
    pub(super) async fn located(
        &self,
        row: &RecordingRow,
        track: Option<&str>,
    ) -> Result<Location> {
        if row.status != "completed" {
            return Err(Error::conflict(
                "recording_not_ready",
                "This recording has no audio yet",
            ));
        }
        let key = match track {
            None => &row.object_key,
            Some(user) => {
                &row.tracks
                    .iter()
                    .find(|t| t.user_id == user)
                    .ok_or(Error::NotFound("Track"))?
                    .object_key
            }
        };
        self.storage
            .location(key)
            .await
            .map_err(|e| Error::Storage(e.to_string()))
    }

    pub async fn delete_recording(&self, who: &Identity, id: &str) -> Result<()> {
        check_id(id, "Recording")?;
        let row = self
            .store
            .recording(id)
            .await?
            .ok_or(Error::NotFound("Recording"))?;
        if !access::may_delete_recording(who, &row.host_id) {
            return Err(Error::NotFound("Recording"));
        }
        if row.status == "recording" {
            return Err(Error::conflict(
                "already_recording",
                "Stop the recording before deleting it",
            ));
        }
        self.remove_recording(&row).await
    }

    /// Deletes the bytes (the mix, every speaker's file, the spool), then the row: a failure
    /// leaves the row, so nothing is lost track of.
    pub async fn remove_recording(&self, row: &RecordingRow) -> Result<()> {
        let storage = |e: crate::storage::StorageError| Error::Storage(e.to_string());
        for t in &row.tracks {
            self.storage.delete(&t.object_key).await.map_err(storage)?;
        }
        self.storage
            .delete(&row.object_key)
            .await
            .map_err(storage)?;
        match tokio::fs::remove_dir_all(self.recorder.dir_of(&row.id)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Storage(e.to_string()));
            }
            _ => {}
        }
        self.store.delete_recording(&row.id).await
    }

    /// Stored objects no recording refers to (left by a recording deleted while its upload
    /// ran, or by hand). Only objects laid out as meet writes them count
    /// (`<meeting>/<recording>/<name>.ogg`): anything else in the bucket, such as the original
    /// server's files that an import skipped, is never touched. An object under a recording's
    /// folder whose recording exists is never one: its upload may be under way.
    pub async fn orphan_objects(&self) -> Result<Vec<String>> {
        let rows = self.store.recordings(None).await?;
        let mut known: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        for r in &rows {
            known.insert(r.object_key.as_str());
            known.extend(r.tracks.iter().map(|t| t.object_key.as_str()));
        }
        let listed = self
            .storage
            .list()
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        Ok(listed
            .into_iter()
            .filter(|k| k.split('/').count() == 3 && k.ends_with(".ogg"))
            .filter(|k| !known.contains(k.as_str()))
            .filter(|k| k.split('/').nth(1).is_none_or(|id| !ids.contains(id)))
            .collect())
    }

    pub async fn delete_object(&self, key: &str) -> Result<()> {
        self.storage
            .delete(key)
            .await
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// Recordings past retention.
    pub async fn expired_recordings(&self) -> Result<Vec<RecordingRow>> {
        self.store.expired_recordings(self.now()).await
    }

    pub async fn stats(&self) -> Result<Stats> {
        Ok(Stats {
            hosts: self.store.count_users(Role::Host.as_str()).await?,
            students: self.store.count_users(Role::Student.as_str()).await?,
            meetings: MeetingCounts {
                active: self.store.count_meetings(Some("active")).await?,
                total: self.store.count_meetings(None).await?,
            },
            recordings: self.store.count_recordings().await?,
        })
    }
}
