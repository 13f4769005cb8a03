//! Injected faults on the real binary: the data dir's disk filling up, a thousand connections
//! that never finish their request, two hundred Socket.IO clients connecting at once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::smoke::{ADMIN_PASSWORD, Process, signed_in};

/// A tmpfs of `mib` MiB mounted at `path` for the test's life.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, mib: u32) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount a tmpfs (the suite runs as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
            .unwrap_or(false)
    })
}

/// Writes `path` until the file system is full; the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let block = vec![0xa5u8; 64 * 1024];
    let mut written = 0;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    let _ = f.sync_all();
    written
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_keeps_reads_and_recovers_losing_nothing() {
    if !is_root() {
        // tests/run runs as root (it installs packages); a developer's run without root
        // cannot mount a small file system.
        eprintln!("SKIPPED: mounting a tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let _fs = Tmpfs::mount(&data, 48);
    let server = Process::serve(&data);
    let base = server.addr.clone();
    // A request that hangs fails the test instead of holding it.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = |p: &str| format!("{base}{p}");
    use reqwest::Method as M;

    let (_, admin) = signed_in(&http, &base, "admin", ADMIN_PASSWORD).await;
    let (status, _) = call(
        &http,
        M::POST,
        url("/api/admin/hosts"),
        &admin,
        Some(json!({"username": "hosta", "password": "hosta-password"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, host) = signed_in(&http, &base, "hosta", "hosta-password").await;
    let (status, before) = call(
        &http,
        M::POST,
        url("/api/host/students"),
        &host,
        Some(json!({"username": "ana", "password": "ana-password"})),
    )
    .await;
    assert_eq!(status, 201, "{before}");

    // The disk fills up (another program's file, a log, anything).
    let filler = data.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0);

    // Writes go on while the database's own files have room (what it had allocated), then are
    // refused with the contract's error, again and again: never a 500, a hang, or a success
    // that is later lost.
    let mut accepted = vec!["ana".to_owned()];
    let mut refused = 0;
    for i in 0..5_000 {
        let name = format!("full{i}");
        let (status, body) = call(
            &http,
            M::POST,
            url("/api/host/students"),
            &host,
            Some(json!({"username": name, "password": "full-password"})),
        )
        .await;
        match status {
            201 => accepted.push(name),
            503 => {
                assert_eq!(body["status"], "error", "{body}");
                assert_eq!(body["code"], "disk_full", "{body}");
                refused += 1;
                if refused == 5 {
                    break;
                }
            }
            _ => panic!("a write on a full disk: {status} {body}"),
        }
    }
    assert_eq!(refused, 5, "the disk never filled up");
    eprintln!(
        "full disk: {} students written after the filler, then refused",
        accepted.len() - 1
    );
    let (status, body) = call(
        &http,
        M::POST,
        url("/api/meetings/create"),
        &host,
        Some(json!({"topic": "Full"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("disk_full")),
        "{body}"
    );
    // Reads still answer.
    let (status, body) = call(&http, M::GET, url("/api/host/students"), &host, None).await;
    assert_eq!(status, 200, "{body}");
    let listed = |body: &Value| {
        let mut names: Vec<String> = body["data"]["students"]
            .as_array()
            .expect("students")
            .iter()
            .filter_map(|s| s["username"].as_str().map(str::to_owned))
            .collect();
        names.sort_unstable();
        names
    };
    let mut want = accepted.clone();
    want.sort_unstable();
    assert_eq!(listed(&body), want);
    let (status, _) = call(&http, M::GET, url("/api/auth/profile"), &host, None).await;
    assert_eq!(status, 200);
    let health = http.get(url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status().as_u16(), 200);

    // Space comes back: writes succeed again, without a restart.
    std::fs::remove_file(&filler).expect("remove the filler");
    let end = Instant::now() + Duration::from_secs(20);
    let created = loop {
        let (status, body) = call(
            &http,
            M::POST,
            url("/api/host/students"),
            &host,
            Some(json!({"username": "ben", "password": "ben-password"})),
        )
        .await;
        if status == 201 {
            break body;
        }
        assert!(
            Instant::now() < end,
            "writes still fail after space came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(created["data"]["student"]["username"], "ben");

    // A restart opens the same database, with what was written before and after, and
    // nothing of what was refused.
    assert!(server.terminate().success());
    let server = Process::serve(&data);
    let base = server.addr.clone();
    let (_, host) = signed_in(&http, &base, "hosta", "hosta-password").await;
    let (status, body) = call(
        &http,
        M::GET,
        format!("{base}/api/host/students"),
        &host,
        None,
    )
    .await;
    assert_eq!(status, 200);
    want.push("ben".to_owned());
    want.sort_unstable();
    assert_eq!(listed(&body), want, "what was accepted, and only that");
    signed_in(&http, &base, "ben", "ben-password").await;
    assert!(server.terminate().success());
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unfinished_requests_hold_up_nobody_and_are_cut_off() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = Process::serve(&data_dir.path().join("data"));
    let base = server.addr.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let (_, admin) = signed_in(&http, &base, "admin", ADMIN_PASSWORD).await;
    let baseline = fds(server.pid());
    let addr = base.trim_start_matches("http://").to_owned();

    // A thousand clients send half a request line and then nothing, holding their sockets.
    let mut held = Vec::new();
    for _ in 0..1_000 {
        let mut s = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        tokio::io::AsyncWriteExt::write_all(
            &mut s,
            b"GET /api/auth/profile HTTP/1.1\r\nHost: x\r\n",
        )
        .await
        .expect("write");
        held.push(s);
    }
    // The server took them all …
    let end = Instant::now() + Duration::from_secs(20);
    while fds(server.pid()) < baseline + 1_000 {
        assert!(
            Instant::now() < end,
            "the server did not accept 1,000 connections"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // … and still answers everyone else.
    let (status, _) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/api/admin/stats"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, 200);
    signed_in(&http, &base, "admin", ADMIN_PASSWORD).await;

    // Their headers never end: the server closes them itself (the header timeout), with the
    // clients still holding their ends, and its descriptors come back to where they were.
    let end = Instant::now() + Duration::from_secs(90);
    while fds(server.pid()) > baseline + 5 {
        assert!(
            Instant::now() < end,
            "{} descriptors, {baseline} before the thousand",
            fds(server.pid())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Each socket was closed by the server: reading gives end of file, or the 408 hyper
    // sends on the header timeout, then end of file.
    let mut closed = 0;
    for mut s in held.drain(..100) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf),
        )
        .await;
        if matches!(read, Ok(Ok(_)) | Ok(Err(_))) {
            closed += 1;
        }
    }
    assert_eq!(closed, 100, "sockets the server left open");
    assert!(server.terminate().success());
}

/// A Socket.IO v4 client over a raw websocket: the handshake, then the namespace connect with
/// `token`; the socket id, and the stream to hold.
async fn socket_io_connect(
    addr: &str,
    token: &str,
) -> (
    String,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) {
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws/?EIO=4&transport=websocket"))
            .await
            .expect("websocket");
    let open = ws.next().await.expect("open").expect("frame");
    assert!(open.to_text().expect("text").starts_with('0'), "{open:?}");
    ws.send(Message::text(format!("40{}", json!({"token": token}))))
        .await
        .expect("send connect");
    loop {
        let msg = ws.next().await.expect("connect answer").expect("frame");
        let text = msg.to_text().expect("text").to_owned();
        if text == "2" {
            ws.send(Message::text("3")).await.expect("pong");
            continue;
        }
        assert!(text.starts_with("40"), "connect refused: {text}");
        let v: Value = serde_json::from_str(&text[2..]).expect("connect packet");
        return (v["sid"].as_str().expect("sid").to_owned(), ws);
    }
}

async fn socket_health(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/socket-health"))
        .send()
        .await
        .expect("socket-health")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sockets_connect_at_once_and_all_go() {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let server = Process::serve(&data_dir.path().join("data"));
    let base = server.addr.clone();
    let http = reqwest::Client::new();
    let (_, admin) = signed_in(&http, &base, "admin", ADMIN_PASSWORD).await;
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/api/admin/hosts"),
        &admin,
        Some(json!({"username": "hosta", "password": "hosta-password"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, host) = signed_in(&http, &base, "hosta", "hosta-password").await;
    let addr = base.trim_start_matches("http://").to_owned();
    let baseline = fds(server.pid());

    let connects = (0..200).map(|_| socket_io_connect(&addr, &host));
    let sockets = futures_util::future::join_all(connects).await;
    let mut sids: Vec<&str> = sockets.iter().map(|(sid, _)| sid.as_str()).collect();
    sids.sort_unstable();
    sids.dedup();
    assert_eq!(sids.len(), 200, "every socket has its own id");
    assert_eq!(socket_health(&http, &base).await["connections"], 200);

    // All leave at once: nothing of them is left.
    drop(sockets);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let health = socket_health(&http, &base).await;
        if health["connections"] == 0 && fds(server.pid()) <= baseline + 5 {
            break;
        }
        assert!(
            Instant::now() < end,
            "{health}; {} descriptors, {baseline} before",
            fds(server.pid())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(server.terminate().success());
}
