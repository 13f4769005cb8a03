//! The original server's clients on meet: its other routes (each the same as the meet route it
//! maps onto, for every role), its request bodies with their extra fields, and its Socket.IO
//! event names, including a student asking for a private talk.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Class, Reply, TestServer};
use crate::recording::completed;
use crate::sio::{AuthForm, Client, Kind};

const QUIET: Duration = Duration::from_millis(400);

/// The roles every alias is tried as.
struct Cast {
    c: Class,
    admin: String,
    /// Another host and their student: no relation to the class.
    stranger_host: String,
    stranger_student: String,
}

impl Cast {
    async fn start() -> Self {
        let c = Class::start(&["ana", "ben"], |_| {}).await;
        let admin = c.server.admin.clone();
        let (_, stranger_host) = c.server.host("stranger").await;
        let (_, stranger_student) = c.server.student(&stranger_host, "zed").await;
        Self {
            c,
            admin,
            stranger_host,
            stranger_student,
        }
    }

    fn t(&self) -> &TestServer {
        &self.c.server
    }

    fn roles(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("admin", self.admin.as_str()),
            ("host", self.c.host.1.as_str()),
            ("stranger host", self.stranger_host.as_str()),
            ("student", self.c.students[0].1.as_str()),
            ("stranger student", self.stranger_student.as_str()),
        ]
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Reply {
        let body = (method != Method::GET).then_some(body);
        self.t().call(method, path, token, body).await
    }
}

/// Status and code, or status and the fields of `keys` on success.
fn outcome(r: &Reply, keys: &[&str]) -> Value {
    if r.status.is_success() {
        let fields: serde_json::Map<String, Value> = keys
            .iter()
            .map(|k| ((*k).to_owned(), r.body[*k].clone()))
            .collect();
        json!({"status": r.status.as_u16(), "fields": fields})
    } else {
        json!({"status": r.status.as_u16(), "code": r.code()})
    }
}

