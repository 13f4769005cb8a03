//! Socket.IO at `/ws` with real clients (socket.io-client on Node, python-socketio): the three
//! auth forms, refusals, presence, the audio relay under private mode and mutes, the end of a
//! meeting, bad audio and floods.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Class, TestServer};
use crate::sio::{ALL, AuthForm, Client, Kind, bin, to_bin};

const QUIET: Duration = Duration::from_millis(400);

/// A host, three students (ana, ben, cleo) and a meeting.
async fn class(tweak: impl FnOnce(&mut meet::config::Config)) -> Class {
    Class::start(&["ana", "ben", "cleo"], tweak).await
}

impl Class {
    async fn join(&self, kind: Kind, token: &str) -> Client {
        let mut c = Client::spawn(kind).await;
        c.connect(
            &self.server.base,
            AuthForm::Object,
            token,
            Some(&self.meeting),
        )
        .await
        .expect("connects");
        c
    }

    /// `POST /api/meetings/{id}/{action}` (`join`, `leave`) as `token`, which must succeed.
    async fn rest(&self, action: &str, token: &str) {
        self.server
            .post(
                &format!("/api/meetings/{}/{action}", self.meeting),
                token,
                json!({}),
            )
            .await
            .expect(200);
    }
}

/// Float32 → Int16 as API.md specifies it, written out independently of the server's code:
/// clip to ±1, negatives × 32768, positives × 32767, truncate; NaN is 0.
fn expected_s16(samples: &[f64]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&x| {
            let v: i16 = if x.is_nan() {
                0
            } else if x >= 1.0 {
                32_767
            } else if x <= -1.0 {
                -32_768
            } else if x < 0.0 {
                (x * 32_768.0).trunc() as i16
            } else {
                (x * 32_767.0).trunc() as i16
            };
            v.to_le_bytes()
        })
        .collect()
}

/// A test frame: the clipping points, values past them, ordinary samples and NaN.
fn frame() -> (Value, Vec<u8>) {
    let mut samples = vec![
        0.0, 1.0, -1.0, 1.5, -2.0, 0.5, -0.5, 0.25, -0.000_01, 0.999_97,
    ];
    samples.extend((0..470).map(|i| (f64::from(i) * 0.37).sin() * 0.8));
    // Exactly representable in f32, so both sides see the same values.
    let samples: Vec<f64> = samples.iter().map(|&x| f64::from(x as f32)).collect();
    let mut json_samples: Vec<Value> = samples.iter().map(|&x| json!(x)).collect();
    json_samples.push(json!("NaN"));
    let mut with_nan = samples.clone();
    with_nan.push(f64::NAN);
    (json!({"$f32": json_samples}), expected_s16(&with_nan))
}

#[tokio::test]
async fn every_client_connects_in_every_auth_form() {
    let c = class(|_| {}).await;
    let (student_id, student_token) = &c.students[0];
    for kind in ALL {
        let mut client = Client::spawn(kind).await;
        for form in [AuthForm::Object, AuthForm::Query, AuthForm::Base64] {
            let ack = client
                .connect(&c.server.base, form, student_token, Some(&c.meeting))
                .await
                .unwrap_or_else(|e| panic!("{kind:?} {form:?}: {e}"));
            assert_eq!(ack["status"], "connected", "{kind:?} {form:?}: {ack}");
            assert_eq!(
                ack["userId"],
                json!(student_id),
                "identity from the token only"
            );
            assert_eq!(ack["role"], "student", "the base64 form's role is ignored");
            assert_eq!(ack["meetingId"], json!(c.meeting));
            assert_eq!(ack["mode"], "broadcast");
            assert_eq!(ack["socketId"], json!(client.sid));
            let people = ack["participants"].as_array().expect("participants");
            assert!(
                people
                    .iter()
                    .any(|p| p["_id"] == json!(student_id) || p["userId"] == json!(student_id)),
                "{ack}"
            );
            client.disconnect().await;
            client.disconnected().await;
        }
        if kind == Kind::Node {
            // Default transports: long-polling first, then the upgrade to a websocket.
            client
                .connect(
                    &c.server.base,
                    AuthForm::Object,
                    student_token,
                    Some(&c.meeting),
                )
                .await
                .expect("connects");
            let up = client
                .wait_for(|v| v["ev"] == "upgrade", crate::sio::WAIT)
                .await
                .expect("upgraded");
            assert_eq!(up["transport"], "websocket");
            let answer = client.call("audio-status", json!({"muted": true})).await;
            assert_eq!(answer["ok"], true, "events flow after the upgrade");
        }
    }
    // Connected without a meeting: authenticated, then `join-meeting`.
    let mut client = Client::spawn(Kind::NodeWebsocket).await;
    let ack = client
        .connect(&c.server.base, AuthForm::Object, &c.host.1, None)
        .await
        .expect("connects");
    assert_eq!(ack["meetingId"], Value::Null);
    let joined = client
        .call("join-meeting", json!({"meetingId": c.meeting}))
        .await;
    assert_eq!(joined["ok"], true, "{joined}");
    assert_eq!(joined["meetingId"], json!(c.meeting));
}

