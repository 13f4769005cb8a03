//! Real Socket.IO clients for the tests: `socket.io-client` 4 on Node and `python-socketio`,
//! each a child process driven over JSON lines (`tests/clients/`). `tests/run` installs them.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

pub const WAIT: Duration = Duration::from_secs(10);
/// How long an acknowledgement may take: a debug build under the whole suite's load, with 50
/// peers on one shard renegotiating, has taken more than socket.io-client's 5 s default.
const ACK_WAIT: Duration = Duration::from_secs(30);

/// Which client, and for Node whether it may use long-polling first (the default) or only
/// websockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Node,
    NodeWebsocket,
    Python,
    /// `rtc_py.py`: python-socketio plus an aiortc peer connection (see `crate::rtc`).
    Aiortc,
}

pub const ALL: [Kind; 3] = [Kind::Node, Kind::NodeWebsocket, Kind::Python];

/// How the credentials travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthForm {
    /// `auth: {token, meetingId}`
    Object,
    /// `?token=...&meetingId=...`
    Query,
    /// `?auth=<base64 of JSON>`, as the original's clients did.
    Base64,
}

pub struct Client {
    pub kind: Kind,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: VecDeque<Value>,
    next_id: u64,
    pub sid: String,
    /// Node only: audio events carry their length instead of their bytes.
    pub brief: bool,
}

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

impl Client {
    pub async fn spawn(kind: Kind) -> Self {
        Self::spawn_with(kind, &[]).await
    }

    /// A client process with extra command-line arguments.
    pub async fn spawn_with(kind: Kind, args: &[&str]) -> Self {
        let dir = clients_dir();
        let mut cmd = match kind {
            Kind::Node | Kind::NodeWebsocket => {
                assert!(
                    dir.join("node_modules/socket.io-client").exists(),
                    "socket.io-client is missing: run tests/run (it installs the test clients)"
                );
                let mut c = Command::new("node");
                c.arg(dir.join("sio-node.mjs"));
                c
            }
            Kind::Python | Kind::Aiortc => {
                let python = dir.join("../.venv/bin/python");
                assert!(
                    python.exists(),
                    "tests/.venv is missing: run tests/run (it installs python-socketio and aiortc)"
                );
                let mut c = Command::new(python);
                c.arg(dir.join(if kind == Kind::Python {
                    "sio_py.py"
                } else {
                    "rtc_py.py"
                }));
                c
            }
        };
        cmd.args(args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("test client starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        Self {
            kind,
            child,
            stdin,
            lines,
            seen: VecDeque::new(),
            next_id: 0,
            sid: String::new(),
            brief: false,
        }
    }

    /// Writes one command line to the client.
    pub async fn send(&mut self, cmd: Value) {
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("client stdin");
        self.stdin.flush().await.expect("client stdin");
    }

    /// Connects with a token (and meeting) in the given form. `Ok(connection-ack)` or
    /// `Err(connect_error message)`.
    pub async fn connect(
        &mut self,
        base: &str,
        form: AuthForm,
        token: &str,
        meeting: Option<&str>,
    ) -> Result<Value, String> {
        let mut fields = json!({"token": token});
        if let Some(m) = meeting {
            fields["meetingId"] = json!(m);
        }
        let (auth, query) = match form {
            AuthForm::Object => (Some(fields), None),
            AuthForm::Query => (None, Some(fields)),
            AuthForm::Base64 => {
                // The original's clients also sent userId, role and username: ignored.
                fields["userId"] = json!("someone-else");
                fields["role"] = json!("admin");
                let b64 = base64::engine::general_purpose::STANDARD.encode(fields.to_string());
                (None, Some(json!({"auth": b64})))
            }
        };
        self.connect_raw(base, auth, query).await
    }

    pub async fn connect_raw(
        &mut self,
        base: &str,
        auth: Option<Value>,
        query: Option<Value>,
    ) -> Result<Value, String> {
        let mut cmd = json!({"op": "connect", "url": base, "auth": auth, "query": query, "brief": self.brief});
        match self.kind {
            Kind::NodeWebsocket => cmd["transports"] = json!(["websocket"]),
            Kind::Python => cmd["transports"] = json!(["websocket"]),
            Kind::Node => {}
            Kind::Aiortc => unreachable!("rtc_py.py connects from its arguments"),
        }
        self.send(cmd).await;
        let first = self
            .wait_for(|v| v["ev"] == "connect" || v["ev"] == "connect_error", WAIT)
            .await
            .unwrap_or_else(|| panic!("{:?}: no answer to connect", self.kind));
        if first["ev"] == "connect_error" {
            return Err(first["message"].as_str().unwrap_or_default().to_owned());
        }
        self.sid = first["id"].as_str().unwrap_or_default().to_owned();
        Ok(self.event("connection-ack").await)
    }

    /// Emits without asking for an acknowledgement.
    pub async fn emit(&mut self, event: &str, data: Value) {
        self.send(json!({"op": "emit", "event": event, "data": data, "ack": false}))
            .await;
    }

    /// Emits and returns the acknowledgement.
    pub async fn call(&mut self, event: &str, data: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let timeout = ACK_WAIT.as_millis() as u64;
        self.send(json!({"op": "emit", "event": event, "data": data, "ack": true, "id": id, "timeout": timeout}))
            .await;
        let ack = self
            .wait_for(
                |v| v["ev"] == "ack" && v["id"] == id,
                ACK_WAIT + Duration::from_secs(2),
            )
            .await
            .unwrap_or_else(|| panic!("{:?}: no ack for {event}", self.kind));
        assert!(ack["error"].is_null(), "{event}: {ack}");
        ack["data"].clone()
    }

    pub async fn disconnect(&mut self) {
        self.send(json!({"op": "disconnect"})).await;
    }

    /// The client's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// Kills the client process: its connection drops without a goodbye.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// The next line matching `pred`, keeping the others for later.
    pub async fn wait_for(
        &mut self,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        if let Some(i) = self.seen.iter().position(&pred) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .ok()??;
            if pred(&line) {
                return Some(line);
            }
            self.seen.push_back(line);
        }
    }