#[tokio::test]
async fn every_read_alias_answers_as_its_meet_route_for_every_role() {
    let cast = Cast::start().await;
    let c = &cast.c;
    // A completed recording of the class, so that the recording lists hold something.
    c.server
        .post(
            &format!("/api/meetings/{}/join", c.meeting),
            &c.host.1,
            json!({}),
        )
        .await
        .expect(200);
    c.server
        .post(
            &format!("/api/meetings/{}/join", c.meeting),
            &c.students[0].1,
            json!({}),
        )
        .await
        .expect(200);
    let rec = crate::recording::start_recording(c).await;
    c.server
        .post(
            &format!("/api/meetings/{}/recording/stop", c.meeting),
            &c.host.1,
            json!({}),
        )
        .await
        .expect(200);
    completed(c, &rec).await;

    let m = &c.meeting;
    let table: Vec<(String, String, &[&str])> = vec![
        (
            "/api/meetings/student/meetings".into(),
            "/api/student/meetings".into(),
            &["meetings", "count"],
        ),
        (
            "/api/meetings/student/recordings".into(),
            "/api/student/recordings".into(),
            &["recordings", "count"],
        ),
        (
            "/api/recordings/student".into(),
            "/api/student/recordings".into(),
            &["recordings", "count"],
        ),
        (
            format!("/api/recordings/meeting/{m}"),
            format!("/api/meetings/{m}"),
            &[],
        ),
    ];
    for (alias, meet, keys) in &table {
        for (role, token) in cast.roles() {
            let a = cast.call(Method::GET, alias, Some(token), json!({})).await;
            let b = cast.call(Method::GET, meet, Some(token), json!({})).await;
            assert_eq!(
                outcome(&a, keys),
                outcome(&b, keys),
                "{alias} against {meet} as {role}: {} / {}",
                a.body,
                b.body
            );
            if a.status.is_success() {
                assert_eq!(
                    a.body["status"], "success",
                    "{alias}: the original's wrapper"
                );
                assert!(a.body["data"].is_object(), "{alias}: {}", a.body);
            }
        }
        let anonymous = cast.call(Method::GET, alias, None, json!({})).await;
        assert_eq!(
            (anonymous.status.as_u16(), anonymous.code()),
            (401, "unauthorized")
        );
    }

    // The meeting's recordings: exactly what each role may hear of it.
    let path = format!("/api/recordings/meeting/{m}");
    let ids = |r: &Reply| -> Vec<String> {
        r.body["recordings"]
            .as_array()
            .map(|v| {
                v.iter()
                    .map(|x| x["_id"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    for (role, token, want) in [
        ("admin", cast.admin.as_str(), vec![rec.clone()]),
        ("host", c.host.1.as_str(), vec![rec.clone()]),
        (
            "student who was there",
            c.students[0].1.as_str(),
            vec![rec.clone()],
        ),
        ("student who was not", c.students[1].1.as_str(), vec![]),
    ] {
        let r = cast.call(Method::GET, &path, Some(token), json!({})).await;
        r.expect(200);
        assert_eq!(ids(&r), want, "{role}");
    }

    // `accessible`: an admin's all, a host's own, a student's normal and private ones.
    for (role, token, meet) in [
        ("admin", cast.admin.as_str(), "/api/admin/recordings"),
        ("host", c.host.1.as_str(), "/api/host/recordings"),
        (
            "student",
            c.students[0].1.as_str(),
            "/api/student/recordings",
        ),
    ] {
        let a = cast
            .call(
                Method::GET,
                "/api/recordings/accessible",
                Some(token),
                json!({}),
            )
            .await;
        let b = cast.call(Method::GET, meet, Some(token), json!({})).await;
        assert_eq!(ids(&a), ids(&b), "accessible as {role}");
    }

    // ICE servers: the join answer's.
    let joined = c
        .server
        .post(&format!("/api/meetings/{m}/join"), &c.host.1, json!({}))
        .await;
    let ice = c.server.get("/api/signal/ice-servers", &c.host.1).await;
    assert_eq!(ice.expect(200)["iceServers"], joined.body["iceServers"]);
    assert_eq!(ice.body["data"]["iceServers"], joined.body["iceServers"]);

    // Admin only: the users and the host counts.
    for (role, token) in cast.roles() {
        for path in ["/api/admin/users", "/api/admin/stats/hosts"] {
            let r = cast.call(Method::GET, path, Some(token), json!({})).await;
            let b = cast
                .call(Method::GET, "/api/admin/stats", Some(token), json!({}))
                .await;
            assert_eq!(r.status, b.status, "{path} as {role}: {}", r.body);
        }
    }
    let users = c.server.get("/api/admin/users", &cast.admin).await;
    let names: Vec<&str> = users.expect(200)["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    for name in ["admin", "teacher", "stranger", "ana", "ben", "zed"] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let stats = c.server.get("/api/admin/stats/hosts", &cast.admin).await;
    assert_eq!(
        (
            stats.expect(200)["totalHosts"].as_u64(),
            stats.body["data"]["stats"]["activeHosts"].as_u64()
        ),
        (Some(2), Some(2))
    );
}

#[tokio::test]
async fn every_write_alias_keeps_meets_rules() {
    let cast = Cast::start().await;
    let c = &cast.c;
    let t = cast.t();
    let (host, ana, ben) = (&c.host.1, &c.students[0].1, &c.students[1].1);
    let ana_id = &c.students[0].0;
    let m = &c.meeting;

    // Creating: `title` stands for `topic`; the original's extra fields are ignored.
    let body = json!({"title": "Algebra", "description": "x", "settings": {"a": 1},
                      "maxParticipants": 3, "participants": []});
    for (role, token) in cast.roles() {
        let a = t
            .post("/api/host/meetings/create", token, body.clone())
            .await;
        let b = t.post("/api/meetings/create", token, body.clone()).await;
        assert_eq!(
            outcome(&a, &[]),
            outcome(&b, &[]),
            "create as {role}: {}",
            a.body
        );
        if a.status == 201 {
            assert_eq!(a.body["meeting"]["topic"], "Algebra");
            assert_eq!(a.body["data"]["meeting"]["topic"], "Algebra");
            assert_eq!(a.body["meeting"]["maxParticipants"], 50, "never honoured");
        }
    }
    let r = t
        .post(
            "/api/host/meetings/create",
            host,
            json!({"description": "no topic"}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["errors"][0]["field"].as_str()),
        (400, Some("topic"))
    );

    // Activating is the host's join.
    for (role, token) in cast.roles() {
        let r = t
            .post(&format!("/api/meetings/activate/{m}"), token, json!({}))
            .await;
        if role == "host" {
            assert_eq!(r.expect(200)["meeting"]["status"], "active");
            assert_eq!(r.body["data"]["meeting"]["status"], "active");
        } else {
            assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"), "{role}");
        }
    }
    let r = t
        .post("/api/meetings/activate/nosuchmeeting", host, json!({}))
        .await;
    assert_eq!(r.status, 404);

    // Joining with the original's fields; leaving by body.
    let join = json!({"meetingId": m, "participantName": "Ana", "audioEnabled": true,
                      "videoEnabled": false});
    t.post("/api/meetings/join", ana, join.clone())
        .await
        .expect(200);
    t.post("/api/meetings/join", ben, join).await.expect(200);
    let r = t
        .post("/api/meetings/leave", ben, json!({"meetingId": m}))
        .await;
    assert_eq!(r.expect(200)["status"], "success");
    for (role, token) in [
        ("stranger student", cast.stranger_student.as_str()),
        ("admin", cast.admin.as_str()),
    ] {
        let a = t
            .post("/api/meetings/leave", token, json!({"meetingId": m}))
            .await;
        let b = t
            .post(&format!("/api/meetings/{m}/leave"), token, json!({}))
            .await;
        assert_eq!(outcome(&a, &[]), outcome(&b, &[]), "leave as {role}");
    }
    let r = t.post("/api/meetings/leave", ana, json!({})).await;
    assert_eq!(r.body["errors"][0]["field"], "meetingId");

    // Private talk by the original's routes and names: the host only.
    for (role, token) in cast.roles() {
        let a = t
            .post(
                "/api/meetings/private/start",
                token,
                json!({"meetingId": m, "studentId": ana_id}),
            )
            .await;
        let b = t
            .post(
                "/api/meetings/switch-mode",
                token,
                json!({"meetingId": m, "mode": "private", "participantId": ana_id}),
            )
            .await;
        assert_eq!(
            outcome(&a, &[]),
            outcome(&b, &[]),
            "private/start as {role}"
        );
    }
    let r = t
        .post(
            "/api/meetings/private/start",
            host,
            json!({"meetingId": m, "participantId": ana_id}),
        )
        .await;
    assert_eq!(
        r.expect(200)["meeting"]["privateParticipantId"],
        json!(ana_id)
    );
    let r = t
        .post("/api/meetings/private/end", host, json!({"meetingId": m}))
        .await;
    assert_eq!(r.expect(200)["meeting"]["mode"], "broadcast");
    // switch-mode by the original's field names, with its ignored extras.
    for field in ["studentId", "targetUserId"] {
        let r = t
            .post(
                "/api/meetings/switch-mode",
                host,
                json!({"meetingId": m, "mode": "private", field: ana_id,
                       "duration": 60, "reason": "question"}),
            )
            .await;
        assert_eq!(
            r.expect(200)["meeting"]["privateParticipantId"],
            json!(ana_id),
            "{field}"
        );
    }
    t.post("/api/meetings/private/end", host, json!({"meetingId": m}))
        .await
        .expect(200);

    // Recording by the original's routes.
    for (role, token) in cast.roles() {
        if role == "host" {
            continue;
        }
        let a = t
            .post("/api/recordings/start", token, json!({"meetingId": m}))
            .await;
        let b = t
            .post(
                &format!("/api/meetings/{m}/recording/start"),
                token,
                json!({}),
            )
            .await;
        assert_eq!(
            outcome(&a, &[]),
            outcome(&b, &[]),
            "recordings/start as {role}"
        );
    }
    let r = t
        .post("/api/recordings/start", host, json!({"meetingId": m}))
        .await;
    let rec = r.expect(201)["recording"]["_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(r.body["data"]["recordingId"], json!(rec));
    let r = t
        .post("/api/host/recordings/start", host, json!({"meetingId": m}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "already_recording"));
    for (role, token) in [
        ("student", ana.as_str()),
        ("stranger host", cast.stranger_host.as_str()),
    ] {
        let r = t
            .post(&format!("/api/recordings/end/{rec}"), token, json!({}))
            .await;
        assert!(
            matches!(r.status.as_u16(), 403 | 404),
            "{role} may not stop it: {}",
            r.body
        );
    }
    let r = t
        .post(&format!("/api/recordings/end/{rec}"), host, json!({}))
        .await;
    assert_eq!(r.expect(200)["recording"]["status"], "processing");
    let r = t
        .post(&format!("/api/recordings/end/{rec}"), host, json!({}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "not_recording"));
    let r = t
        .post("/api/host/recordings/stop", host, json!({"meetingId": m}))
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (409, "not_recording"));
    let r = t
        .post("/api/host/recordings/start", host, json!({"meetingId": m}))
        .await;
    let second = r.expect(201)["recording"]["_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = t
        .post(
            "/api/host/recordings/stop",
            host,
            json!({"recordingId": second}),
        )
        .await;
    assert_eq!(r.expect(200)["recording"]["_id"], json!(second));
    let r = t
        .post("/api/recordings/stream/whatever", host, json!({}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.code()),
        (410, "server_side_recording")
    );

    // A playback link: no token needed, the same bytes, only for those who may hear it.
    completed(c, &rec).await;
    let r = t.get(&format!("/api/recordings/url/{rec}"), ana).await;
    let url = r.expect(200)["url"].as_str().expect("url").to_owned();
    assert_eq!(r.body["expiresIn"], 3600);
    assert_eq!(r.body["data"]["recording"]["signedUrl"], json!(url));
    assert!(url.starts_with(&t.base), "{url}");
    let linked = t.client.get(&url).send().await.expect("get");
    assert_eq!(linked.status(), 200);
    assert_eq!(linked.headers()["content-type"], "audio/ogg");
    let linked = linked.bytes().await.expect("bytes");
    let direct = t
        .client
        .get(t.url(&format!("/api/recordings/{rec}/audio")))
        .bearer_auth(host)
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(linked, direct);
    let forged = url.replace("signature=", "signature=x");
    let r = TestServer::reply(t.client.get(&forged).send().await.expect("get")).await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let other = url.replace(&rec, &second);
    let r = TestServer::reply(t.client.get(&other).send().await.expect("get")).await;
    assert_eq!(r.status, 403, "a link plays its own recording only");
    for (role, token) in [
        ("ben, who was not there", ben.as_str()),
        ("stranger", cast.stranger_student.as_str()),
    ] {
        let r = t.get(&format!("/api/recordings/url/{rec}"), token).await;
        assert_eq!((r.status.as_u16(), r.code()), (404, "not_found"), "{role}");
    }

    // Passwords by the original's routes: each for its own role.
    let body = |old: &str, new: &str| json!({"currentPassword": old, "newPassword": new});
    let r = t
        .call(
            Method::PUT,
            "/api/host/update-password",
            Some(ana),
            Some(body("ana-password", "new-pass-1")),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (403, "forbidden"));
    let r = t
        .call(
            Method::PUT,
            "/api/host/update-password",
            Some(host),
            Some(body("teacher-password", "new-pass-1")),
        )
        .await;
    assert!(r.expect(200)["token"].is_string());
    let r = t
        .call(
            Method::POST,
            "/api/student/change-password",
            Some(&c.host.1),
            Some(body("x", "new-pass-1")),
        )
        .await;
    assert_eq!(
        r.status, 401,
        "the old token stopped working with the change"
    );
    let r = t
        .call(
            Method::POST,
            "/api/student/change-password",
            Some(ana),
            Some(body("wrong", "new-pass-1")),
        )
        .await;
    assert_eq!((r.status.as_u16(), r.code()), (401, "invalid_credentials"));
    let r = t
        .call(
            Method::PUT,
            "/api/student/change-password",
            Some(ana),
            Some(body("ana-password", "new-pass-2")),
        )
        .await;
    assert_eq!(r.expect(200)["status"], "success");
    t.login("ana", "new-pass-2").await;
}

#[tokio::test]
async fn fields_a_caller_may_not_set_are_ignored() {
    let t = TestServer::start().await;
    let (host_id, host) = t.host("teacher").await;
    let r = t
        .post(
            "/api/host/students",
            &host,
            json!({"username": "sneaky", "password": "long-enough", "role": "admin",
                   "hostId": "someone-else", "isActive": false, "email": "s@example.com"}),
        )
        .await;
    let s = &r.expect(201)["data"]["student"];
    assert_eq!(
        (
            s["role"].as_str(),
            s["hostId"].as_str(),
            s["isActive"].as_bool()
        ),
        (Some("student"), Some(host_id.as_str()), Some(true))
    );
    let token = t.login("sneaky", "long-enough").await;
    let r = t.get("/api/admin/hosts", &token).await;
    assert_eq!(r.status, 403, "still a student");
    // A wrong type is still refused, naming the field.
    let r = t
        .post(
            "/api/host/students",
            &host,
            json!({"username": "other", "password": 12345678}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.body["errors"][0]["field"].as_str()),
        (400, Some("password"))
    );
}

async fn joined(c: &Class, token: &str) -> Client {
    let mut client = Client::spawn(Kind::Node).await;
    client
        .connect(&c.server.base, AuthForm::Base64, token, Some(&c.meeting))
        .await
        .expect("connects");
    client
}

fn pcm() -> Value {
    json!({"$f32": vec![0.25; 960]})
}

#[tokio::test]
async fn the_originals_socket_events_and_a_private_talk_request() {
    let c = Class::start(&["ana", "ben", "cleo"], |_| {}).await;
    let (ana_id, ben_id, cleo_id) = (&c.students[0].0, &c.students[1].0, &c.students[2].0);
    let mut host = joined(&c, &c.host.1).await;
    let mut ana = joined(&c, &c.students[0].1).await;
    let mut ben = joined(&c, &c.students[1].1).await;
    let mut cleo = joined(&c, &c.students[2].1).await;

    // A student can do none of the host's events, by any of their names: switch modes,
    // answer a request, mute.
    for (event, body) in [
        (
            "switch-mode",
            json!({"mode": "private", "targetUserId": ana_id}),
        ),
        ("enable-private-mode", json!({"studentId": ana_id})),
        ("disable-private-mode", json!({})),
        ("end-private-chat", json!({"studentId": ana_id})),
        ("accept-private-conversation", json!({"studentId": ana_id})),
        ("accept-private-chat", json!({"studentId": ana_id})),
        ("decline-private-conversation", json!({"studentId": ana_id})),
        ("mute-participant", json!({"userId": ben_id})),
        ("unmute-participant", json!({"participantId": ben_id})),
    ] {
        let ack = ana.call(event, body).await;
        assert_eq!(
            (ack["ok"].as_bool(), ack["code"].as_str()),
            (Some(false), Some("forbidden")),
            "{event}: {ack}"
        );
    }
    cleo.assert_no("mode-changed", QUIET).await;
    ben.assert_no("participant-muted", QUIET).await;

    // The original's audio names.
    let ack = ana
        .call("audio-status-change", json!({"isActive": false}))
        .await;
    assert_eq!(ack["ok"], true);
    let st = host.event("participant-audio-status").await;
    assert_eq!(
        (
            st["userId"].as_str(),
            st["muted"].as_bool(),
            st["isActive"].as_bool()
        ),
        (Some(ana_id.as_str()), Some(true), Some(false))
    );
    let ack = host
        .call(
            "audio-stream-data",
            json!({"audioData": pcm(), "format": "f32", "seq": 1}),
        )
        .await;
    assert_eq!(ack["delivered"], 3, "{ack}");
    for client in [&mut ana, &mut ben, &mut cleo] {
        assert_eq!(client.event("audio-broadcast").await["seq"], 1);
    }
    let ack = ana
        .call("audio-stream", json!({"audioData": pcm(), "format": "mp3"}))
        .await;
    assert_eq!(ack["code"], "validation_failed");
    let err = ana.event("stream-error").await;
    assert_eq!(err["code"], "validation_failed", "{err}");

    // The original's mute payload names the student `participantId`.
    let ack = host
        .call(
            "mute-participant",
            json!({"meetingId": c.meeting, "participantId": cleo_id}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        cleo.event("participant-muted").await["userId"],
        json!(cleo_id)
    );
    let ack = host
        .call("unmute-participant", json!({"participantId": cleo_id}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(
        cleo.event("participant-unmuted").await["userId"],
        json!(cleo_id)
    );

    // Ben asks; only the host hears of it; he cannot ask twice; the host declines.
    let ack = ben
        .call(
            "request-private-conversation",
            json!({"meetingId": c.meeting, "hostId": "ignored"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let req = host.event("private-conversation-requested").await;
    assert_eq!(
        (
            req["studentId"].as_str(),
            req["username"].as_str(),
            req["meetingId"].as_str()
        ),
        (Some(ben_id.as_str()), Some("ben"), Some(c.meeting.as_str()))
    );
    assert!(req["at"].is_string());
    ana.assert_no("private-conversation-requested", QUIET).await;
    cleo.assert_no("private-conversation-requested", Duration::ZERO)
        .await;
    let ack = ben.call("request-private-conversation", json!({})).await;
    assert_eq!(ack["code"], "request_pending");
    let requested = |p: &Value, id: &str| {
        p["participants"]
            .as_array()
            .and_then(|v| v.iter().find(|x| x["_id"] == id).cloned())
            .map(|x| x["requestedPrivate"].clone())
    };
    let parts = c
        .server
        .get(
            &format!("/api/meetings/participants/{}", c.meeting),
            &c.host.1,
        )
        .await;
    assert_eq!(requested(parts.expect(200), ben_id), Some(json!(true)));
    assert_eq!(requested(&parts.body, ana_id), Some(json!(false)));
    let ack = host
        .call("decline-private-conversation", json!({"studentId": ben_id}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let declined = ben.event("private-conversation-declined").await;
    assert_eq!(declined["studentId"], json!(ben_id));
    let parts = c
        .server
        .get(
            &format!("/api/meetings/participants/{}", c.meeting),
            &c.host.1,
        )
        .await;
    assert_eq!(requested(&parts.body, ben_id), Some(json!(false)));
    let ack = ben.call("request-private-conversation", json!({})).await;
    assert_eq!(ack["code"], "rate_limited", "asking again at once");
    let ack = host
        .call("decline-private-conversation", json!({"studentId": ben_id}))
        .await;
    assert_eq!(ack["code"], "not_found", "nothing waits");

    // Ana asks over REST (the original's route, with its extra `hostId`); the host accepts.
    let r = c
        .server
        .post(
            "/api/meetings/request-private",
            &c.students[0].1,
            json!({"meetingId": c.meeting, "hostId": "x"}),
        )
        .await;
    assert_eq!(r.expect(200)["status"], "success");
    assert_eq!(
        host.event("private-conversation-requested").await["studentId"],
        json!(ana_id)
    );
    let ack = host
        .call("accept-private-conversation", json!({"studentId": ana_id}))
        .await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["mode"].as_str()),
        (Some(true), Some("private")),
        "{ack}"
    );
    for client in [&mut host, &mut ana, &mut ben, &mut cleo] {
        assert_eq!(
            client.event("mode-changed").await["participantId"],
            json!(ana_id)
        );
    }
    for client in [&mut host, &mut ana] {
        let started = client.event("private-conversation-started").await;
        assert_eq!(
            (started["studentId"].as_str(), started["hostId"].as_str()),
            (Some(ana_id.as_str()), Some(c.host.0.as_str()))
        );
    }
    cleo.assert_no("private-conversation-started", QUIET).await;
    // The private talk: ana hears the host, cleo and ben hear nothing.
    let ack = host
        .call(
            "broadcast-audio",
            json!({"audioData": pcm(), "format": "f32", "seq": 2}),
        )
        .await;
    assert_eq!(ack["delivered"], 1, "{ack}");
    assert_eq!(ana.event("audio-broadcast").await["seq"], 2);
    cleo.assert_no("audio-broadcast", QUIET).await;
    ben.assert_no("audio-broadcast", Duration::ZERO).await;
    let ack = host.call("private-stream-end", json!({})).await;
    assert_eq!(ack["targetUserId"], json!(ana_id), "{ack}");
    assert_eq!(
        ana.event("private-stream-end").await["userId"],
        json!(c.host.0)
    );
    cleo.assert_no("private-stream-end", QUIET).await;
    // Asking while a private talk runs is refused; the host ends it with no payload at all.
    let ack = cleo.call("request-private-conversation", json!({})).await;
    assert_eq!(ack["code"], "private_in_progress");
    host.emit("disable-private-mode", Value::Null).await;
    assert_eq!(cleo.event("mode-changed").await["mode"], "broadcast");

    // A request is dropped when its student leaves.
    let ack = cleo.call("request-private-chat", json!({})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    host.event("private-conversation-requested").await;
    let ack = cleo.call("leave-meeting", json!({})).await;
    assert_eq!(ack["ok"], true);
    host.event("participant-left").await;
    let parts = c
        .server
        .get(
            &format!("/api/meetings/participants/{}", c.meeting),
            &c.host.1,
        )
        .await;
    assert_eq!(requested(parts.expect(200), cleo_id), Some(json!(false)));
    let ack = host
        .call("accept-private-conversation", json!({"studentId": cleo_id}))
        .await;
    assert_eq!(ack["code"], "validation_failed", "cleo is gone: {ack}");
}
