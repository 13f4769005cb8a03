//! The original server's operations that meet has no route of its own for, each made of meet's
//! own rules (`http::compat` serves them under the original's paths).

use serde::Serialize;

use super::links::LINK_SECONDS;
use super::users::require;
use super::{Recording, Services, User, check_id};
use crate::config::StorageConfig;
use crate::domain::access::{self, Identity};
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::service::JoinOutcome;
use crate::storage::Location;

/// Where a recording's audio can be played from, for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The storage's presigned URL (S3).
    Presigned(String),
    /// A path on this server with a signature in its query (local storage).
    Signed(String),
}

/// `GET /api/admin/stats/hosts`, as the original counted.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostStats {
    pub total_hosts: usize,
    pub active_hosts: usize,
}

impl Services {
    /// The original's "activate": the host opens the meeting, which is meet's host join.
    pub async fn activate_meeting(&self, who: &Identity, id: &str) -> Result<JoinOutcome> {
        let meeting = self.meeting(id).await?;
        if !access::is_meeting_host(who, &meeting) {
            return Err(Error::Forbidden("Only the host can activate this meeting"));
        }
        self.join_meeting(who, id).await
    }

    /// A meeting's recordings the caller may hear, newest first.
    pub async fn meeting_recordings(&self, who: &Identity, id: &str) -> Result<Vec<Recording>> {
        let meeting = self.visible_meeting(who, id).await?;
        let mut out = Vec::new();
        for row in self.store.recordings(Some(&meeting.host_id)).await? {
            if row.meeting_id == meeting.id
                && let Ok(audible) = self.audible_recording(who, &row.id).await
            {
                out.push(Recording::from(audible));
            }
        }
        Ok(out)
    }

    /// Every recording the caller may hear: an admin's all, a host's own, a student's normal
    /// and private ones; newest first.
    pub async fn accessible_recordings(&self, who: &Identity) -> Result<Vec<Recording>> {
        let mut all = match who.role {
            Role::Admin => self.admin_recordings(who).await?,
            Role::Host => self.host_recordings(who).await?,
            Role::Student => {
                let mut v = self.student_recordings(who, false).await?;
                v.extend(self.student_recordings(who, true).await?);
                v
            }
        };
        all.sort_by_key(|r| std::cmp::Reverse(r.start_time));
        Ok(all)
    }

    /// A link that plays a completed recording (or one speaker's file of it) without a token,
    /// and for how many seconds.
    pub async fn recording_link(
        &self,
        who: &Identity,
        id: &str,
        track: Option<&str>,
    ) -> Result<(Link, i64)> {
        Ok(match self.recording_audio(who, id, track).await? {
            Location::Url(url) => {
                let seconds = match &self.config.storage {
                    StorageConfig::S3(s3) => i64::from(s3.presign_seconds),
                    StorageConfig::Local { .. } => LINK_SECONDS,
                };
                (Link::Presigned(url), seconds)
            }
            Location::File(_) => {
                let expires = self.now().timestamp() + LINK_SECONDS;
                let signature = self.links.sign(id, track, expires);
                let mut path = format!("/api/recordings/{id}/audio?");
                if let Some(user) = track {
                    path.push_str(&format!("track={user}&"));
                }
                path.push_str(&format!("expires={expires}&signature={signature}"));
                (Link::Signed(path), LINK_SECONDS)
            }
        })
    }

    /// Whether a signed link's query is this server's and still plays.
    pub fn link_is_valid(
        &self,
        id: &str,
        track: Option<&str>,
        expires: i64,
        signature: &str,
    ) -> bool {
        self.links
            .verify(id, track, expires, signature, self.now().timestamp())
    }

    /// Where the audio of a signed link is: the same file the audio route serves, checked by
    /// the link instead of a caller.
    pub async fn linked_audio(&self, id: &str, track: Option<&str>) -> Result<Location> {
        check_id(id, "Recording")?;
        let row = self
            .store
            .recording(id)
            .await?
            .ok_or(Error::NotFound("Recording"))?;
        self.located(&row, track).await
    }

    /// The original's "end recording" by the recording's id: stops its meeting's recording.
    pub async fn stop_recording_by_id(&self, who: &Identity, id: &str) -> Result<Recording> {
        let row = self.audible_recording(who, id).await?;
        if !access::may_delete_recording(who, &row.host_id) {
            return Err(Error::Forbidden("Only the host can stop this recording"));
        }
        if row.status != "recording" {
            return Err(Error::conflict(
                "not_recording",
                "This recording is not running",
            ));
        }
        self.stop_recording(who, &row.meeting_id).await?;
        self.recording(who, id).await
    }

    /// Every account: admins, hosts and students, oldest first.
    pub async fn all_users(&self, admin: &Identity) -> Result<Vec<User>> {
        require(admin, Role::Admin)?;
        let mut all = Vec::new();
        for role in [Role::Admin, Role::Host, Role::Student] {
            all.extend(
                self.store
                    .users(role.as_str(), None)
                    .await?
                    .into_iter()
                    .map(User::from),
            );
        }
        all.sort_by_key(|u| u.created_at);
        Ok(all)
    }

    pub async fn host_stats(&self, admin: &Identity) -> Result<HostStats> {
        let hosts = self.hosts(admin).await?;
        Ok(HostStats {
            total_hosts: hosts.len(),
            active_hosts: hosts.iter().filter(|h| h.is_active).count(),
        })
    }
}