#[tokio::test]
async fn refused_connections_get_authentication_failed() {
    let c = class(|cfg| cfg.limits.max_participants = 2).await;
    let server = &c.server;
    let (_, other_token) = server.host("other-teacher").await;
    let other_meeting = server.meeting(&other_token, "Elsewhere").await;
    let (_, ana) = &c.students[0];
    let (_, ben) = &c.students[1];
    let (_, cleo) = &c.students[2];

    // A revoked token: the student's password changed after it was issued.
    let revoked = server.login("ben", "ben-password").await;
    let r = server
        .call(
            reqwest::Method::PUT,
            "/api/auth/change-password",
            Some(&revoked),
            Some(json!({"currentPassword": "ben-password", "newPassword": "ben-password-2"})),
        )
        .await;
    r.expect(200);
    let ben_new = r.body["token"].as_str().expect("token").to_owned();
    let _ = ben;

    // The meeting is full once the host and ana are in (limit 2).
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let mut ana_client = c.join(Kind::Python, ana).await;

    let ended = server.meeting(&c.host.1, "Already over").await;
    server
        .post(&format!("/api/meetings/{ended}/end"), &c.host.1, json!({}))
        .await
        .expect(200);

    let forged = {
        let mut parts: Vec<String> = cleo.split('.').map(str::to_owned).collect();
        parts[2] = parts[2].chars().rev().collect();
        parts.join(".")
    };
    let cases: Vec<(&str, String, String)> = vec![
        ("forged signature", forged, c.meeting.clone()),
        ("garbage token", "not-a-jwt".into(), c.meeting.clone()),
        (
            "revoked by a password change",
            revoked.clone(),
            c.meeting.clone(),
        ),
        (
            "another host's meeting",
            ben_new.clone(),
            other_meeting.clone(),
        ),
        ("an ended meeting", c.host.1.clone(), ended.clone()),
        ("a full meeting", cleo.clone(), c.meeting.clone()),
        ("an unknown meeting", cleo.clone(), "no-such-meeting".into()),
    ];
    let cases: Vec<(&str, String, String)> = cases
        .into_iter()
        .chain(
            crate::common::forged_tokens(&c.host.1, &server.jwt_secret())
                .into_iter()
                .map(|(why, token)| (why, token, c.meeting.clone())),
        )
        .collect();
    for kind in [Kind::Node, Kind::Python] {
        let mut client = Client::spawn(kind).await;
        for (why, token, meeting) in &cases {
            let e = client
                .connect(&server.base, AuthForm::Object, token, Some(meeting))
                .await
                .expect_err(why);
            assert_eq!(e, "Authentication failed", "{kind:?}: {why}");
        }
        let e = client
            .connect_raw(&server.base, None, None)
            .await
            .expect_err("no credentials");
        assert_eq!(e, "Authentication failed");
        let e = client
            .connect_raw(&server.base, None, Some(json!({"auth": "%%%not-base64"})))
            .await
            .expect_err("bad base64");
        assert_eq!(e, "Authentication failed");
    }
    // Expired: move the clock past the token lifetime.
    server.clock.advance(chrono::Duration::days(2));
    let mut client = Client::spawn(Kind::NodeWebsocket).await;
    let e = client
        .connect(&server.base, AuthForm::Query, cleo, Some(&c.meeting))
        .await
        .expect_err("expired");
    assert_eq!(e, "Authentication failed");
    host.disconnect().await;
    ana_client.disconnect().await;
}

/// Sends one frame from `from` and returns the acknowledgement.
async fn speak(from: &mut Client, seq: u64, audio: &Value) -> Value {
    from.call(
        "broadcast-audio",
        json!({"audioData": audio, "format": "f32", "sampleRate": 48_000, "seq": seq}),
    )
    .await
}

/// Asserts that exactly `hearers` get the frame `seq` from `speaker` (byte-exact) and the
/// others (`deaf`) get nothing.
async fn heard(
    hearers: &mut [&mut Client],
    deaf: &mut [&mut Client],
    speaker: &str,
    seq: u64,
    want: &[u8],
) {
    for c in hearers.iter_mut() {
        let got = c.event("audio-broadcast").await;
        assert_eq!(got["userId"], json!(speaker), "{:?}", c.kind);
        assert_eq!(got["seq"], json!(seq));
        assert_eq!(got["sampleRate"], 48_000);
        assert_eq!(got["channels"], 1);
        assert!(got["timestamp"].is_string());
        assert_eq!(
            bin(&got["audioData"]),
            want,
            "{:?}: Int16 LE, byte-exact",
            c.kind
        );
    }
    for c in deaf.iter_mut() {
        c.assert_no("audio-broadcast", QUIET).await;
    }
}

