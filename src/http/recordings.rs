//! `/api/recordings/:id` and its audio: local files streamed with `Range`, or a redirect to
//! a presigned S3 URL.

use std::path::Path;
use std::sync::Arc;

use headers::HeaderMapExt;
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
/// (no header, or one that is not a well-formed byte range: ignored, as RFC 9110 §14.2 lets
/// a server do), `Err` when no part of it is in the file (416). Only the first satisfiable
/// range of several is served.
///
/// Parsed here rather than by `headers::Range::satisfiable_ranges`, which neither leaves out
/// the ranges that start past the end (so `bytes=200-300,0-9` of 100 bytes was a 416) nor
/// reads a position past `u64` (so `bytes=0-99999999999999999999` was a 416, not the file):
/// the fuzz tests found both.
fn byte_range(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(raw) = header else { return Ok(None) };
    let raw = raw.trim_matches([' ', '\t']);
    // The range unit is case-insensitive (RFC 9110 §14.1).
    let Some(specs) = raw
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .map(|_| &raw[6..])
    else {
        return Ok(None);
    };
    /// A position: digits only, one past `u64` read as `u64::MAX` (past any file).
    fn position(digits: &str) -> Option<u64> {
        (!digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()))
            .then(|| digits.parse().unwrap_or(u64::MAX))
    }
    let mut ranges = Vec::new();
    // Empty list elements are allowed and ignored (RFC 9110 §5.6.1).
    for spec in specs
        .split(',')
        .map(|s| s.trim_matches([' ', '\t']))
        .filter(|s| !s.is_empty())
    {
        let Some((first, last)) = spec.split_once('-') else {
            return Ok(None);
        };
        let range = match (first, last) {
            ("", suffix) => match position(suffix) {
                None => return Ok(None),
                // The last n bytes; a suffix longer than the file is the whole file.
                Some(n) => (n > 0 && len > 0).then(|| (len - n.min(len), len)),
            },
            (first, "") => match position(first) {
                None => return Ok(None),
                Some(a) => (a < len).then_some((a, len)),
            },
            (first, last) => match (position(first), position(last)) {
                (Some(a), Some(b)) => {
                    (a <= b && a < len).then(|| (a, b.saturating_add(1).min(len)))
                }
                _ => return Ok(None),
            },
        };
        ranges.push(range);
    }
    if ranges.is_empty() {
        return Ok(None);
    }
    ranges.into_iter().flatten().next().map(Some).ok_or(())
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

#[cfg(test)]
mod fuzz {
    //! `byte_range` against a reference model (tests/fuzz/README.md).
    use proptest::prelude::*;

    use super::byte_range;
    use crate::fuzzing;

    /// One range of a header as a model sees it; positions may be past `u64`.
    #[derive(Debug, Clone)]
    enum Spec {
        FromTo(u128, u128),
        From(u128),
        Suffix(u128),
    }

    /// The bytes of a file of `len` a spec names, by enumeration (small files): the served
    /// range is the first spec naming any, from its lowest byte to its highest.
    fn model_small(specs: &[Spec], len: u64) -> Result<(u64, u64), ()> {
        for s in specs {
            let named: Vec<u64> = (0..len)
                .filter(|&i| {
                    let i = u128::from(i);
                    match *s {
                        Spec::FromTo(a, b) => a <= i && i <= b,
                        Spec::From(a) => a <= i,
                        Spec::Suffix(n) => i + n >= u128::from(len),
                    }
                })
                .collect();
            if let (Some(&lo), Some(&hi)) = (named.first(), named.last()) {
                return Ok((lo, hi + 1));
            }
        }
        Err(())
    }

    /// The same in closed form, in `u128` (any file).
    fn model(specs: &[Spec], len: u64) -> Result<(u64, u64), ()> {
        let l = u128::from(len);
        for s in specs {
            let r = match *s {
                Spec::FromTo(a, b) => (a <= b && a < l).then(|| (a, (b + 1).min(l))),
                Spec::From(a) => (a < l).then_some((a, l)),
                Spec::Suffix(n) => (n > 0 && l > 0).then(|| (l - n.min(l), l)),
            };
            if let Some((a, b)) = r {
                let a = u64::try_from(a).expect("within the file");
                let b = u64::try_from(b).expect("within the file");
                return Ok((a, b));
            }
        }
        Err(())
    }

    fn number() -> impl Strategy<Value = u128> {
        prop_oneof![
            0u128..8,
            0u128..200,
            any::<u64>().prop_map(u128::from),
            Just(u128::from(u64::MAX)),
            Just(u128::from(u64::MAX) + 1),
            any::<u128>(),
        ]
    }

