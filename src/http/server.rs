//! The listener, and what every request goes through before and after its route: the client
//! address, the global rate limit, the body limit, CORS, the security headers and the access log
//! (Socket.IO's requests too, in [`Front`]: all but the body limit, which Socket.IO sets itself).

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use socketioxide::layer::SocketIoLayer;
use tokio::net::TcpListener;
use tower::{Layer as _, ServiceExt};
use warp::Reply;
use warp::filters::BoxedFilter;

use super::error::ApiError;
use super::extract::{ClientAddr, ClientIp, RequestBody};
use super::{HttpState, Response};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a client may take to send its request headers, and its body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

const COOP: header::HeaderName = header::HeaderName::from_static("cross-origin-opener-policy");

/// The service in front of the warp routes (inside the Socket.IO layer, which takes `/ws`).
#[derive(Clone)]
pub struct AppService {
    routes: BoxedFilter<(Response,)>,
    state: Arc<HttpState>,
}

impl AppService {
    pub fn new(routes: BoxedFilter<(Response,)>, state: Arc<HttpState>) -> Self {
        Self { routes, state }
    }
}

/// The outermost, per-connection service: stamps the peer address on each request (the
/// services inside are built once and shared by all connections, as Socket.IO sessions span
/// connections). Socket.IO's answers, which never reach [`AppService`], get here what every
/// answer gets: the security headers, CORS for allowed origins, the access log and the status
/// counters; and a Socket.IO handshake counts against its address's rate limit.
#[derive(Clone)]
struct Front<S> {
    inner: S,
    peer: SocketAddr,
    state: Arc<HttpState>,
}

type FrontBody = UnsyncBoxBody<Bytes, BoxError>;

fn boxed<R>(res: http::Response<R>) -> http::Response<FrontBody>
where
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    res.map(|b| b.map_err(Into::into).boxed_unsync())
}

impl<S, B, R> tower::Service<Request<B>> for Front<S>
where
    S: tower::Service<Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body<Data = Bytes> + Send + 'static,
    R::Error: Into<BoxError>,
{
    type Response = http::Response<FrontBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(ClientAddr(self.peer));
        let config = &self.state.services.config;
        if !socketio_path(req.uri().path(), &config.socketio_path) {
            let fut = self.inner.call(req);
            return Box::pin(async move { Ok(boxed(fut.await?)) });
        }
        let started = Instant::now();
        let ip = client_ip(self.peer, req.headers(), config.http.trust_forwarded_for);
        let method = req.method().clone();
        let path = tracing::enabled!(target: "meet::access", tracing::Level::INFO)
            .then(|| req.uri().path().to_owned());
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .filter(|o| origin_allowed(&config.http.cors_origins, o))
            .cloned();
        let state = Arc::clone(&self.state);
        let finish = move |mut res: http::Response<FrontBody>| {
            let h = res.headers_mut();
            security_headers(&state, h);
            if let Some(origin) = origin {
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
                h.append(header::VARY, HeaderValue::from_static("origin"));
            }
            log_response(&state, &res, &method, path.as_deref(), ip, started);
            res
        };
        // A handshake opens a session; the requests of a session (polling exchanges, the
        // websocket upgrade) carry its `sid` and are not counted, as a polling client makes
        // one per exchange.
        let handshake = !req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p.starts_with("sid=")));
        if handshake && let Some(retry) = self.state.limiter.request(ip) {
            let res = boxed(ApiError::rate_limited(retry.as_secs()).into_response());
            return Box::pin(async move { Ok(finish(res)) });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { Ok(finish(boxed(fut.await?))) })
    }
}

/// Whether Socket.IO's layer takes a request for `path` (engineioxide's own rule: its path,
/// or below it).
fn socketio_path(path: &str, socketio: &str) -> bool {
    path.strip_prefix(socketio)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || socketio.ends_with('/'))
}

/// The headers of every answer (API.md, "Headers on every response").
fn security_headers(state: &HttpState, h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, state.csp.clone());
    h.insert(COOP, HeaderValue::from_static("same-origin"));
    if let Some(hsts) = &state.hsts {
        h.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
}

/// Counts the answer's status and writes its access log line: the path only, as query
/// strings and headers can carry tokens and are never logged.
fn log_response<R>(
    state: &HttpState,
    res: &http::Response<R>,
    method: &Method,
    path: Option<&str>,
    ip: IpAddr,
    started: Instant,
) {
    let status = res.status().as_u16();
    state.metrics.response(status);
    if let Some(path) = path {
        tracing::info!(target: "meet::access", %ip, %method, path, status, micros = started.elapsed().as_micros() as u64);
    }
}

impl<B> tower::Service<Request<B>> for AppService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

