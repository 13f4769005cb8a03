//! `/api/admin/*`: hosts, every meeting and recording, and counts.

use std::sync::Arc;

use http::StatusCode;
use serde_json::json as j;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::extract::{caller, json, state};
use super::host::NewAccount;
use super::{HttpState, Response, StatusQuery, answer, status_query, success};
use crate::domain::access::Identity;
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::service::UserPatch;

fn admin_only(who: &Identity) -> Result<()> {
    if who.role == Role::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden("Administrators only"))
    }
}

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let st = || state(Arc::clone(s)).and(caller(Arc::clone(s)));
    let hosts = warp::path!("api" / "admin" / "hosts")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.hosts(&who).await, |hosts| {
                super::success_data(StatusCode::OK, "hosts", &hosts)
            })
        });
    let create = warp::path!("api" / "admin" / "hosts")
        .and(warp::post())
        .and(st())
        .and(json::<NewAccount>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: NewAccount| async move {
                answer(
                    s.services.create_host(&who, &b.username, &b.password).await,
                    |host| super::success_data(StatusCode::CREATED, "host", &host),
                )
            },
        );
    let update = warp::path!("api" / "admin" / "hosts" / String)
        .and(warp::put())
        .and(st())
        .and(json::<UserPatch>())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>, patch: UserPatch| async move {
                let result =
                    match admin_only(&who).and_then(|()| crate::service::check_id(&id, "Host")) {
                        Ok(()) => s.services.update_host(&who, &id, patch).await,
                        Err(e) => Err(e),
                    };
                answer(result, |host| {
                    super::success_data(StatusCode::OK, "host", &host)
                })
            },
        );
    let delete = warp::path!("api" / "admin" / "hosts" / String)
        .and(warp::delete())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                let result =
                    match admin_only(&who).and_then(|()| crate::service::check_id(&id, "Host")) {
                        Ok(()) => s.services.delete_host(&who, &id).await,
                        Err(e) => Err(e),
                    };
                answer(result, |()| success())
            },
        );
    let meetings = warp::path!("api" / "admin" / "meetings")
        .and(warp::get())
        .and(st())
        .and(status_query())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, q: StatusQuery| async move {
                let result = match admin_only(&who).and_then(|()| q.parse()) {
                    Ok(status) => s.services.admin_meetings(&who, status).await,
                    Err(e) => Err(e),
                };
                answer(result, super::meeting_list)
            },
        );
    let end = warp::path!("api" / "admin" / "meetings" / String / "end")
        .and(warp::post())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                let result = match admin_only(&who) {
                    Ok(()) => s.services.end_meeting(&who, &id).await,
                    Err(e) => Err(e),
                };
                answer(result, |m| super::json(StatusCode::OK, &j!({"meeting": m})))
            },
        );
    let recordings = warp::path!("api" / "admin" / "recordings")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(
                s.services.admin_recordings(&who).await,
                super::recording_list,
            )
        });
    let delete_recording = warp::path!("api" / "admin" / "recordings" / String)
        .and(warp::delete())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                let result = match admin_only(&who) {
                    Ok(()) => s.services.delete_recording(&who, &id).await,
                    Err(e) => Err(e),
                };
                answer(result, |()| success())
            },
        );
    let stats = warp::path!("api" / "admin" / "stats").and(warp::get()).and(st()).and_then(
        |s: Arc<HttpState>, who: Arc<Identity>| async move {
            let result = match admin_only(&who) {
                Ok(()) => s.services.stats().await,
                Err(e) => Err(e),
            };
            let connections = s.realtime.stats.sockets();
            answer(result, |st| {
                super::json(
                    StatusCode::OK,
                    &j!({"hosts": st.hosts, "students": st.students, "meetings": st.meetings, "recordings": st.recordings, "connections": connections}),
                )
            })
        },
    );
    hosts
        .or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(meetings)
        .unify()
        .or(end)
        .unify()
        .or(recordings)
        .unify()
        .or(delete_recording)
        .unify()
        .or(stats)
        .unify()
        .boxed()
}