#[tokio::test]
async fn relay_private_mode_mutes_and_the_end_of_a_meeting() {
    let c = class(|_| {}).await;
    let (ana_id, ana_token) = c.students[0].clone();
    let (ben_id, ben_token) = c.students[1].clone();
    let (cleo_id, cleo_token) = c.students[2].clone();
    let host_id = c.host.0.clone();
    let mut host = c.join(Kind::Node, &c.host.1).await;
    let mut ana = c.join(Kind::NodeWebsocket, &ana_token).await;
    let mut ben = c.join(Kind::Python, &ben_token).await;
    let mut cleo = c.join(Kind::Node, &cleo_token).await;
    let joined = host.event("participant-joined").await;
    assert!(
        joined["username"].is_string() && joined["role"].is_string(),
        "{joined}"
    );
    let (audio, want) = frame();

    // Broadcast: the host is heard by the three, never by itself.
    let ack = speak(&mut host, 1, &audio).await;
    assert_eq!(ack, json!({"ok": true, "delivered": 3}));
    heard(
        &mut [&mut ana, &mut ben, &mut cleo],
        &mut [&mut host],
        &host_id,
        1,
        &want,
    )
    .await;
    // A student is heard by everyone else, Int16 input passes through unchanged.
    let s16: Vec<u8> = (0..960u16)
        .flat_map(|i| (i as i16 * 7).to_le_bytes())
        .collect();
    let ack = ben
        .call(
            "audio-stream",
            json!({"audioData": to_bin(&s16), "format": "s16", "seq": 2}),
        )
        .await;
    assert_eq!(ack["delivered"], 3, "{ack}");
    heard(
        &mut [&mut host, &mut ana, &mut cleo],
        &mut [&mut ben],
        &ben_id,
        2,
        &s16,
    )
    .await;

    // Private mode with ana: host ↔ ana only, both ways; ben and cleo hear and are heard by no one.
    c.server
        .post(
            "/api/meetings/switch-mode",
            &c.host.1,
            json!({"meetingId": c.meeting, "mode": "private", "participantId": ana_id}),
        )
        .await
        .expect(200);
    for client in [&mut host, &mut ana, &mut ben, &mut cleo] {
        let m = client.event("mode-changed").await;
        assert_eq!(m["mode"], "private");
        assert_eq!(m["isPrivate"], true);
        assert_eq!(m["participantId"], json!(ana_id));
        assert_eq!(m["hostId"], json!(host_id));
    }
    assert_eq!(speak(&mut host, 3, &audio).await["delivered"], 1);
    heard(
        &mut [&mut ana],
        &mut [&mut ben, &mut cleo, &mut host],
        &host_id,
        3,
        &want,
    )
    .await;
    assert_eq!(speak(&mut ana, 4, &audio).await["delivered"], 1);
    heard(
        &mut [&mut host],
        &mut [&mut ben, &mut cleo, &mut ana],
        &ana_id,
        4,
        &want,
    )
    .await;
    assert_eq!(speak(&mut ben, 5, &audio).await["delivered"], 0);
    heard(
        &mut [],
        &mut [&mut host, &mut ana, &mut cleo],
        &ben_id,
        5,
        &want,
    )
    .await;
    // The private channel to someone outside the pair is closed too.
    let ack = host
        .call(
            "private-audio-stream",
            json!({"targetUserId": cleo_id, "audioData": audio, "seq": 6}),
        )
        .await;
    assert_eq!(ack["delivered"], 0, "{ack}");
    cleo.assert_no("private-stream-data", QUIET).await;

    // Back to broadcast: everything flows again.
    c.server
        .post(
            "/api/meetings/switch-mode",
            &c.host.1,
            json!({"meetingId": c.meeting, "mode": "broadcast"}),
        )
        .await
        .expect(200);
    for client in [&mut host, &mut ana, &mut ben, &mut cleo] {
        assert_eq!(client.event("mode-changed").await["mode"], "broadcast");
    }
    assert_eq!(speak(&mut cleo, 7, &audio).await["delivered"], 3);
    heard(
        &mut [&mut host, &mut ana, &mut ben],
        &mut [&mut cleo],
        &cleo_id,
        7,
        &want,
    )
    .await;

    // Private stream: host → one student, student → host; student → student is refused.
    let ack = host
        .call(
            "private-audio-stream",
            json!({"targetUserId": ben_id, "audioData": audio, "seq": 8}),
        )
        .await;
    assert_eq!(ack["delivered"], 1, "{ack}");
    let got = ben.event("private-stream-data").await;
    assert_eq!(got["isPrivate"], true);
    assert_eq!(got["userId"], json!(host_id));
    assert_eq!(got["seq"], 8);
    assert_eq!(bin(&got["audioData"]), want);
    for other in [&mut ana, &mut cleo] {
        other.assert_no("private-stream-data", QUIET).await;
    }
    let ack = ben
        .call(
            "private-audio-stream",
            json!({"targetUserId": host_id, "audioData": audio, "seq": 9}),
        )
        .await;
    assert_eq!(ack["delivered"], 1);
    assert_eq!(
        host.event("private-stream-data").await["userId"],
        json!(ben_id)
    );
    let ack = ben
        .call(
            "private-audio-stream",
            json!({"targetUserId": cleo_id, "audioData": audio, "seq": 10}),
        )
        .await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["code"], "forbidden");

    // A muted student is heard by no one, until unmuted. Only the host may mute.
    let refused = ana
        .call("mute-participant", json!({"userId": ben_id}))
        .await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let ack = host
        .call("mute-participant", json!({"userId": ben_id}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    for client in [&mut host, &mut ana, &mut ben, &mut cleo] {
        assert_eq!(
            client.event("participant-muted").await["userId"],
            json!(ben_id)
        );
    }
    assert_eq!(speak(&mut ben, 11, &audio).await["delivered"], 0);
    heard(
        &mut [],
        &mut [&mut host, &mut ana, &mut cleo],
        &ben_id,
        11,
        &want,
    )
    .await;
    let people = c
        .server
        .get(
            &format!("/api/meetings/participants/{}", c.meeting),
            &c.host.1,
        )
        .await;
    let ben_row = people.expect(200)["participants"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["_id"] == json!(ben_id))
        .cloned()
        .expect("ben");
    assert_eq!(ben_row["muted"], true);
    host.call("unmute-participant", json!({"userId": ben_id}))
        .await;
    for client in [&mut host, &mut ana, &mut ben, &mut cleo] {
        assert_eq!(
            client.event("participant-unmuted").await["userId"],
            json!(ben_id)
        );
    }
    assert_eq!(speak(&mut ben, 12, &audio).await["delivered"], 3);
    heard(
        &mut [&mut host, &mut ana, &mut cleo],
        &mut [],
        &ben_id,
        12,
        &want,
    )
    .await;

    // Self-reported mute status goes to the others.
    ana.call("audio-status", json!({"muted": true})).await;
    for other in [&mut host, &mut ben, &mut cleo] {
        let s = other.event("participant-audio-status").await;
        assert_eq!(
            s,
            json!({"userId": ana_id, "muted": true, "isActive": false, "role": "student"})
        );
    }

    // A loud speaker becomes the active speaker.
    let loud = json!({"$f32": vec![0.9; 960]});
    for seq in 20..25 {
        speak(&mut cleo, seq, &loud).await;
    }
    let active = host.event("active-speaker").await;
    assert!(
        active["level"].as_f64().is_some_and(|l| l > 0.5),
        "{active}"
    );

    // The end: everyone gets meeting-ended, then their sockets close.
    c.end_meeting().await;
    for client in [&mut host, &mut ana, &mut ben, &mut cleo] {
        let ended = client.event("meeting-ended").await;
        assert_eq!(ended["meetingId"], json!(c.meeting));
        assert_eq!(ended["reason"], "host_ended");
        assert!(ended["endTime"].is_string());
        let reason = client.disconnected().await;
        assert!(reason.contains("server"), "{:?}: {reason}", client.kind);
    }
}

/// In a participants answer: whether `id` is online (`None`: not among them).
fn online(body: &Value, id: &str) -> Option<bool> {
    body["participants"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["_id"] == json!(id))
        .map(|p| p["online"] == true)
}

#[tokio::test]
async fn presence_follows_the_sockets() {
    let c = class(|cfg| {
        cfg.realtime.reconnect_grace = Duration::from_secs(1);
        cfg.realtime.seat_hold = Duration::from_secs(1);
    })
    .await;
    let (ana_id, ana_token) = c.students[0].clone();
    let (ben_id, ben_token) = c.students[1].clone();
    let (cleo_id, cleo_token) = c.students[2].clone();
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let participants = async || {
        c.server
            .get(
                &format!("/api/meetings/participants/{}", c.meeting),
                &c.host.1,
            )
            .await
            .expect(200)
            .clone()
    };
    let left_shape = |v: &Value, id: &str| {
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["role", "timestamp", "userId", "username"], "{v}");
        assert_eq!(v["userId"], json!(id));
    };

    // Two tabs of ana: one announcement, none for the second tab or when one tab closes.
    let tab1 = c.join(Kind::NodeWebsocket, &ana_token).await;
    let j = host.event("participant-joined").await;
    assert_eq!(j["userId"], json!(ana_id));
    assert_eq!(j["username"], "ana");
    assert_eq!(j["role"], "student");
    let mut tab2 = c.join(Kind::Python, &ana_token).await;
    host.assert_no("participant-joined", QUIET).await;
    assert_eq!(online(&participants().await, &ana_id), Some(true));
    tab2.disconnect().await;
    host.assert_no("participant-left", QUIET).await;

    // The last tab drops without a goodbye and comes back within the grace: no leave, no join.
    // The server's socket count reaches `n`.
    let server = &c.server;
    let sockets = move |n: u64| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let health = server.get("/socket-health", "").await;
            if health.body["connections"] == n {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{n} sockets: {}",
                health.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    sockets(2).await;
    tab1.kill().await;
    // The server has seen her tab go (the host's socket alone) before she comes back.
    sockets(1).await;
    let mut back = c.join(Kind::Node, &ana_token).await;
    host.assert_no("participant-left", Duration::from_millis(1500))
        .await;
    host.assert_no("participant-joined", QUIET).await;
    // Leaving on purpose is announced at once, in the one shape.
    back.disconnect().await;
    let left = host.event("participant-left").await;
    left_shape(&left, &ana_id);
    assert_eq!(online(&participants().await, &ana_id), Some(false));

    // Dropped and not back: announced after the grace.
    let ben = c.join(Kind::Python, &ben_token).await;
    host.event("participant-joined").await;
    ben.kill().await;
    let left = host.event("participant-left").await;
    left_shape(&left, &ben_id);
    assert_eq!(online(&participants().await, &ben_id), Some(false));

    // A REST join without a socket holds the seat only for `seat_hold`.
    c.rest("join", &cleo_token).await;
    assert_eq!(
        host.event("participant-joined").await["userId"],
        json!(cleo_id)
    );
    assert_eq!(online(&participants().await, &cleo_id), Some(true));
    let left = host.event("participant-left").await;
    left_shape(&left, &cleo_id);
    assert_eq!(online(&participants().await, &cleo_id), Some(false));

    // Leaving through REST while connected closes that user's sockets.
    let mut cleo = c.join(Kind::NodeWebsocket, &cleo_token).await;
    host.event("participant-joined").await;
    let health = c.server.get("/socket-health", "").await;
    assert_eq!(health.expect(200)["connections"], 2);
    c.rest("leave", &cleo_token).await;
    left_shape(&host.event("participant-left").await, &cleo_id);
    cleo.disconnected().await;

    // Keepalive: pong is accepted with an acknowledgement.
    let ack = host
        .call("pong", json!({"timestamp": "2026-03-02T09:00:00.000Z"}))
        .await;
    assert_eq!(ack["ok"], true);
}

/// Every wait for a user's return ends with its cause (the socket that came back, a leave)
/// instead of sleeping on to its time, a minute here: once people are gone, the server's tasks
/// are back where they were.
#[tokio::test]
async fn a_wait_for_a_return_ends_with_its_cause() {
    let c = class(|cfg| {
        cfg.realtime.reconnect_grace = Duration::from_secs(60);
        cfg.realtime.seat_hold = Duration::from_secs(60);
    })
    .await;
    let (ana_id, ana_token) = c.students[0].clone();
    let (ben_id, ben_token) = c.students[1].clone();
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let tasks = async || c.server.metric("meet_runtime_alive_tasks").await;
    // The server at rest with the host in the meeting: the same count twice running.
    let mut before = tasks().await;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = tasks().await;
        if now == before {
            break;
        }
        before = now;
    }

    // A REST join, then her socket (the seat-hold wait ends); the tab drops (the grace's wait
    // starts) and comes back (it ends); then she leaves on purpose.
    c.rest("join", &ana_token).await;
    assert_eq!(
        host.event("participant-joined").await["userId"],
        json!(ana_id)
    );
    let tab = c.join(Kind::NodeWebsocket, &ana_token).await;
    tab.kill().await;
    let mut back = c.join(Kind::Node, &ana_token).await;
    host.assert_no("participant-left", QUIET).await;
    back.disconnect().await;
    assert_eq!(
        host.event("participant-left").await["userId"],
        json!(ana_id)
    );
    // A REST join, then a REST leave without a socket ever.
    c.rest("join", &ben_token).await;
    assert_eq!(
        host.event("participant-joined").await["userId"],
        json!(ben_id)
    );
    c.rest("leave", &ben_token).await;
    assert_eq!(
        host.event("participant-left").await["userId"],
        json!(ben_id)
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut now = tasks().await;
    while now > before && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = tasks().await;
    }
    assert!(
        now <= before,
        "tasks: {before} at rest, {now} after everyone left"
    );
}

