//! The peer SFU the load is compared with: Debian's Janus 1.1, VideoRoom plugin, audio only,
//! one multistream subscriber per participant, driven over Janus' HTTP API (long-polled events)
//! by the same sans-IO participants as meet (bench/sfu_lite.rs, bench/README.md). Janus
//! (libnice) gathers no loopback candidate, so the participants are on the machine's own
//! address, which the kernel carries over the loopback device all the same.
//!
//! Each participant publishes its microphone on one connection (Janus' publishers are their
//! own peer connections) and receives every other participant's stream on a second one (one
//! subscriber handle subscribed to every other feed at once, after every publisher is in).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

use super::lite::{Lite, Peer, own_address};
use super::{Participant, Server};

/// Starts Janus with a configuration of its own (HTTP transport on 127.0.0.1:`http_port`,
/// VideoRoom only, IPv4, RTP ports from `ports`).
pub async fn start(http_port: u16, ports: u16, pin: bool) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let plugins = [
        "audiobridge",
        "duktape",
        "echotest",
        "lua",
        "nosip",
        "recordplay",
        "sip",
        "streaming",
        "textroom",
        "videocall",
        "voicemail",
    ]
    .map(|p| format!("libjanus_{p}.so"))
    .join(",");
    let transports = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]
        .map(|p| format!("libjanus_{p}.so"))
        .join(",");
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text);
    write(
        "janus.jcfg",
        format!(
            r#"general: {{
  configs_folder = "{cfg}"
  plugins_folder = "{lib}/plugins"
  transports_folder = "{lib}/transports"
  events_folder = "{lib}/events"
  loggers_folder = "{lib}/loggers"
  log_to_stdout = true
  debug_level = 4
  session_timeout = 120
}}
media: {{
  ipv6 = false
  rtp_port_range = "{ports}-{max}"
}}
plugins: {{
  disable = "{plugins}"
}}
transports: {{
  disable = "{transports}"
}}
events: {{
  broadcast = false
}}
"#,
            cfg = dir.path().display(),
            max = ports + 999,
        ),
    )?;
    write(
        "janus.transport.http.jcfg",
        format!(
            "general: {{\n  json = \"compact\"\n  base_path = \"/janus\"\n  http = true\n  port = {http_port}\n  ip = \"127.0.0.1\"\n  https = false\n}}\nadmin: {{\n  admin_http = false\n}}\n"
        ),
    )?;
    write("janus.plugin.videoroom.jcfg", "general: {\n}\n".into())?;
    let mut command = if pin {
        let mut c = tokio::process::Command::new("taskset");
        c.args(["-c", "1", "janus"]);
        c
    } else {
        tokio::process::Command::new("janus")
    };
    let mut child = command
        .arg("-F")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("running janus (apt-get install janus)")?;
    let pid = child.id().context("janus pid")?;
    let stdout = child.stdout.take().context("janus stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("HTTP webserver started") {
                return Ok::<_, anyhow::Error>(());
            }
        }
        bail!("janus exited before its HTTP transport started")
    })
    .await
    .context("janus did not start within 30 s")??;
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("[ERR]") {
                eprintln!("janus: {line}");
            }
        }
    });
    Ok(Server {
        child,
        base: format!("http://127.0.0.1:{http_port}/janus"),
        pid,
        _dir: dir,
    })
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One Janus session: requests, and the events of its long poll by transaction.
struct Session {
    http: reqwest::Client,
    url: String,
    waiting: Waiting,
    next: AtomicU64,
}

impl Session {
    async fn create(http: &reqwest::Client, base: &str) -> Result<Arc<Self>> {
        let v = post(http, base, json!({"janus": "create", "transaction": "c"})).await?;
        let id = v["data"]["id"].as_u64().context("no session id")?;
        let session = Arc::new(Self {
            http: http.clone(),
            url: format!("{base}/{id}"),
            waiting: Arc::default(),
            next: AtomicU64::new(1),
        });
        let poll = Arc::clone(&session);
        tokio::spawn(async move {
            loop {
                let Ok(res) = poll.http.get(format!("{}?maxev=10", poll.url)).send().await else {
                    return;
                };
                let Ok(v) = res.json::<Value>().await else {
                    return;
                };
                let events = match v {
                    Value::Array(a) => a,
                    one => vec![one],
                };
                for ev in events {
                    if ev["janus"] == "keepalive" {
                        continue;
                    }
                    let Some(t) = ev["transaction"].as_str() else {
                        continue;
                    };
                    let tx = poll.waiting.lock().ok().and_then(|mut w| w.remove(t));
                    if let Some(tx) = tx {
                        let _ = tx.send(ev);
                    }
                }
            }
        });
        Ok(session)
    }

    async fn attach(&self) -> Result<u64> {
        let v = post(
            &self.http,
            &self.url,
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": "a"}),
        )
        .await?;
        v["data"]["id"].as_u64().context("no handle id")
    }

