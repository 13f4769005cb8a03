//! Recording end to end: aiortc participants play tones into the SFU, the host records over
//! REST, talks in private with one student meanwhile, and the files are judged as players see
//! them: the mix and each speaker's file decoded by libopus (PyAV), `opusinfo`, playback with
//! `Range`, who may hear what, and deletion.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::Class;
use crate::recorder::{judge, opusinfo, windows};
use crate::rtc::Aiortc;

const TONES: [f64; 3] = [440.0, 660.0, 880.0];

/// Waits until each peer hears the tones of exactly the others.
async fn all_hear_each_other(peers: &mut [&mut Aiortc], tones: &[(String, f64)]) {
    let end = Instant::now() + Duration::from_secs(30);
    'again: loop {
        assert!(Instant::now() < end, "the peers do not hear each other");
        tokio::time::sleep(Duration::from_millis(250)).await;
        for p in peers.iter_mut() {
            let stats = p.stats().await;
            for (user, hz) in tones.iter().filter(|(u, _)| *u != p.user) {
                let f = stats[user]["freq"].as_f64().unwrap_or(0.0);
                if (f - hz).abs() > 20.0 {
                    continue 'again;
                }
            }
        }
        return;
    }
}

async fn post(c: &Class, path: &str, status: u16) -> Value {
    c.server
        .post(path, &c.host.1, json!({}))
        .await
        .expect(status)
        .clone()
}

