//! A client that stops reading must cost the others nothing: the real `meet` binary, a host
//! sending 20 ms frames, one normal listener and one socket that never reads. The listener
//! keeps getting every frame, the silent socket loses frames (counted) at its queue's bound
//! and is dropped at the next heartbeat. (What it costs in latency and memory:
//! `bench/fanout.sh`'s `:silent` scenarios.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::sio::{AuthForm, Client, Kind, to_bin};
use crate::smoke::{ADMIN_PASSWORD, Process, data_dir};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.expect("json")
}

/// A websocket Socket.IO client that connects to the meeting and then never reads, with a
/// 4 KiB receive buffer so the server's side backs up quickly.
async fn silent_socket(
    addr: &str,
    token: &str,
    meeting: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let host = addr.trim_start_matches("http://");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket
        .connect(host.parse().expect("addr"))
        .await
        .expect("connect");
    let url =
        format!("ws://{host}/ws/?EIO=4&transport=websocket&token={token}&meetingId={meeting}");
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
        .await
        .expect("websocket");
    ws.send(Message::text("40"))
        .await
        .expect("socket.io connect");
    ws
}

#[tokio::test]
async fn a_client_that_never_reads_slows_nobody_and_costs_bounded_memory() {
    let dir = tempfile::tempdir().expect("dir");
    let server = Process::serve_with(
        &data_dir(&dir),
        &[
            ("MEET_REALTIME__PING_INTERVAL_SECONDS", "10"),
            ("MEET_REALTIME__PING_TIMEOUT_SECONDS", "10"),
            ("MEET_REALTIME__RECONNECT_GRACE_SECONDS", "1"),
            ("MEET_REALTIME__QUEUE_PACKETS", "32"),
        ],
    );
    let base = server.addr.clone();
    let http = reqwest::Client::new();
    let admin = post(
        &http,
        format!("{base}/api/auth/login"),
        None,
        json!({"username": "admin", "password": ADMIN_PASSWORD}),
    )
    .await;
    let admin = admin["token"].as_str().expect("token").to_owned();
    post(
        &http,
        format!("{base}/api/admin/hosts"),
        Some(&admin),
        json!({"username": "teacher", "password": "teacher-password"}),
    )
    .await;
    let host = post(
        &http,
        format!("{base}/api/auth/login"),
        None,
        json!({"username": "teacher", "password": "teacher-password"}),
    )
    .await;
    let host = host["token"].as_str().expect("token").to_owned();
    let mut tokens = Vec::new();
    for name in ["listener", "silent"] {
        post(
            &http,
            format!("{base}/api/host/students"),
            Some(&host),
            json!({"username": name, "password": format!("{name}-password")}),
        )
        .await;
        let t = post(
            &http,
            format!("{base}/api/auth/login"),
            None,
            json!({"username": name, "password": format!("{name}-password")}),
        )
        .await;
        tokens.push(t["token"].as_str().expect("token").to_owned());
    }
    let meeting = post(
        &http,
        format!("{base}/api/meetings/create"),
        Some(&host),
        json!({"topic": "Slow"}),
    )
    .await;
    let meeting = meeting["meeting"]["_id"].as_str().expect("id").to_owned();

    let mut speaker = Client::spawn(Kind::NodeWebsocket).await;
    speaker
        .connect(&base, AuthForm::Object, &host, Some(&meeting))
        .await
        .expect("host");
    let mut listener = Client::spawn(Kind::NodeWebsocket).await;
    listener.brief = true;
    listener
        .connect(&base, AuthForm::Object, &tokens[0], Some(&meeting))
        .await
        .expect("listener");
    let silent = silent_socket(&base, &tokens[1], &meeting).await;
    speaker.event("participant-joined").await;
    speaker.event("participant-joined").await;

    let rss_before = rss_kib(server.pid());
    // 400 frames of 16,384 Float32 samples (64 KiB in, 32 KiB out), one every 20 ms: 8 s,
    // 12.5 MiB that an unbounded queue would hold for the silent socket.
    let frames = 400u64;
    let audio = to_bin(&vec![0x3e; 64 * 1024]);
    let mut sent = Vec::new();
    let start = tokio::time::Instant::now();
    for seq in 0..frames {
        tokio::time::sleep_until(start + Duration::from_millis(20 * seq)).await;
        sent.push(now_ms());
        speaker
            .emit("broadcast-audio", json!({"audioData": audio, "seq": seq}))
            .await;
    }
    let mut latencies = Vec::new();
    for _ in 0..frames {
        let line = listener
            .event_line("audio-broadcast", Duration::from_secs(10))
            .await
            .expect("the listener gets every frame");
        let seq = line["data"]["seq"].as_u64().expect("seq") as usize;
        assert_eq!(line["data"]["audioData"]["$len"], 32 * 1024);
        latencies.push(line["t"].as_f64().expect("t") - sent[seq]);
    }
    latencies.sort_by(f64::total_cmp);
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    // Measured while the silent socket is still connected (the heartbeat has not run yet).
    // Printed, not asserted: the figures are bench/fanout.sh's (`KxN:silent` against `KxN`,
    // bench/README.md); the test holds the behaviour (every frame to the listener, frames
    // dropped for the silent socket at its queue's bound, the socket dropped).
    let rss_after = rss_kib(server.pid());
    let dropped = counter(&base, "meet_audio_frames_dropped_total").await;
    eprintln!(
        "slow consumer: listener latency p50 {p50:.1} ms p99 {p99:.1} ms; dropped for the silent socket {dropped}; \
         RSS {} → {} MiB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        dropped > 0,
        "the silent socket's queue filled and frames were dropped"
    );
    // The silent socket is dropped by the heartbeat and announced as gone.
    let left = speaker
        .wait_for(
            |v| v["ev"] == "event" && v["name"] == "participant-left",
            Duration::from_secs(30),
        )
        .await
        .expect("the silent socket is dropped");
    assert_eq!(left["data"]["username"], "silent");
    drop(silent);
    // SIGTERM with sockets still connected: they are closed and the server exits cleanly.
    assert!(server.terminate().success());
}

