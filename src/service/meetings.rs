//! Meetings: creating, joining, leaving, ending, switching mode, and the duration limit.

use serde::Serialize;

use super::users::require;
use super::{MeetingEvent, Participant, Services, check_id, new_id};
use crate::domain::access::{self, Identity};
use crate::domain::meetings::{self, EndReason, Meeting, Mode, Status};
use crate::domain::routing::RouteState;
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::store::{NewMeeting, ParticipantRow};

pub struct JoinOutcome {
    pub meeting: Meeting,
    pub participants: Vec<Participant>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeetingDetail {
    pub meeting: Meeting,
    pub is_host: bool,
    pub can_join: bool,
    pub user_role: Role,
}

impl Services {
    pub async fn create_meeting(&self, host: &Identity, topic: &str) -> Result<Meeting> {
        require(host, Role::Host)?;
        let topic = meetings::validate_topic(topic)?;
        let limits = self.config.limits;
        // One host creates one meeting at a time, so the daily count cannot be overtaken.
        let _guard = self.locks.lock(&format!("host:{}", host.id)).await;
        let now = self.now();
        let (from, to) = meetings::day_bounds(now, &limits);
        let created_today = self
            .store
            .count_meetings_created(&host.id, from, to)
            .await?;
        meetings::check_daily_limit(&limits, created_today)?;
        let row = self
            .store
            .create_meeting(NewMeeting {
                id: new_id(),
                topic,
                host_id: host.id.clone(),
                host_name: host.username.clone(),
                max_participants: limits.max_participants,
                max_duration_seconds: limits.max_duration_seconds,
                now,
            })
            .await?;
        Ok(row.into())
    }

    /// A meeting by id, whoever asks.
    pub async fn meeting(&self, id: &str) -> Result<Meeting> {
        check_id(id, "Meeting")?;
        Ok(self
            .store
            .meeting(id)
            .await?
            .ok_or(Error::NotFound("Meeting"))?
            .into())
    }

    /// A meeting the caller may see; others' meetings are forbidden.
    pub(super) async fn visible_meeting(&self, who: &Identity, id: &str) -> Result<Meeting> {
        let meeting = self.meeting(id).await?;
        if !access::may_view(who, &meeting) {
            return Err(Error::Forbidden("You do not have access to this meeting"));
        }
        Ok(meeting)
    }

    pub async fn meeting_detail(&self, who: &Identity, id: &str) -> Result<MeetingDetail> {
        let meeting = self.visible_meeting(who, id).await?;
        let already_in = self
            .store
            .participant(&meeting.id, &who.id)
            .await?
            .is_some_and(|p| p.present);
        let can_join = access::may_join(who, &meeting)
            && meetings::check_join(&meeting, self.now(), meeting.participant_count, already_in)
                .is_ok();
        Ok(MeetingDetail {
            is_host: access::is_meeting_host(who, &meeting),
            can_join,
            user_role: who.role,
            meeting,
        })
    }

