//! `/api/recordings/:id`.

use std::sync::Arc;

use http::StatusCode;
use serde_json::json as j;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::extract::{caller, state};
use super::{HttpState, Response, answer, success};
use crate::domain::access::Identity;

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let st = || state(Arc::clone(s)).and(caller(Arc::clone(s)));
    let get = warp::path!("api" / "recordings" / String)
        .and(warp::get())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.recording(&who, &id).await, |r| {
                    super::json(StatusCode::OK, &j!({"recording": r}))
                })
            },
        );
    let delete = warp::path!("api" / "recordings" / String)
        .and(warp::delete())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.delete_recording(&who, &id).await, |()| success())
            },
        );
    get.or(delete).unify().boxed()
}
