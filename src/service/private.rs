//! A student asking the host for a private talk (the original's `request-private-conversation`
//! and `POST /api/meetings/private-request`): the request waits until the host accepts it (the
//! meeting switches to private with that student, like `switch-mode`), declines it, or the
//! student leaves. In memory: a request does not outlive the connections it was made over.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::users::require;
use super::{MeetingEvent, Services};
use crate::domain::access::{self, Identity};
use crate::domain::meetings::{Meeting, Mode};
use crate::domain::users::Role;
use crate::error::{Error, Result};

/// The shortest time between two requests of one student in one meeting (a declined request
/// may be asked again after it).
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateRequest {
    pub meeting_id: String,
    pub student_id: String,
    pub username: String,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
struct Requests {
    /// meeting → student → their waiting request.
    pending: HashMap<String, HashMap<String, PrivateRequest>>,
    /// (meeting, student) → when they last asked, for [`REQUEST_INTERVAL`].
    asked: HashMap<(String, String), Instant>,
}

/// The waiting requests of every meeting.
#[derive(Default)]
pub struct PrivateRequests(Mutex<Requests>);

impl PrivateRequests {
    fn lock(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a request: at most one waiting per student, one per [`REQUEST_INTERVAL`].
    fn add(&self, request: PrivateRequest, now: Instant) -> Result<()> {
        let mut r = self.lock();
        let key = (request.meeting_id.clone(), request.student_id.clone());
        if r.pending
            .get(&request.meeting_id)
            .is_some_and(|m| m.contains_key(&request.student_id))
        {
            return Err(Error::conflict(
                "request_pending",
                "Your request is already waiting for the host",
            ));
        }
        if let Some(last) = r.asked.get(&key)
            && let Some(wait) = REQUEST_INTERVAL.checked_sub(now.duration_since(*last))
            && !wait.is_zero()
        {
            return Err(Error::RateLimited {
                retry_after: Duration::from_secs(wait.as_secs().max(1)),
            });
        }
        r.asked
            .retain(|_, at| now.duration_since(*at) < REQUEST_INTERVAL);
        r.asked.insert(key, now);
        r.pending
            .entry(request.meeting_id.clone())
            .or_default()
            .insert(request.student_id.clone(), request);
        Ok(())
    }

    /// Takes a student's waiting request away; whether there was one.
    pub fn remove(&self, meeting_id: &str, student_id: &str) -> bool {
        let mut r = self.lock();
        let Some(m) = r.pending.get_mut(meeting_id) else {
            return false;
        };
        let had = m.remove(student_id).is_some();
        if m.is_empty() {
            r.pending.remove(meeting_id);
        }
        had
    }

    /// Forgets a meeting's requests (it ended).
    pub fn remove_meeting(&self, meeting_id: &str) {
        let mut r = self.lock();
        r.pending.remove(meeting_id);
        r.asked.retain(|(m, _), _| m != meeting_id);
    }

    /// Whether a student's request is waiting.
    pub fn is_pending(&self, meeting_id: &str, student_id: &str) -> bool {
        self.lock()
            .pending
            .get(meeting_id)
            .is_some_and(|m| m.contains_key(student_id))
    }

    /// A meeting's waiting requests, oldest first.
    pub fn of(&self, meeting_id: &str) -> Vec<PrivateRequest> {
        let mut v: Vec<_> = self
            .lock()
            .pending
            .get(meeting_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|r| r.at);
        v
    }
}

impl Services {
    /// A student in an active meeting asks its host for a private talk; only the host hears of
    /// it (`private-conversation-requested`).
    pub async fn request_private(
        &self,
        who: &Identity,
        meeting_id: &str,
    ) -> Result<PrivateRequest> {
        require(who, Role::Student)?;
        let meeting = self.meeting(meeting_id).await?;
        if !access::may_join(who, &meeting) {
            return Err(Error::Forbidden("You are not allowed to join this meeting"));
        }
        if !meeting.status.is_open() {
            return Err(Error::conflict("meeting_ended", "This meeting has ended"));
        }
        let present = self
            .store
            .participant(&meeting.id, &who.id)
            .await?
            .is_some_and(|p| p.present);
        if !present {
            return Err(Error::Forbidden("Join the meeting first"));
        }
        if meeting.mode == Mode::Private {
            return Err(Error::conflict(
                "private_in_progress",
                "Another private conversation is in progress",
            ));
        }
        let request = PrivateRequest {
            meeting_id: meeting.id.clone(),
            student_id: who.id.clone(),
            username: who.username.clone(),
            at: self.now(),
        };
        self.private_requests.add(request.clone(), Instant::now())?;
        self.emit(MeetingEvent::PrivateRequested {
            host_id: meeting.host_id.clone(),
            request: request.clone(),
        });
        Ok(request)
    }

    /// The host answers a student's request: accepting switches the meeting to private with
    /// them (the rules and events of `switch-mode`), declining tells the student
    /// (`private-conversation-declined`).
    pub async fn answer_private(
        &self,
        who: &Identity,
        meeting_id: &str,
        student_id: &str,
        accept: bool,
    ) -> Result<Meeting> {
        let meeting = self.meeting(meeting_id).await?;
        if !access::is_meeting_host(who, &meeting) {
            return Err(Error::Forbidden(
                "Only the host can answer a private request",
            ));
        }
        if accept {
            return self
                .switch_mode(who, &meeting.id, Mode::Private, Some(student_id))
                .await;
        }
        if !self.private_requests.remove(&meeting.id, student_id) {
            return Err(Error::NotFound("Private request"));
        }
        self.emit(MeetingEvent::PrivateDeclined {
            meeting_id: meeting.id.clone(),
            student_id: student_id.to_owned(),
        });
        Ok(meeting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(student: &str) -> PrivateRequest {
        PrivateRequest {
            meeting_id: "m".into(),
            student_id: student.into(),
            username: student.into(),
            at: Utc::now(),
        }
    }

    #[test]
    fn one_waiting_request_per_student_and_one_per_interval() {
        let r = PrivateRequests::default();
        let t0 = Instant::now();
        r.add(request("ana"), t0).expect("first");
        let e = r.add(request("ana"), t0).expect_err("twice");
        assert!(matches!(
            e,
            Error::Conflict {
                code: "request_pending",
                ..
            }
        ));
        r.add(request("ben"), t0).expect("another student");
        assert_eq!(r.of("m").len(), 2);
        // Declined: she may ask again, but not at once.
        assert!(r.remove("m", "ana"));
        assert!(!r.is_pending("m", "ana"));
        let e = r
            .add(request("ana"), t0 + Duration::from_secs(3))
            .expect_err("soon");
        assert!(
            matches!(e, Error::RateLimited { retry_after } if retry_after == Duration::from_secs(7)),
            "{e:?}"
        );
        r.add(request("ana"), t0 + REQUEST_INTERVAL)
            .expect("after the interval");
        r.remove_meeting("m");
        assert!(r.of("m").is_empty());
        assert!(!r.remove("m", "ben"));
    }
}
