//! The web client: the files of `assets/`, built into the binary (rust-embed; a debug build reads
//! the folder from disk) or read from `web.assets_dir` (the Debian package points it at
//! `/usr/share/meet`). Every file is read once at start-up, with its type, an ETag from its
//! content, and a gzip copy when that is smaller; `/` is `index.html`.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::Digest as _;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::Response;
use crate::config::StorageConfig;

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Embedded;

struct Asset {
    body: Bytes,
    gzip: Option<Bytes>,
    etag: HeaderValue,
    content_type: HeaderValue,
}

/// The web client's files by path (`index.html`, `js/app.js`, ...).
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    /// The copy built into the binary.
    pub fn embedded() -> Self {
        let mut assets = Self::empty();
        for path in Embedded::iter() {
            if let Some(file) = Embedded::get(&path) {
                assets.insert(&path, file.data.into_owned());
            }
        }
        assets
    }

    /// Every file under `dir`, recursively (hidden files and folders left out).
    pub fn from_dir(dir: &Path) -> std::io::Result<Self> {
        let mut assets = Self::empty();
        let mut folders = vec![dir.to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder)? {
                let entry = entry?;
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                if entry.file_type()?.is_dir() {
                    folders.push(path);
                } else if let Ok(rel) = path.strip_prefix(dir) {
                    let name = rel.to_string_lossy().replace('\\', "/");
                    assets.insert(&name, std::fs::read(&path)?);
                }
            }
        }
        if !assets.files.contains_key("index.html") {
            return Err(std::io::Error::other(format!(
                "{} has no index.html",
                dir.display()
            )));
        }
        Ok(assets)
    }

    fn empty() -> Self {
        Self {
            files: HashMap::new(),
        }
    }

    fn insert(&mut self, path: &str, body: Vec<u8>) {
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        let text = mime.type_() == mime_guess::mime::TEXT
            || matches!(mime.subtype().as_str(), "javascript" | "json" | "xml")
            || mime.suffix().is_some_and(|s| s.as_str() == "xml");
        let content_type = if text && mime.get_param("charset").is_none() {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        let digest = sha2::Sha256::digest(&body);
        let etag = format!(
            "\"{}\"",
            digest[..12]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let gzip = text.then(|| gzip(&body)).flatten();
        self.files.insert(
            path.to_owned(),
            Asset {
                gzip: gzip
                    .filter(|g| g.len() < body.len() * 9 / 10)
                    .map(Bytes::from),
                body: Bytes::from(body),
                etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\"")),
                content_type: HeaderValue::from_str(&content_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            },
        );
    }

    /// The answer to a GET of `path` (a HEAD is a GET without its body, `AppService`), or
    /// `None` when there is no such file.
    fn respond(&self, path: &str, request: &HeaderMap) -> Option<Response> {
        let name = if path.is_empty() { "index.html" } else { path };
        let asset = self.files.get(name)?;
        let mut r = Response::new(Bytes::new().into());
        let h = r.headers_mut();
        h.insert(header::ETAG, asset.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == asset.etag || t.trim() == "*")
            });
        if fresh {
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            return Some(r);
        }
        h.insert(header::CONTENT_TYPE, asset.content_type.clone());
        let body = match &asset.gzip {
            Some(gz) if accepts_gzip(request) => {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                gz.clone()
            }
            _ => asset.body.clone(),
        };
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        *r.body_mut() = body.into();
        Some(r)
    }
}

/// Nothing from elsewhere: scripts, styles, sockets and media from this server only; recordings
/// also from the S3 endpoint when S3 holds them (playback follows a presigned URL there).
pub fn content_security_policy(storage: &StorageConfig) -> HeaderValue {
    let media = match storage {
        StorageConfig::S3(s3) => match &s3.endpoint {
            Some(endpoint) => format!(" {}", origin(endpoint)),
            None => format!(
                " https://{}.s3.{}.amazonaws.com https://s3.{}.amazonaws.com",
                s3.bucket, s3.region, s3.region
            ),
        },
        StorageConfig::Local { .. } => String::new(),
    };
    let csp = format!(
        "default-src 'self'; connect-src 'self'; media-src 'self' blob:{media}; img-src 'self' data:; \
         style-src 'self'; script-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'self'"))
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..]
        .find('/')
        .map_or(url, |i| &url[..after_scheme + i])
}

fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

/// `Accept-Encoding` names gzip (or `*`) without `q=0`.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

pub fn routes(assets: Arc<Assets>) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(warp::path::tail())
        .and(warp::header::headers_cloned())
        .and_then(move |tail: warp::path::Tail, headers: HeaderMap| {
            let assets = Arc::clone(&assets);
            async move {
                assets
                    .respond(tail.as_str(), &headers)
                    .ok_or_else(warp::reject::not_found)
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_policy_names_the_s3_endpoint_only_for_media() {
        let local = content_security_policy(&StorageConfig::Local { dir: "x".into() });
        assert!(
            local
                .to_str()
                .expect("ascii")
                .contains("media-src 'self' blob:;")
        );
        assert_eq!(
            origin("http://127.0.0.1:9000/bucket"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(origin("https://s3.example.org"), "https://s3.example.org");
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&request(&[("accept-encoding", "gzip, br")])));
        assert!(accepts_gzip(&request(&[(
            "accept-encoding",
            "br;q=1, *;q=0.5"
        )])));
        assert!(!accepts_gzip(&request(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&request(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&request(&[])));
    }

    #[test]
    fn the_embedded_client_has_its_page_typed_tagged_and_compressed() {
        let assets = Assets::embedded();
        let index = assets
            .respond("", &request(&[("accept-encoding", "gzip")]))
            .expect("index.html");
        assert_eq!(index.status(), StatusCode::OK);
        assert_eq!(
            index.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(index.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = index.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        let cached = assets.respond("index.html", &again).expect("index");
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert!(assets.respond("no/such.js", &again).is_none());
    }
}