    /// A plugin message; its answer (synchronous, or the event that follows an `ack`).
    async fn message(&self, handle: u64, body: Value, jsep: Option<Value>) -> Result<Value> {
        let t = format!("t{}", self.next.fetch_add(1, Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .map_err(|_| anyhow!("waiting"))?
            .insert(t.clone(), tx);
        let mut req = json!({"janus": "message", "transaction": t, "body": body});
        if let Some(jsep) = jsep {
            req["jsep"] = jsep;
        }
        let v = post(&self.http, &format!("{}/{handle}", self.url), req).await?;
        let ev = if v["janus"] == "ack" {
            tokio::time::timeout(Duration::from_secs(30), rx)
                .await
                .context("no Janus event within 30 s")??
        } else {
            v
        };
        let data = &ev["plugindata"]["data"];
        if data["error"].is_string() {
            bail!("janus: {}", data);
        }
        Ok(ev)
    }

    /// Tells Janus the client's candidates are all in its SDP.
    async fn candidates_done(&self, handle: u64) -> Result<()> {
        post(
            &self.http,
            &format!("{}/{handle}", self.url),
            json!({"janus": "trickle", "transaction": "d", "candidate": {"completed": true}}),
        )
        .await
        .map(|_| ())
    }
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value> {
    let v: Value = http.post(url).json(&body).send().await?.json().await?;
    if v["janus"] == "error" {
        bail!("janus: {}", v["error"]);
    }
    Ok(v)
}

/// A publisher: its session, handle and feed id.
struct Publisher {
    session: Arc<Session>,
    feed: u64,
    participant: Participant,
}

/// Every participant of `meetings` rooms of `size`: publishers first, then each one's
/// subscriber to every other feed. Returns them in room order.
pub async fn join_all(
    base: &str,
    meetings: usize,
    size: usize,
    generator: &Lite,
) -> Result<Vec<Participant>> {
    let http = reqwest::Client::new();
    let ip = own_address()?;
    let mut everyone = Vec::new();
    for m in 0..meetings {
        let room = 1000 + m as u64;
        let admin = Session::create(&http, base).await?;
        let handle = admin.attach().await?;
        admin
            .message(
                handle,
                json!({"request": "create", "room": room, "publishers": size + 1,
                       "audiocodec": "opus", "notify_joining": false}),
                None,
            )
            .await
            .context("creating a room")?;
        let mut publishers = Vec::new();
        for i in 0..size {
            let feed = room * 1000 + i as u64 + 1;
            publishers.push(
                publish(&http, base, room, feed, generator, ip)
                    .await
                    .with_context(|| format!("publisher {i} of room {room}"))?,
            );
        }
        let feeds: Vec<u64> = publishers.iter().map(|p| p.feed).collect();
        for p in publishers {
            let others: Vec<Value> = feeds
                .iter()
                .filter(|f| **f != p.feed)
                .map(|f| json!({"feed": f}))
                .collect();
            let mut participant = p.participant;
            participant.receiver = Some(
                subscribe(&p.session, room, others, generator, ip)
                    .await
                    .with_context(|| format!("subscriber of feed {}", p.feed))?,
            );
            everyone.push(participant);
        }
    }
    Ok(everyone)
}

async fn publish(
    http: &reqwest::Client,
    base: &str,
    room: u64,
    feed: u64,
    generator: &Lite,
    ip: IpAddr,
) -> Result<Publisher> {
    let session = Session::create(http, base).await?;
    let handle = session.attach().await?;
    session
        .message(
            handle,
            json!({"request": "join", "ptype": "publisher", "room": room, "id": feed}),
            None,
        )
        .await?;
    let peer = generator.peer(ip, true).await?;
    let ev = session
        .message(
            handle,
            json!({"request": "publish"}),
            Some(json!({"type": "offer", "sdp": peer.offer().await?})),
        )
        .await?;
    session.candidates_done(handle).await?;
    let answer = ev["jsep"]["sdp"]
        .as_str()
        .ok_or_else(|| anyhow!("no answer to the publisher's offer: {ev}"))?;
    peer.accept(answer.to_owned()).await?;
    // Janus lists a feed once its connection is up.
    peer.connected(Duration::from_secs(10))
        .await
        .with_context(|| format!("the publisher {feed} did not connect"))?;
    Ok(Publisher {
        session,
        feed,
        participant: Participant {
            peer,
            receiver: None,
            sio: None,
        },
    })
}

/// How long a subscriber waits for its feeds to be listed.
const LISTED: Duration = Duration::from_secs(10);

/// A subscriber handle on `session` to `feeds`, on a receive-only connection of its own.
async fn subscribe(
    session: &Session,
    room: u64,
    feeds: Vec<Value>,
    generator: &Lite,
    ip: IpAddr,
) -> Result<Peer> {
    let handle = session.attach().await?;
    // A feed is listed once Janus has set its media up, a moment after the publisher's end of
    // the connection is up: until then the join is refused with 428 (no such feed).
    let listed = Instant::now();
    let ev = loop {
        let join = session
            .message(
                handle,
                json!({"request": "join", "ptype": "subscriber", "room": room, "streams": feeds}),
                None,
            )
            .await;
        match join {
            Err(e) if e.to_string().contains("\"error_code\":428") && listed.elapsed() < LISTED => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other?,
        }
    };
    let offer = ev["jsep"]["sdp"]
        .as_str()
        .ok_or_else(|| anyhow!("no offer for the subscriber: {ev}"))?;
    let peer = generator.peer(ip, false).await?;
    let sdp = peer.answer(offer.to_owned()).await?;
    session
        .message(
            handle,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": sdp})),
        )
        .await?;
    session.candidates_done(handle).await?;
    peer.connected(Duration::from_secs(10))
        .await
        .context("the subscriber did not connect")?;
    Ok(peer)
}

/// Whether Janus can be run here.
pub fn available() -> bool {
    Path::new("/usr/bin/janus").exists()
}
