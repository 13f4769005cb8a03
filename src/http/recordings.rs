//! `/api/recordings/:id` and its audio: local files streamed with `Range`, or a redirect to
//! a presigned S3 URL.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use headers::{Header, HeaderMapExt};
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::json as j;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use warp::filters::BoxedFilter;
use warp::{Filter, Reply};

use super::error::ApiError;
use super::extract::{caller, caller_if_any, state};
use super::{HttpState, Response, answer, success};
use crate::domain::access::Identity;
use crate::error::Error;
use crate::storage::Location;

#[derive(Deserialize)]
struct AudioQuery {
    /// A speaker's own file instead of the mix.
    track: Option<String>,
    /// A signed link's expiry (Unix seconds) and signature (`GET /api/recordings/url/:id`).
    expires: Option<i64>,
    signature: Option<String>,
}

/// The bytes a `Range` header asks of a file of `len` bytes: `Ok(None)` for the whole file
/// (no header, or one that is not a byte range: ignored, as RFC 9110 says), `Err` when no
/// part of it is in the file (416). Only the first of several ranges is served.
fn byte_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(raw) = header else { return Ok(None) };
    let Ok(value) = HeaderValue::from_str(raw) else {
        return Ok(None);
    };
    let Ok(range) = headers::Range::decode(&mut std::iter::once(&value)) else {
        return Ok(None);
    };
    let well_formed = raw.trim().strip_prefix("bytes=").is_some_and(|specs| {
        specs.split(',').all(|spec| {
            spec.trim().split_once('-').is_some_and(|(a, b)| {
                (!a.is_empty() || !b.is_empty())
                    && a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit())
            })
        })
    });
    if !well_formed {
        return Ok(None);
    }
    // A suffix longer than the file is the whole file.
    if let Some(n) = raw
        .trim()
        .strip_prefix("bytes=-")
        .and_then(|n| n.parse::<u64>().ok())
        && n > len
        && len > 0
    {
        return Ok(Some((0, len)));
    }
    let Some((start, end)) = range.satisfiable_ranges(len).next() else {
        return Err(());
    };
    let start = match start {
        Bound::Included(s) => s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match end {
        Bound::Included(e) => e.saturating_add(1).min(len),
        Bound::Excluded(e) => e.min(len),
        Bound::Unbounded => len,
    };
    if start < end {
        Ok(Some((start, end)))
    } else {
        Err(())
    }
}

/// A local file as `audio/ogg`, whole (200) or the asked range (206), or 416.
async fn serve_file(path: &Path, range: Option<&str>) -> Response {
    let gone = || ApiError::from(Error::NotFound("Recording")).into_response();
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return gone();
    };
    let Ok(len) = file.metadata().await.map(|m| m.len()) else {
        return gone();
    };
    let (status, start, end) = match byte_range(range, len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((s, e))) => (StatusCode::PARTIAL_CONTENT, s, e),
        Err(()) => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("The range is outside the file ({len} bytes)"),
            )
            .into_response();
            r.headers_mut()
                .typed_insert(headers::ContentRange::unsatisfied_bytes(len));
            return r;
        }
    };
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return gone();
    }
    let body = tokio_util::io::ReaderStream::new(file.take(end - start));
    let mut r = warp::reply::stream(body).into_response();
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("audio/ogg"),
    );
    h.typed_insert(headers::AcceptRanges::bytes());
    h.typed_insert(headers::ContentLength(end - start));
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(cr) = headers::ContentRange::bytes(start..end, len)
    {
        h.typed_insert(cr);
    }
    r
}

/// The file a request for a recording's audio asks for: with a signed link's `signature`,
/// the link alone decides; otherwise the caller must be one who may hear it.
async fn audio_of(
    s: &HttpState,
    who: Option<&Identity>,
    id: &str,
    q: AudioQuery,
) -> crate::error::Result<Location> {
    let track = q.track.as_deref();
    if let Some(signature) = &q.signature {
        let expires = q.expires.unwrap_or(0);
        if !s.services.link_is_valid(id, track, expires, signature) {
            return Err(Error::Forbidden("This link is not valid or has expired"));
        }
        return s.services.linked_audio(id, track).await;
    }
    let who = who.ok_or(Error::Unauthorized)?;
    s.services.recording_audio(who, id, track).await
}

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
    let audio = warp::path!("api" / "recordings" / String / "audio")
        .and(warp::get())
        .and(state(Arc::clone(s)))
        .and(caller_if_any(Arc::clone(s)))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>("range"))
        .and_then(
            |id: String,
             s: Arc<HttpState>,
             who: Option<Arc<Identity>>,
             q: String,
             range: Option<String>| async move {
                let located = match serde_urlencoded::from_str::<AudioQuery>(&q) {
                    Err(e) => Err(Error::invalid("query", e.to_string())),
                    Ok(q) => audio_of(&s, who.as_deref(), &id, q).await,
                };
                Ok::<_, std::convert::Infallible>(match located {
                    Err(e) => ApiError::from(e).into_response(),
                    Ok(Location::Url(url)) => match HeaderValue::from_str(&url) {
                        Ok(to) => {
                            let mut r = warp::reply().into_response();
                            *r.status_mut() = StatusCode::FOUND;
                            r.headers_mut().insert(http::header::LOCATION, to);
                            r
                        }
                        Err(_) => ApiError::from(Error::Storage("bad presigned URL".into()))
                            .into_response(),
                    },
                    Ok(Location::File(path)) => serve_file(&path, range.as_deref()).await,
                })
            },
        );
    audio.or(get).unify().or(delete).unify().boxed()
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges() {
        assert_eq!(byte_range(None, 100), Ok(None));
        assert_eq!(byte_range(Some("bytes=0-9"), 100), Ok(Some((0, 10))));
        assert_eq!(byte_range(Some("bytes=90-"), 100), Ok(Some((90, 100))));
        assert_eq!(byte_range(Some("bytes=90-200"), 100), Ok(Some((90, 100))));
        assert_eq!(byte_range(Some("bytes=-10"), 100), Ok(Some((90, 100))));
        assert_eq!(byte_range(Some("bytes=-500"), 100), Ok(Some((0, 100))));
        assert_eq!(byte_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(byte_range(Some("bytes=50-10"), 100), Err(()));
        assert_eq!(byte_range(Some("bytes=0-0,5-9"), 100), Ok(Some((0, 1))));
        assert_eq!(
            byte_range(Some("items=0-9"), 100),
            Ok(None),
            "not bytes: ignored"
        );
        assert_eq!(
            byte_range(Some("bytes=x-y"), 100),
            Ok(None),
            "malformed: ignored"
        );
    }
}