#[tokio::test]
async fn bad_audio_gets_an_error_acknowledgement() {
    let c = class(|_| {}).await;
    let (_, ana_token) = c.students[0].clone();
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let mut ana = c.join(Kind::Python, &ana_token).await;
    let limit = 64 * 1024;
    let cases = [
        (
            json!({"audioData": to_bin(&vec![0; limit]), "format": "s16"}),
            None,
        ),
        (
            json!({"audioData": to_bin(&vec![0; limit + 2]), "format": "s16"}),
            Some("payload_too_large"),
        ),
        (
            json!({"audioData": to_bin(&[0; 6])}),
            Some("validation_failed"),
        ),
        (
            json!({"audioData": to_bin(&[0; 3]), "format": "s16"}),
            Some("validation_failed"),
        ),
        (json!({"audioData": to_bin(&[])}), Some("validation_failed")),
        (
            json!({"audioData": to_bin(&[0; 8]), "format": "u8"}),
            Some("validation_failed"),
        ),
        (
            json!({"audioData": to_bin(&[0; 8]), "sampleRate": 1000}),
            Some("validation_failed"),
        ),
        (json!({"audioData": "not binary"}), Some("bad_request")),
        (json!({"format": "f32"}), Some("bad_request")),
        (
            json!({"audioData": to_bin(&[0; 8]), "seq": -1}),
            Some("bad_request"),
        ),
        (json!("a string"), Some("bad_request")),
    ];
    for (payload, code) in cases {
        let ack = host.call("broadcast-audio", payload.clone()).await;
        match code {
            None => assert_eq!(ack["ok"], true, "{ack}"),
            Some(code) => {
                assert_eq!(ack["ok"], false, "{ack}");
                assert_eq!(ack["code"], code, "{ack}");
                assert!(ack["message"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
    }
    // Only the valid one (exactly at the limit) was relayed.
    let got = ana.event("audio-broadcast").await;
    assert_eq!(bin(&got["audioData"]).len(), limit);
    ana.assert_no("audio-broadcast", QUIET).await;

    for (event, payload, code) in [
        ("no-such-event", json!({}), "unknown_event"),
        ("webrtc-signal", json!({"signal": {}}), "bad_request"),
        ("mute-participant", json!({"userId": 5}), "bad_request"),
        (
            "mute-participant",
            json!({"userId": "nobody"}),
            "validation_failed",
        ),
        ("join-meeting", json!({}), "bad_request"),
        ("audio-status", json!({"muted": "yes"}), "bad_request"),
    ] {
        let ack = host.call(event, payload).await;
        assert_eq!(ack["code"], code, "{event}: {ack}");
    }
    // Audio from a socket not in a meeting is refused; the connection stays usable.
    let mut lone = Client::spawn(Kind::Node).await;
    lone.connect(&c.server.base, AuthForm::Object, &c.host.1, None)
        .await
        .expect("connects");
    let ack = lone
        .call("broadcast-audio", json!({"audioData": to_bin(&[0; 8])}))
        .await;
    assert_eq!(ack["code"], "forbidden", "{ack}");
    let metrics = c
        .server
        .client
        .get(c.server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("meet_audio_frames_refused_total 11"),
        "{text}"
    );
}

#[tokio::test]
async fn a_flooding_client_is_throttled_then_disconnected() {
    let c = class(|cfg| {
        // One message a second after a burst of 5: no refill lands within the test's burst.
        cfg.realtime.audio_messages_per_second = 1;
        cfg.realtime.audio_burst = 5;
        cfg.realtime.flood_disconnect_after = 10;
    })
    .await;
    let (_, ana_token) = c.students[0].clone();
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let mut ana = c.join(Kind::Python, &ana_token).await;
    let audio = to_bin(&[0; 1920]);
    let msg = json!({"audioData": audio, "format": "s16"});
    for i in 0..5 {
        assert_eq!(
            host.call("broadcast-audio", msg.clone()).await["ok"],
            true,
            "burst {i}"
        );
    }
    // Over the rate: refused with rate_limited (the 1st to 9th refusals) ...
    for i in 0..9 {
        let ack = host.call("broadcast-audio", msg.clone()).await;
        assert_eq!(ack["code"], "rate_limited", "refusal {i}: {ack}");
    }
    // ... and the 10th refusal within 10 s disconnects.
    host.emit("broadcast-audio", msg.clone()).await;
    let reason = host.disconnected().await;
    assert!(reason.contains("server"), "{reason}");
    let mut relayed = 0;
    while ana.try_event("audio-broadcast", QUIET).await.is_some() {
        relayed += 1;
    }
    assert!(
        (5..=6).contains(&relayed),
        "the burst (and at most one refill) was relayed: {relayed}"
    );
}

/// A socket keeps the identity it connected with, so an account whose tokens stop working
/// must lose its sockets too: in a meeting or not, every one of them, and nobody else's.
#[tokio::test]
async fn a_revoked_accounts_sockets_close_wherever_they_are() {
    use reqwest::Method;
    let c = class(|_| {}).await;
    let server = &c.server;
    let [(ana_id, ana_token), (_, ben_token), (_, cleo_token)] =
        [0, 1, 2].map(|i| c.students[i].clone());
    let connect = |token: String, meeting: Option<String>| async move {
        let mut client = Client::spawn(Kind::NodeWebsocket).await;
        client
            .connect(&server.base, AuthForm::Object, &token, meeting.as_deref())
            .await
            .expect("connects");
        client
    };
    let meeting = Some(c.meeting.clone());
    let mut host = connect(c.host.1.clone(), meeting.clone()).await;
    let mut ana_in = connect(ana_token.clone(), meeting.clone()).await;
    let mut ana_out = connect(ana_token.clone(), None).await;
    let mut ben = connect(ben_token.clone(), None).await;
    let mut cleo = connect(cleo_token.clone(), meeting.clone()).await;

    // The host gives ana a new password: both of her sockets close, nobody else's.
    let put = server
        .call(
            Method::PUT,
            &format!("/api/host/students/{ana_id}"),
            Some(&c.host.1),
            Some(json!({"password": "a-brand-new-password"})),
        )
        .await;
    put.expect(200);
    for ana in [&mut ana_in, &mut ana_out] {
        let reason = ana.disconnected().await;
        assert_eq!(reason, "io server disconnect", "{reason}");
    }
    // Her old token cannot bring a socket back.
    let mut again = Client::spawn(Kind::NodeWebsocket).await;
    let refused = again
        .connect(&server.base, AuthForm::Object, &ana_token, None)
        .await;
    assert!(refused.is_err(), "{refused:?}");

    // Ben changes his own password: his socket (no meeting) closes; his new token connects.
    let changed = server
        .call(
            Method::PUT,
            "/api/auth/change-password",
            Some(&ben_token),
            Some(json!({"currentPassword": "ben-password", "newPassword": "ben-new-password"})),
        )
        .await;
    let new_token = changed.expect(200)["token"]
        .as_str()
        .expect("new token")
        .to_owned();
    assert_eq!(ben.disconnected().await, "io server disconnect");
    connect(new_token, None).await;

    // Still connected: the host and cleo are answered (an event the server does not know).
    for client in [&mut host, &mut cleo] {
        let answer = client.call("are-you-there", json!({})).await;
        assert_eq!(answer["code"], "unknown_event", "{answer}");
    }
    // The admin disables the host: the host's socket and its student cleo's close.
    let disabled = server
        .call(
            Method::PUT,
            &format!("/api/admin/hosts/{}", c.host.0),
            Some(&server.admin),
            Some(json!({"isActive": false})),
        )
        .await;
    disabled.expect(200);
    for client in [&mut host, &mut cleo] {
        assert_eq!(client.disconnected().await, "io server disconnect");
    }
}

#[tokio::test]
async fn long_polling_answers_allowed_origins_only() {
    let t = TestServer::start_with(|c| c.http.cors_origins = vec!["http://localhost:5173".into()])
        .await;
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("http://evil.example", false),
    ] {
        let res = t
            .client
            .get(t.url("/ws/?EIO=4&transport=polling"))
            .header("origin", origin)
            .send()
            .await
            .expect("handshake");
        assert_eq!(res.status(), 200);
        let acao = res
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or_default().to_owned());
        assert_eq!(acao.as_deref(), allowed.then_some(origin), "{origin}");
        let body = res.text().await.expect("body");
        assert!(
            body.starts_with("0{\"sid\":"),
            "an Engine.IO open packet: {body}"
        );
    }
    // The REST API is unaffected by the Socket.IO layer in front of it.
    t.get("/api/auth/profile", "").await.expect(401);
}

#[tokio::test]
async fn the_duration_job_and_an_admin_end_meetings_live() {
    let c = class(|_| {}).await;
    let (_, ana_token) = c.students[0].clone();
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let mut ana = c.join(Kind::Python, &ana_token).await;
    // Past the 5-hour limit, the cleanup job ends the meeting: both hear it, both are closed.
    c.server.clock.advance(chrono::Duration::seconds(18_000));
    meet::jobs::by_name("cleanup")
        .expect("job")
        .run(&c.server.app().services, &meet::jobs::Silent, false)
        .await
        .expect("cleanup runs");
    for client in [&mut host, &mut ana] {
        let ended = client.event("meeting-ended").await;
        assert_eq!(ended["reason"], "duration_exceeded");
        client.disconnected().await;
    }
    // An admin ends another meeting.
    let other = c.server.meeting(&c.host.1, "Second").await;
    let mut host = Client::spawn(Kind::Node).await;
    host.connect(&c.server.base, AuthForm::Query, &c.host.1, Some(&other))
        .await
        .expect("connects");
    c.server
        .post(
            &format!("/api/meetings/{other}/end"),
            &c.server.admin,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(host.event("meeting-ended").await["reason"], "admin_ended");
    host.disconnected().await;
    // Nobody is left online in either meeting.
    let body = c
        .server
        .get(&format!("/api/meetings/participants/{other}"), &c.host.1)
        .await;
    assert_eq!(body.expect(200)["count"], 0);
}

#[tokio::test]
async fn frames_of_one_sender_arrive_in_order() {
    let c = class(|_| {}).await;
    let (_, ana_token) = c.students[0].clone();
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let mut ana = c.join(Kind::NodeWebsocket, &ana_token).await;
    // End to end; the turnstile that guarantees it is unit-tested with tasks run out of order
    // (`realtime::session`), as reordering is rare in practice.
    let audio = to_bin(&vec![1; 64 * 1024]);
    // 100 frames as fast as the client can send them (the default budget allows a burst of 100).
    for seq in 0..100u64 {
        host.emit(
            "broadcast-audio",
            json!({"audioData": audio, "format": "s16", "seq": seq}),
        )
        .await;
    }
    let mut seqs = Vec::new();
    for _ in 0..100 {
        seqs.push(
            ana.event("audio-broadcast").await["seq"]
                .as_u64()
                .expect("seq"),
        );
    }
    assert_eq!(
        seqs,
        (0..100).collect::<Vec<_>>(),
        "relayed in the order sent"
    );
}

/// `join-meeting` for another meeting moves the socket: it leaves the first (announced there,
/// its seat released) and joins the second (announced there), and audio follows it.
#[tokio::test]
async fn join_meeting_moves_a_socket_from_one_meeting_to_another() {
    let c = class(|_| {}).await;
    let (ana_id, ana_token) = c.students[0].clone();
    let second = c.server.meeting(&c.host.1, "Second").await;
    let mut host = c.join(Kind::NodeWebsocket, &c.host.1).await;
    let mut ben = c.join(Kind::Python, &c.students[1].1).await;
    host.event("participant-joined").await;
    let mut ana = c.join(Kind::NodeWebsocket, &ana_token).await;
    assert_eq!(
        host.event("participant-joined").await["userId"],
        json!(ana_id)
    );
    // Someone is already in the second meeting: cleo.
    let mut cleo = Client::spawn(Kind::NodeWebsocket).await;
    cleo.connect(
        &c.server.base,
        AuthForm::Object,
        &c.students[2].1,
        Some(&second),
    )
    .await
    .expect("connects");

    let moved = ana.call("join-meeting", json!({"meetingId": second})).await;
    assert_eq!(moved["ok"], true, "{moved}");
    assert_eq!(moved["meetingId"], json!(second));
    assert_eq!(
        host.event("participant-left").await["userId"],
        json!(ana_id)
    );
    assert_eq!(
        cleo.event("participant-joined").await["userId"],
        json!(ana_id)
    );
    let ana_id = &ana_id;
    let seat = |meeting: &str| {
        let path = format!("/api/meetings/participants/{meeting}");
        let server = &c.server;
        let host = &c.host.1;
        async move {
            let body = server.get(&path, host).await.expect(200).clone();
            online(&body, ana_id)
        }
    };
    assert_eq!(seat(&c.meeting).await, Some(false));
    assert_eq!(seat(&second).await, Some(true));

    // Her audio reaches the second meeting only.
    let ack = ana
        .call(
            "broadcast-audio",
            json!({"audioData": to_bin(&[0; 960]), "format": "s16", "seq": 7}),
        )
        .await;
    assert_eq!(ack["delivered"], 1, "{ack}");
    assert_eq!(cleo.event("audio-broadcast").await["seq"], 7);
    ben.assert_no("audio-broadcast", QUIET).await;
    host.assert_no("audio-broadcast", QUIET).await;
}
