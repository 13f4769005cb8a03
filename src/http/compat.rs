//! The original server's other routes (docs/API.md, "Compatibility"), each made of an
//! operation meet already has: the same rules and errors as meet's own route, the answer in
//! meet's shape with the original's `{"status":"success","data":{...}}` beside it for its
//! clients. Tried before meet's own routes, for the exact paths in [`PREFIXES`].

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json as j};
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use super::auth::{ChangePasswordBody, change_password};
use super::error::ApiError;
use super::extract::{caller, client_ip, json, state};
use super::meetings::CreateBody;
use super::{HttpState, Response, answer};
use crate::domain::access::Identity;
use crate::domain::meetings::Mode;
use crate::domain::users::Role;
use crate::error::Error;
use crate::service::{Link, require};

/// The paths served here (prefixes of them): every other path skips this module.
pub const PREFIXES: &[&str] = &[
    "/api/meetings/leave",
    "/api/meetings/activate/",
    "/api/meetings/student/",
    "/api/meetings/private",
    "/api/meetings/request-private",
    "/api/host/update-password",
    "/api/host/meetings/create",
    "/api/host/recordings/start",
    "/api/host/recordings/stop",
    "/api/recordings/start",
    "/api/recordings/end/",
    "/api/recordings/url/",
    "/api/recordings/meeting/",
    "/api/recordings/student",
    "/api/recordings/accessible",
    "/api/recordings/stream/",
    "/api/signal/",
    "/api/student/change-password",
    "/api/admin/users",
    "/api/admin/stats/hosts",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingBody {
    meeting_id: String,
}

/// `/api/host/recordings/stop`: the meeting, or the original's `recordingId`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StopBody {
    meeting_id: Option<String>,
    recording_id: Option<String>,
}

/// `/api/meetings/private/start|end`: the student as `studentId`, `participantId` or
/// `targetUserId`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrivateBody {
    meeting_id: String,
    student_id: Option<String>,
    participant_id: Option<String>,
    target_user_id: Option<String>,
}

impl PrivateBody {
    fn student(&self) -> Option<&str> {
        self.student_id
            .as_deref()
            .or(self.participant_id.as_deref())
            .or(self.target_user_id.as_deref())
    }
}

#[derive(Deserialize, Default)]
struct TrackQuery {
    track: Option<String>,
}

/// Meet's body with the original's wrapper beside it: `status` and `data`.
/// A recording as the original's start and stop routes answered: meet's `{recording}` with the
/// original's `data: {recordingId}`.
fn recording_answer(status: StatusCode, r: &crate::service::Recording) -> Response {
    both(status, j!({"recording": r}), j!({"recordingId": r.id}))
}

fn both(status: StatusCode, mut body: Value, data: Value) -> Response {
    if let Value::Object(m) = &mut body {
        m.insert("status".into(), j!("success"));
        m.insert("data".into(), data);
    }
    super::json(status, &body)
}

/// `http(s)://host` of the request, for a signed link's absolute URL; the scheme from
/// `X-Forwarded-Proto` only when forwarded headers are trusted.
fn origin(s: &HttpState, host: Option<&str>, proto: Option<&str>) -> Option<String> {
    let host = host.filter(|h| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    })?;
    let https = s.services.config.http.trust_forwarded_for
        && proto.is_some_and(|p| p.eq_ignore_ascii_case("https"));
    Some(format!("{}://{host}", if https { "https" } else { "http" }))
}

