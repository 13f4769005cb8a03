//! Whole user flows over HTTP: accounts, meetings, participants, modes, recordings' visibility.

use chrono::Duration;
use meet::store::NewRecording;
use reqwest::Method;
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn login_shapes_profile_and_password_change() {
    let t = TestServer::start().await;
    let r = t
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "ADMIN", "password": crate::common::ADMIN_PASSWORD})),
        )
        .await;
    let body = r.expect(200);
    for key in ["_id", "username", "role", "token", "expiresAt"] {
        assert!(body.get(key).is_some(), "{key} in {body}");
    }
    assert_eq!(body["role"], "admin");
    let (_, host) = t.host("hosta").await;
    t.student(&host, "studa").await;
    let r = t
        .call(
            Method::POST,
            "/api/student/login",
            None,
            Some(json!({"username": "studa", "password": "studa-password"})),
        )
        .await;
    let b = r.expect(200);
    assert_eq!(b["status"], "success");
    assert_eq!(b["data"]["role"], "student");
    let student = b["data"]["token"].as_str().expect("token").to_owned();
    let p = t.get("/api/auth/profile", &student).await;
    let p = p.expect(200);
    assert!(
        p.get("password").is_none()
            && p.get("passwordHash").is_none()
            && p.get("password_hash").is_none()
    );
    assert!(p["hostId"].is_string());

    let r = t
        .call(
            Method::PUT,
            "/api/auth/change-password",
            Some(&student),
            Some(json!({"currentPassword": "wrong-one", "newPassword": "new-password-1"})),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "invalid_credentials"));
    let r = t
        .call(
            Method::PUT,
            "/api/auth/change-password",
            Some(&student),
            Some(json!({"currentPassword": "studa-password", "newPassword": "new-password-1"})),
        )
        .await;
    let new_token = r.expect(200)["token"].as_str().expect("token").to_owned();
    t.get("/api/auth/profile", &student).await.expect(401);
    t.get("/api/auth/profile", &new_token).await.expect(200);
    t.login("studa", "new-password-1").await;
    // Usernames are unique regardless of case, across roles.
    let r = t
        .post(
            "/api/host/students",
            &host,
            json!({"username": "STUDA", "password": "whatever-1"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "username_taken"));
    let r = t
        .post(
            "/api/admin/hosts",
            &t.admin,
            json!({"username": "Hosta", "password": "whatever-1"}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "username_taken"));
}

