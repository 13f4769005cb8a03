//! Headers, CORS and rate limits.

use reqwest::Method;
use serde_json::json;

use crate::common::{ADMIN_PASSWORD, TestServer};

#[tokio::test]
async fn security_headers_on_every_response() {
    let t = TestServer::start_with(|c| c.http.hsts_max_age = Some(31_536_000)).await;
    for (method, path) in [
        (Method::GET, "/healthz"),
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::POST, "/api/auth/login"),
        (Method::GET, "/api/auth/profile"),
        (Method::GET, "/api/recordings/nope/audio"),
        // Socket.IO's answers, which its own layer makes: a handshake, a session it does not
        // know, a request it refuses.
        (Method::GET, "/ws/?EIO=4&transport=polling"),
        (Method::GET, "/ws/?EIO=4&transport=polling&sid=nope"),
        (Method::POST, "/ws/?EIO=3&transport=polling"),
    ] {
        let r = t.call(method, path, None, None).await;
        let h = &r.headers;
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'")
        );
        assert!(
            h["strict-transport-security"]
                .to_str()
                .expect("hsts")
                .starts_with("max-age=31536000")
        );
    }
}

#[tokio::test]
async fn the_page_at_the_root_is_html_that_needs_nothing_external() {
    let t = TestServer::start().await;
    for path in ["/", "/index.html"] {
        let r = t.client.get(t.url(path)).send().await.expect("get");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        let page = r.text().await.expect("text");
        assert!(page.contains(r#"src="/js/app.js""#), "the web client");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "nothing fetched from outside"
        );
    }
}

#[tokio::test]
async fn the_web_client_is_served_from_a_configured_folder_with_every_file_typed() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("js")).expect("mkdir");
    std::fs::write(
        dir.path().join("index.html"),
        "<!doctype html><p>our school</p>",
    )
    .expect("write");
    std::fs::write(dir.path().join("js/app.js"), "export const x = 1;").expect("write");
    let folder = dir.path().to_path_buf();
    let t = TestServer::start_with(move |c| c.web.assets_dir = Some(folder)).await;
    let page = t.client.get(t.url("/")).send().await.expect("get");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("text").contains("our school"));
    let js = t.client.get(t.url("/js/app.js")).send().await.expect("get");
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(js.headers().contains_key("etag"));
    // Only files of the folder: no path out of it, and the API's 404 for anything else.
    for path in [
        "/../Cargo.toml",
        "/js/../../x",
        "/vendor/socket.io.esm.min.js",
    ] {
        let r = t.client.get(t.url(path)).send().await.expect("get");
        assert_eq!(r.status(), 404, "{path}");
    }
    let head = t
        .client
        .head(t.url("/js/app.js"))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let t = TestServer::start_with(|c| c.http.cors_origins = vec!["http://localhost:5173".into()])
        .await;
    let pre = |origin: &'static str| {
        t.client
            .request(Method::OPTIONS, t.url("/api/auth/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = pre("http://localhost:5173").await.expect("preflight");
    assert_eq!(ok.status().as_u16(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let bad = TestServer::reply(pre("http://evil.example").await.expect("preflight")).await;
    assert_eq!(bad.status.as_u16(), 403);
    assert!(bad.headers.get("access-control-allow-origin").is_none());
    let r = t
        .client
        .get(t.url("/healthz"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("get");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn failed_logins_are_throttled_per_username_and_address() {
    let t = TestServer::start().await;
    let (_, _) = t.host("hosta").await;
    let attempt = |user: &'static str, pass: &'static str| {
        t.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": user, "password": pass})),
        )
    };
    for _ in 0..10 {
        let r = attempt("hosta", "wrong-password").await;
        assert_eq!((r.status.as_u16(), r.code()), (401, "invalid_credentials"));
        assert_eq!(r.body["message"], "Invalid username or password");
    }
    // The 11th attempt is refused even with the right password, with Retry-After.
    let r = attempt("hosta", "hosta-password").await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    let retry: u64 = r.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry));
    // The student login route shares the throttle; other usernames are not affected.
    let r = t
        .call(
            Method::POST,
            "/api/student/login",
            None,
            Some(json!({"username": "hosta", "password": "x"})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 429);
    t.login("admin", ADMIN_PASSWORD).await;
    // Unknown users answer exactly like wrong passwords.
    let r = attempt("nobody-here", "whatever-pass").await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "invalid_credentials"));
}

#[tokio::test]
async fn the_global_rate_limit_answers_429_with_retry_after() {
    let t = TestServer::start_with(|c| c.http.requests_per_window = 30).await;
    // The admin login in start() used one request.
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(
            t.call(Method::GET, "/healthz", None, None)
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 29);
    let r = t.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((r.status.as_u16(), r.code()), (429, "rate_limited"));
    assert!(r.headers.contains_key("retry-after"));
    // A Socket.IO handshake from the same address is refused alike.
    let r = t
        .call(Method::GET, "/ws/?EIO=4&transport=polling", None, None)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (429, "rate_limited"),
        "{}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn socket_io_sessions_count_once_against_the_rate_limit() {
    let t = TestServer::start_with(|c| c.http.requests_per_window = 30).await;
    // A polling session: its handshake counts, its exchanges do not (a polling client makes
    // one a message).
    let open = t
        .call(Method::GET, "/ws/?EIO=4&transport=polling", None, None)
        .await;
    assert_eq!(open.status.as_u16(), 200, "{}", open.body);
    let text = open.body.as_str().expect("an Engine.IO packet");
    let sid = serde_json::from_str::<serde_json::Value>(text.trim_start_matches('0'))
        .expect("open packet")["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    // The admin login and the handshake used 2 of 30; 40 pings of the session's use none.
    for _ in 0..40 {
        let r = t
            .client
            .post(t.url(&format!("/ws/?EIO=4&transport=polling&sid={sid}")))
            .body("3")
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    let mut ok = 0;
    for _ in 0..28 {
        let r = t.call(Method::GET, "/healthz", None, None).await;
        ok += usize::from(r.status.as_u16() == 200);
    }
    assert_eq!(ok, 28);
    let r = t.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status.as_u16(), 429);
}

#[tokio::test]
async fn non_students_cannot_use_the_student_login() {
    let t = TestServer::start().await;
    t.host("hosta").await;
    let r = t
        .call(
            Method::POST,
            "/api/student/login",
            None,
            Some(json!({"username": "hosta", "password": "hosta-password"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "invalid_credentials"));
}

#[tokio::test]
async fn parallel_password_guesses_count_too() {
    let t = TestServer::start().await;
    t.host("hosta").await;
    let guesses = (0..16).map(|i| {
        t.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "hosta", "password": format!("guess-{i}")})),
        )
    });
    let replies = futures_util::future::join_all(guesses).await;
    let refused = replies.iter().filter(|r| r.status.as_u16() == 429).count();
    let wrong = replies
        .iter()
        .filter(|r| r.code() == "invalid_credentials")
        .count();
    assert_eq!((wrong, refused), (10, 6));
}

#[tokio::test]
async fn metrics_are_for_loopback_and_administrators_only() {
    let t = TestServer::start_with(|c| c.http.trust_forwarded_for = true).await;
    let (_, host) = t.host("hosta").await;
    let from_afar = |auth: Option<String>| {
        let mut req = t
            .client
            .get(t.url("/metrics"))
            .header("x-forwarded-for", "203.0.113.9");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { TestServer::reply(req.send().await.expect("metrics")).await }
    };
    for (auth, want) in [
        (None, 403),
        (Some(format!("Bearer {host}")), 403),
        (Some("Bearer not-a-jwt".to_owned()), 403),
        (Some(format!("Bearer {}", t.admin)), 200),
        (Some(format!("bearer {}", t.admin)), 200),
    ] {
        let r = from_afar(auth.clone()).await;
        assert_eq!(r.status.as_u16(), want, "{auth:?}: {}", r.body);
        if want == 403 {
            assert_eq!(r.code(), "forbidden");
        }
    }
    let local = t.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(local.status.as_u16(), 200);
}
