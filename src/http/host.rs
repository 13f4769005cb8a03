//! `/api/host/*`: a host's students, meetings and recordings.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::extract::{caller, json, state};
use super::{HttpState, Response, StatusQuery, answer, status_query, success};
use crate::domain::access::Identity;
use crate::service::UserPatch;

#[derive(Deserialize)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
}

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let st = || state(Arc::clone(s)).and(caller(Arc::clone(s)));
    let create = warp::path!("api" / "host" / "students")
        .and(warp::post())
        .and(st())
        .and(json::<NewAccount>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: NewAccount| async move {
                answer(
                    s.services
                        .create_student(&who, &b.username, &b.password)
                        .await,
                    |student| super::success_data(StatusCode::CREATED, "student", &student),
                )
            },
        );
    let list = warp::path!("api" / "host" / "students")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.students(&who).await, |students| {
                super::success_data(StatusCode::OK, "students", &students)
            })
        });
    let update = warp::path!("api" / "host" / "students" / String)
        .and(warp::put())
        .and(st())
        .and(json::<UserPatch>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, patch: UserPatch| async move {
                answer(
                    s.services.update_student(&who, &id, patch).await,
                    |student| super::success_data(StatusCode::OK, "student", &student),
                )
            },
        );
    let delete = warp::path!("api" / "host" / "students" / String)
        .and(warp::delete())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.delete_student(&who, &id).await, |()| success())
            },
        );
    let meetings = warp::path!("api" / "host" / "meetings")
        .and(warp::get())
        .and(st())
        .and(status_query())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, q: StatusQuery| async move {
                let result = match q.parse() {
                    Ok(status) => s.services.host_meetings(&who, status).await,
                    Err(e) => Err(e),
                };
                answer(result, super::meeting_list)
            },
        );
    let recordings = warp::path!("api" / "host" / "recordings")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(
                s.services.host_recordings(&who).await,
                super::recording_list,
            )
        });
    create
        .or(list)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(meetings)
        .unify()
        .or(recordings)
        .unify()
        .boxed()
}
