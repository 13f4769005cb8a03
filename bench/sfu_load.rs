//! SFU load generator: runs `meet serve` (a release build) and drives WebRTC participants at
//! it, sans-IO connections of the `rtc` core all on one thread (bench/sfu_lite.rs), signalling
//! over Socket.IO exactly as a client does.
//! Speakers send Opus-sized RTP packets (80–120 bytes every 20 ms) stamped with their send
//! time; every participant records what arrives. Per scenario it prints forwarded packets/s,
//! the server's CPU per 1,000 forwarded packets (and per packet, next to LiveKit's published
//! ~13 µs), added latency p50/p99 (receive time − send time, loopback), loss, and the server's
//! RSS per participant. See bench/README.md.
//!
//!   bash bench/sfu.sh                               # every scenario, 20 s each
//!   cargo run --release --example sfu-load -- --scenarios 1x50:3 --duration 10
//!
//! A scenario is `KxN:S`: K meetings of N participants, S of whom speak in each (`:all` for
//! everyone, `:0` for an idle meeting).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// LiveKit's published cost of forwarding one audio packet (derived from its 3,000-listener
/// audio benchmark), for comparison.
#[path = "sfu_janus.rs"]
mod janus;
#[path = "sfu_lite.rs"]
mod lite;
#[path = "sfu_soak.rs"]
mod soak;

const LIVEKIT_US_PER_PACKET: f64 = 13.0;
const ADMIN_PASSWORD: &str = "sfu-bench-admin-pass";