/// A counter of `/metrics`.
async fn counter(base: &str, name: &str) -> u64 {
    let text = crate::common::metrics_text(base).await.expect("metrics");
    crate::common::metric_in(&text, name) as u64
}

/// A socket whose queue is full (it stopped reading while the host talked) asks for an
/// acknowledgement: it cannot be queued, and a lost one leaves the client waiting for ever.
/// The server disconnects the socket instead, which the client reads as soon as it reads
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_that_cannot_be_queued_disconnects_the_socket() {
    use futures_util::StreamExt;
    let c = crate::common::Class::start(&["silent"], |config| {
        config.realtime.queue_packets = 8;
        // No heartbeat ends the silent socket during the test.
        config.realtime.ping_interval = Duration::from_secs(120);
        config.realtime.ping_timeout = Duration::from_secs(120);
        config.realtime.reconnect_grace = Duration::from_secs(1);
    })
    .await;
    let base = c.server.base.clone();
    let mut speaker = Client::spawn(Kind::NodeWebsocket).await;
    speaker
        .connect(&base, AuthForm::Object, &c.host.1, Some(&c.meeting))
        .await
        .expect("host");
    let mut silent = silent_socket(&base, &c.students[0].1, &c.meeting).await;
    speaker.event("participant-joined").await;
    let dropped = "meet_audio_frames_dropped_total";
    let disconnected = "meet_realtime_unreadable_disconnects_total";
    assert_eq!(counter(&base, disconnected).await, 0);
    // The host talks until the silent socket's queue is full (its frames are dropped), asks
    // for an acknowledgement from it and talks on: the queue stays full.
    let audio = to_bin(&vec![0x3e; 64 * 1024]);
    let mut asked = None;
    for seq in 0..1000u64 {
        speaker
            .emit("broadcast-audio", json!({"audioData": audio, "seq": seq}))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if seq % 10 != 9 {
            continue;
        }
        let lost = counter(&base, dropped).await;
        match asked {
            None if lost > 0 => {
                silent
                    .send(Message::text(r#"421["audio-status",{"muted":true}]"#))
                    .await
                    .expect("the silent socket writes");
                asked = Some(lost);
            }
            Some(at) if lost > at + 10 => break,
            _ => {}
        }
    }
    let at = asked.expect("the silent socket's queue never filled");
    assert!(
        counter(&base, dropped).await > at + 10,
        "frames were no longer dropped for the silent socket"
    );
    // It reads again: what was queued, then the disconnection, never the acknowledgement.
    let mut seen = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, silent.next()).await {
        if let Message::Text(t) = m {
            let t = t.to_string();
            if t == "41" || t.starts_with("431") {
                seen.push(t);
                break;
            }
        }
    }
    assert_eq!(seen, ["41"], "the silent socket was left waiting");
    assert_eq!(counter(&base, disconnected).await, 1);
    // The host sees it leave (after the reconnection grace).
    let left = speaker
        .wait_for(
            |v| v["ev"] == "event" && v["name"] == "participant-left",
            Duration::from_secs(30),
        )
        .await
        .expect("the silent socket's user left");
    assert_eq!(left["data"]["userId"], c.students[0].0.as_str());
}