    /// The data of the next event `name`.
    pub async fn event(&mut self, name: &str) -> Value {
        self.try_event(name, WAIT)
            .await
            .unwrap_or_else(|| panic!("{:?} {}: no `{name}` event", self.kind, self.sid))
    }

    pub async fn try_event(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(|v| v["ev"] == "event" && v["name"] == name, timeout)
            .await
            .map(|v| v["data"].clone())
    }

    /// The whole line of the next event `name` (with its receive time `t`, in ms).
    pub async fn event_line(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        self.wait_for(|v| v["ev"] == "event" && v["name"] == name, timeout)
            .await
    }

    /// Asserts that no event `name` arrives within `wait`.
    pub async fn assert_no(&mut self, name: &str, wait: Duration) {
        if let Some(v) = self.try_event(name, wait).await {
            panic!("{:?}: unexpected `{name}`: {v}", self.kind);
        }
    }

    /// The reason of the disconnect, when it comes.
    pub async fn disconnected(&mut self) -> String {
        let v = self
            .wait_for(|v| v["ev"] == "disconnect", WAIT)
            .await
            .unwrap_or_else(|| panic!("{:?}: still connected", self.kind));
        v["reason"].as_str().unwrap_or_default().to_owned()
    }

    /// The next line the client printed (kept ones first); `None` once the client is gone.
    pub async fn next_line(&mut self) -> Option<Value> {
        if let Some(v) = self.seen.pop_front() {
            return Some(v);
        }
        self.lines.recv().await
    }

    /// Hands every event `name` received so far to `f` (dropping them), keeping the others.
    pub fn drain_events(&mut self, name: &str, mut f: impl FnMut(&Value)) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push_back(v);
        }
        self.seen.retain(|v| {
            let hit = v["ev"] == "event" && v["name"] == name;
            if hit {
                f(&v["data"]);
            }
            !hit
        });
    }

    /// Forgets every event received so far.
    pub fn clear(&mut self) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push_back(v);
        }
        self.seen.clear();
    }
}

/// `n` samples of a tone at `hz` (0.4 of full scale) sampled at `rate`, from sample `from`,
/// as Int16 LE: relay audio for the tests.
pub fn tone_pcm(hz: f64, rate: f64, from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .flat_map(|i| {
            let t = i as f64 / rate;
            ((0.4 * 32_767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16).to_le_bytes()
        })
        .collect()
}

/// Bytes out of a `{"$bin": base64}` value.
pub fn bin(v: &Value) -> Vec<u8> {
    let b64 = v["$bin"]
        .as_str()
        .unwrap_or_else(|| panic!("not binary: {v}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64")
}

/// A binary value for a command.
pub fn to_bin(bytes: &[u8]) -> Value {
    json!({"$bin": base64::engine::general_purpose::STANDARD.encode(bytes)})
}