#[tokio::test]
async fn a_meeting_from_creation_to_archive() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (s1_id, s1) = t.student(&host, "stu1").await;
    let (_, s2) = t.student(&host, "stu2").await;
    let meeting = t.meeting(&host, "  Physics  ").await;
    let m = t.get(&format!("/api/meetings/{meeting}"), &s1).await;
    let b = m.expect(200);
    assert_eq!(b["meeting"]["status"], "created");
    assert_eq!(b["meeting"]["topic"], "Physics");
    assert_eq!(b["meeting"]["hostId"], host_id.as_str());
    assert_eq!(
        (
            b["isHost"].as_bool(),
            b["canJoin"].as_bool(),
            b["userRole"].as_str()
        ),
        (Some(false), Some(true), Some("student"))
    );
    assert!(b["meeting"]["startTime"].is_null());
    let listed = t.get("/api/student/meetings", &s1).await;
    assert_eq!(listed.expect(200)["count"], 1);

    let j = t
        .post("/api/meetings/join", &s1, json!({"meetingId": meeting}))
        .await;
    let jb = j.expect(200);
    assert_eq!(jb["meeting"]["status"], "active");
    assert!(jb["meeting"]["startTime"].is_string());
    assert!(jb["iceServers"].is_array());
    t.post(&format!("/api/meetings/{meeting}/join"), &s2, json!({}))
        .await
        .expect(200);
    t.post(&format!("/api/meetings/{meeting}/join"), &host, json!({}))
        .await
        .expect(200);

    // Private mode needs a student who is in the meeting.
    let sw = |mode: &str, pid: Option<&str>| {
        let mut body = json!({"meetingId": meeting, "mode": mode});
        if let Some(p) = pid {
            body["participantId"] = json!(p);
        }
        t.post("/api/meetings/switch-mode", &host, body)
    };
    assert_eq!(sw("private", None).await.code(), "validation_failed");
    assert_eq!(
        sw("private", Some(&host_id)).await.code(),
        "validation_failed"
    );
    assert_eq!(
        sw("private", Some("nosuchuser")).await.code(),
        "validation_failed"
    );
    let r = sw("private", Some(&s1_id)).await;
    let b = r.expect(200);
    assert_eq!(
        (
            b["meeting"]["mode"].as_str(),
            b["meeting"]["isPrivate"].as_bool()
        ),
        (Some("private"), Some(true))
    );
    assert_eq!(b["meeting"]["privateParticipantId"], s1_id.as_str());
    let r = sw("broadcast", None).await;
    assert!(r.expect(200)["meeting"]["privateParticipantId"].is_null());

    // Leaving marks the participant offline; the count follows.
    t.post(&format!("/api/meetings/{meeting}/leave"), &s2, json!({}))
        .await
        .expect(200);
    // Leaving twice is harmless.
    t.post(&format!("/api/meetings/{meeting}/leave"), &s2, json!({}))
        .await
        .expect(200);
    let p = t
        .get(&format!("/api/meetings/participants/{meeting}"), &s1)
        .await;
    let pb = p.expect(200);
    assert_eq!(pb["count"], 2);
    let people = pb["participants"].as_array().expect("array");
    assert_eq!(people.len(), 3);
    let s2_row = people
        .iter()
        .find(|p| p["username"] == "stu2")
        .expect("s2 listed");
    assert_eq!(s2_row["online"], false);
    for key in ["_id", "username", "role", "joinedAt", "online", "muted"] {
        assert!(s2_row.get(key).is_some(), "{key}");
    }

    // Ending: everyone is out, the meeting refuses joins and leaves the students' list.
    let e = t
        .post(&format!("/api/meetings/{meeting}/end"), &host, json!({}))
        .await;
    let eb = e.expect(200);
    assert_eq!(
        (
            eb["meeting"]["status"].as_str(),
            eb["meeting"]["participantCount"].as_u64()
        ),
        (Some("ended"), Some(0))
    );
    assert!(eb["meeting"]["endTime"].is_string());
    let r = t
        .post(&format!("/api/meetings/{meeting}/join"), &s1, json!({}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "meeting_ended"));
    assert_eq!(
        t.get("/api/student/meetings", &s1).await.expect(200)["count"],
        0
    );
    assert_eq!(
        t.get("/api/host/meetings?status=ended", &host)
            .await
            .expect(200)["count"],
        1
    );
    let r = sw("broadcast", None).await;
    assert_eq!(r.code(), "meeting_ended");

    // The archive job moves it on after a day.
    let job = meet::jobs::by_name("archive").expect("job");
    let rep = job
        .run(&t.app().services, &meet::jobs::Silent, false)
        .await
        .expect("run");
    assert_eq!(rep.changed, 0);
    t.clock.advance(Duration::hours(24) + Duration::seconds(1));
    let rep = job
        .run(&t.app().services, &meet::jobs::Silent, false)
        .await
        .expect("run");
    assert_eq!(rep.changed, 1);
    let host = t.login("hosta", "hosta-password").await;
    let admin = t.login("admin", crate::common::ADMIN_PASSWORD).await;
    assert_eq!(
        t.get("/api/host/meetings?status=archived", &host)
            .await
            .expect(200)["count"],
        1
    );
    let stats = t.get("/api/admin/stats", &admin).await;
    let sb = stats.expect(200);
    assert_eq!(
        (
            sb["hosts"].as_i64(),
            sb["students"].as_i64(),
            sb["meetings"]["total"].as_i64()
        ),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!(sb["connections"], 0);
}