    /// Joins (or rejoins) a meeting: the first join activates it.
    pub async fn join_meeting(&self, who: &Identity, id: &str) -> Result<JoinOutcome> {
        let meeting = self.meeting(id).await?;
        if !access::may_join(who, &meeting) {
            return Err(Error::Forbidden("You are not allowed to join this meeting"));
        }
        let _guard = self.locks.lock(&meeting.id).await;
        let meeting = self.meeting(id).await?;
        let now = self.now();
        if meeting.is_overdue(now) {
            self.end_locked(&meeting.id, EndReason::DurationExceeded)
                .await?;
        }
        let already_in = self
            .store
            .participant(&meeting.id, &who.id)
            .await?
            .is_some_and(|p| p.present);
        meetings::check_join(&meeting, now, meeting.participant_count, already_in)?;
        let before = meeting.status;
        if already_in {
            // A rejoin (another tab, a reconnect) changes nothing: no write.
            let participants = self.present_participants(&meeting.id).await?;
            return Ok(JoinOutcome {
                meeting,
                participants,
            });
        }
        let row = ParticipantRow {
            meeting_id: meeting.id.clone(),
            user_id: who.id.clone(),
            username: who.username.clone(),
            role: who.role.as_str().to_owned(),
            joined_at: now,
            left_at: None,
            present: true,
            muted: false,
        };
        self.store.join_meeting(&meeting.id, &row, now).await?;
        if let Some(rec) = &meeting.recording
            && !rec.is_private
        {
            self.store
                .add_recording_participant(&rec.id, &who.id)
                .await?;
        }
        self.recorder.set_name(&meeting.id, &who.id, &who.username);
        self.emit(MeetingEvent::Joined {
            meeting_id: meeting.id.clone(),
            user_id: who.id.clone(),
            username: who.username.clone(),
            role: who.role,
        });
        let mut meeting = self.meeting(id).await?;
        if self.config.recordings.auto_start
            && before == Status::Created
            && meeting.status == Status::Active
            && meeting.recording.is_none()
        {
            self.begin_recording(&meeting).await?;
            meeting = self.meeting(id).await?;
        }
        let participants = self.present_participants(&meeting.id).await?;
        Ok(JoinOutcome {
            meeting,
            participants,
        })
    }

    /// Leaves a meeting. Leaving one already left (or ended) succeeds for anyone who was in it.
    pub async fn leave_meeting(&self, who: &Identity, id: &str) -> Result<()> {
        let meeting = self.meeting(id).await?;
        if !self.leave_locked(&meeting.id, &who.id).await?
            && self
                .store
                .participant(&meeting.id, &who.id)
                .await?
                .is_none()
        {
            return Err(Error::Forbidden("You are not in this meeting"));
        }
        Ok(())
    }

    /// Releases a user's seat because their connection is gone (no permission check: the
    /// realtime layer calls this for the socket's own user). False when they were not in it.
    pub async fn release_seat(&self, meeting_id: &str, user_id: &str) -> Result<bool> {
        self.leave_locked(meeting_id, user_id).await
    }

    /// After a restart no connection is live: every seat still marked present is released.
    /// Only for an embedded database, where this process is the only server.
    pub async fn release_stale_seats(&self) -> Result<usize> {
        if !self.store.is_embedded() {
            return Ok(0);
        }
        let stale = self.store.present_everywhere().await?;
        for (meeting_id, user_id) in &stale {
            self.leave_locked(meeting_id, user_id).await?;
        }
        Ok(stale.len())
    }

    /// The meeting and its routing state (mode, private pair, mutes), for live audio.
    pub async fn route_state(&self, meeting_id: &str) -> Result<(Meeting, RouteState)> {
        let meeting = self.meeting(meeting_id).await?;
        let mut route = RouteState::of(&meeting);
        route.muted = self
            .store
            .participants(&meeting.id)
            .await?
            .into_iter()
            .filter(|p| p.muted)
            .map(|p| p.user_id)
            .collect();
        Ok((meeting, route))
    }

    /// Server-side mute: the meeting's host silences (or lets speak again) a participant.
    pub async fn set_muted(
        &self,
        who: &Identity,
        meeting_id: &str,
        user_id: &str,
        muted: bool,
    ) -> Result<()> {
        let meeting = self.meeting(meeting_id).await?;
        // The host, or an operator (`meet top` through the control socket).
        if !access::may_end(who, &meeting) {
            return Err(Error::Forbidden("Only the host can mute participants"));
        }
        if !meeting.status.is_open() {
            return Err(Error::conflict("meeting_ended", "This meeting has ended"));
        }
        let _guard = self.locks.lock(&meeting.id).await;
        let present = check_id(user_id, "Participant").is_ok()
            && self
                .store
                .participant(&meeting.id, user_id)
                .await?
                .is_some_and(|p| p.present);
        if !present {
            return Err(Error::invalid(
                "userId",
                "must be a participant in this meeting",
            ));
        }
        self.store.set_muted(&meeting.id, user_id, muted).await?;
        self.emit(MeetingEvent::Muted {
            meeting_id: meeting.id.clone(),
            user_id: user_id.to_owned(),
            muted,
        });
        Ok(())
    }

