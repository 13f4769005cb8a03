//! `/`: the page a browser finds at the server's address. A placeholder for now (the web client
//! comes with its own issue), embedded in the binary and installed in `/usr/share/meet`.

use warp::Filter;
use warp::filters::BoxedFilter;

use super::Response;

const INDEX: &str = include_str!("../../assets/index.html");

pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path::end()
        .or(warp::path!("index.html"))
        .unify()
        .and(warp::get().or(warp::head()).unify())
        .map(|| {
            let mut r = warp::reply::Response::new(INDEX.into());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("no-cache"),
            );
            r
        })
        .boxed()
}
