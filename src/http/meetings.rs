//! `/api/meetings/*`.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::json as j;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::extract::{caller, json, state};
use super::{HttpState, Response, answer, success};
use crate::domain::access::Identity;
use crate::domain::meetings::Mode;
use crate::error::Error;
use crate::service::JoinOutcome;

/// `topic`, or the original clients' `title` when `topic` is absent.
#[derive(Deserialize)]
pub(super) struct CreateBody {
    topic: Option<String>,
    title: Option<String>,
}

impl CreateBody {
    /// Creates the meeting as `who`.
    pub(super) async fn create(
        &self,
        s: &HttpState,
        who: &Identity,
    ) -> crate::error::Result<crate::domain::meetings::Meeting> {
        let topic = self
            .topic
            .as_deref()
            .or(self.title.as_deref())
            .ok_or_else(|| Error::invalid("topic", "is required"))?;
        s.services.create_meeting(who, topic).await
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinBody {
    meeting_id: String,
}

/// The body of the `/:id/join`, `/leave` and `/end` forms.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathForm {
    /// Accepted for the original's clients, which send it in the body too; it must match.
    meeting_id: Option<String>,
}

impl PathForm {
    /// Runs `call` when the body names no meeting or the one in the path.
    async fn then<T>(
        &self,
        path_id: &str,
        call: impl std::future::Future<Output = crate::error::Result<T>>,
    ) -> crate::error::Result<T> {
        match &self.meeting_id {
            Some(id) if id != path_id => Err(Error::invalid(
                "meetingId",
                "does not match the meeting in the path",
            )),
            _ => call.await,
        }
    }
}

/// The student is `participantId`, or by the original's names `studentId` / `targetUserId`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SwitchModeBody {
    meeting_id: String,
    mode: String,
    participant_id: Option<String>,
    student_id: Option<String>,
    target_user_id: Option<String>,
}

/// The join answer, with the STUN/TURN servers (and this user's TURN credentials).
fn joined(s: &HttpState, who: &Identity, outcome: JoinOutcome) -> Response {
    let ice =
        crate::domain::ice::for_user(&s.services.config.ice_servers, &who.id, s.services.now());
    super::json(
        StatusCode::OK,
        &j!({"meeting": outcome.meeting, "participants": outcome.participants, "iceServers": ice}),
    )
}

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let st = || state(Arc::clone(s)).and(caller(Arc::clone(s)));
    let create = warp::path!("api" / "meetings" / "create")
        .and(warp::post())
        .and(st())
        .and(json::<CreateBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: CreateBody| async move {
                answer(b.create(&s, &who).await, |m| {
                    super::json(StatusCode::CREATED, &j!({"meeting": m}))
                })
            },
        );
    let join_body = warp::path!("api" / "meetings" / "join")
        .and(warp::post())
        .and(st())
        .and(json::<JoinBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: JoinBody| async move {
                answer(s.services.join_meeting(&who, &b.meeting_id).await, |o| {
                    joined(&s, &who, o)
                })
            },
        );
    let join_path = warp::path!("api" / "meetings" / String / "join")
        .and(warp::post())
        .and(st())
        .and(json::<PathForm>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, b: PathForm| async move {
                let result = b.then(&id, s.services.join_meeting(&who, &id)).await;
                answer(result, |o| joined(&s, &who, o))
            },
        );
    let leave = warp::path!("api" / "meetings" / String / "leave")
        .and(warp::post())
        .and(st())
        .and(json::<PathForm>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, b: PathForm| async move {
                let result = b.then(&id, s.services.leave_meeting(&who, &id)).await;
                answer(result, |()| success())
            },
        );
    let end = warp::path!("api" / "meetings" / String / "end")
        .and(warp::post())
        .and(st())
        .and(json::<PathForm>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, b: PathForm| async move {
                let result = b.then(&id, s.services.end_meeting(&who, &id)).await;
                answer(result, |m| super::json(StatusCode::OK, &j!({"meeting": m})))
            },
        );
    let switch = warp::path!("api" / "meetings" / "switch-mode")
        .and(warp::post())
        .and(st())
        .and(json::<SwitchModeBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: SwitchModeBody| async move {
                let student = b
                    .participant_id
                    .as_deref()
                    .or(b.student_id.as_deref())
                    .or(b.target_user_id.as_deref());
                let result = match Mode::parse(&b.mode) {
                    Some(mode) => {
                        s.services
                            .switch_mode(&who, &b.meeting_id, mode, student)
                            .await
                    }
                    None => Err(Error::invalid(
                        "mode",
                        "must be \"private\" or \"broadcast\"",
                    )),
                };
                answer(result, |m| super::json(StatusCode::OK, &j!({"meeting": m})))
            },
        );
    let record_start = warp::path!("api" / "meetings" / String / "recording" / "start")
        .and(warp::post())
        .and(st())
        .and(json::<PathForm>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, b: PathForm| async move {
                let result = b.then(&id, s.services.start_recording(&who, &id)).await;
                answer(result, |r| {
                    super::json(StatusCode::CREATED, &j!({"recording": r}))
                })
            },
        );
    let record_stop = warp::path!("api" / "meetings" / String / "recording" / "stop")
        .and(warp::post())
        .and(st())
        .and(json::<PathForm>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, b: PathForm| async move {
                let result = b.then(&id, s.services.stop_recording(&who, &id)).await;
                answer(result, |r| {
                    super::json(StatusCode::OK, &j!({"recording": r}))
                })
            },
        );
    let participants = warp::path!("api" / "meetings" / "participants" / String)
        .and(warp::get())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.participants(&who, &id).await, |p| {
                    super::json(
                        StatusCode::OK,
                        &j!({"count": p.iter().filter(|p| p.online).count(), "participants": p}),
                    )
                })
            },
        );
    let get = warp::path!("api" / "meetings" / String)
        .and(warp::get())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.meeting_detail(&who, &id).await, |d| {
                    super::json(StatusCode::OK, &d)
                })
            },
        );
    create
        .or(join_body)
        .unify()
        .or(switch)
        .unify()
        .or(join_path)
        .unify()
        .or(leave)
        .unify()
        .or(end)
        .unify()
        .or(record_start)
        .unify()
        .or(record_stop)
        .unify()
        .or(participants)
        .unify()
        .or(get)
        .unify()
        .boxed()
}
