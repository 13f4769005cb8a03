//! Bad input is answered in the error shape, never with a 500 or a hang.

use reqwest::Method;
use serde_json::json;

use crate::common::{TestServer, assert_error_shape};

#[tokio::test]
async fn malformed_bodies() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let raw = |path: &str, token: Option<&str>, ct: Option<&str>, body: Vec<u8>| {
        let mut req = t.client.post(t.url(path)).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(tok) = token {
            req = req.bearer_auth(tok);
        }
        async move { TestServer::reply(req.send().await.expect("send")).await }
    };
    let json_ct = Some("application/json");
    for (body, status, code) in [
        (b"{not json".to_vec(), 400, "bad_request"),
        (b"[1,2]".to_vec(), 400, "bad_request"),
        (
            br#"{"username":{"$gt":""},"password":"x"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            br#"{"username":"admin","password":{"$ne":null}}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (
            br#"{"username":"admin"}"#.to_vec(),
            400,
            "validation_failed",
        ),
        // Unknown fields are ignored: a wrong password with a `role` is a wrong password.
        (
            br#"{"username":"admin","password":"x","role":"admin"}"#.to_vec(),
            401,
            "invalid_credentials",
        ),
        (
            br#"{"username":"","password":""}"#.to_vec(),
            400,
            "validation_failed",
        ),
        (vec![0xff, 0xfe, 0x00], 400, "bad_request"),
    ] {
        let r = raw("/api/auth/login", None, json_ct, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (status, code),
            "{}: {}",
            String::from_utf8_lossy(&body),
            r.body
        );
        assert_error_shape(&r.body);
    }
    let r = raw(
        "/api/auth/login",
        None,
        json_ct,
        br#"{"username":{"$gt":""},"password":"x"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.body["errors"][0]["field"], "username");
    let r = raw(
        "/api/auth/login",
        None,
        Some("application/x-www-form-urlencoded"),
        b"username=a&password=b".to_vec(),
    )
    .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "bad_request"));

    // Wrong types and bad values on authenticated routes.
    for (path, body) in [
        ("/api/meetings/create", json!({"topic": 5})),
        ("/api/meetings/create", json!({"topic": ""})),
        ("/api/meetings/create", json!({"topic": "x".repeat(201)})),
        ("/api/meetings/create", json!({"topic": "bell\u{7}"})),
        ("/api/meetings/create", json!({})),
        (
            "/api/host/students",
            json!({"username": "ab", "password": "long-enough"}),
        ),
        (
            "/api/host/students",
            json!({"username": "bad name", "password": "long-enough"}),
        ),
        (
            "/api/host/students",
            json!({"username": "new\nline", "password": "long-enough"}),
        ),
        (
            "/api/host/students",
            json!({"username": "x".repeat(33), "password": "long-enough"}),
        ),
        (
            "/api/host/students",
            json!({"username": "okname", "password": "short"}),
        ),
        (
            "/api/host/students",
            json!({"username": "okname", "password": "x".repeat(129)}),
        ),
        (
            "/api/host/students",
            json!({"username": ["a"], "password": "long-enough"}),
        ),
        (
            "/api/meetings/switch-mode",
            json!({"meetingId": "abc", "mode": "loud"}),
        ),
    ] {
        let r = t.post(path, &host, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.code()),
            (400, "validation_failed"),
            "{path} {body}: {}",
            r.body
        );
        assert_error_shape(&r.body);
        assert!(r.body["errors"][0]["field"].is_string());
    }
    // 128 characters is the longest password; 32 the longest name.
    t.post(
        "/api/host/students",
        &host,
        json!({"username": "x".repeat(32), "password": "p".repeat(128)}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let big = json!({"topic": "x".repeat(17 * 1024)});
    let r = t.post("/api/meetings/create", &host, big).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"));
    // Without a Content-Length (chunked), the limit holds too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..17).map(|_| Ok(vec![b' '; 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = t
        .client
        .post(t.url("/api/meetings/create"))
        .bearer_auth(&host)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let r = TestServer::reply(res.expect("send")).await;
    assert_eq!((r.status.as_u16(), r.code()), (413, "payload_too_large"));
    // Just under the limit is parsed (and the topic is then too long: a validation error).
    let topic = "x".repeat(16 * 1024 - 20);
    let r = t
        .post("/api/meetings/create", &host, json!({"topic": topic}))
        .await;
    assert_eq!(r.status.as_u16(), 400);
}

#[tokio::test]
async fn unknown_routes_methods_and_odd_ids() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    for path in [
        "/nope",
        "/api",
        "/api/unknown",
        "/api/meetings/x/y/z",
        "/api/host/students/a/b",
    ] {
        let r = t.get(path, &host).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{path}");
    }
    let r = t.call(Method::PATCH, "/api/auth/login", None, None).await;
    assert_eq!(r.status.as_u16(), 405);
    assert_error_shape(&r.body);
    let r = t
        .call(Method::DELETE, "/api/auth/profile", Some(&host), None)
        .await;
    assert_eq!(r.status.as_u16(), 405);
    let long = "a".repeat(5000);
    for id in [
        long.as_str(),
        "..%2F..%2Fetc",
        "%00",
        "user:admin",
        "'; DROP TABLE user; --",
        "%F0%9F%98%80",
        "a%20b",
    ] {
        for path in [
            format!("/api/meetings/{id}"),
            format!("/api/meetings/participants/{id}"),
            format!("/api/recordings/{id}"),
        ] {
            let r = t.get(&path, &host).await;
            assert!(
                matches!(r.status.as_u16(), 400 | 404),
                "{path}: {} {}",
                r.status,
                r.body
            );
            assert_error_shape(&r.body);
        }
        let r = t
            .call(
                Method::PUT,
                &format!("/api/host/students/{id}"),
                Some(&host),
                Some(json!({"isActive": true})),
            )
            .await;
        assert!(matches!(r.status.as_u16(), 400 | 404), "{}", r.body);
        let r = t
            .post(&format!("/api/meetings/{id}/join"), &host, json!({}))
            .await;
        assert!(matches!(r.status.as_u16(), 400 | 404), "{}", r.body);
    }
    let r = t.get("/api/host/meetings?status=bogus", &host).await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    let r = t.get("/api/host/meetings?status=active", &host).await;
    r.expect(200);
    // An Authorization header that is not a bearer token.
    let r = t
        .client
        .get(t.url("/api/auth/profile"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .expect("send");
    let r = TestServer::reply(r).await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "unauthorized"));
}