#[tokio::test]
async fn who_sees_which_recording() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (in_id, inside) = t.student(&host, "inside").await;
    let (_, outside) = t.student(&host, "outside").await;
    let (pair_id, pair) = t.student(&host, "pair").await;
    let meeting = t.meeting(&host, "Recorded").await;
    let now = meet::clock::Clock::now(&*t.clock);
    let store = &t.app().services.store;
    let mk = |id: &str, private: bool, student: Option<String>, participants: Vec<String>| {
        NewRecording {
            id: id.into(),
            meeting_id: meeting.clone(),
            meeting_topic: "Recorded".into(),
            host_id: host_id.clone(),
            host_name: "hosta".into(),
            is_private: private,
            student_id: student,
            start_time: now,
            expires_at: now + Duration::days(3),
            object_key: format!("recordings/{meeting}/{id}.ogg"),
            participant_ids: participants,
        }
    };
    store
        .create_recording(mk("normal", false, None, vec![in_id.clone()]))
        .await
        .expect("rec");
    store
        .create_recording(mk(
            "private",
            true,
            Some(pair_id.clone()),
            vec![pair_id.clone()],
        ))
        .await
        .expect("rec");
    store
        .create_recording(mk("running", false, None, vec![in_id.clone()]))
        .await
        .expect("rec");
    store
        .finish_recording("normal", "completed", now, 12.5, 2048)
        .await
        .expect("finish");
    store
        .finish_recording("private", "completed", now, 3.0, 512)
        .await
        .expect("finish");

    let ids = |r: &crate::common::Reply| -> Vec<String> {
        r.body["recordings"]
            .as_array()
            .unwrap_or_else(|| panic!("list in {}", r.body))
            .iter()
            .map(|x| x["_id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        ids(&t.get("/api/student/recordings", &inside).await),
        vec!["normal"]
    );
    assert!(ids(&t.get("/api/student/recordings", &outside).await).is_empty());
    assert!(ids(&t.get("/api/student/recordings/private", &inside).await).is_empty());
    assert_eq!(
        ids(&t.get("/api/student/recordings/private", &pair).await),
        vec!["private"]
    );
    assert_eq!(ids(&t.get("/api/host/recordings", &host).await).len(), 3);
    let one = t.get("/api/recordings/normal", &inside).await;
    let rec = &one.expect(200)["recording"];
    assert_eq!(
        (rec["duration"].as_f64(), rec["size"].as_i64()),
        (Some(12.5), Some(2048))
    );
    assert_eq!(rec["playback"]["type"], "audio/ogg");
    assert_eq!(rec["playback"]["url"], "/api/recordings/normal/audio");
    t.get("/api/recordings/private", &inside).await.expect(404);
    t.get("/api/recordings/private", &pair).await.expect(200);
    t.get("/api/recordings/running", &inside).await.expect(404);

    // Retention: after three days students no longer see it, and the job deletes it.
    t.clock.advance(Duration::days(3));
    // Tokens last a day: sign in again on the later day.
    let inside = t.login("inside", "inside-password").await;
    let host = t.login("hosta", "hosta-password").await;
    assert!(ids(&t.get("/api/student/recordings", &inside).await).is_empty());
    let job = meet::jobs::by_name("retention").expect("job");
    let rep = job
        .run(&t.app().services, &meet::jobs::Silent, false)
        .await
        .expect("run");
    assert_eq!(
        (rep.examined, rep.changed),
        (2, 2),
        "the running one is kept"
    );
    assert_eq!(
        ids(&t.get("/api/host/recordings", &host).await),
        vec!["running"]
    );
    t.call(Method::DELETE, "/api/recordings/running", Some(&host), None)
        .await
        .expect(409);
}

#[tokio::test]
async fn deleting_a_recording_removes_its_file() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (_, other) = t.host("hostb").await;
    let now = meet::clock::Clock::now(&*t.clock);
    let services = &t.app().services;
    // Its host deletes r1 by the recordings route, an admin r2 by the admin route.
    for (id, route, deleter) in [
        ("r1", "/api/recordings/r1", &host),
        ("r2", "/api/admin/recordings/r2", &t.admin),
    ] {
        let key = format!("recordings/m1/{id}.ogg");
        let src = t.dir.path().join(format!("{id}.ogg"));
        std::fs::write(&src, b"OggS-not-really").expect("write");
        services
            .storage
            .put_file(&key, &src, "audio/ogg")
            .await
            .expect("put");
        assert!(services.storage.exists(&key).await.expect("exists"));
        services
            .store
            .create_recording(NewRecording {
                id: id.into(),
                meeting_id: "m1".into(),
                meeting_topic: "t".into(),
                host_id: host_id.clone(),
                host_name: "hosta".into(),
                is_private: false,
                student_id: None,
                start_time: now,
                expires_at: now + Duration::days(3),
                object_key: key.clone(),
                participant_ids: vec![],
            })
            .await
            .expect("rec");
        services
            .store
            .finish_recording(id, "completed", now, 1.0, 15)
            .await
            .expect("finish");
        t.call(Method::DELETE, route, Some(&other), None)
            .await
            .expect(if deleter == &host { 404 } else { 403 });
        t.call(Method::DELETE, route, Some(deleter), None)
            .await
            .expect(200);
        assert!(
            !services.storage.exists(&key).await.expect("exists"),
            "{id}"
        );
        t.get(&format!("/api/recordings/{id}"), &host)
            .await
            .expect(404);
        t.call(Method::DELETE, route, Some(deleter), None)
            .await
            .expect(404);
    }
}

