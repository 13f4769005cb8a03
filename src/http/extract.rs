//! Filters that pull typed things out of a request: the caller, a JSON body, the client address.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use warp::{Filter, Rejection};

use super::HttpState;
use super::error::ApiError;
use crate::domain::access::Identity;
use crate::error::FieldError;

/// The peer address of the connection, put in the request by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// The client's IP as the rate limits see it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The request's whole body, read by the server before routing (`AppService`) and put in the
/// request. Body filters read it from here rather than with `warp::body`, which hands the body
/// out once: when a route whose path matches refuses the body, the next route that matches
/// the same path (`/api/meetings/private/end` and `/api/meetings/{id}/end`) reads it too.
#[derive(Debug, Clone, Default)]
pub struct RequestBody(pub Bytes);

pub fn state(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Arc<HttpState>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || Arc::clone(&state))
}

pub fn client_ip() -> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<ClientIp>()
        .map(|ip: Option<ClientIp>| ip.map_or(IpAddr::from([127, 0, 0, 1]), |c| c.0))
}

/// The authenticated caller, from `Authorization: Bearer <jwt>`.
pub fn caller(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Arc<Identity>,), Error = Rejection> + Clone {
    caller_if_any(state).and_then(|who: Option<Arc<Identity>>| async move {
        who.ok_or_else(|| ApiError::from(crate::error::Error::Unauthorized).into_rejection())
    })
}

/// The caller when the request has an `Authorization` header (which must then be valid), or
/// `None`: for the audio route, which also plays signed links.
/// The token of an `Authorization: Bearer <token>` header (`bearer` too), if it holds one.
pub fn bearer(header: &str) -> Option<&str> {
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

pub fn caller_if_any(
    state: Arc<HttpState>,
) -> impl Filter<Extract = (Option<Arc<Identity>>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and(self::state(state))
        .and_then(|header: Option<String>, state: Arc<HttpState>| async move {
            let Some(header) = header else {
                return Ok(None);
            };
            let token = bearer(&header).ok_or_else(|| {
                ApiError::from(crate::error::Error::Unauthorized).into_rejection()
            })?;
            state
                .services
                .authenticate(token)
                .await
                .map(Some)
                .map_err(|e| ApiError::from(e).into_rejection())
        })
}

/// A JSON body parsed into `T`: wrong types and missing fields are validation errors naming
/// the field; fields `T` does not know are ignored, as the original server ignored them (its
/// clients send `participantName`, `title`, `settings`...), and never honoured: a `role` or a
/// `hostId` in a body is not a field of any body, so it changes nothing. An empty body reads
/// as `{}`.
pub fn json<T: DeserializeOwned + Send + 'static>()
-> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-type")
        .and(warp::ext::optional::<RequestBody>())
        .and_then(
            |content_type: Option<String>, body: Option<RequestBody>| async move {
                let body = body.unwrap_or_default().0;
                parse_json::<T>(content_type.as_deref(), &body).map_err(ApiError::into_rejection)
            },
        )
}

pub fn parse_json<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    // Only a body of no bytes at all: whitespace alone is not JSON (the original server, on
    // Express's strict JSON parser, refused it too).
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    if let Some(ct) = content_type {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError::bad_request(
                "Content-Type must be application/json",
            ));
        }
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("Body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("Body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let field = if path == "." {
            // "missing field `x`" / "unknown field `x`, expected ..."
            inner.split('`').nth(1).unwrap_or("body").to_owned()
        } else {
            path
        };
        let message = if inner.starts_with("unknown field") {
            "is not a known field".to_owned()
        } else if inner.starts_with("missing field") {
            "is required".to_owned()
        } else if inner.starts_with("invalid type") {
            inner.split(", expected").nth(1).map_or_else(
                || "has the wrong type".to_owned(),
                |exp| format!("must be{exp}"),
            )
        } else {
            inner
        };
        ApiError::validation(vec![FieldError::new(field, message)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_an_empty_object_and_whitespace_is_not_json() {
        let v: serde_json::Value = parse_json(None, b"").expect("empty");
        assert_eq!(v, serde_json::json!({}));
        for body in [&b"\n"[..], b" ", b"\r\n\t"] {
            let e = parse_json::<serde_json::Value>(None, body).expect_err("whitespace");
            assert_eq!((e.status.as_u16(), e.code), (400, "bad_request"));
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse_json::<Login>(None, br#"{"username":{"$gt":""},"password":"x"}"#)
            .expect_err("type");
        assert_eq!(
            (e.code, e.errors[0].field.as_str()),
            ("validation_failed", "username")
        );
        let e = parse_json::<Login>(None, br#"{"username":"a"}"#).expect_err("missing");
        assert_eq!(e.errors[0].field, "password");
        let extra = parse_json::<Login>(None, br#"{"username":"a","password":"b","role":"admin"}"#)
            .expect("an unknown field is ignored");
        assert_eq!(
            (extra.username.as_str(), extra.password.as_str()),
            ("a", "b")
        );
        let e = parse_json::<Login>(None, b"{nope").expect_err("syntax");
        assert_eq!(e.code, "bad_request");
        let e = parse_json::<Login>(Some("text/plain"), br#"{"username":"a","password":"b"}"#)
            .expect_err("ct");
        assert_eq!(e.code, "bad_request");
        assert!(
            parse_json::<Login>(
                Some("application/json; charset=utf-8"),
                br#"{"username":"a","password":"b"}"#
            )
            .is_ok()
        );
    }
}