/// Starts recording the class's meeting as its host: the recording's id.
pub async fn start_recording(c: &Class) -> String {
    let path = format!("/api/meetings/{}/recording/start", c.meeting);
    post(c, &path, 201).await["recording"]["_id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Polls a recording until it is `completed` (for at most a minute: storage retries back off).
pub async fn completed(c: &Class, id: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .server
            .get(&format!("/api/recordings/{id}"), &c.host.1)
            .await;
        let rec = r.expect(200)["recording"].clone();
        if rec["status"] == "completed" {
            return rec;
        }
        assert!(Instant::now() < end, "not completed: {rec}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// GETs `path` with an optional `Range`; status, headers, body.
async fn get_bytes(
    c: &Class,
    token: &str,
    path: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = c.server.client.get(c.server.url(path)).bearer_auth(token);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.expect("body").to_vec())
}

async fn save(c: &Class, token: &str, path: &str, to: &Path) {
    let (status, headers, body) = get_bytes(c, token, path, None).await;
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "audio/ogg");
    std::fs::write(to, body).expect("write");
}

fn share(w: &Value, hz: f64) -> f64 {
    w["tones"][format!("{hz}")].as_f64().expect("tone share")
}

/// Every window of `j` in `[from, to)` has each tone of `present` (power share over 5 %) and
/// none of `absent` (under 1 %).
fn tones_in(j: &Value, from: f64, to: f64, present: &[f64], absent: &[f64], what: &str) {
    let ws = windows(j, from, to);
    assert!(!ws.is_empty(), "{what}: no window in {from}..{to}");
    for w in ws {
        for &hz in present {
            assert!(share(w, hz) > 0.05, "{what}: {hz} Hz missing at {w}");
        }
        for &hz in absent {
            assert!(share(w, hz) < 0.01, "{what}: {hz} Hz present at {w}");
        }
    }
}

fn silent(j: &Value, from: f64, to: f64, what: &str) {
    let ws = windows(j, from, to);
    assert!(!ws.is_empty(), "{what}: no window in {from}..{to}");
    for w in ws {
        assert!(
            w["rms"].as_f64().expect("rms") < 0.005,
            "{what}: sound at {w}"
        );
    }
}

fn close_to(got: f64, want: f64, what: &str) {
    let slack = (want * 0.03).max(0.3);
    assert!(
        (got - want).abs() <= slack,
        "{what}: {got} s, wall clock {want} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lesson_recorded_with_a_private_talk_in_the_middle() {
    let c = Class::start(&["ana", "ben"], |_| {}).await;
    let base = c.server.base.clone();
    let (host_id, ana_id, ben_id) = (
        c.host.0.clone(),
        c.students[0].0.clone(),
        c.students[1].0.clone(),
    );
    let (ana_token, ben_token) = (c.students[0].1.clone(), c.students[1].1.clone());
    let mut host = Aiortc::join(&base, &c.host.1, &c.meeting, &host_id, 440).await;
    let mut ana = Aiortc::join(&base, &ana_token, &c.meeting, &ana_id, 660).await;
    let mut ben = Aiortc::join(&base, &ben_token, &c.meeting, &ben_id, 880).await;
    let tones = [
        (host_id.clone(), 440.0),
        (ana_id.clone(), 660.0),
        (ben_id.clone(), 880.0),
    ];
    all_hear_each_other(&mut [&mut host, &mut ana, &mut ben], &tones).await;

    // Start: 201, announced to everyone, shown on the meeting; a second start is refused.
    let m = &c.meeting;
    let t0 = Instant::now();
    let started = post(&c, &format!("/api/meetings/{m}/recording/start"), 201).await;
    let rec = started["recording"].clone();
    let normal = rec["_id"].as_str().expect("id").to_owned();
    assert_eq!(rec["status"], "recording");
    assert_eq!(rec["isPrivate"], false);
    for p in [&mut host, &mut ana, &mut ben] {
        let ev = p.client.event("recording-started").await;
        assert_eq!(ev["recordingId"], json!(normal), "{}", p.user);
        assert_eq!(ev["isPrivate"], false);
        assert_eq!(ev["meetingId"], json!(m));
    }
    let shown = c.server.get(&format!("/api/meetings/{m}"), &c.host.1).await;
    assert_eq!(
        shown.expect(200)["meeting"]["recording"]["_id"],
        json!(normal)
    );
    let again = c
        .server
        .post(
            &format!("/api/meetings/{m}/recording/start"),
            &c.host.1,
            json!({}),
        )
        .await;
    assert_eq!(
        (again.status.as_u16(), again.code()),
        (409, "already_recording")
    );
    let not_host = c
        .server
        .post(
            &format!("/api/meetings/{m}/recording/start"),
            &ana_token,
            json!({}),
        )
        .await;
    assert_eq!(not_host.status.as_u16(), 403);

    // Broadcast for 3 s, a private talk with ana for 3 s, broadcast again for 2 s.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let switch = |mode: &'static str, with: Option<String>| {
        let body = json!({"meetingId": m, "mode": mode, "participantId": with});
        let server = &c.server;
        let token = c.host.1.clone();
        async move {
            server
                .post("/api/meetings/switch-mode", &token, body)
                .await
                .expect(200);
        }
    };
    let t_private = t0.elapsed().as_secs_f64();
    switch("private", Some(ana_id.clone())).await;
    let private_ev = host.client.event("recording-started").await;
    assert_eq!(private_ev["isPrivate"], true);
    let private = private_ev["recordingId"].as_str().expect("id").to_owned();
    assert_eq!(
        ana.client.event("recording-started").await["recordingId"],
        json!(private)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t_back = t0.elapsed().as_secs_f64();
    switch("broadcast", None).await;
    assert_eq!(
        host.client.event("recording-ended").await["recordingId"],
        json!(private)
    );
    assert_eq!(
        ana.client.event("recording-ended").await["recordingId"],
        json!(private)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Stop: 200 `processing`, announced; then completed with the wall-clock duration.
    let t_stop = t0.elapsed().as_secs_f64();
    let stopped = post(&c, &format!("/api/meetings/{m}/recording/stop"), 200).await;
    assert_eq!(stopped["recording"]["_id"], json!(normal));
    assert_eq!(stopped["recording"]["status"], "processing");
    for p in [&mut host, &mut ana, &mut ben] {
        let ev = p.client.event("recording-ended").await;
        assert_eq!(ev["recordingId"], json!(normal), "{}", p.user);
        close_to(
            ev["duration"].as_f64().expect("duration"),
            t_stop,
            "recording-ended",
        );
    }
    ben.client
        .assert_no("recording-started", Duration::from_millis(200))
        .await;
    let shown = c.server.get(&format!("/api/meetings/{m}"), &c.host.1).await;
    assert_eq!(shown.expect(200)["meeting"]["recording"], Value::Null);
    let stop_again = c
        .server
        .post(
            &format!("/api/meetings/{m}/recording/stop"),
            &c.host.1,
            json!({}),
        )
        .await;
    assert_eq!(
        (stop_again.status.as_u16(), stop_again.code()),
        (409, "not_recording")
    );

    let rec = completed(&c, &normal).await;
    close_to(
        rec["duration"].as_f64().expect("duration"),
        t_stop,
        "normal duration",
    );
    let mut speakers: Vec<(String, String)> = rec["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| {
            (
                t["userId"].as_str().unwrap_or_default().to_owned(),
                t["username"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    speakers.sort();
    let mut want = vec![
        (host_id.clone(), "teacher".to_owned()),
        (ana_id.clone(), "ana".to_owned()),
        (ben_id.clone(), "ben".to_owned()),
    ];
    want.sort();
    assert_eq!(speakers, want);
    let prec = completed(&c, &private).await;
    assert_eq!(prec["isPrivate"], true);
    assert_eq!(prec["studentId"], json!(ana_id));
    close_to(
        prec["duration"].as_f64().expect("duration"),
        t_back - t_private,
        "private duration",
    );
    assert_eq!(
        prec["tracks"].as_array().expect("tracks").len(),
        2,
        "{prec}"
    );

    // The mix: every tone in broadcast, silence while the pair talked, every tone again.
    let dir = tempfile::tempdir().expect("tempdir");
    let mix = dir.path().join("mix.ogg");
    save(
        &c,
        &c.host.1,
        &format!("/api/recordings/{normal}/audio"),
        &mix,
    )
    .await;
    close_to(opusinfo(&mix), t_stop, "opusinfo, mix");
    let j = judge(&mix, &TONES);
    close_to(
        j["decoded"].as_f64().expect("decoded"),
        t_stop,
        "decoded mix",
    );
    tones_in(&j, 0.5, t_private - 0.5, &TONES, &[], "mix, broadcast");
    silent(&j, t_private + 0.6, t_back - 0.6, "mix, private span");
    tones_in(
        &j,
        t_back + 0.8,
        t_stop - 0.5,
        &TONES,
        &[],
        "mix, broadcast again",
    );

    // Ben's own file: his tone only, silent while the pair talked.
    let ben_file = dir.path().join("ben.ogg");
    save(
        &c,
        &c.host.1,
        &format!("/api/recordings/{normal}/audio?track={ben_id}"),
        &ben_file,
    )
    .await;
    close_to(opusinfo(&ben_file), t_stop, "opusinfo, ben");
    let j = judge(&ben_file, &TONES);
    tones_in(
        &j,
        0.5,
        t_private - 0.5,
        &[880.0],
        &[440.0, 660.0],
        "ben, broadcast",
    );
    silent(&j, t_private + 0.6, t_back - 0.6, "ben, private span");

    // The private recording: the pair only.
    let pmix = dir.path().join("private.ogg");
    save(
        &c,
        &ana_token,
        &format!("/api/recordings/{private}/audio"),
        &pmix,
    )
    .await;
    opusinfo(&pmix);
    let j = judge(&pmix, &TONES);
    let plen = j["decoded"].as_f64().expect("decoded");
    tones_in(
        &j,
        0.5,
        plen - 0.5,
        &[440.0, 660.0],
        &[880.0],
        "private mix",
    );

    // Who may hear what: ben neither lists nor fetches the private one, ana does.
    let listed = |v: &Value| -> Vec<String> {
        v["recordings"]
            .as_array()
            .expect("list")
            .iter()
            .map(|r| r["_id"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let ben_list = c.server.get("/api/student/recordings", &ben_token).await;
    assert_eq!(listed(ben_list.expect(200)), [normal.as_str()]);
    let ben_private = c
        .server
        .get("/api/student/recordings/private", &ben_token)
        .await;
    assert!(listed(ben_private.expect(200)).is_empty());
    let ana_private = c
        .server
        .get("/api/student/recordings/private", &ana_token)
        .await;
    assert_eq!(listed(ana_private.expect(200)), [private.as_str()]);
    for path in [
        format!("/api/recordings/{private}"),
        format!("/api/recordings/{private}/audio"),
        format!("/api/recordings/{private}/audio?track={ana_id}"),
        format!("/api/recordings/{private}/audio?track={host_id}"),
    ] {
        let (status, _, _) = get_bytes(&c, &ben_token, &path, None).await;
        assert_eq!(status, 404, "ben: {path}");
    }
    let (status, _, _) = get_bytes(
        &c,
        &ana_token,
        &format!("/api/recordings/{private}/audio?track={ana_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = get_bytes(
        &c,
        &ben_token,
        &format!("/api/recordings/{normal}/audio?track={ana_id}"),
        None,
    )
    .await;
    assert_eq!(
        status, 200,
        "a normal recording's speakers are for its audience"
    );
    let (status, _, body) = get_bytes(
        &c,
        &c.host.1,
        &format!("/api/recordings/{normal}/audio?track=nobody"),
        None,
    )
    .await;
    assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = get_bytes(
        &c,
        &c.host.1,
        &format!("/api/recordings/{normal}/audio?tracks=x"),
        None,
    )
    .await;
    assert_eq!(status, 200, "an unknown query parameter is ignored");

    // Range requests on the mix: the first bytes, the middle, a suffix, one past the end.
    let whole = std::fs::read(&mix).expect("read");
    let size = whole.len() as u64;
    assert_eq!(rec["size"].as_u64(), Some(size));
    let audio = format!("/api/recordings/{normal}/audio");
    let (status, h, body) = get_bytes(&c, &c.host.1, &audio, None).await;
    assert_eq!((status, body.len() as u64), (200, size));
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-length"], size.to_string().as_str());
    // A HEAD is the GET's answer without its body: the same length, range and type.
    let res = c
        .server
        .client
        .head(c.server.url(&audio))
        .bearer_auth(&c.host.1)
        .header("range", "bytes=0-99")
        .send()
        .await
        .expect("head");
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.headers()["content-length"], "100");
    assert_eq!(
        res.headers()["content-range"],
        format!("bytes 0-99/{size}").as_str()
    );
    assert_eq!(res.headers()["content-type"], "audio/ogg");
    assert!(res.bytes().await.expect("head body").is_empty());
    let (status, h, body) = get_bytes(&c, &c.host.1, &audio, Some("bytes=0-99")).await;
    assert_eq!(status, 206);
    assert_eq!(h["content-range"], format!("bytes 0-99/{size}").as_str());
    assert_eq!(body, whole[..100]);
    assert_eq!(&body[..4], b"OggS");
    let (status, _, body) = get_bytes(&c, &c.host.1, &audio, Some("bytes=1000-1999")).await;
    assert_eq!((status, body.as_slice()), (206, &whole[1000..2000]));
    let (status, h, body) = get_bytes(&c, &c.host.1, &audio, Some("bytes=-100")).await;
    assert_eq!(
        (status, body.as_slice()),
        (206, &whole[whole.len() - 100..])
    );
    assert_eq!(
        h["content-range"],
        format!("bytes {}-{}/{size}", size - 100, size - 1).as_str()
    );
    let (status, h, body) = get_bytes(&c, &c.host.1, &audio, Some(&format!("bytes={size}-"))).await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["content-range"], format!("bytes */{size}").as_str());
    let err: Value = serde_json::from_slice(&body).expect("json error");
    assert_eq!(err["code"], "range_not_satisfiable");

    // Deleting the recording deletes every file of it.
    let stored = c.server.dir.path().join("recordings").join(m).join(&normal);
    assert!(stored.join("mix.ogg").exists(), "{}", stored.display());
    assert_eq!(
        std::fs::read_dir(&stored).expect("dir").count(),
        4,
        "the mix and three speakers"
    );
    c.server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/recordings/{normal}"),
            Some(&c.host.1),
            None,
        )
        .await
        .expect(200);
    assert!(!stored.join("mix.ogg").exists());
    assert_eq!(
        std::fs::read_dir(&stored).map(|d| d.count()).unwrap_or(0),
        0
    );
    let (status, _, _) = get_bytes(&c, &c.host.1, &audio, None).await;
    assert_eq!(status, 404);

    for p in [host, ana, ben] {
        p.quit().await;
    }
}

/// 20 ms of a 660 Hz tone at 44.1 kHz, Int16 LE, from sample `from`.
fn relay_frame(from: usize) -> Vec<u8> {
    crate::sio::tone_pcm(660.0, 44_100.0, from, 882)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_audio_is_encoded_for_its_speaker_with_its_pause_and_mixed_with_webrtc() {
    let c = Class::start(&["ana"], |_| {}).await;
    let base = c.server.base.clone();
    let (host_id, ana_id) = (c.host.0.clone(), c.students[0].0.clone());
    let host = Aiortc::join(&base, &c.host.1, &c.meeting, &host_id, 440).await;
    let mut ana = crate::sio::Client::spawn(crate::sio::Kind::Node).await;
    ana.connect(
        &base,
        crate::sio::AuthForm::Object,
        &c.students[0].1,
        Some(&c.meeting),
    )
    .await
    .expect("connects");
    // The host's tone reaches the server before the recording starts.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if c.server.metric("meet_sfu_received_packets_total").await > 0.0 {
            break;
        }
        assert!(Instant::now() < end, "the host's peer never sent audio");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let m = c.meeting.clone();
    // The recording's time 0 is somewhere in this request, between t0 and t1: a moment is at
    // most `late` and at least `early` on the file's timeline.
    let t0 = Instant::now();
    let id = start_recording(&c).await;
    let t1 = Instant::now();
    // Ana sends 2 s of PCM in 20 ms messages, pauses 1.5 s, sends 1.5 s more, at the pace of
    // a microphone (or slower, when the machine is busy: the file keeps to the clock).
    let sender = tokio::spawn(async move {
        let mut spans = Vec::new();
        let mut sample = 0;
        let mut seq = 0u64;
        for (i, frames) in [100usize, 75].into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
            }
            let from = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..frames {
                tick.tick().await;
                let msg = json!({"audioData": crate::sio::to_bin(&relay_frame(sample)), "format": "s16", "sampleRate": 44_100, "seq": seq});
                let ack = ana.call("broadcast-audio", msg).await;
                assert_eq!(ack["ok"], true, "{ack}");
                sample += 882;
                seq += 1;
            }
            spans.push((from, Instant::now()));
        }
        (ana, spans)
    });
    let (mut ana, spans) = sender.await.expect("sender");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t_stop = t0.elapsed().as_secs_f64();
    post(&c, &format!("/api/meetings/{m}/recording/stop"), 200).await;
    let rec = completed(&c, &id).await;
    close_to(
        rec["duration"].as_f64().expect("duration"),
        t_stop,
        "duration",
    );
    let names: Vec<&str> = rec["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .filter_map(|t| t["username"].as_str())
        .collect();
    assert!(
        names.contains(&"ana") && names.contains(&"teacher"),
        "{rec}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let ana_file = dir.path().join("ana.ogg");
    save(
        &c,
        &c.host.1,
        &format!("/api/recordings/{id}/audio?track={ana_id}"),
        &ana_file,
    )
    .await;
    close_to(opusinfo(&ana_file), t_stop, "opusinfo, ana");
    let j = judge(&ana_file, &[440.0, 660.0]);
    close_to(
        j["decoded"].as_f64().expect("decoded"),
        t_stop,
        "decoded, ana",
    );
    let late = |i: Instant| (i - t0).as_secs_f64();
    let early = |i: Instant| (i - t1).as_secs_f64();
    let ((a0, a1), (b0, b1)) = (spans[0], spans[1]);
    // Within each span, and within the pause.
    let (a0, a1, pause0, pause1, b0, b1) = (
        late(a0),
        early(a1),
        late(a1),
        early(b0),
        late(b0),
        early(b1),
    );
    tones_in(
        &j,
        a0 + 0.4,
        a1 - 0.3,
        &[660.0],
        &[440.0],
        "ana, first span",
    );
    silent(&j, pause0 + 0.4, pause1 - 0.4, "ana, her pause");
    tones_in(
        &j,
        b0 + 0.4,
        b1 - 0.3,
        &[660.0],
        &[440.0],
        "ana, second span",
    );

    let mix = dir.path().join("mix.ogg");
    save(&c, &c.host.1, &format!("/api/recordings/{id}/audio"), &mix).await;
    close_to(opusinfo(&mix), t_stop, "opusinfo, mix");
    let j = judge(&mix, &[440.0, 660.0]);
    tones_in(&j, a0 + 0.4, a1 - 0.3, &[440.0, 660.0], &[], "mix, both");
    tones_in(
        &j,
        pause0 + 0.4,
        pause1 - 0.4,
        &[440.0],
        &[660.0],
        "mix, the host alone",
    );
    tones_in(
        &j,
        b0 + 0.4,
        b1 - 0.3,
        &[440.0, 660.0],
        &[],
        "mix, both again",
    );
    ana.disconnect().await;
    host.quit().await;
}

/// Waits until `p` has had socket event `name`; its data.
async fn event_of(p: &crate::rtc::Participant, name: &str) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((v, _)) = p.events(name).into_iter().next() {
            return v;
        }
        assert!(Instant::now() < end, "{}: no `{name}`", p.user);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_dtx_keep_a_speakers_file_at_wall_clock_length_and_the_end_stops_it() {
    // Recording starts by itself when the meeting becomes active.
    let c = Class::start(&["ana"], |config| config.recordings.auto_start = true).await;
    let base = c.server.base.clone();
    let (host_id, ana_id) = (c.host.0.clone(), c.students[0].0.clone());
    let host = crate::rtc::Participant::join(&base, &c.host.1, &c.meeting, &host_id).await;
    let t0 = Instant::now();
    let m = &c.meeting;
    let shown = c.server.get(&format!("/api/meetings/{m}"), &c.host.1).await;
    let shown = shown.expect(200)["meeting"]["recording"].clone();
    let id = shown["_id"].as_str().expect("recording").to_owned();
    assert_eq!(shown["isPrivate"], false);
    // The host's own join started it: the connection-ack says so (the event may have gone out
    // before the socket joined the meeting's room).
    assert_eq!(host.ack["recording"]["_id"], json!(id), "{}", host.ack);
    let ana = crate::rtc::Participant::join(&base, &c.students[0].1, m, &ana_id).await;
    assert_eq!(
        ana.ack["recording"]["_id"],
        json!(id),
        "a later joiner too: {}",
        ana.ack
    );

    // The host's stream loses every 20th packet (5 %) throughout, and goes quiet for 2 s in
    // the middle with DTX (timestamps run on, nothing is sent).
    host.net
        .lose_every
        .store(20, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.net
        .dtx
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let dtx_from = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    host.net
        .dtx
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let dtx_to = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Ending the meeting stops the recording: recording-ended comes first, then the end.
    let t_end = t0.elapsed().as_secs_f64();
    c.server
        .post(&format!("/api/meetings/{m}/end"), &c.host.1, json!({}))
        .await
        .expect(200);
    let ended = event_of(&ana, "recording-ended").await;
    assert_eq!(ended["recordingId"], json!(id));
    let (_, rec_at) = ana.events("recording-ended")[0].clone();
    event_of(&ana, "meeting-ended").await;
    let (_, end_at) = ana.events("meeting-ended")[0].clone();
    assert!(rec_at <= end_at, "recording-ended before meeting-ended");
    let rec = completed(&c, &id).await;
    close_to(
        rec["duration"].as_f64().expect("duration"),
        t_end,
        "duration",
    );

    let dir = tempfile::tempdir().expect("tempdir");
    for (user, name) in [(&host_id, "teacher"), (&ana_id, "ana")] {
        let track = rec["tracks"]
            .as_array()
            .expect("tracks")
            .iter()
            .find(|t| t["userId"] == json!(user))
            .unwrap_or_else(|| panic!("no track of {name}: {rec}"))
            .clone();
        assert_eq!(track["username"], name);
        let file = dir.path().join(format!("{name}.ogg"));
        save(
            &c,
            &c.host.1,
            &format!("/api/recordings/{id}/audio?track={user}"),
            &file,
        )
        .await;
        let length = opusinfo(&file);
        // Each file runs from the recording's start to its end, whatever the stream did.
        close_to(length, t_end, &format!("{name}'s file"));
        close_to(
            crate::recorder::opusdec(&file),
            t_end,
            &format!("{name}, opusdec"),
        );
        assert!((track["duration"].as_f64().expect("duration") - length).abs() < 0.05);
    }
    // The host's DTX span is silence in his file; the spans around it are not.
    let j = judge(&dir.path().join("teacher.ogg"), &[]);
    silent(&j, dtx_from + 0.4, dtx_to - 0.4, "the host's DTX");
    let loud = windows(&j, 0.5, dtx_from - 0.3)
        .iter()
        .filter(|w| w["rms"].as_f64().unwrap_or(0.0) > 0.001)
        .count();
    assert!(
        loud > 0,
        "the host's file has his audio before the DTX: {j}"
    );
    ana.leave().await;
    host.leave().await;
}

#[tokio::test]
async fn who_may_start_and_stop_and_the_duration_limit_stops_it() {
    let c = Class::start(&["ana"], |_| {}).await;
    let m = c.meeting.clone();
    let (_, other) = c.server.host("other").await;
    let path = |what: &str| format!("/api/meetings/{m}/recording/{what}");
    let code = |r: &crate::common::Reply| (r.status.as_u16(), r.code().to_owned());
    let r = c
        .server
        .post(
            "/api/meetings/nosuchmeeting/recording/start",
            &c.host.1,
            json!({}),
        )
        .await;
    assert_eq!(code(&r).0, 404);
    let r = c
        .server
        .post(&path("start"), &c.students[0].1, json!({}))
        .await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = c.server.post(&path("start"), &other, json!({})).await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = c
        .server
        .post(&path("start"), &c.server.admin, json!({}))
        .await;
    assert_eq!(
        code(&r),
        (403, "forbidden".into()),
        "admins stop, they do not start"
    );
    let r = c
        .server
        .post(&path("start"), &c.host.1, json!({"meetingId": "another"}))
        .await;
    assert_eq!(code(&r), (400, "validation_failed".into()));
    let r = c.server.post(&path("stop"), &c.host.1, json!({})).await;
    assert_eq!(code(&r), (409, "not_recording".into()));

    // The admin may stop the host's recording; another host may not.
    let id = start_recording(&c).await;
    let r = c.server.post(&path("stop"), &other, json!({})).await;
    assert_eq!(code(&r), (403, "forbidden".into()));
    let r = c
        .server
        .post(&path("stop"), &c.server.admin, json!({}))
        .await;
    assert_eq!(r.expect(200)["recording"]["_id"], json!(id));
    completed(&c, &id).await;

    // Running when the 5-hour limit passes: the cleanup job ends the meeting and the recording.
    c.server
        .post(
            &format!("/api/meetings/{m}/join"),
            &c.students[0].1,
            json!({}),
        )
        .await
        .expect(200);
    let id = start_recording(&c).await;
    c.server
        .clock
        .advance(chrono::Duration::hours(5) + chrono::Duration::minutes(1));
    let job = meet::jobs::by_name("cleanup").expect("job");
    let report = job
        .run(&c.server.app().services, &meet::jobs::Silent, false)
        .await
        .expect("run");
    assert_eq!(report.changed, 1);
    let rec = completed(&c, &id).await;
    assert_eq!(rec["status"], "completed");
    let host = c.server.login("teacher", "teacher-password").await;
    let meeting = c.server.get(&format!("/api/meetings/{m}"), &host).await;
    let meeting = &meeting.expect(200)["meeting"];
    assert_eq!(meeting["endReason"], "duration_exceeded");
    assert_eq!(meeting["recording"], Value::Null);
    let r = c.server.post(&path("start"), &host, json!({})).await;
    assert_eq!(code(&r), (409, "meeting_ended".into()));
}