#[tokio::test]
async fn health_endpoints() {
    let t = TestServer::start().await;
    let r = t.call(Method::GET, "/socket-health", None, None).await;
    let b = r.expect(200);
    assert_eq!(b["status"], "ok");
    for key in ["connections", "activeMeetings", "uptimeSeconds", "version"] {
        assert!(b.get(key).is_some(), "{key}");
    }
    t.call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    let r = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.expect(200)["checks"]["database"], "ok");
    // Loopback may read the metrics.
    let m = t
        .client
        .get(t.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(m.status().as_u16(), 200);
    let text = m.text().await.expect("text");
    assert!(
        text.contains("meet_http_requests_total{class=\"2xx\"}"),
        "{text}"
    );
    assert!(text.contains("meet_hosts 0"));
}

#[tokio::test]
async fn readiness_fails_when_storage_is_gone() {
    let t = TestServer::start().await;
    let rec_dir = t.dir.path().join("recordings");
    std::fs::remove_dir_all(&rec_dir).expect("remove");
    std::fs::write(&rec_dir, b"not a directory").expect("block");
    let r = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((r.status.as_u16(), r.code()), (503, "not_ready"));
    assert_ne!(r.body["checks"]["storage"], "ok");
    assert_eq!(r.body["checks"]["database"], "ok");
}

#[tokio::test]
async fn disabled_or_deleted_students_leave_their_meetings() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let (gone_id, gone) = t.student(&host, "gone").await;
    let (off_id, off) = t.student(&host, "off").await;
    let meeting = t.meeting(&host, "Seats").await;
    t.post(&format!("/api/meetings/{meeting}/join"), &gone, json!({}))
        .await
        .expect(200);
    t.post(&format!("/api/meetings/{meeting}/join"), &off, json!({}))
        .await
        .expect(200);
    let count = || async {
        let r = t.get(&format!("/api/meetings/{meeting}"), &host).await;
        r.expect(200)["meeting"]["participantCount"].as_u64()
    };
    assert_eq!(count().await, Some(2));
    t.call(
        Method::DELETE,
        &format!("/api/host/students/{gone_id}"),
        Some(&host),
        None,
    )
    .await
    .expect(200);
    assert_eq!(count().await, Some(1));
    t.call(
        Method::PUT,
        &format!("/api/host/students/{off_id}"),
        Some(&host),
        Some(json!({"isActive": false})),
    )
    .await
    .expect(200);
    assert_eq!(count().await, Some(0));
    let p = t
        .get(&format!("/api/meetings/participants/{meeting}"), &host)
        .await;
    assert_eq!(p.expect(200)["count"], 0);
}

