//! Recordings across the real binary's end: SIGTERM finishes and stores them before exiting;
//! after kill -9 the next start saves what reached the disk and completes them.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::recorder::{judge, opusinfo, windows};
use crate::sio::{AuthForm, Client, Kind, to_bin};
use crate::smoke::{ADMIN_PASSWORD, Process, data_dir, get_json, login};

struct Lesson {
    host: String,
    student: String,
    student_id: String,
    meeting: String,
}

async fn token(http: &reqwest::Client, base: &str, user: &str, pass: &str, student: bool) -> Value {
    if student {
        http.post(format!("{base}/api/student/login"))
            .json(&json!({"username": user, "password": pass}))
            .send()
            .await
            .expect("login")
            .json::<Value>()
            .await
            .expect("json")["data"]
            .clone()
    } else {
        login(http, base, user, pass)
            .await
            .json()
            .await
            .expect("json")
    }
}

async fn post(http: &reqwest::Client, base: &str, path: &str, token: &str, body: Value) -> Value {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("json");
    assert!(status < 300, "{path}: {status} {v}");
    v
}

async fn lesson(http: &reqwest::Client, base: &str) -> Lesson {
    let admin = token(http, base, "admin", ADMIN_PASSWORD, false).await;
    let admin = admin["token"].as_str().expect("token");
    post(
        http,
        base,
        "/api/admin/hosts",
        admin,
        json!({"username": "teacher", "password": "teacher-pass"}),
    )
    .await;
    let host = token(http, base, "teacher", "teacher-pass", false).await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    post(
        http,
        base,
        "/api/host/students",
        &host,
        json!({"username": "ana", "password": "ana-pass"}),
    )
    .await;
    let s = token(http, base, "ana", "ana-pass", true).await;
    let student = s["token"].as_str().expect("token").to_owned();
    let profile: Value = http
        .get(format!("{base}/api/auth/profile"))
        .bearer_auth(&student)
        .send()
        .await
        .expect("profile")
        .json()
        .await
        .expect("json");
    let m = post(
        http,
        base,
        "/api/meetings/create",
        &host,
        json!({"topic": "Crash course"}),
    )
    .await;
    Lesson {
        host,
        student,
        student_id: profile["_id"].as_str().expect("id").to_owned(),
        meeting: m["meeting"]["_id"].as_str().expect("id").to_owned(),
    }
}