    fn spec() -> impl Strategy<Value = Spec> {
        prop_oneof![
            (number(), number()).prop_map(|(a, b)| Spec::FromTo(a, b)),
            number().prop_map(Spec::From),
            number().prop_map(Spec::Suffix),
        ]
    }

    fn len() -> impl Strategy<Value = u64> {
        prop_oneof![0u64..4, 0u64..64, any::<u64>()]
    }

    /// A header as a client may write it: any case of the unit, blanks around the elements,
    /// leading zeros, empty elements.
    fn render(specs: &[Spec], unit: &str, blanks: &[(bool, bool, bool)]) -> String {
        let mut out = format!("{unit}=");
        for (i, s) in specs.iter().enumerate() {
            let (pad, zero, empty) = blanks.get(i).copied().unwrap_or_default();
            if i > 0 {
                out.push(',');
            }
            if empty {
                out.push_str(" ,");
            }
            if pad {
                out.push(' ');
            }
            let z = if zero { "00" } else { "" };
            match s {
                Spec::FromTo(a, b) => out.push_str(&format!("{z}{a}-{b}")),
                Spec::From(a) => out.push_str(&format!("{z}{a}-")),
                Spec::Suffix(n) => out.push_str(&format!("-{z}{n}")),
            }
            if pad {
                out.push('\t');
            }
        }
        out
    }

    proptest! {
        #![proptest_config(fuzzing::config(20_000))]

        /// Well-formed headers: the answer is the models', within the file.
        #[test]
        fn fuzz_range_agrees_with_the_model(
            specs in prop::collection::vec(spec(), 1..5),
            unit in prop::sample::select(vec!["bytes", "Bytes", "BYTES"]),
            blanks in prop::collection::vec(any::<(bool, bool, bool)>(), 0..5),
            len in len(),
        ) {
            let header = render(&specs, unit, &blanks);
            let got = byte_range(Some(&header), len).map(|r| r.expect("a byte range is read"));
            prop_assert_eq!(got, model(&specs, len), "{}", header);
            if len < 64 {
                prop_assert_eq!(got, model_small(&specs, len), "{}", header);
            }
            if let Ok((start, end)) = got {
                prop_assert!(start < end && end <= len);
            }
        }

        /// Any text: never a panic, an answer within the file or a refusal, and whatever is
        /// not a byte range is ignored.
        #[test]
        fn fuzz_range_any_text(
            header in prop_oneof![
                "[ \t]{0,2}[bB]ytes=[0-9 ,\t-]{0,24}",
                "\\PC{0,40}",
                fuzzing::mutated_text(fuzzing::text_seeds("range"), 6),
            ],
            len in len(),
        ) {
            match byte_range(Some(&header), len) {
                Ok(Some((start, end))) => prop_assert!(start < end && end <= len, "{}", header),
                Ok(None) => {}
                Err(()) => prop_assert!(
                    header.trim().to_ascii_lowercase().starts_with("bytes="),
                    "{}", header
                ),
            }
            if !header.trim_matches([' ', '\t']).to_ascii_lowercase().starts_with("bytes=") {
                prop_assert_eq!(byte_range(Some(&header), len), Ok(None));
            }
        }
    }

    // The answers of the former `headers`-based parser that disagreed with the model.

    /// It answered 416: `satisfiable_ranges` yields ranges past the end.
    #[test]
    fn fuzz_regression_a_first_range_past_the_end_refused_the_rest() {
        assert_eq!(
            byte_range(Some("bytes=200-300,0-9"), 100),
            Ok(Some((0, 10))),
            "the first satisfiable range is served, not a 416"
        );
    }

    /// It answered 416 for the first two: a position past `u64` dropped the range.
    #[test]
    fn fuzz_regression_a_position_past_u64_refused_the_file() {
        assert_eq!(
            byte_range(Some("bytes=0-99999999999999999999"), 100),
            Ok(Some((0, 100)))
        );
        assert_eq!(
            byte_range(Some("bytes=-99999999999999999999"), 100),
            Ok(Some((0, 100))),
            "a suffix past u64 is the whole file"
        );
        assert_eq!(
            byte_range(Some("bytes=99999999999999999999-"), 100),
            Err(())
        );
    }

    /// It served `0-9`: a suffix longer than the file was only read alone.
    #[test]
    fn fuzz_regression_a_long_suffix_in_a_list_was_left_out() {
        assert_eq!(
            byte_range(Some("bytes=-500,0-9"), 100),
            Ok(Some((0, 100))),
            "the first range, the whole file, is served"
        );
    }
}