impl AppService {
    async fn handle<B>(self, req: Request<B>) -> Response
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let started = Instant::now();
        let http = &self.state.services.config.http;
        let peer = req
            .extensions()
            .get::<ClientAddr>()
            .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |a| a.0);
        let ip = client_ip(peer, req.headers(), http.trust_forwarded_for);
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ClientIp(ip));
        let uri = parts.uri.clone();
        let method = parts.method.clone();
        // RFC 9110: a HEAD is answered as its GET would be, without the body (`finish`).
        if method == Method::HEAD {
            parts.method = Method::GET;
        }
        // Captured only when the access log is on; the path only, never the query string.
        let path = tracing::enabled!(target: "meet::access", tracing::Level::INFO)
            .then(|| parts.uri.path().to_owned());
        let origin = parts.headers.get(header::ORIGIN).cloned();
        let cors_ok = origin
            .as_ref()
            .is_some_and(|o| origin_allowed(&http.cors_origins, o));

        let response = if method == Method::OPTIONS
            && parts
                .headers
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            preflight(cors_ok)
        } else if let Some(retry) = self.state.limiter.request(ip) {
            ApiError::rate_limited(retry.as_secs()).into_response()
        } else if parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > http.body_limit as u64)
        {
            ApiError::too_large(http.body_limit).into_response()
        } else if body.is_end_stream() {
            self.route(parts, Bytes::new()).await
        } else {
            let collect =
                tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, http.body_limit).collect());
            let Ok(collected) = collect.await else {
                let res = ApiError::bad_request("The request body took too long to arrive")
                    .into_response();
                return self.finish(res, &uri, None, &method, path.as_deref(), ip, started);
            };
            match collected {
                Ok(collected) => self.route(parts, collected.to_bytes()).await,
                Err(e)
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some() =>
                {
                    ApiError::too_large(http.body_limit).into_response()
                }
                Err(_) => {
                    ApiError::bad_request("The request body could not be read").into_response()
                }
            }
        };
        self.finish(
            response,
            &uri,
            origin.filter(|_| cors_ok),
            &method,
            path.as_deref(),
            ip,
            started,
        )
    }

    /// The warp routes, on a request whose body has been read (and put in it, `RequestBody`).
    async fn route(&self, mut parts: http::request::Parts, body: Bytes) -> Response {
        parts.extensions.insert(RequestBody(body.clone()));
        let req = Request::from_parts(parts, Full::new(body));
        match warp::service(self.routes.clone()).oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        mut res: Response,
        uri: &http::Uri,
        cors_origin: Option<HeaderValue>,
        method: &Method,
        path: Option<&str>,
        ip: IpAddr,
        started: Instant,
    ) -> Response {
        if res.status() == StatusCode::METHOD_NOT_ALLOWED
            && let Some(allow) = super::health::allowed_methods(uri.path())
        {
            // RFC 9110: a 405 names the methods the route has.
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if method == Method::HEAD {
            // The GET's headers, its length among them; no body (an audio file is not read).
            let len = http_body::Body::size_hint(res.body()).exact();
            if let Some(len) = len.filter(|_| !res.headers().contains_key(header::CONTENT_LENGTH)) {
                res.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            *res.body_mut() = Bytes::new().into();
        }
        let h = res.headers_mut();
        security_headers(&self.state, h);
        if let Some(origin) = cors_origin {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("retry-after, content-range"),
            );
            h.append(header::VARY, HeaderValue::from_static("origin"));
        }
        log_response(&self.state, &res, method, path, ip, started);
        res
    }
}

fn preflight(allowed: bool) -> Response {
    if !allowed {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Origin not allowed")
            .into_response();
    }
    let mut res = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, range"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    res
}

fn origin_allowed(allowed: &[String], origin: &HeaderValue) -> bool {
    origin
        .to_str()
        .is_ok_and(|o| allowed.iter().any(|a| a == o))
}

/// The peer, or with `trust_forwarded_for` the address the (one, trusted) proxy saw.
fn client_ip(peer: SocketAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.ip()
}

/// Serves until `shutdown` resolves, then stops accepting, runs `close_realtime` (which ends
/// the Socket.IO sessions, long-polls included) and lets open requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<HttpState>,
    socketio: SocketIoLayer,
    shutdown: impl Future<Output = ()>,
    close_realtime: impl Future<Output = ()>,
    grace: Duration,
) {
    let routes = super::routes(&state);
    // Built once: Socket.IO's sessions (polling, then the websocket upgrade) span connections.
    let app = socketio.layer(AppService::new(routes, Arc::clone(&state)));
    let graceful = GracefulShutdown::new();
    let rt = &state.services.config.realtime;
    let user_timeout = rt.ping_interval + rt.ping_timeout;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // A peer that stops reading (and keeps the connection open) would pin a Socket.IO writer
        // forever: unacknowledged data for this long aborts the connection.
        let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(user_timeout));
        let svc = hyper_util::service::TowerToHyperService::new(Front {
            inner: app.clone(),
            peer,
            state: Arc::clone(&state),
        });
        let mut builder = Builder::new(TokioExecutor::new());
        // A client that trickles its request headers is cut off.
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let conn = graceful.watch(
            builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, close_realtime).await;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the shutdown grace period");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_io_takes_its_path_and_what_is_below_it_only() {
        for (path, taken) in [
            ("/ws", true),
            ("/ws/", true),
            ("/ws/x", true),
            ("/wsx", false),
            ("/api/ws", false),
            ("/", false),
        ] {
            assert_eq!(socketio_path(path, "/ws"), taken, "{path}");
        }
        assert!(socketio_path("/ws/x", "/ws/"));
        assert!(!socketio_path("/ws", "/ws/"));
    }
}
