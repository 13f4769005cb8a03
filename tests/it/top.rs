//! `meet top` in a real terminal (tmux) against the real binary with WebRTC peers (the webrtc
//! crate) talking in a meeting: the meeting, its people and their packet rates on screen, a mute
//! from the keyboard checked over the API, a server restart shown as "reconnecting" and then
//! the data again, and `q` leaving with status 0. And `--once --json` for scripts.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::rtc::Participant;
use crate::smoke::{BIN, Process, data_dir, meet, signed_in as token};

struct Tmux(String);

impl Tmux {
    fn start(session: &str, cmd: &str) -> Self {
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                session,
                "-x",
                "120",
                "-y",
                "40",
                cmd,
            ])
            .status()
            .expect("tmux");
        assert!(ok.success(), "tmux starts");
        Self(session.to_owned())
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.0])
            .output()
            .expect("capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            Command::new("tmux")
                .args(["send-keys", "-t", &self.0, k])
                .status()
                .expect("send-keys");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until the screen satisfies `ok` (20 s at most), returning it.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{what}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn alive(&self) -> bool {
        Command::new("tmux")
            .args(["has-session", "-t", &self.0])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// A rate column of a participant's line that is not zero.
fn moving(screen: &str, name: &str) -> bool {
    screen.lines().any(|l| {
        l.contains(name)
            && l.contains("webrtc")
            && l.split_whitespace()
                .any(|w| w.parse::<f64>().is_ok_and(|v| v >= 10.0))
    })
}

// Several threads: the peers keep talking while this one waits on `meet` and tmux.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meet_top_in_a_real_terminal() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let env = [("MEET_MEDIA__BIND", r#"["127.0.0.1"]"#)];
    let server = Process::serve_with(&data, &env);
    let base = server.addr.clone();
    let client = reqwest::Client::new();
    let out = meet(
        &data,
        &["admin", "host", "add", "teacher", "--password-stdin"],
        Some("teacher-pass\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (host_id, host) = token(&client, &base, "teacher", "teacher-pass").await;
    let post = |path: String, token: String, body: Value| {
        let client = client.clone();
        async move {
            let r = client
                .post(path)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("post");
            assert!(r.status().is_success(), "{}", r.status());
            r.json::<Value>().await.expect("json")
        }
    };
    post(
        format!("{base}/api/host/students"),
        host.clone(),
        json!({"username": "ana", "password": "ana-password"}),
    )
    .await;
    let (ana_id, ana) = token(&client, &base, "ana", "ana-password").await;
    let m = post(
        format!("{base}/api/meetings/create"),
        host.clone(),
        json!({"topic": "Topology"}),
    )
    .await;
    let m = m["meeting"]["_id"].as_str().expect("id").to_owned();
    let teacher = Participant::join(&base, &host, &m, &host_id).await;
    let student = Participant::join(&base, &ana, &m, &ana_id).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while teacher.packets_from(&ana_id) < 20 || student.packets_from(&host_id) < 20 {
        assert!(Instant::now() < deadline, "the peers hear each other");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // For scripts: one snapshot with real rates.
    let out = meet(&data, &["top", "--once", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: Value = serde_json::from_slice(&out.stdout).expect("json");
    let live = &snap["meetings"][0];
    assert_eq!(live["topic"], "Topology", "{snap}");
    let people = live["participants"].as_array().expect("people");
    assert_eq!(people.len(), 2);
    for p in people {
        assert_eq!(p["transport"], "webrtc", "{p}");
        assert!(
            p["packetsInPerSecond"].as_f64().unwrap_or(0.0) > 10.0,
            "{p}"
        );
    }

    // The dashboard in a 120×40 terminal.
    let cmd = format!(
        "env MEET_CONFIG=/dev/null MEET_SERVER__DATA_DIR={} {BIN} top; echo exit=$? > {}/top.exit; sleep 30",
        data.display(),
        dir.path().display()
    );
    let tmux = Tmux::start(&format!("meet-top-{}", std::process::id()), &cmd);
    let s = tmux.wait("the meeting is listed", |s| {
        s.contains("Topology") && s.contains("teacher")
    });
    assert!(s.contains("live meetings: 1"), "{s}");
    assert!(s.contains("2/50"), "two people online: {s}");
    tmux.keys(&["Enter"]);
    tmux.wait("its people with their packet rates", |s| {
        moving(s, "ana") && moving(s, "teacher")
    });
    // The people are listed in order of joining: the host, then ana.
    tmux.keys(&["Down", "m"]);
    tmux.wait("the question", |s| s.contains("Mute ana? y/n"));
    tmux.keys(&["y"]);
    tmux.wait("the answer", |s| s.contains("ana is muted"));
    let r: Value = client
        .get(format!("{base}/api/meetings/participants/{m}"))
        .bearer_auth(&host)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let ana_row = r["participants"]
        .as_array()
        .and_then(|v| v.iter().find(|p| p["_id"] == ana_id.as_str()))
        .cloned()
        .expect("ana");
    assert_eq!(ana_row["muted"], true, "muted through Services: {r}");

    // The server restarts: "reconnecting…", then the data again.
    teacher.leave().await;
    student.leave().await;
    assert!(server.terminate().success());
    tmux.wait("reconnecting", |s| s.contains("reconnecting"));
    let server = Process::serve_with(&data, &env);
    tmux.wait("back", |s| {
        !s.contains("reconnecting") && s.contains("meet 0.")
    });
    tmux.keys(&["q"]);
    let exit = dir.path().join("top.exit");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exit.exists() {
        assert!(
            Instant::now() < deadline,
            "meet top did not quit: {}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_to_string(&exit).expect("exit").trim(),
        "exit=0"
    );
    assert!(tmux.alive());
    assert!(server.terminate().success());

    // No server: a clear message and status 1.
    let out = meet(&data, &["top"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no meet server answers"));
}