/// `seconds` of a 660 Hz tone from `client`, in 20 ms relay messages at a microphone's pace.
pub async fn speak(client: &mut Client, seconds: f64) {
    let frames = (seconds * 50.0) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for f in 0..frames {
        tick.tick().await;
        let pcm = crate::sio::tone_pcm(660.0, 48_000.0, f * 960, 960);
        let msg = json!({"audioData": to_bin(&pcm), "format": "s16", "sampleRate": 48_000});
        let ack = client.call("broadcast-audio", msg).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
}

/// Polls the recording until `completed` (or `failed`: a panic).
async fn completed(http: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get_json(http, format!("{base}/api/recordings/{id}"), token).await;
        let rec = v["recording"].clone();
        assert_ne!(rec["status"], "failed", "{rec}");
        if rec["status"] == "completed" {
            return rec;
        }
        assert!(Instant::now() < end, "not completed: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn download(http: &reqwest::Client, url: String, token: &str, to: &Path) {
    let r = http.get(url).bearer_auth(token).send().await.expect("get");
    assert_eq!(r.status().as_u16(), 200);
    std::fs::write(to, r.bytes().await.expect("body")).expect("write");
}

/// The tone is in every window of the file up to `until` seconds (after the first half second).
fn tone_until(path: &Path, until: f64) -> f64 {
    let j = judge(path, &[660.0]);
    let decoded = j["decoded"].as_f64().expect("decoded");
    for w in windows(&j, 0.5, until) {
        assert!(
            w["tones"]["660"].as_f64().expect("share") > 0.5,
            "no tone at {w}"
        );
    }
    decoded
}

/// Ana's relay client in the meeting, and a recording started by the host: its id.
async fn connect_and_record(http: &reqwest::Client, base: &str, l: &Lesson) -> (Client, String) {
    let mut ana = Client::spawn(Kind::Node).await;
    ana.connect(base, AuthForm::Object, &l.student, Some(&l.meeting))
        .await
        .expect("connects");
    let path = format!("/api/meetings/{}/recording/start", l.meeting);
    let start = post(http, base, &path, &l.host, json!({})).await;
    let id = start["recording"]["_id"].as_str().expect("id").to_owned();
    (ana, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_survive_sigterm_and_kill_9() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let http = reqwest::Client::new();
    let server = Process::serve(&data);
    let l = lesson(&http, &server.addr).await;

    // SIGTERM while recording: the recording is stored before the process exits.
    let (mut ana, first) = connect_and_record(&http, &server.addr, &l).await;
    let t0 = Instant::now();
    speak(&mut ana, 2.0).await;
    let wall = t0.elapsed().as_secs_f64();
    let began = Instant::now();
    assert!(server.terminate().success());
    let exit = began.elapsed();
    assert!(exit < Duration::from_secs(10), "shutdown took {exit:?}");

    let server = Process::serve(&data);
    let rec = completed(&http, &server.addr, &l.host, &first).await;
    let d = rec["duration"].as_f64().expect("duration");
    assert!(
        (d - wall).abs() <= 0.3 + wall * 0.03,
        "{d} s recorded of {wall} s"
    );
    eprintln!("SIGTERM: {d:.3} s stored of {wall:.3} s spoken; the process exited in {exit:?}");
    let mix = dir.path().join("sigterm.ogg");
    download(
        &http,
        format!("{}/api/recordings/{first}/audio", server.addr),
        &l.host,
        &mix,
    )
    .await;
    opusinfo(&mix);
    tone_until(&mix, wall - 0.3);

    // kill -9 while recording: the next start completes it from the spool.
    let (mut ana, second) = connect_and_record(&http, &server.addr, &l).await;
    let t0 = Instant::now();
    // Not a whole number of seconds: the last page (a second of audio) is cut short.
    speak(&mut ana, 4.5).await;
    let killed_at = t0.elapsed().as_secs_f64();
    server.kill_9();
    assert!(
        data.join("spool")
            .join(&second)
            .join("recording.json")
            .exists(),
        "the spool holds the recording"
    );

    let server = Process::serve(&data);
    // Nobody is shown online: no socket survived the kill.
    let who = get_json(
        &http,
        format!("{}/api/meetings/participants/{}", server.addr, l.meeting),
        &l.host,
    )
    .await;
    assert_eq!(who["count"], 0, "{who}");
    assert!(
        who["participants"]
            .as_array()
            .is_some_and(|p| !p.is_empty() && p.iter().all(|p| p["online"] == false)),
        "{who}"
    );
    let rec = completed(&http, &server.addr, &l.host, &second).await;
    let d = rec["duration"].as_f64().expect("duration");
    assert!(
        d >= killed_at - 2.0 && d <= killed_at + 0.5,
        "{d} s saved of {killed_at} s"
    );
    eprintln!("kill -9: {d:.3} s saved of {killed_at:.3} s recorded");
    let mix = dir.path().join("killed.ogg");
    download(
        &http,
        format!("{}/api/recordings/{second}/audio", server.addr),
        &l.host,
        &mix,
    )
    .await;
    let length = opusinfo(&mix);
    assert!(
        length >= killed_at - 2.0,
        "the mix plays {length} s of {killed_at} s"
    );
    let decoded = tone_until(&mix, killed_at - 2.0);
    assert!(decoded >= killed_at - 2.0);
    let own = dir.path().join("ana.ogg");
    download(
        &http,
        format!(
            "{}/api/recordings/{second}/audio?track={}",
            server.addr, l.student_id
        ),
        &l.host,
        &own,
    )
    .await;
    opusinfo(&own);
    tone_until(&own, killed_at - 2.0);
    // Cleared just after the row is completed: waited for, not raced.
    let spool = data.join("spool").join(&second);
    let deadline = Instant::now() + Duration::from_secs(5);
    while spool.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!spool.exists(), "the spool is cleared once stored");
    let meeting = get_json(
        &http,
        format!("{}/api/meetings/{}", server.addr, l.meeting),
        &l.host,
    )
    .await;
    assert_eq!(meeting["meeting"]["recording"], Value::Null, "{meeting}");
    // Still within its time, the meeting is still open (a crash ends no meeting).
    assert_eq!(meeting["meeting"]["status"], "active", "{meeting}");

    assert!(server.terminate().success());

    // A meeting of 3 seconds at most, begun; kill -9, and the server stays down past its
    // time: at the next start it is over (before the cleanup job's next run, minutes away).
    let server = Process::serve_with(&data, &[("MEET_MEETINGS__MAX_DURATION_SECONDS", "3")]);
    let short = post(
        &http,
        &server.addr,
        "/api/meetings/create",
        &l.host,
        json!({"topic": "Short"}),
    )
    .await["meeting"]["_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let joined = post(
        &http,
        &server.addr,
        &format!("/api/meetings/{short}/join"),
        &l.host,
        json!({}),
    )
    .await;
    assert_eq!(joined["meeting"]["status"], "active", "{joined}");
    server.kill_9();
    // Down for the meeting's whole time (the outage itself, not a wait for anything).
    tokio::time::sleep(Duration::from_secs(4)).await;
    let server = Process::serve(&data);
    let meeting = get_json(
        &http,
        format!("{}/api/meetings/{short}", server.addr),
        &l.host,
    )
    .await;
    assert_eq!(meeting["meeting"]["status"], "ended", "{meeting}");
    assert_eq!(meeting["meeting"]["endReason"], "duration_exceeded");
    assert!(server.terminate().success());
}