#[derive(Parser)]
#[command(about = "Load generator for meet's WebRTC SFU")]
struct Args {
    /// The meet binary to run (a release build).
    #[arg(long, default_value = "target/release/meet")]
    meet: PathBuf,
    /// Seconds measured per scenario (after a warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Comma-separated `KxN:S` scenarios.
    #[arg(long, default_value = "1x50:3,1x50:all,10x10:all,3x50:all,1x50:0")]
    scenarios: String,
    /// Comma-separated engines to run every scenario on, side by side: meet's (`rtc`), or
    /// `janus` (Debian's Janus 1.1, VideoRoom, audio only).
    #[arg(long, default_value = "rtc,janus")]
    engines: String,
    /// meet's shards (one thread each), sharing one UDP port as the server does by default.
    #[arg(long, default_value_t = 2)]
    shards: u16,
    /// One UDP port per shard instead (`media.udp_ports`): no datagram passes between shards.
    #[arg(long)]
    separate_ports: bool,
    /// Pins the server to CPU 1 and the generator to CPU 0 (`taskset`), so neither takes the
    /// other's core.
    #[arg(long)]
    pin: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Instead of the scenarios: a soak of this many minutes on the first engine (meetings of
    /// participants joining, leaving, switching modes and muting; bench/sfu_soak.rs).
    #[arg(long)]
    soak: Option<u64>,
    /// Soak: meetings.
    #[arg(long, default_value_t = 10)]
    soak_meetings: usize,
    /// Soak: participants in each (three of whom speak).
    #[arg(long, default_value_t = 10)]
    soak_size: usize,
    /// Soak: participants of one more meeting on the Socket.IO relay only (PCM, no WebRTC;
    /// three of them speak); 0 for none.
    #[arg(long, default_value_t = 30)]
    soak_relay: usize,
    /// Soak: seconds of the same actions before the start is taken (the RSS every later
    /// minute is held to).
    #[arg(long, default_value_t = 60)]
    soak_warmup: u64,
    /// Soak: seconds the counts have to come back to the baseline once everyone left.
    #[arg(long, default_value_t = 60)]
    soak_settle: u64,
}

#[derive(Debug, Clone)]
struct Scenario {
    label: String,
    meetings: usize,
    size: usize,
    speakers: usize,
    /// Every meeting records during the measured window (`KxN:S:rec`).
    record: bool,
}

fn parse_scenarios(text: &str) -> Result<Vec<Scenario>> {
    text.split(',')
        .map(|s| {
            let s = s.trim();
            let (s_main, record) = match s.strip_suffix(":rec") {
                Some(rest) => (rest, true),
                None => (s, false),
            };
            let (shape, speakers) = s_main.split_once(':').unwrap_or((s_main, "all"));
            let (k, n) = shape
                .split_once('x')
                .ok_or_else(|| anyhow!("scenario `{s}`: expected KxN:S"))?;
            let (meetings, size): (usize, usize) = (k.parse()?, n.parse()?);
            if !(2..=50).contains(&size) || meetings == 0 {
                bail!("scenario `{s}`: 1+ meetings of 2..=50 participants");
            }
            let speakers = if speakers == "all" {
                size
            } else {
                speakers.parse::<usize>()?.min(size)
            };
            Ok(Scenario {
                label: s.to_owned(),
                meetings,
                size,
                speakers,
                record,
            })
        })
        .collect()
}

/// Nanoseconds since the load generator started: the send stamp in every payload.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

// ---------------------------------------------------------------------------------------------
// The server process

struct Server {
    child: tokio::process::Child,
    base: String,
    pid: u32,
    _dir: tempfile::TempDir,
}

/// User + system CPU seconds of a process or thread, from its `stat` file under /proc.
fn cpu_seconds(stat: &str) -> f64 {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command: state is field 0; utime 11, stime 12 (clock ticks of 1/100 s).
    (ticks(11) + ticks(12)) / 100.0
}

/// (user + system CPU seconds, RSS KiB) of a process.
fn proc_usage(pid: u32) -> (f64, u64) {
    let cpu = cpu_seconds(&format!("/proc/{pid}/stat"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

async fn start_server(args: &Args, engine: &str, ports: u16) -> Result<Server> {
    if engine != "rtc" {
        bail!("unknown engine {engine}: meet's (rtc) or janus");
    }
    let media = if args.separate_ports {
        let ports: Vec<String> = (0..args.shards).map(|i| (ports + i).to_string()).collect();
        format!("udp_ports = [{}]", ports.join(", "))
    } else {
        format!("udp_port = {ports}\nshards = {}", args.shards)
    };
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("meet.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
data_dir = "{data}"
[auth]
admin_password = "{ADMIN_PASSWORD}"
jwt_secret = "sfu-bench-jwt-secret-0123456789"
argon2_memory_kib = 1024
argon2_iterations = 1
[http.rate_limit]
requests_per_window = 1000000
[media]
bind = ["127.0.0.1"]
{media}
[logging]
format = "json"
level = "warn,meet=info,meet::access=warn"
"#,
            data = dir.path().join("data").display(),
        ),
    )?;
    let mut command = if args.pin {
        let mut c = tokio::process::Command::new("taskset");
        c.args(["-c", "1"]).arg(&args.meet);
        c
    } else {
        tokio::process::Command::new(&args.meet)
    };
    // The bench's own settings only: a MEET_* variable (the script's MEET_BIN among them)
    // would be read as a configuration key.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MEET_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("running {}", args.meet.display()))?;
    let pid = child.id().context("server pid")?;
    // The server logs (JSON lines) on stderr.
    let stderr = child.stderr.take().context("server stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "meet is listening"
            {
                return Ok::<_, anyhow::Error>(format!(
                    "http://{}",
                    v["addr"].as_str().unwrap_or_default()
                ));
            }
        }
        bail!("the server exited before listening")
    })
    .await
    .context("the server did not start within 60 s")??;
    // Keep draining its output; show its warnings and errors (everything with SERVER_LOG=1).
    let all = std::env::var_os("SERVER_LOG").is_some_and(|v| v == "1");
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if all
                || line.contains("\"WARN\"")
                || line.contains("\"ERROR\"")
                || line.contains("panicked")
            {
                eprintln!("server: {line}");
            }
        }
    });
    Ok(Server {
        child,
        base,
        pid,
        _dir: dir,
    })
}

