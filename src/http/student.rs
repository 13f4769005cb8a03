//! `/api/student/*` (login lives with the other logins in `auth`).

use std::sync::Arc;

use http::StatusCode;
use serde_json::json as j;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::extract::{caller, state};
use super::{HttpState, Response, answer};
use crate::domain::access::Identity;

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let st = || state(Arc::clone(s)).and(caller(Arc::clone(s)));
    let info = warp::path!("api" / "student" / "info")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.student_info(&who).await, |(student, host)| {
                super::json(StatusCode::OK, &j!({"student": student, "host": host}))
            })
        });
    let meetings = warp::path!("api" / "student" / "meetings")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.student_meetings(&who).await, super::meeting_list)
        });
    let recordings = warp::path!("api" / "student" / "recordings")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(
                s.services.student_recordings(&who, false).await,
                super::recording_list,
            )
        });
    let private = warp::path!("api" / "student" / "recordings" / "private")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(
                s.services.student_recordings(&who, true).await,
                super::recording_list,
            )
        });
    info.or(meetings)
        .unify()
        .or(recordings)
        .unify()
        .or(private)
        .unify()
        .boxed()
}