#[tokio::test]
async fn path_forms_take_the_originals_body_and_leaving_an_ended_meeting_succeeds() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (_, student) = t.student(&host, "stu1").await;
    let meeting = t.meeting(&host, "Paths").await;
    let other = t.meeting(&host, "Other").await;
    let r = t
        .post(
            &format!("/api/meetings/{meeting}/join"),
            &student,
            json!({"meetingId": other}),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (400, "validation_failed"));
    t.post(
        &format!("/api/meetings/{meeting}/join"),
        &student,
        json!({"meetingId": meeting}),
    )
    .await
    .expect(200);
    t.post(
        &format!("/api/meetings/{meeting}/end"),
        &host,
        json!({"meetingId": meeting}),
    )
    .await
    .expect(200);
    // meeting-ended arrives, then the client says goodbye: that is fine.
    t.post(
        &format!("/api/meetings/{meeting}/leave"),
        &student,
        json!({}),
    )
    .await
    .expect(200);
    // Someone who never joined is refused.
    let (_, never) = t.student(&host, "stu2").await;
    t.post(&format!("/api/meetings/{meeting}/leave"), &never, json!({}))
        .await
        .expect(403);

    // Disabling a host ends its open meetings.
    t.post(&format!("/api/meetings/{other}/join"), &student, json!({}))
        .await
        .expect(200);
    t.call(
        Method::PUT,
        &format!("/api/admin/hosts/{host_id}"),
        Some(&t.admin),
        Some(json!({"isActive": false})),
    )
    .await
    .expect(200);
    let r = t.get("/api/admin/meetings?status=ended", &t.admin).await;
    assert_eq!(r.expect(200)["count"], 2);
}

#[tokio::test]
async fn the_join_answer_carries_the_configured_ice_servers() {
    use meet::domain::ice::{IceAuth, IceServer};
    use meet::secret::Secret;
    let t = TestServer::start_with(|c| {
        c.ice_servers = vec![
            IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                auth: IceAuth::None,
            },
            IceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                auth: IceAuth::Rest {
                    secret: Secret::new("north-secret"),
                    ttl: std::time::Duration::from_secs(86_400),
                },
            },
        ];
    })
    .await;
    let (host_id, host) = t.host("ice-host").await;
    let meeting = t.meeting(&host, "ICE").await;
    let r = t
        .post(&format!("/api/meetings/{meeting}/join"), &host, json!({}))
        .await;
    let ice = r.expect(200)["iceServers"].clone();
    assert_eq!(ice[0], json!({"urls": ["stun:stun.example.org:3478"]}));
    // The test clock starts at 2026-03-02T09:00:00Z: credentials expire a day later.
    let username = format!("1772528400:{host_id}");
    assert_eq!(ice[1]["username"], json!(username));
    assert_eq!(
        ice[1]["credential"].as_str().map(str::len),
        Some(28),
        "base64 of an HMAC-SHA1"
    );
    assert_eq!(ice[1]["urls"], json!(["turn:turn.example.org:3478"]));
}

/// Renaming a student moves their login to the new name and keeps their tokens (only a new
/// password or a deactivation revokes them); re-enabling a disabled host lets its students in
/// again, their tokens included, while the host's own old tokens stay dead.
#[tokio::test]
async fn renaming_keeps_tokens_and_a_reenabled_hosts_students_sign_in_again() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("hosta").await;
    let (student_id, student) = t.student(&host, "studa").await;
    let r = t
        .call(
            Method::PUT,
            &format!("/api/host/students/{student_id}"),
            Some(&host),
            Some(json!({"username": "studz"})),
        )
        .await;
    assert_eq!(r.expect(200)["data"]["student"]["username"], "studz");
    let profile = t.get("/api/auth/profile", &student).await;
    assert_eq!(profile.expect(200)["username"], "studz", "{}", profile.body);
    let old_name = t
        .call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({"username": "studa", "password": "studa-password"})),
        )
        .await;
    assert_eq!(old_name.status.as_u16(), 401, "{}", old_name.body);
    let student = t.login("studz", "studa-password").await;

    let hosts_path = format!("/api/admin/hosts/{host_id}");
    let set_host = |active: bool| {
        t.call(
            Method::PUT,
            &hosts_path,
            Some(&t.admin),
            Some(json!({"isActive": active})),
        )
    };
    set_host(false).await.expect(200);
    t.get("/api/auth/profile", &student).await.expect(401);
    set_host(true).await.expect(200);
    // The host's own tokens were revoked and stay so; its students were only shut out while
    // it was disabled (docs/API.md), and their tokens work again, as do new sign-ins.
    t.get("/api/auth/profile", &host).await.expect(401);
    t.get("/api/student/info", &student).await.expect(200);
    let student = t.login("studz", "studa-password").await;
    t.get("/api/student/info", &student).await.expect(200);
    let host = t.login("hosta", "hosta-password").await;
    t.get("/api/host/students", &host).await.expect(200);
}