#[allow(clippy::too_many_lines)] // one route after another, each a few lines
pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let st = || state(Arc::clone(s)).and(caller(Arc::clone(s)));

    // ---- meetings ------------------------------------------------------------------------
    let leave = warp::path!("api" / "meetings" / "leave")
        .and(warp::post())
        .and(st())
        .and(json::<MeetingBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: MeetingBody| async move {
                answer(s.services.leave_meeting(&who, &b.meeting_id).await, |()| {
                    both(
                        StatusCode::OK,
                        j!({"message": "Successfully left the meeting"}),
                        j!({}),
                    )
                })
            },
        );
    let activate = warp::path!("api" / "meetings" / "activate" / String)
        .and(warp::post())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.activate_meeting(&who, &id).await, |o| {
                    both(
                        StatusCode::OK,
                        j!({"meeting": o.meeting, "participants": o.participants}),
                        j!({"meeting": o.meeting, "message": "Meeting activated successfully"}),
                    )
                })
            },
        );
    let student_meetings = warp::path!("api" / "meetings" / "student" / "meetings")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.student_meetings(&who).await, |m| {
                both(
                    StatusCode::OK,
                    j!({"meetings": m, "count": m.len()}),
                    j!({"meetings": m}),
                )
            })
        });
    let student_recordings = warp::path!("api" / "meetings" / "student" / "recordings")
        .or(warp::path!("api" / "recordings" / "student"))
        .unify()
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.student_recordings(&who, false).await, |r| {
                both(
                    StatusCode::OK,
                    j!({"recordings": r, "count": r.len()}),
                    j!({"recordings": r}),
                )
            })
        });
    // The route file says `private-request`, the original's Postman collection
    // `request-private`: both.
    let private_request = warp::path!("api" / "meetings" / "private-request")
        .or(warp::path!("api" / "meetings" / "request-private"))
        .unify()
        .and(warp::post())
        .and(st())
        .and(json::<MeetingBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: MeetingBody| async move {
                answer(s.services.request_private(&who, &b.meeting_id).await, |r| {
                    both(
                        StatusCode::OK,
                        j!({"message": "Private conversation request sent to host",
                                "meetingId": r.meeting_id, "at": r.at}),
                        j!({}),
                    )
                })
            },
        );
    let private_start = warp::path!("api" / "meetings" / "private" / "start")
        .and(warp::post())
        .and(st())
        .and(json::<PrivateBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: PrivateBody| async move {
                let result = s
                    .services
                    .switch_mode(&who, &b.meeting_id, Mode::Private, b.student())
                    .await;
                answer(result, |m| {
                    both(StatusCode::OK, j!({"meeting": m}), j!({"meeting": m}))
                })
            },
        );
    let private_end = warp::path!("api" / "meetings" / "private" / "end")
        .and(warp::post())
        .and(st())
        .and(json::<PrivateBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: PrivateBody| async move {
                let result = s
                    .services
                    .switch_mode(&who, &b.meeting_id, Mode::Broadcast, None)
                    .await;
                answer(result, |m| {
                    both(
                        StatusCode::OK,
                        j!({"meeting": m, "message": "Private conversation ended"}),
                        j!({"meeting": m}),
                    )
                })
            },
        );

    // ---- host ----------------------------------------------------------------------------
    let update_password = warp::path!("api" / "host" / "update-password")
        .and(warp::put())
        .and(st())
        .and(client_ip())
        .and(json::<ChangePasswordBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, ip: IpAddr, b: ChangePasswordBody| async move {
                match require(&who, Role::Host) {
                    Ok(()) => change_password(s, who, ip, b).await,
                    Err(e) => Ok(ApiError::from(e).into_response()),
                }
            },
        );
    // POST in the route file, PUT in the original's Postman collection: both.
    let student_password = warp::path!("api" / "student" / "change-password")
        .and(warp::post().or(warp::put()).unify())
        .and(st())
        .and(client_ip())
        .and(json::<ChangePasswordBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, ip: IpAddr, b: ChangePasswordBody| async move {
                match require(&who, Role::Student) {
                    Ok(()) => change_password(s, who, ip, b).await,
                    Err(e) => Ok(ApiError::from(e).into_response()),
                }
            },
        );
    let host_create = warp::path!("api" / "host" / "meetings" / "create")
        .and(warp::post())
        .and(st())
        .and(json::<CreateBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: CreateBody| async move {
                answer(b.create(&s, &who).await, |m| {
                    both(StatusCode::CREATED, j!({"meeting": m}), j!({"meeting": m}))
                })
            },
        );
    let record_start = warp::path!("api" / "host" / "recordings" / "start")
        .or(warp::path!("api" / "recordings" / "start"))
        .unify()
        .and(warp::post())
        .and(st())
        .and(json::<MeetingBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: MeetingBody| async move {
                answer(s.services.start_recording(&who, &b.meeting_id).await, |r| {
                    recording_answer(StatusCode::CREATED, &r)
                })
            },
        );
    let record_stop = warp::path!("api" / "host" / "recordings" / "stop")
        .and(warp::post())
        .and(st())
        .and(json::<StopBody>())
        .and_then(
            |s: Arc<HttpState>, who: Arc<Identity>, b: StopBody| async move {
                let result = match (&b.meeting_id, &b.recording_id) {
                    (Some(meeting), _) => s.services.stop_recording(&who, meeting).await,
                    (None, Some(recording)) => {
                        s.services.stop_recording_by_id(&who, recording).await
                    }
                    (None, None) => Err(Error::invalid("meetingId", "is required")),
                };
                answer(result, |r| recording_answer(StatusCode::OK, &r))
            },
        );

    // ---- recordings ----------------------------------------------------------------------
    let record_end = warp::path!("api" / "recordings" / "end" / String)
        .and(warp::post())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.stop_recording_by_id(&who, &id).await, |r| {
                    recording_answer(StatusCode::OK, &r)
                })
            },
        );
    let url = warp::path!("api" / "recordings" / "url" / String)
        .and(warp::get())
        .and(st())
        .and(
            warp::query::<TrackQuery>()
                .or(warp::any().map(TrackQuery::default))
                .unify(),
        )
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .and_then(
            |id: String,
             s: Arc<HttpState>,
             who: Arc<Identity>,
             q: TrackQuery,
             host: Option<String>,
             proto: Option<String>| async move {
                let result = match s
                    .services
                    .recording_link(&who, &id, q.track.as_deref())
                    .await
                {
                    Ok(link) => s.services.recording(&who, &id).await.map(|r| (link, r)),
                    Err(e) => Err(e),
                };
                answer(result, |((link, expires_in), recording)| {
                    let url = match link {
                        Link::Presigned(url) => url,
                        Link::Signed(path) => match origin(&s, host.as_deref(), proto.as_deref()) {
                            Some(origin) => format!("{origin}{path}"),
                            None => path,
                        },
                    };
                    let mut original = serde_json::to_value(&recording).unwrap_or_default();
                    original["signedUrl"] = j!(url);
                    original["playback"]["url"] = j!(url);
                    both(
                        StatusCode::OK,
                        j!({"url": url, "expiresIn": expires_in}),
                        j!({"recording": original}),
                    )
                })
            },
        );
    let meeting_recordings = warp::path!("api" / "recordings" / "meeting" / String)
        .and(warp::get())
        .and(st())
        .and_then(
            |id: String, s: Arc<HttpState>, who: Arc<Identity>| async move {
                answer(s.services.meeting_recordings(&who, &id).await, |r| {
                    both(
                        StatusCode::OK,
                        j!({"recordings": r, "count": r.len()}),
                        j!({"recordings": r}),
                    )
                })
            },
        );
    let accessible = warp::path!("api" / "recordings" / "accessible")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.accessible_recordings(&who).await, |r| {
                both(
                    StatusCode::OK,
                    j!({"recordings": r, "count": r.len()}),
                    j!({"recordings": r}),
                )
            })
        });
    let stream = warp::path!("api" / "recordings" / "stream" / String)
        .and(warp::post())
        .and(st())
        .and_then(|_id: String, _s: Arc<HttpState>, _who: Arc<Identity>| async move {
            let gone = Error::Gone {
                code: "server_side_recording",
                message: "meet records on the server: start a recording with POST /api/meetings/:id/recording/start; browser uploads are not taken",
            };
            Ok::<_, Infallible>(ApiError::from(gone).into_response())
        });

    // ---- signalling, admin ---------------------------------------------------------------
    let ice = warp::path!("api" / "signal" / "ice-servers")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            let ice = crate::domain::ice::for_user(
                &s.services.config.ice_servers,
                &who.id,
                s.services.now(),
            );
            Ok::<_, Infallible>(both(
                StatusCode::OK,
                j!({"iceServers": ice}),
                j!({"iceServers": ice}),
            ))
        });
    let users = warp::path!("api" / "admin" / "users")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.all_users(&who).await, |u| {
                both(
                    StatusCode::OK,
                    j!({"users": u, "count": u.len()}),
                    j!({"users": u}),
                )
            })
        });
    let host_stats = warp::path!("api" / "admin" / "stats" / "hosts")
        .and(warp::get())
        .and(st())
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.host_stats(&who).await, |h| {
                both(StatusCode::OK, j!(h), j!({"stats": h}))
            })
        });

    // Boxed one by one: a chain of this many unboxed `or`s takes the compiler minutes.
    let others = [
        activate.boxed(),
        student_meetings.boxed(),
        student_recordings.boxed(),
        private_request.boxed(),
        private_start.boxed(),
        private_end.boxed(),
        update_password.boxed(),
        student_password.boxed(),
        host_create.boxed(),
        record_start.boxed(),
        record_stop.boxed(),
        record_end.boxed(),
        url.boxed(),
        meeting_recordings.boxed(),
        accessible.boxed(),
        stream.boxed(),
        ice.boxed(),
        users.boxed(),
        host_stats.boxed(),
    ];
    let mut all = leave.boxed();
    for route in others {
        all = all.or(route).unify().boxed();
    }
    all
}
