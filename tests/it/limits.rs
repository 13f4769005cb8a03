//! Each limit at its boundary, with the settable clock.

use chrono::Duration;
use reqwest::Method;
use serde_json::json;

use crate::common::TestServer;

#[tokio::test]
async fn the_25th_meeting_of_a_day_passes_and_the_26th_is_refused() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let (_, other) = t.host("hostb").await;
    for i in 0..25 {
        t.meeting(&host, &format!("m{i}")).await;
    }
    let r = t
        .post(
            "/api/meetings/create",
            &host,
            json!({"topic": "one too many"}),
        )
        .await;
    r.expect(429);
    assert_eq!(r.code(), "daily_meeting_limit");
    assert_eq!(r.body["message"], "Daily meeting limit (25) reached");
    // Another host is not affected; the next calendar day starts afresh.
    t.meeting(&other, "fine").await;
    t.clock.advance(Duration::hours(15)); // 09:00 → 00:00 the next day (UTC)
    t.meeting(&host, "tomorrow").await;
}

#[tokio::test]
async fn the_daily_limit_follows_the_configured_time_zone() {
    // 09:00 UTC is 18:00 in Tokyo: the Tokyo day ends 6 hours later, not 15.
    let t = TestServer::start_with(|c| {
        c.limits.daily_limit = 2;
        c.limits.time_zone = chrono_tz::Asia::Tokyo;
    })
    .await;
    let (_, host) = t.host("hosta").await;
    t.meeting(&host, "a").await;
    t.meeting(&host, "b").await;
    t.post("/api/meetings/create", &host, json!({"topic": "c"}))
        .await
        .expect(429);
    t.clock.advance(Duration::hours(6));
    t.meeting(&host, "c").await;
}

#[tokio::test]
async fn the_50th_person_joins_and_the_51st_is_refused() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let meeting = t.meeting(&host, "Full house").await;
    t.post(&format!("/api/meetings/{meeting}/join"), &host, json!({}))
        .await
        .expect(200);
    let mut students = Vec::new();
    for i in 0..50 {
        students.push(t.student(&host, &format!("s{i:02}")).await.1);
    }
    for s in &students[..49] {
        t.post("/api/meetings/join", s, json!({"meetingId": meeting}))
            .await
            .expect(200);
    }
    // Rejoining is not counted twice.
    let again = t
        .post(
            "/api/meetings/join",
            &students[0],
            json!({"meetingId": meeting}),
        )
        .await;
    assert_eq!(again.expect(200)["meeting"]["participantCount"], 50);
    let r = t
        .post(
            "/api/meetings/join",
            &students[49],
            json!({"meetingId": meeting}),
        )
        .await;
    r.expect(409);
    assert_eq!(r.code(), "meeting_full");
    assert_eq!(r.body["message"], "Meeting participant limit (50) reached");
    // Someone leaves; now the 50th student fits.
    t.post(
        &format!("/api/meetings/{meeting}/leave"),
        &students[0],
        json!({}),
    )
    .await
    .expect(200);
    t.post(
        "/api/meetings/join",
        &students[49],
        json!({"meetingId": meeting}),
    )
    .await
    .expect(200);
    let p = t
        .get(&format!("/api/meetings/participants/{meeting}"), &host)
        .await;
    assert_eq!(p.expect(200)["count"], 50);
}

#[tokio::test]
async fn concurrent_joins_never_pass_the_limit() {
    let t = TestServer::start_with(|c| c.limits.max_participants = 5).await;
    let (_, host) = t.host("hosta").await;
    let meeting = t.meeting(&host, "Race").await;
    let mut students = Vec::new();
    for i in 0..12 {
        students.push(t.student(&host, &format!("r{i:02}")).await.1);
    }
    let joins = students
        .iter()
        .map(|s| t.post("/api/meetings/join", s, json!({"meetingId": meeting})));
    let results = futures_util::future::join_all(joins).await;
    let ok = results.iter().filter(|r| r.status.as_u16() == 200).count();
    let full = results
        .iter()
        .filter(|r| r.code() == "meeting_full")
        .count();
    assert_eq!((ok, full), (5, 7));
}

#[tokio::test]
async fn a_meeting_past_five_hours_refuses_joins_and_the_job_ends_it() {
    let t = TestServer::start().await;
    let (_, host) = t.host("hosta").await;
    let (_, student) = t.student(&host, "studa").await;
    let (_, late) = t.student(&host, "studb").await;
    let meeting = t.meeting(&host, "Long").await;
    t.post(&format!("/api/meetings/{meeting}/join"), &host, json!({}))
        .await
        .expect(200);
    t.clock.advance(Duration::seconds(18_000 - 1));
    t.post(
        &format!("/api/meetings/{meeting}/join"),
        &student,
        json!({}),
    )
    .await
    .expect(200);
    t.clock.advance(Duration::seconds(1));
    let r = t
        .post(&format!("/api/meetings/{meeting}/join"), &late, json!({}))
        .await;
    r.expect(409);
    assert_eq!(r.code(), "meeting_ended");
    let m = t.get(&format!("/api/meetings/{meeting}"), &host).await;
    assert_eq!(m.expect(200)["meeting"]["status"], "ended");
    assert_eq!(m.body["meeting"]["endReason"], "duration_exceeded");

    // Another long meeting that nobody joins late: the cleanup job ends it.
    let other = t.meeting(&host, "Longer").await;
    t.post(&format!("/api/meetings/{other}/join"), &host, json!({}))
        .await
        .expect(200);
    t.clock.advance(Duration::hours(5));
    let job = meet::jobs::by_name("cleanup").expect("job");
    let report = job
        .run(&t.app().services, &meet::jobs::Silent, false)
        .await
        .expect("runs");
    assert_eq!((report.examined, report.changed), (1, 1));
    let m = t.get(&format!("/api/meetings/{other}"), &host).await;
    assert_eq!(m.expect(200)["meeting"]["endReason"], "duration_exceeded");
}

#[tokio::test]
async fn limits_are_settings() {
    let t = TestServer::start_with(|c| {
        c.limits.max_participants = 2;
        c.limits.daily_limit = 1;
        c.limits.max_duration_seconds = 60;
    })
    .await;
    let (_, host) = t.host("hosta").await;
    let (_, s1) = t.student(&host, "stu1").await;
    let (_, s2) = t.student(&host, "stu2").await;
    let meeting = t.meeting(&host, "small").await;
    let r = t
        .post("/api/meetings/create", &host, json!({"topic": "second"}))
        .await;
    assert_eq!(r.body["message"], "Daily meeting limit (1) reached");
    let m = t
        .post(&format!("/api/meetings/{meeting}/join"), &host, json!({}))
        .await;
    assert_eq!(m.expect(200)["meeting"]["maxParticipants"], 2);
    t.post(&format!("/api/meetings/{meeting}/join"), &s1, json!({}))
        .await
        .expect(200);
    let r = t
        .post(&format!("/api/meetings/{meeting}/join"), &s2, json!({}))
        .await;
    assert_eq!(r.body["message"], "Meeting participant limit (2) reached");
    t.clock.advance(Duration::seconds(60));
    let r = t
        .call(
            Method::POST,
            &format!("/api/meetings/{meeting}/join"),
            Some(&s1),
            None,
        )
        .await;
    assert_eq!(r.code(), "meeting_ended");
}