    /// Takes a user out of a meeting; false when they were not in it.
    async fn leave_locked(&self, meeting_id: &str, user_id: &str) -> Result<bool> {
        let _guard = self.locks.lock(meeting_id).await;
        let was_in = self
            .store
            .leave_meeting(meeting_id, user_id, self.now())
            .await?;
        if was_in {
            self.private_requests.remove(meeting_id, user_id);
            self.emit(MeetingEvent::Left {
                meeting_id: meeting_id.to_owned(),
                user_id: user_id.to_owned(),
            });
        }
        Ok(was_in)
    }

    /// Takes a user out of every meeting they are in (disabled or deleted accounts).
    pub(super) async fn leave_all_meetings(&self, user_id: &str) -> Result<()> {
        for meeting_id in self.store.present_meetings_of(user_id).await? {
            self.leave_locked(&meeting_id, user_id).await?;
        }
        Ok(())
    }

    async fn present_participants(&self, meeting_id: &str) -> Result<Vec<Participant>> {
        let rows = self.store.participants(meeting_id).await?;
        Ok(rows
            .into_iter()
            .filter(|p| p.present)
            .map(Participant::from)
            .collect())
    }

    /// Everyone who has been in the meeting, with `online` telling who is there now.
    /// For the host, admins, and anyone who has joined it.
    pub async fn participants(&self, who: &Identity, id: &str) -> Result<Vec<Participant>> {
        let meeting = self.visible_meeting(who, id).await?;
        let rows = self.store.participants(&meeting.id).await?;
        let allowed = who.is_admin()
            || access::is_meeting_host(who, &meeting)
            || rows.iter().any(|p| p.user_id == who.id);
        if !allowed {
            return Err(Error::Forbidden(
                "Only the host and participants can see who is in this meeting",
            ));
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let requested = self.private_requests.is_pending(&meeting.id, &row.user_id);
                Participant {
                    requested_private: requested,
                    ..row.into()
                }
            })
            .collect())
    }

    /// Ends a meeting as its host or an admin.
    pub async fn end_meeting(&self, who: &Identity, id: &str) -> Result<Meeting> {
        let meeting = self.meeting(id).await?;
        if !access::may_end(who, &meeting) {
            return Err(Error::Forbidden("Only the host can end this meeting"));
        }
        let reason = if who.is_admin() {
            EndReason::AdminEnded
        } else {
            EndReason::HostEnded
        };
        if meeting.status == Status::Archived || meeting.status == Status::Ended {
            return Err(Error::conflict(
                "meeting_ended",
                "This meeting has already ended",
            ));
        }
        self.end_meeting_as(&meeting.id, reason).await
    }

    /// Ends a meeting for a reason (jobs, admin, shutdown). Ending an ended meeting returns it unchanged.
    pub async fn end_meeting_as(&self, id: &str, reason: EndReason) -> Result<Meeting> {
        let _guard = self.locks.lock(id).await;
        self.end_locked(id, reason).await
    }

    async fn end_locked(&self, id: &str, reason: EndReason) -> Result<Meeting> {
        let before = self.meeting(id).await?;
        if !before.status.is_open() {
            return Ok(before);
        }
        let row = self
            .store
            .end_meeting(id, reason.as_str(), self.now())
            .await?
            .ok_or(Error::NotFound("Meeting"))?;
        self.stop_recordings_locked(id, |_| true).await?;
        self.private_requests.remove_meeting(id);
        let meeting: Meeting = self
            .store
            .meeting(id)
            .await?
            .map_or_else(|| row.into(), Meeting::from);
        tracing::info!(meeting = %meeting.id, reason = reason.as_str(), "meeting ended");
        self.emit(MeetingEvent::Ended {
            meeting: Box::new(meeting.clone()),
        });
        Ok(meeting)
    }

    /// Switches between broadcast and a private conversation with one student in the meeting.
    pub async fn switch_mode(
        &self,
        who: &Identity,
        id: &str,
        mode: Mode,
        participant_id: Option<&str>,
    ) -> Result<Meeting> {
        let meeting = self.meeting(id).await?;
        if !access::is_meeting_host(who, &meeting) {
            return Err(Error::Forbidden("Only the host can switch the mode"));
        }
        let _guard = self.locks.lock(&meeting.id).await;
        let meeting = self.meeting(id).await?;
        if !meeting.status.is_open() {
            return Err(Error::conflict("meeting_ended", "This meeting has ended"));
        }
        let private_id = match mode {
            Mode::Broadcast => None,
            Mode::Private => {
                let pid = participant_id.ok_or_else(|| {
                    Error::invalid("participantId", "is required for private mode")
                })?;
                let in_meeting = check_id(pid, "Participant").is_ok()
                    && self
                        .store
                        .participant(&meeting.id, pid)
                        .await?
                        .is_some_and(|p| p.present && p.role == "student");
                if !in_meeting {
                    return Err(Error::invalid(
                        "participantId",
                        "must be a student in this meeting",
                    ));
                }
                Some(pid.to_owned())
            }
        };
        let row = self
            .store
            .set_mode(&meeting.id, mode.as_str(), private_id)
            .await?
            .ok_or(Error::NotFound("Meeting"))?;
        let meeting: Meeting = row.into();
        if let Some(student) = &meeting.private_participant_id {
            self.private_requests.remove(&meeting.id, student);
        }
        self.emit(MeetingEvent::ModeChanged {
            meeting: Box::new(meeting.clone()),
        });
        self.recording_follow_mode(&meeting).await?;
        self.meeting(&meeting.id).await
    }

    /// A host's meetings, optionally of one status.
    pub async fn host_meetings(
        &self,
        host: &Identity,
        status: Option<Status>,
    ) -> Result<Vec<Meeting>> {
        require(host, Role::Host)?;
        self.list_meetings(Some(&host.id), status).await
    }

    /// The student's host's meetings that are open.
    pub async fn student_meetings(&self, student: &Identity) -> Result<Vec<Meeting>> {
        require(student, Role::Student)?;
        let host = student
            .host_id
            .as_deref()
            .ok_or(Error::Internal("student without a host".into()))?;
        let rows = self
            .store
            .meetings(Some(host), Some(&["created", "active"]))
            .await?;
        Ok(rows.into_iter().map(Meeting::from).collect())
    }

    pub async fn admin_meetings(
        &self,
        admin: &Identity,
        status: Option<Status>,
    ) -> Result<Vec<Meeting>> {
        require(admin, Role::Admin)?;
        self.list_meetings(None, status).await
    }

    async fn list_meetings(
        &self,
        host: Option<&str>,
        status: Option<Status>,
    ) -> Result<Vec<Meeting>> {
        let statuses = status.map(|s| [s.as_str()]);
        let rows = self
            .store
            .meetings(host, statuses.as_ref().map(<[&str; 1]>::as_slice))
            .await?;
        Ok(rows.into_iter().map(Meeting::from).collect())
    }

    /// Ends every active meeting past its duration limit. Returns the meetings ended.
    pub async fn end_overdue_meetings(&self) -> Result<Vec<Meeting>> {
        let mut ended = Vec::new();
        for row in self.store.overdue_meetings(self.now()).await? {
            ended.push(
                self.end_meeting_as(&row.id, EndReason::DurationExceeded)
                    .await?,
            );
        }
        Ok(ended)
    }

    /// Archives meetings that ended more than `archive_after` ago. Returns how many.
    pub async fn archive_ended_meetings(&self) -> Result<usize> {
        let cutoff = self.now() - self.config.archive_after;
        let mut n = 0;
        for id in self.store.ended_before(cutoff).await? {
            if self.store.archive_meeting(&id).await? {
                n += 1;
            }
        }
        Ok(n)
    }
}
