//! Who may see, join, run or hear what. Pure functions of the identities involved.

use super::meetings::Meeting;
use super::users::Role;

/// The caller, as the verified token and the store say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub username: String,
    pub role: Role,
    /// The host a student belongs to.
    pub host_id: Option<String>,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

/// The meeting's own host.
pub fn is_meeting_host(who: &Identity, meeting: &Meeting) -> bool {
    who.role == Role::Host && who.id == meeting.host_id
}

/// A student of the meeting's host.
pub fn is_hosts_student(who: &Identity, meeting: &Meeting) -> bool {
    who.role == Role::Student && who.host_id.as_deref() == Some(meeting.host_id.as_str())
}

/// Joining: the meeting's host and its host's students.
pub fn may_join(who: &Identity, meeting: &Meeting) -> bool {
    is_meeting_host(who, meeting) || is_hosts_student(who, meeting)
}

/// Seeing the meeting: those who may join it, and admins.
pub fn may_view(who: &Identity, meeting: &Meeting) -> bool {
    who.is_admin() || may_join(who, meeting)
}

/// Ending it: its host or an admin.
pub fn may_end(who: &Identity, meeting: &Meeting) -> bool {
    who.is_admin() || is_meeting_host(who, meeting)
}

/// Facts about one recording needed to decide who may hear it.
pub struct RecordingAccess<'a> {
    pub host_id: &'a str,
    pub is_private: bool,
    pub student_id: Option<&'a str>,
    pub participant_ids: &'a [String],
}

/// Its host; for a normal recording every student who was in the meeting while it recorded; for
/// a private one the host and that student only. Admins may manage every recording.
pub fn may_hear_recording(who: &Identity, rec: &RecordingAccess<'_>) -> bool {
    match who.role {
        Role::Admin => true,
        Role::Host => who.id == rec.host_id,
        Role::Student => {
            if rec.is_private {
                rec.student_id == Some(who.id.as_str())
            } else {
                rec.participant_ids.iter().any(|p| p == &who.id)
            }
        }
    }
}

/// Deleting: its host or an admin.
pub fn may_delete_recording(who: &Identity, host_id: &str) -> bool {
    who.is_admin() || (who.role == Role::Host && who.id == host_id)
}