async fn api(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value> {
    let mut req = http.post(&url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await?;
    let status = res.status();
    let v: Value = res.json().await?;
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

/// A meeting and its participants' (user id, token), the host first.
struct Group {
    id: String,
    members: Vec<(String, String)>,
}

/// A meeting per entry of `sizes`, each with a host and `size - 1` students of that host.
async fn provision(base: &str, sizes: &[usize]) -> Result<Vec<Group>> {
    let http = reqwest::Client::new();
    let login = |u: String, p: String| {
        let http = http.clone();
        let url = format!("{base}/api/auth/login");
        async move {
            let v = api(&http, url, None, json!({"username": u, "password": p})).await?;
            Ok::<_, anyhow::Error>((
                v["_id"].as_str().unwrap_or_default().to_owned(),
                v["token"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    };
    let (_, admin) = login("admin".into(), ADMIN_PASSWORD.into()).await?;
    let mut groups = Vec::new();
    for (m, &size) in sizes.iter().enumerate() {
        let (user, pass) = (format!("bench-host-{m}"), "bench-host-pass".to_owned());
        api(
            &http,
            format!("{base}/api/admin/hosts"),
            Some(&admin),
            json!({"username": user, "password": pass}),
        )
        .await?;
        let host = login(user, pass).await?;
        let meeting = api(
            &http,
            format!("{base}/api/meetings/create"),
            Some(&host.1),
            json!({"topic": format!("bench {m}")}),
        )
        .await?;
        let mut members = vec![host.clone()];
        for i in 1..size {
            let user = format!("bench-student-{m}-{i}");
            api(
                &http,
                format!("{base}/api/host/students"),
                Some(&host.1),
                json!({"username": user, "password": "bench-student-pass"}),
            )
            .await?;
            members.push(login(user, "bench-student-pass".into()).await?);
        }
        groups.push(Group {
            id: meeting["meeting"]["_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            members,
        });
    }
    Ok(groups)
}

// ---------------------------------------------------------------------------------------------
// A small Socket.IO v4 client over a websocket (Engine.IO 4): connect with `auth`, emit with
// an acknowledgement, receive events, answer pings. Enough for signalling.

type Acks = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

struct Sio {
    out: mpsc::UnboundedSender<Message>,
    acks: Acks,
    next: AtomicU64,
}

impl Sio {
    async fn connect(
        base: &str,
        token: &str,
        meeting: &str,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Value>)> {
        let addr = base.trim_start_matches("http://");
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let url = format!("ws://{addr}/ws/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
        let (mut sink, mut stream) = ws.split();
        let text = |m: Option<Result<Message, _>>| -> Result<String> {
            match m {
                Some(Ok(Message::Text(t))) => Ok(t.to_string()),
                other => bail!("unexpected websocket message {other:?}"),
            }
        };
        let open = text(stream.next().await)?;
        if !open.starts_with('0') {
            bail!("no Engine.IO open packet: {open}");
        }
        let auth = json!({"token": token, "meetingId": meeting});
        sink.send(Message::text(format!("40{auth}"))).await?;
        loop {
            let m = text(stream.next().await)?;
            if m == "2" {
                // The server's first ping can come before the namespace is joined.
                sink.send(Message::text("3")).await?;
            }
            if m.starts_with("40") {
                break;
            }
            if m.starts_with("44") {
                bail!("connect refused: {m}");
            }
        }
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (ev_tx, events) = mpsc::unbounded_channel();
        let acks: Acks = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || close {
                    return;
                }
            }
        });
        let (pong, reader_acks) = (out.clone(), Arc::clone(&acks));
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                if std::env::var_os("SIO_DEBUG").is_some() {
                    eprintln!("sio <- {msg:?}");
                }
                let Ok(Message::Text(t)) = msg else { continue };
                let t = t.as_str();
                // An event, or one with binary attachments (`451-[…]`, the attachments
                // follow as binary messages and are not kept: only the event is).
                let event = t.strip_prefix("42").or_else(|| {
                    let (count, rest) = t.strip_prefix("45")?.split_once('-')?;
                    count.bytes().all(|b| b.is_ascii_digit()).then_some(rest)
                });
                if t == "2" {
                    let _ = pong.send(Message::text("3"));
                } else if let Some(body) = event {
                    if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(body) {
                        let _ = ev_tx.send(json!({"name": a[0], "data": a.get(1)}));
                    }
                } else if let Some(body) = t.strip_prefix("43") {
                    let split = body.find('[').unwrap_or(body.len());
                    let id: u64 = body[..split].parse().unwrap_or(0);
                    let data = serde_json::from_str::<Value>(&body[split..])
                        .ok()
                        .and_then(|v| v.get(0).cloned())
                        .unwrap_or(Value::Null);
                    if let Some(tx) = reader_acks.lock().ok().and_then(|mut a| a.remove(&id)) {
                        let _ = tx.send(data);
                    }
                }
            }
        });
        let sio = Arc::new(Self {
            out,
            acks,
            next: AtomicU64::new(1),
        });
        Ok((sio, events))
    }

    async fn call(&self, event: &str, data: Value) -> Result<Value> {
        let id = self.next.fetch_add(1, Relaxed);
        let (tx, rx) = oneshot::channel();
        self.acks
            .lock()
            .map_err(|_| anyhow!("acks"))?
            .insert(id, tx);
        self.out
            .send(Message::text(format!("42{id}{}", json!([event, data]))))?;
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .context("no acknowledgement within 20 s")?
            .context("socket closed")
    }

    /// Emits `event` with one binary attachment, which `data` names with Socket.IO's
    /// placeholder (`{"_placeholder": true, "num": 0}`); no acknowledgement is asked for.
    fn emit_binary(&self, event: &str, data: Value, attachment: Bytes) -> Result<()> {
        self.out
            .send(Message::text(format!("451-{}", json!([event, data]))))?;
        self.out.send(Message::Binary(attachment))?;
        Ok(())
    }

    /// Closes the websocket, as a closed tab does.
    fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

// ---------------------------------------------------------------------------------------------
// Participants

/// What every participant's receivers add up, for the measured window.
#[derive(Default)]
struct Tally {
    window: Mutex<(u64, u64)>,
    sent: AtomicU64,
    expected: AtomicU64,
    received: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
    /// Participants whose last server offer holds every other participant.
    complete: AtomicUsize,
    /// Set when the run is torn down: signalling errors are then expected.
    over: std::sync::atomic::AtomicBool,
}

impl Tally {
    fn in_window(&self, t: u64) -> bool {
        let w = *self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.0 != 0 && t >= w.0 && t < w.1
    }
}

struct Participant {
    peer: lite::Peer,
    /// Janus: the subscriber connection the others' streams arrive on (meet: `peer` itself).
    receiver: Option<lite::Peer>,
    /// meet: the participant's socket.
    sio: Option<Arc<Sio>>,
}

impl Participant {
    /// Leaves as a closed tab does: the connections and the socket close.
    fn leave(&self) {
        self.peer.close();
        if let Some(rx) = &self.receiver {
            rx.close();
        }
        if let Some(sio) = &self.sio {
            sio.close();
        }
    }
}

/// A participant of meet: its socket in `meeting`, its connection offered (with its
/// microphone) and answered, and every server offer answered from then on.
async fn join(
    base: &str,
    token: &str,
    meeting: &str,
    size: usize,
    tally: Arc<Tally>,
    generator: &lite::Lite,
) -> Result<Participant> {
    let (sio, mut events) = Sio::connect(base, token, meeting).await?;
    let peer = generator.peer(Ipv4Addr::LOCALHOST.into(), true).await?;
    let ack = sio
        .call(
            "webrtc-signal",
            json!({"signal": {"type": "offer", "sdp": peer.offer().await?}}),
        )
        .await?;
    let answer = ack["signal"]["sdp"]
        .as_str()
        .ok_or_else(|| anyhow!("offer refused: {ack}"))?;
    peer.accept(answer.to_owned()).await?;

    // Server offers → answers.
    let (signal_peer, signal_sio) = (peer.clone(), Arc::clone(&sio));
    tokio::spawn(async move {
        let mut complete = false;
        while let Some(ev) = events.recv().await {
            let signal = &ev["data"]["signal"];
            if ev["name"] != "webrtc-signal" || signal["type"] != "offer" {
                continue;
            }
            let sdp = signal["sdp"].as_str().unwrap_or_default().to_owned();
            // A stream per other participant (one of them on the microphone's line).
            let streams = sdp.matches("a=msid:").count();
            let answered = async {
                let sdp = signal_peer.answer(sdp).await?;
                signal_sio
                    .call(
                        "webrtc-signal",
                        json!({"signal": {"type": "answer", "sdp": sdp}}),
                    )
                    .await
            };
            if let Err(e) = answered.await {
                if !tally.over.load(Relaxed) {
                    eprintln!("answering a server offer failed: {e:#}");
                }
                return;
            }
            if !complete && streams + 1 >= size {
                complete = true;
                tally.complete.fetch_add(1, Relaxed);
            }
        }
    });
    Ok(Participant {
        peer,
        receiver: None,
        sio: Some(sio),
    })
}

/// The payload of one speaker's packet, 80–120 bytes: an Opus TOC byte (CELT, 20 ms, mono, so
/// recordings see well-framed packets), then `sent` (the send time every receiver reads back),
/// then filler.
fn opus_like(sent: u64, seq: u16, buf: &mut BytesMut) -> Bytes {
    let size = 80 + usize::from(seq % 41);
    buf.reserve(size);
    buf.put_u8(0xf8);
    buf.put_u64(sent);
    buf.put_bytes(0xa5, size - 9);
    buf.split().freeze()
}

// ---------------------------------------------------------------------------------------------
// A run

#[derive(Debug, serde::Serialize)]
struct Outcome {
    scenario: String,
    engine: String,
    participants: usize,
    speakers: usize,
    forwarded_per_s: f64,
    loss_percent: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_s_per_1000: f64,
    us_per_packet: f64,
    server_cpu_percent: f64,
    rss_kib_per_participant: f64,
    loadgen_cpu_percent: f64,
    /// The generator's one media thread: at 100 % it, not the server, would set the pace.
    loop_cpu_percent: f64,
    /// With recording: seconds from the last `stop` to every recording `completed`.
    stop_to_completed_s: f64,
    /// Recordings made (one per meeting with `:rec`).
    recordings: usize,
}

/// Waits for a stopped recording to be `completed` (by `deadline`) and gives it; a `failed` one,
/// or one still unfinished at the deadline, is an error.
async fn completed(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    deadline: Instant,
) -> Result<Value> {
    loop {
        let v: Value = http
            .get(format!("{base}/api/recordings/{id}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        match v["recording"]["status"].as_str() {
            Some("completed") => return Ok(v["recording"].clone()),
            Some("failed") => bail!("recording {id} failed: {v}"),
            _ if Instant::now() > deadline => bail!("recording {id} not completed: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn metric(base: &str, name: &str) -> f64 {
    let text = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p / 100.0) as usize).min(sorted.len() - 1);
    f64::from(sorted[i]) / 1000.0
}

async fn run(args: &Args, s: &Scenario, engine: &str, ports: u16) -> Result<Outcome> {
    let janus = engine == "janus";
    if janus && s.record {
        bail!("{}: recording is meet's, not Janus'", s.label);
    }
    let server = if janus {
        let http_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        janus::start(http_port, ports, args.pin).await?
    } else {
        start_server(args, engine, ports).await?
    };
    let groups = if janus {
        Vec::new()
    } else {
        provision(&server.base, &vec![s.size; s.meetings]).await?
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, rss0) = proc_usage(server.pid);
    let tally = Arc::new(Tally::default());
    let media = meet::config::Config::for_tests(Path::new("/tmp")).media;
    let generator = lite::Lite::start(media, Arc::clone(&tally))?;
    let mut speakers = Vec::new();
    let mut everyone = Vec::new();
    if janus {
        let all = janus::join_all(&server.base, s.meetings, s.size, &generator).await?;
        // Every subscriber is connected to every other feed.
        tally.complete.store(all.len(), Relaxed);
        for (i, p) in all.into_iter().enumerate() {
            let p = Arc::new(p);
            if i % s.size < s.speakers {
                speakers.push(Arc::clone(&p));
            }
            everyone.push(p);
        }
    }
    for g in &groups {
        for (i, (_, token)) in g.members.iter().enumerate() {
            let p = Arc::new(
                join(
                    &server.base,
                    token,
                    &g.id,
                    s.size,
                    Arc::clone(&tally),
                    &generator,
                )
                .await
                .with_context(|| format!("participant {i} of meeting {}", g.id))?,
            );
            if i < s.speakers {
                speakers.push(Arc::clone(&p));
            }
            everyone.push(p);
        }
    }
    let total = everyone.len();
    let ready = Instant::now();
    while tally.complete.load(Relaxed) < total {
        if ready.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {total} participants got every stream",
                tally.complete.load(Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stop = Arc::new(AtomicU64::new(0));
    for p in &speakers {
        p.peer.speak((s.size - 1) as u64, Arc::clone(&stop));
    }
    let http = reqwest::Client::new();
    let mut recordings = Vec::new();
    if s.record {
        for g in &groups {
            let v = api(
                &http,
                format!("{}/api/meetings/{}/recording/start", server.base, g.id),
                Some(&g.members[0].1),
                json!({}),
            )
            .await?;
            let id = v["recording"]["_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            recordings.push((g.members[0].1.clone(), g.id.clone(), id));
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (cpu0, _) = proc_usage(server.pid);
    let (own0, _) = proc_usage(std::process::id());
    let loop0 = generator.cpu_seconds();
    let fwd0 = if janus {
        0.0
    } else {
        metric(&server.base, "meet_sfu_forwarded_packets_total").await
    };
    let start = Instant::now();
    *tally.window.lock().map_err(|_| anyhow!("window"))? = (now_ns(), u64::MAX);
    tokio::time::sleep(Duration::from_secs(args.duration)).await;
    tally.window.lock().map_err(|_| anyhow!("window"))?.1 = now_ns();
    let secs = start.elapsed().as_secs_f64();
    let (cpu1, rss1) = proc_usage(server.pid);
    let (own1, _) = proc_usage(std::process::id());
    let loop1 = generator.cpu_seconds();
    let fwd1 = if janus {
        0.0
    } else {
        metric(&server.base, "meet_sfu_forwarded_packets_total").await
    };
    let mut stop_to_completed_s = f64::NAN;
    if s.record {
        let stopped = Instant::now();
        for (token, meeting, _) in &recordings {
            api(
                &http,
                format!("{}/api/meetings/{meeting}/recording/stop", server.base),
                Some(token),
                json!({}),
            )
            .await?;
        }
        for (token, _, id) in &recordings {
            completed(
                &http,
                &server.base,
                token,
                id,
                stopped + Duration::from_secs(120),
            )
            .await?;
        }
        stop_to_completed_s = stopped.elapsed().as_secs_f64();
    }
    // Let the last packets of the window arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(1, Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Janus counts nothing for us: what it forwarded is what the participants received.
    let forwarded = if janus {
        tally.received.load(Relaxed) as f64
    } else {
        fwd1 - fwd0
    };
    let cpu = cpu1 - cpu0;
    let expected = tally.expected.load(Relaxed) as f64;
    let received = tally.received.load(Relaxed) as f64;
    let mut lat = std::mem::take(&mut *tally.latencies_us.lock().map_err(|_| anyhow!("lat"))?);
    lat.sort_unstable();
    let per_packet = |v: f64| if forwarded > 0.0 { v } else { f64::NAN };
    let outcome = Outcome {
        scenario: s.label.clone(),
        engine: engine.to_owned(),
        participants: total,
        speakers: speakers.len(),
        forwarded_per_s: forwarded / secs,
        loss_percent: if expected > 0.0 {
            (100.0 * (1.0 - received / expected)).max(0.0)
        } else {
            0.0
        },
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        cpu_s_per_1000: per_packet(cpu / forwarded * 1000.0),
        us_per_packet: per_packet(cpu / forwarded * 1e6),
        server_cpu_percent: 100.0 * cpu / secs,
        rss_kib_per_participant: rss1.saturating_sub(rss0) as f64 / total as f64,
        loadgen_cpu_percent: 100.0 * (own1 - own0) / secs,
        loop_cpu_percent: 100.0 * (loop1 - loop0) / secs,
        stop_to_completed_s,
        recordings: recordings.len(),
    };
    // The server goes first, then the participants (their signalling ends with it).
    tally.over.store(true, Relaxed);
    let mut child = server.child;
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    for p in &everyone {
        p.leave();
    }
    drop(generator);
    Ok(outcome)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn print_table(rows: &[Outcome]) {
    println!(
        "{:<15} {:<6} {:>5} {:>5} {:>10} {:>7} {:>7} {:>7} {:>9} {:>7} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "scenario",
        "engine",
        "peers",
        "talk",
        "fwd pkt/s",
        "loss %",
        "p50 ms",
        "p99 ms",
        "CPU s/1k",
        "µs/pkt",
        "LiveKit/x",
        "KiB/peer",
        "srv CPU%",
        "gen CPU%",
        "loop CPU%",
        "stop→ok s"
    );
    for r in rows {
        println!(
            "{:<15} {:<6} {:>5} {:>5} {:>10.0} {:>7.3} {:>7.2} {:>7.2} {:>9.4} {:>7.2} {:>9.2} {:>8.0} {:>8.1} {:>8.1} {:>9.1} {:>8.2}",
            r.scenario,
            r.engine,
            r.participants,
            r.speakers,
            r.forwarded_per_s,
            r.loss_percent,
            r.p50_ms,
            r.p99_ms,
            r.cpu_s_per_1000,
            r.us_per_packet,
            LIVEKIT_US_PER_PACKET / r.us_per_packet,
            r.rss_kib_per_participant,
            r.server_cpu_percent,
            r.loadgen_cpu_percent,
            r.loop_cpu_percent,
            r.stop_to_completed_s
        );
    }
    // Recording against not recording, for each scenario run both ways: the median of each
    // side when a scenario was run several times (servers differ by a few % run to run).
    let mut bases: Vec<(&str, &str)> = Vec::new();
    for r in rows.iter().filter(|r| r.recordings > 0) {
        let base = (r.engine.as_str(), r.scenario.trim_end_matches(":rec"));
        if !bases.contains(&base) {
            bases.push(base);
        }
    }
    for (engine, base) in bases {
        let side = |label: &str| -> Vec<&Outcome> {
            rows.iter()
                .filter(|r| r.scenario == label && r.engine == engine)
                .collect()
        };
        let (plain, rec) = (side(base), side(&format!("{base}:rec")));
        if plain.is_empty() {
            continue;
        }
        let cpu = |v: &[&Outcome]| median(v.iter().map(|r| r.server_cpu_percent).collect());
        let p99 = |v: &[&Outcome]| median(v.iter().map(|r| r.p99_ms).collect());
        let stop = median(rec.iter().map(|r| r.stop_to_completed_s).collect());
        println!(
            "{} on {}: recording adds {:+.1} % of a core ({:.1} → {:.1}), p99 {:+.2} ms ({:.2} → {:.2}), stop → completed {:.2} s for {} recordings{}",
            base,
            engine,
            cpu(&rec) - cpu(&plain),
            cpu(&plain),
            cpu(&rec),
            p99(&rec) - p99(&plain),
            p99(&plain),
            p99(&rec),
            stop,
            rec[0].recordings,
            if rec.len() > 1 || plain.len() > 1 {
                format!(" (medians of {} and {} runs)", plain.len(), rec.len())
            } else {
                String::new()
            }
        );
    }
    println!(
        "LiveKit/x: LiveKit's published ~{LIVEKIT_US_PER_PACKET} µs per forwarded audio packet ÷ meet's; above 1 means meet spends less CPU per packet."
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let scenarios = parse_scenarios(&args.scenarios)?;
    now_ns();
    if args.pin {
        // Every thread of the generator on CPU 0 (the server gets CPU 1).
        let pinned = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .context("taskset")?;
        if !pinned.success() {
            bail!("taskset could not pin the generator");
        }
    }
    let engines: Vec<&str> = args.engines.split(',').map(str::trim).collect();
    if let Some(minutes) = args.soak {
        let engine = engines.first().copied().unwrap_or("rtc");
        if engine == "janus" {
            bail!("the soak runs on meet (rtc)");
        }
        return soak::run(&args, minutes, engine).await;
    }
    if engines.contains(&"janus") && !janus::available() {
        bail!("the janus engine needs Debian's janus (apt-get install janus)");
    }
    let mut rows = Vec::new();
    let mut i = 0u16;
    for s in &scenarios {
        for engine in &engines {
            eprintln!("running {} on {engine} for {} s…", s.label, args.duration);
            // Below Linux's ephemeral range (32768–60999), where the generator's own sockets are.
            let ports = 20_000 + 1_000 * (i % 12);
            i += 1;
            // A run that fails (a server that stalls) is said, and the others still run.
            match run(&args, s, engine, ports).await {
                Ok(row) => rows.push(row),
                Err(e) => eprintln!("{} on {engine} failed: {e:#}", s.label),
            }
        }
    }
    print_table(&rows);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
