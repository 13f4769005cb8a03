//! The role matrix: every route × every kind of caller gets the status the contract gives.

use chrono::Duration;
use meet::store::NewRecording;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::TestServer;

const CALLERS: [&str; 9] = [
    "none",
    "bad",
    "expired",
    "revoked",
    "admin",
    "host",
    "other_host",
    "student",
    "other_student",
];

/// Expected statuses for (admin, host, other host, student, other student); the four kinds of
/// missing or dead token always get 401.
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 5],
}

fn case(method: Method, path: impl Into<String>, body: Option<Value>, expect: [u16; 5]) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        expect,
    }
}

#[tokio::test]
async fn every_route_for_every_caller() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (other_host_id, other_host) = t.host("hostb").await;
    let (student_id, student) = t.student(&host, "studa").await;
    let (_, other_student) = t.student(&other_host, "studb").await;
    let meeting = t.meeting(&host, "Algebra").await;

    // A revoked token: the student logs in twice, then changes password with the second token.
    let (_, revoked_holder) = t.student(&host, "studrev").await;
    let fresh = t.login("studrev", "studrev-password").await;
    t.call(
        Method::PUT,
        "/api/auth/change-password",
        Some(&fresh),
        Some(json!({"currentPassword": "studrev-password", "newPassword": "another-pass"})),
    )
    .await
    .expect(200);
    let revoked = revoked_holder;
    // An expired token: issued now, checked after its lifetime.
    let expired = t.login("studa", "studa-password").await;

    // A completed recording the student was in.
    let now = meet::clock::Clock::now(&*t.clock);
    let rec = t
        .app()
        .services
        .store
        .create_recording(NewRecording {
            id: "rec1".into(),
            meeting_id: meeting.clone(),
            meeting_topic: "Algebra".into(),
            host_id: host_id.clone(),
            host_name: "hosta".into(),
            is_private: false,
            student_id: None,
            start_time: now,
            expires_at: now + Duration::days(3),
            object_key: format!("recordings/{meeting}/rec1.ogg"),
            participant_ids: vec![student_id.clone()],
        })
        .await
        .expect("recording");
    t.app()
        .services
        .store
        .finish_recording(&rec.id, "completed", now, 1.0, 10)
        .await
        .expect("finish");

    // An ended meeting with a recording still running in its records: routes that would
    // change something answer their state's refusal to those allowed, and nothing changes.
    let ended = t.meeting(&host, "Ended").await;
    t.post(&format!("/api/meetings/{ended}/end"), &host, json!({}))
        .await
        .expect(200);
    t.app()
        .services
        .store
        .create_recording(NewRecording {
            id: "rec2".into(),
            meeting_id: ended.clone(),
            meeting_topic: "Ended".into(),
            host_id: host_id.clone(),
            host_name: "hosta".into(),
            is_private: false,
            student_id: None,
            start_time: now,
            expires_at: now + Duration::days(3),
            object_key: format!("recordings/{ended}/rec2.ogg"),
            participant_ids: vec![student_id.clone()],
        })
        .await
        .expect("a recording that records");

    let m = &meeting;
    let e = &ended;
    let cases = vec![
        case(
            Method::GET,
            "/api/auth/profile",
            None,
            [200, 200, 200, 200, 200],
        ),
        case(
            Method::PUT,
            "/api/auth/change-password",
            Some(json!({"currentPassword": "x", "newPassword": "short"})),
            [400, 400, 400, 400, 400],
        ),
        case(
            Method::GET,
            "/api/host/students",
            None,
            [403, 200, 200, 403, 403],
        ),
        case(
            Method::PUT,
            format!("/api/host/students/{student_id}"),
            Some(json!({"isActive": true})),
            [403, 200, 404, 403, 403],
        ),
        case(
            Method::GET,
            "/api/host/meetings",
            None,
            [403, 200, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/host/recordings",
            None,
            [403, 200, 200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/student/info",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::GET,
            "/api/student/meetings",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::GET,
            "/api/student/recordings",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::GET,
            "/api/student/recordings/private",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::POST,
            "/api/meetings/join",
            Some(json!({"meetingId": m})),
            [403, 200, 403, 200, 403],
        ),
        case(
            Method::POST,
            format!("/api/meetings/{m}/join"),
            None,
            [403, 200, 403, 200, 403],
        ),
        case(
            Method::GET,
            format!("/api/meetings/participants/{m}"),
            None,
            [200, 200, 403, 200, 403],
        ),
        case(
            Method::GET,
            format!("/api/meetings/{m}"),
            None,
            [200, 200, 403, 200, 403],
        ),
        case(
            Method::POST,
            "/api/meetings/switch-mode",
            Some(json!({"meetingId": m, "mode": "broadcast"})),
            [403, 200, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/recordings/rec1",
            None,
            [200, 200, 404, 200, 404],
        ),
        case(
            Method::GET,
            "/api/admin/hosts",
            None,
            [200, 403, 403, 403, 403],
        ),
        case(
            Method::PUT,
            format!("/api/admin/hosts/{other_host_id}"),
            Some(json!({"isActive": true})),
            [200, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/admin/meetings",
            None,
            [200, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/admin/recordings",
            None,
            [200, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/admin/stats",
            None,
            [200, 403, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/meetings/{m}/leave"),
            None,
            [403, 200, 403, 200, 403],
        ),
        // State-changing routes, on things whose state refuses the change: who may gets
        // that refusal, everyone else the role's or the owner's.
        case(
            Method::POST,
            "/api/host/students",
            Some(json!({"username": "studa", "password": "studa-password"})),
            [403, 409, 409, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/host/students/nobody",
            None,
            [403, 404, 404, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/meetings/{e}/end"),
            None,
            [409, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/meetings/{e}/recording/start"),
            None,
            [403, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/meetings/{m}/recording/stop"),
            None,
            [409, 409, 403, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/recordings/rec2",
            None,
            [409, 409, 404, 404, 404],
        ),
        case(
            Method::DELETE,
            "/api/admin/recordings/rec2",
            None,
            [409, 403, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/admin/hosts",
            Some(json!({"username": "hosta", "password": "hosta-password"})),
            [409, 403, 403, 403, 403],
        ),
        case(
            Method::PUT,
            "/api/admin/hosts/nobody",
            Some(json!({"isActive": true})),
            [404, 403, 403, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/admin/hosts/nobody",
            None,
            [404, 403, 403, 403, 403],
        ),
        case(
            Method::POST,
            format!("/api/admin/meetings/{e}/end"),
            None,
            [409, 403, 403, 403, 403],
        ),
        // The original's routes (docs/API.md, Compatibility), with the rules of the operation
        // each is.
        case(
            Method::POST,
            format!("/api/meetings/activate/{e}"),
            None,
            [403, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/meetings/leave",
            Some(json!({"meetingId": m})),
            [403, 200, 403, 200, 403],
        ),
        case(
            Method::POST,
            "/api/meetings/private-request",
            Some(json!({"meetingId": e})),
            [403, 403, 403, 409, 403],
        ),
        case(
            Method::POST,
            "/api/meetings/request-private",
            Some(json!({"meetingId": e})),
            [403, 403, 403, 409, 403],
        ),
        case(
            Method::POST,
            "/api/meetings/private/start",
            Some(json!({"meetingId": e, "studentId": student_id})),
            [403, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/meetings/private/end",
            Some(json!({"meetingId": e})),
            [403, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/host/recordings/start",
            Some(json!({"meetingId": e})),
            [403, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/recordings/start",
            Some(json!({"meetingId": e})),
            [403, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/host/recordings/stop",
            Some(json!({"meetingId": m})),
            [409, 409, 403, 403, 403],
        ),
        case(
            Method::POST,
            "/api/recordings/end/rec1",
            None,
            [409, 409, 404, 403, 404],
        ),
        case(
            Method::PUT,
            "/api/host/update-password",
            Some(json!({"currentPassword": "x", "newPassword": "short"})),
            [403, 400, 400, 403, 403],
        ),
        case(
            Method::POST,
            "/api/student/change-password",
            Some(json!({"currentPassword": "x", "newPassword": "short"})),
            [403, 403, 403, 400, 400],
        ),
        case(
            Method::PUT,
            "/api/student/change-password",
            Some(json!({"currentPassword": "x", "newPassword": "short"})),
            [403, 403, 403, 400, 400],
        ),
        case(
            Method::GET,
            "/api/meetings/student/meetings",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::GET,
            "/api/meetings/student/recordings",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::GET,
            "/api/recordings/student",
            None,
            [403, 403, 403, 200, 200],
        ),
        case(
            Method::GET,
            "/api/recordings/url/rec1",
            None,
            [200, 200, 404, 200, 404],
        ),
        case(
            Method::GET,
            format!("/api/recordings/meeting/{m}"),
            None,
            [200, 200, 403, 200, 403],
        ),
        case(
            Method::GET,
            "/api/recordings/accessible",
            None,
            [200, 200, 200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/recordings/stream/rec1",
            None,
            [410, 410, 410, 410, 410],
        ),
        case(
            Method::GET,
            "/api/signal/ice-servers",
            None,
            [200, 200, 200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/admin/users",
            None,
            [200, 403, 403, 403, 403],
        ),
        case(
            Method::GET,
            "/api/admin/stats/hosts",
            None,
            [200, 403, 403, 403, 403],
        ),
        // Creation last of the non-destructive ones: each creates something new.
        case(
            Method::POST,
            "/api/meetings/create",
            Some(json!({"topic": "t"})),
            [403, 201, 201, 403, 403],
        ),
        case(
            Method::POST,
            "/api/host/meetings/create",
            Some(json!({"topic": "t"})),
            [403, 201, 201, 403, 403],
        ),
    ];

    // Each case is a route of the OpenAPI description, and every route that takes a token is
    // a case, but those whose callers are tested where their effect is.
    let mut covered = std::collections::BTreeSet::new();
    for c in &cases {
        let template = crate::openapi::documented(&c.method, &c.path)
            .unwrap_or_else(|| panic!("{} {} is not in docs/openapi.json", c.method, c.path));
        covered.insert((c.method.to_string(), template));
    }
    let missing: Vec<String> = crate::openapi::operations()
        .into_iter()
        .filter(|(m, t, secured)| *secured && !covered.contains(&(m.to_string(), t.clone())))
        .map(|(m, t, _)| format!("{m} {t}"))
        .collect();
    // Where who may is checked with what it does (the audio needs its file; the metrics are
    // for loopback, which every caller here is).
    let elsewhere = [
        "GET /api/recordings/{recordingId}/audio: recording::a_lesson_recorded_with_a_private_talk_in_the_middle",
        "GET /metrics: security::metrics_are_for_loopback_and_administrators_only",
    ];
    let missing: Vec<String> = missing
        .into_iter()
        .filter(|m| {
            !elsewhere
                .iter()
                .any(|e| e.split(':').next() == Some(m.as_str()))
        })
        .collect();
    eprintln!("role matrix: {} cases", cases.len());
    assert!(
        missing.is_empty(),
        "documented routes with a token in no case: {}",
        missing.join(", ")
    );

    // Forged from the host's token: every route refuses each with 401, as it does no token.
    let forged = crate::common::forged_tokens(&host, &t.jwt_secret());
    for c in &cases {
        for (why, token) in &forged {
            let r = t
                .call(c.method.clone(), &c.path, Some(token), c.body.clone())
                .await;
            assert_eq!(
                r.status.as_u16(),
                401,
                "{} {} with {why}: {}",
                c.method,
                c.path,
                r.body
            );
            assert_eq!(r.code(), "unauthorized");
        }
    }

    // Every caller but "expired", whose turn comes below once the clock has moved.
    for c in &cases {
        for (i, who) in CALLERS.iter().enumerate() {
            let token: Option<&str> = match *who {
                "none" => None,
                "bad" => Some("not-a-jwt"),
                "expired" => continue,
                "revoked" => Some(&revoked),
                "admin" => Some(&t.admin),
                "host" => Some(&host),
                "other_host" => Some(&other_host),
                "student" => Some(&student),
                _ => Some(&other_student),
            };
            let r = t
                .call(c.method.clone(), &c.path, token, c.body.clone())
                .await;
            let want = if i < 4 { 401 } else { c.expect[i - 4] };
            assert_eq!(
                r.status.as_u16(),
                want,
                "{} {} as {who}: {}",
                c.method,
                c.path,
                r.body
            );
            if want >= 400 {
                crate::common::assert_error_shape(&r.body);
            }
        }
    }

    // Expired: the same token works now and fails once the clock passes its lifetime.
    t.get("/api/auth/profile", &expired).await.expect(200);
    t.clock.advance(Duration::hours(25));
    for c in &cases {
        let r = t
            .call(c.method.clone(), &c.path, Some(&expired), c.body.clone())
            .await;
        assert_eq!(
            r.status.as_u16(),
            401,
            "{} {} with an expired token",
            c.method,
            c.path
        );
        assert_eq!(r.code(), "unauthorized");
    }
}

#[tokio::test]
async fn destructive_routes_respect_ownership() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let (other_host_id, other_host) = t.host("hostb").await;
    let (student_id, student) = t.student(&host, "studa").await;
    let (_, other_student) = t.student(&other_host, "studb").await;

    // Deleting a student: only its own host; another host gets 404, others 403.
    let path = format!("/api/host/students/{student_id}");
    t.call(Method::DELETE, &path, Some(&other_host), None)
        .await
        .expect(404);
    t.call(Method::DELETE, &path, Some(&t.admin), None)
        .await
        .expect(403);
    t.call(Method::DELETE, &path, Some(&other_student), None)
        .await
        .expect(403);
    t.call(Method::DELETE, &path, Some(&host), None)
        .await
        .expect(200);
    t.call(Method::DELETE, &path, Some(&host), None)
        .await
        .expect(404);
    // The deleted student's token is dead.
    t.get("/api/auth/profile", &student).await.expect(401);

    // Ending a meeting: its host or an admin.
    let m1 = t.meeting(&host, "one").await;
    let end = format!("/api/meetings/{m1}/end");
    t.post(&end, &other_host, json!({})).await.expect(403);
    t.post(&end, &other_student, json!({})).await.expect(403);
    let ended = t.post(&end, &host, json!({})).await;
    assert_eq!(ended.expect(200)["meeting"]["endReason"], "host_ended");
    t.post(&end, &host, json!({})).await.expect(409);
    let m2 = t.meeting(&host, "two").await;
    t.post(&format!("/api/admin/meetings/{m2}/end"), &host, json!({}))
        .await
        .expect(403);
    let r = t
        .post(
            &format!("/api/admin/meetings/{m2}/end"),
            &t.admin,
            json!({}),
        )
        .await;
    assert_eq!(r.expect(200)["meeting"]["endReason"], "admin_ended");

    // Host B's lists never show host A's things.
    let lists = t.get("/api/host/meetings", &other_host).await;
    assert_eq!(lists.expect(200)["count"], 0);
    let students = t.get("/api/host/students", &other_host).await;
    let names: Vec<&str> = students.expect(200)["data"]["students"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|s| s["username"].as_str())
        .collect();
    assert_eq!(names, vec!["studb"]);

    // Deleting a host takes its students and meetings with it.
    t.call(
        Method::DELETE,
        &format!("/api/admin/hosts/{other_host_id}"),
        Some(&host),
        None,
    )
    .await
    .expect(403);
    t.call(
        Method::DELETE,
        &format!("/api/admin/hosts/{other_host_id}"),
        Some(&t.admin),
        None,
    )
    .await
    .expect(200);
    t.get("/api/auth/profile", &other_student).await.expect(401);
    t.get("/api/auth/profile", &other_host).await.expect(401);
    let hosts = t.get("/api/admin/hosts", &t.admin).await;
    assert_eq!(
        hosts.expect(200)["data"]["hosts"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn deactivation_revokes_tokens_and_blocks_logins() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (student_id, student) = t.student(&host, "studa").await;
    t.call(
        Method::PUT,
        &format!("/api/host/students/{student_id}"),
        Some(&host),
        Some(json!({"isActive": false})),
    )
    .await
    .expect(200);
    t.get("/api/auth/profile", &student).await.expect(401);
    let r = t
        .call(
            Method::POST,
            "/api/student/login",
            None,
            Some(json!({"username": "studa", "password": "studa-password"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "account_disabled"));
    t.call(
        Method::PUT,
        &format!("/api/host/students/{student_id}"),
        Some(&host),
        Some(json!({"isActive": true})),
    )
    .await
    .expect(200);
    let student = t.login("studa", "studa-password").await;
    // Disabling the host locks out the host and its students.
    t.call(
        Method::PUT,
        &format!("/api/admin/hosts/{host_id}"),
        Some(&t.admin),
        Some(json!({"isActive": false})),
    )
    .await
    .expect(200);
    t.get("/api/auth/profile", &host).await.expect(401);
    t.get("/api/auth/profile", &student).await.expect(401);
    let r = t
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "studa", "password": "studa-password"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "account_disabled"));
}
