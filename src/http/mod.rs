//! The HTTP API: thin adapters that parse, authorise through the service, and answer in the
//! contract's shapes. One file per resource; `server` runs the listener and the cross-cutting
//! concerns (client address, body limit, rate limit, CORS, security headers, access log).

mod admin;
mod auth;
mod compat;
pub mod error;
pub mod extract;
mod health;
mod host;
mod meetings;
mod metrics;
mod ratelimit;
mod recordings;
pub mod server;
mod student;
pub mod web;

use std::convert::Infallible;
use std::sync::Arc;

use http::StatusCode;
use serde::Serialize;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

pub use metrics::Metrics;
pub use ratelimit::RateLimiter;

use self::error::ApiError;
use crate::service::Services;

/// What every handler can reach.
pub struct HttpState {
    pub services: Arc<Services>,
    pub limiter: RateLimiter,
    pub metrics: Metrics,
    /// The Socket.IO side: its counters and who is connected.
    pub realtime: Arc<crate::realtime::Hub>,
    /// `Strict-Transport-Security`, when configured.
    pub hsts: Option<http::HeaderValue>,
    /// The web client's files.
    pub assets: Arc<web::Assets>,
    /// `Content-Security-Policy` of every response.
    pub csp: http::HeaderValue,
}

impl HttpState {
    pub fn new(
        services: Arc<Services>,
        realtime: Arc<crate::realtime::Hub>,
        assets: web::Assets,
    ) -> Self {
        let http = &services.config.http;
        let limiter = RateLimiter::new(
            http.requests_per_window,
            http.window,
            http.login_failures,
            http.login_window,
        );
        let hsts = http.hsts_max_age.and_then(|age| {
            http::HeaderValue::from_str(&format!("max-age={age}; includeSubDomains")).ok()
        });
        let csp = web::content_security_policy(&services.config.storage);
        Self {
            services,
            limiter,
            metrics: Metrics::default(),
            realtime,
            hsts,
            assets: Arc::new(assets),
            csp,
        }
    }
}

pub type Response = warp::reply::Response;

/// A JSON answer with a status.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    warp::reply::with_status(warp::reply::json(body), status).into_response()
}

/// The answer to a service call: `ok` builds the success body, an error becomes its JSON.
pub fn answer<T>(
    result: crate::error::Result<T>,
    ok: impl FnOnce(T) -> Response,
) -> Result<Response, Infallible> {
    Ok(match result {
        Ok(v) => ok(v),
        Err(e) => ApiError::from(e).into_response(),
    })
}

#[derive(Serialize)]
struct MeetingList<'a> {
    count: usize,
    meetings: &'a [crate::domain::meetings::Meeting],
}

#[derive(Serialize)]
struct RecordingList<'a> {
    count: usize,
    recordings: &'a [crate::service::Recording],
}

/// `{"count", "meetings"}`, serialised straight from the list.
pub fn meeting_list(meetings: Vec<crate::domain::meetings::Meeting>) -> Response {
    json(
        StatusCode::OK,
        &MeetingList {
            count: meetings.len(),
            meetings: &meetings,
        },
    )
}

/// `{"count", "recordings"}`.
pub fn recording_list(recordings: Vec<crate::service::Recording>) -> Response {
    json(
        StatusCode::OK,
        &RecordingList {
            count: recordings.len(),
            recordings: &recordings,
        },
    )
}

/// `{"status":"success","data":{key: value}}`, the original's wrapper for accounts.
pub fn success_data<T: Serialize>(status: StatusCode, key: &str, value: &T) -> Response {
    let mut data = serde_json::Map::new();
    data.insert(
        key.to_owned(),
        serde_json::to_value(value).unwrap_or_default(),
    );
    json(
        status,
        &serde_json::json!({"status": "success", "data": data}),
    )
}

/// `{"status":"success"}`.
pub fn success() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "success"}))
}

/// Every route, with rejections turned into the contract's errors.
pub fn routes(state: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    // Each resource's routes are tried only for paths under its prefixes: one string comparison
    // instead of trying every route of the resources before it.
    let api = under(compat::PREFIXES)
        .and(compat::routes(state))
        .or(under(&["/api/auth/", "/api/student/login"]).and(auth::routes(state)))
        .unify()
        .or(under(&["/api/host/"]).and(host::routes(state)))
        .unify()
        .or(under(&["/api/student/"]).and(student::routes(state)))
        .unify()
        .or(under(&["/api/meetings/"]).and(meetings::routes(state)))
        .unify()
        .or(under(&["/api/recordings/"]).and(recordings::routes(state)))
        .unify()
        .or(under(&["/api/admin/"]).and(admin::routes(state)))
        .unify()
        .or(health::routes(state))
        .unify()
        .or(web::routes(Arc::clone(&state.assets)))
        .unify();
    api.recover(error::recover).unify().boxed()
}

/// Passes requests whose path starts with one of `prefixes`; the others are "not found" here.
fn under(
    prefixes: &'static [&'static str],
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::full()
        .and_then(move |path: warp::path::FullPath| async move {
            if prefixes.iter().any(|p| path.as_str().starts_with(p)) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}

/// `?status=` on meeting lists.
#[derive(Debug, serde::Deserialize)]
pub struct StatusQuery {
    pub status: Option<String>,
}

impl StatusQuery {
    pub fn parse(&self) -> crate::error::Result<Option<crate::domain::meetings::Status>> {
        match self.status.as_deref() {
            None | Some("") => Ok(None),
            Some(s) => crate::domain::meetings::Status::parse(s)
                .map(Some)
                .ok_or_else(|| {
                    crate::error::Error::invalid(
                        "status",
                        "must be created, active, ended or archived",
                    )
                }),
        }
    }
}

/// `?status=` as a filter; a malformed query string is a validation error.
pub fn status_query() -> impl Filter<Extract = (StatusQuery,), Error = Infallible> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .map(|raw: String| {
            serde_urlencoded::from_str::<StatusQuery>(&raw).unwrap_or(StatusQuery {
                status: Some("\u{0}invalid".into()),
            })
        })
}
