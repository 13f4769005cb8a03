//! `/socket-health`, `/healthz`, `/readyz`, `/metrics`, and the API's own description at
//! `/api/openapi.json`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use serde_json::json as j;
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use super::error::ApiError;
use super::extract::{client_ip, state};
use super::{HttpState, Response};

/// The OpenAPI 3.1 description of every REST route: docs/openapi.json, checked against the
/// routes by `tests/it/openapi.rs` and fuzzed from by schemathesis there.
const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// The methods the description gives the route of `path` (`Allow` of a `405`; HEAD with GET), in its order:
/// a literal segment of a route wins over another route's parameter.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    type Route = (Vec<String>, String);
    static ROUTES: std::sync::OnceLock<Vec<Route>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).unwrap_or_default();
        let mut routes: Vec<Route> = spec["paths"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(template, item)| {
                // A GET route answers HEAD too (`AppService`).
                let methods: Vec<&str> = [("get", "GET, HEAD"), ("post", "POST")]
                    .into_iter()
                    .chain([("put", "PUT"), ("delete", "DELETE")])
                    .filter(|(m, _)| item.get(*m).is_some())
                    .map(|(_, allow)| allow)
                    .collect();
                (
                    template.split('/').map(str::to_owned).collect(),
                    methods.join(", "),
                )
            })
            .collect();
        // Fewer parameters first.
        routes.sort_by_key(|(segments, _)| segments.iter().filter(|s| s.starts_with('{')).count());
        routes
    });
    let parts: Vec<&str> = path.split('/').collect();
    routes
        .iter()
        .find(|(segments, _)| {
            segments.len() == parts.len()
                && segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s.starts_with('{') || s == p)
        })
        .map(|(_, methods)| methods.as_str())
}

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let socket_health = warp::path!("socket-health")
        .and(warp::get())
        .and(state(Arc::clone(s)))
        .and_then(|s: Arc<HttpState>| async move {
            let active = s.services.store.count_meetings(Some("active")).await;
            Ok::<_, std::convert::Infallible>(match active {
                Ok(active) => super::json(
                    StatusCode::OK,
                    &j!({
                        "status": "ok",
                        "connections": s.realtime.stats.sockets(),
                        "activeMeetings": active,
                        "uptimeSeconds": s.services.uptime().as_secs(),
                        "version": env!("CARGO_PKG_VERSION"),
                    }),
                ),
                Err(e) => ApiError::from(e).into_response(),
            })
        });
    let openapi = warp::path!("api" / "openapi.json")
        .and(warp::get())
        .map(|| {
            warp::reply::with_header(OPENAPI, "content-type", "application/json").into_response()
        });
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| super::json(StatusCode::OK, &j!({"status": "ok"})));
    let readyz = warp::path!("readyz").and(warp::get()).and(state(Arc::clone(s))).and_then(|s: Arc<HttpState>| async move {
        let database = s.services.store.ping().await.err().map(|e| e.to_string());
        let storage = s.services.storage.check().await.err().map(|e| e.to_string());
        let checks = j!({
            "database": database.as_deref().unwrap_or("ok"),
            "storage": storage.as_deref().unwrap_or("ok"),
        });
        // Recordings waiting for the storage: reported, not a reason to stop serving.
        let backlog = s.services.recordings_pending();
        Ok::<_, std::convert::Infallible>(match database.or(storage) {
            None => super::json(StatusCode::OK, &j!({"status": "ready", "checks": checks, "recordingBacklog": backlog})),
            Some(failure) => {
                tracing::warn!(%failure, "not ready");
                super::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &j!({"status": "error", "code": "not_ready", "message": format!("Not ready: {failure}"), "checks": checks, "recordingBacklog": backlog}),
                )
            }
        })
    });
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(state(Arc::clone(s)))
        .and(client_ip())
        .and(warp::header::optional::<String>("authorization"))
        .and_then(
            |s: Arc<HttpState>, ip: IpAddr, auth: Option<String>| async move {
                let allowed = ip.is_loopback()
                    || match auth.as_deref().and_then(super::extract::bearer) {
                        Some(token) => s
                            .services
                            .authenticate(token)
                            .await
                            .is_ok_and(|who| who.is_admin()),
                        None => false,
                    };
                if !allowed {
                    return Ok::<_, std::convert::Infallible>(
                        ApiError::new(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            "Metrics are for administrators",
                        )
                        .into_response(),
                    );
                }
                Ok(render_metrics(&s).await.into_response())
            },
        );
    socket_health
        .or(openapi)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics)
        .unify()
        .boxed()
}

/// The recorder's series.
fn render_recorder(s: &HttpState, out: &mut String) {
    use std::sync::atomic::Ordering::Relaxed;
    let r = s.services.recorder.stats();
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed) as f64;
    for (name, kind, help, v) in [
        (
            "meet_recordings_running",
            "gauge",
            "Recordings being written.",
            n(&r.running),
        ),
        (
            "meet_recording_packets_total",
            "counter",
            "Audio packets taken by recordings.",
            n(&r.packets),
        ),
        (
            "meet_recording_packets_dropped_total",
            "counter",
            "Audio packets lost by a recording whose queue was full (forwarding unaffected).",
            n(&r.dropped),
        ),
        (
            "meet_recording_bytes_written_total",
            "counter",
            "Bytes of finished recording files.",
            n(&r.bytes_written),
        ),
        (
            "meet_recording_failures_total",
            "counter",
            "Recording writes or uploads that failed (uploads are retried).",
            n(&r.failures),
        ),
        (
            "meet_recording_upload_backlog",
            "gauge",
            "Recordings stopped and not yet in the storage.",
            s.services.recordings_pending() as f64,
        ),
        (
            "meet_recording_mixer_lag_seconds",
            "gauge",
            "How far the last mixer step was behind its recording's clock.",
            r.mixer_lag_ms() as f64 / 1000.0,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

async fn render_metrics(s: &HttpState) -> Response {
    let mut out = String::with_capacity(2048);
    s.metrics.render(&mut out);
    s.realtime.stats.render(&mut out);
    s.realtime.media.stats().render(&mut out);
    render_recorder(s, &mut out);
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let _ = writeln!(
        out,
        "# HELP meet_runtime_alive_tasks Tasks alive in the server's runtime\n# TYPE meet_runtime_alive_tasks gauge\nmeet_runtime_alive_tasks {tasks}"
    );
    if let Ok(stats) = s.services.stats().await {
        for (name, help, v) in [
            ("meet_hosts", "Host accounts.", stats.hosts),
            ("meet_students", "Student accounts.", stats.students),
            (
                "meet_meetings_active",
                "Meetings in progress.",
                stats.meetings.active,
            ),
            (
                "meet_meetings",
                "Meetings in the database.",
                stats.meetings.total,
            ),
            (
                "meet_recordings",
                "Recordings in the database.",
                stats.recordings,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP meet_uptime_seconds Seconds since start.\n# TYPE meet_uptime_seconds gauge\nmeet_uptime_seconds {}",
        s.services.uptime().as_secs()
    );
    let mut res = warp::reply::with_status(out, StatusCode::OK).into_response();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    res
}
