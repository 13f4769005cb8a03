//! The soak (`--soak MINUTES`): meetings of WebRTC participants and one meeting on the
//! Socket.IO relay, people joining and leaving, mode switches, mutes, recordings started and
//! stopped, on one server for minutes after a warm-up (`--soak-warmup`, where every kind of
//! action runs once or more before the start is taken); then everyone leaves. A line per minute (RSS, file
//! descriptors, UDP sockets, tasks, peers, packets/s received and the forwarding p99 of that
//! minute, the relay's frames/s and p99); at the end RSS at the start, the middle and the end,
//! every count against its baseline (before anyone joined), every recording completed, no 5xx
//! answer; the run fails (exit 1) when any of these does not hold.
//!
//!   cargo run --release --example sfu-load -- --soak 30
//!   SOAK=30 bash bench/sfu.sh

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use bytes::Bytes;
use std::sync::Mutex;

use super::lite::Lite;
use super::{
    Args, Group, Participant, Sio, Tally, api, completed, join, metric, now_ns, percentile,
    proc_usage, provision, start_server,
};

/// 20 ms of 48 kHz mono PCM (Int16 LE), as a browser on the relay sends it.
const RELAY_FRAME_SAMPLES: usize = 960;

/// What one sample of the server holds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    udp_sockets: usize,
    tasks: f64,
    peers: f64,
}

/// The server's open file descriptors, and how many of them are UDP sockets.
fn descriptors(pid: u32) -> (usize, usize) {
    let mut udp = HashSet::new();
    for table in ["udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        udp.extend(
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(9).map(str::to_owned)),
        );
    }
    let (mut fds, mut sockets) = (0, 0);
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in dir.flatten() {
            fds += 1;
            let target = std::fs::read_link(entry.path()).unwrap_or_default();
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                && udp.contains(inode)
            {
                sockets += 1;
            }
        }
    }
    (fds, sockets)
}

async fn sample(base: &str, pid: u32) -> Sample {
    let (_, rss_kib) = proc_usage(pid);
    let (fds, udp_sockets) = descriptors(pid);
    Sample {
        rss_kib,
        fds,
        udp_sockets,
        tasks: metric(base, "meet_runtime_alive_tasks").await,
        peers: metric(base, "meet_sfu_peers").await,
    }
}

/// One participant of the soak, and what stops its microphone.
struct Seat {
    /// A WebRTC participant; `None` on the relay, where the socket is all there is.
    who: Option<Arc<Participant>>,
    sio: Arc<Sio>,
    stop: Arc<AtomicU64>,
}

impl Seat {
    fn leave(self) {
        self.stop.store(1, Relaxed);
        match &self.who {
            Some(who) => who.leave(),
            None => self.sio.close(),
        }
    }
}

/// What the relay meeting's listeners received in the current minute: frames, and each one's
/// latency (receive time − the send time the speaker put in `seq`), in µs.
#[derive(Default)]
struct RelayTally {
    received: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

/// A relay participant: its socket in the meeting, and (for a speaker) a tone of PCM every
/// 20 ms with its send time as `seq`, until `stop`.
async fn relay_seat(
    base: &str,
    token: &str,
    meeting: &str,
    speaker: Option<usize>,
    tally: Arc<RelayTally>,
) -> Result<Seat> {
    let (sio, mut events) = Sio::connect(base, token, meeting).await?;
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if ev["name"] != "audio-broadcast" {
                continue;
            }
            if let Some(sent) = ev["data"]["seq"].as_u64() {
                let us = (now_ns() / 1000).saturating_sub(sent);
                tally.received.fetch_add(1, Relaxed);
                if let Ok(mut l) = tally.latencies_us.lock() {
                    l.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
        }
    });
    let stop = Arc::new(AtomicU64::new(0));
    if let Some(k) = speaker {
        // A tone of its own per speaker, at a third of full scale.
        let hz = 220.0 * (k + 1) as f64;
        let frame: Vec<u8> = (0..RELAY_FRAME_SAMPLES)
            .flat_map(|n| {
                {
                    let t = n as f64 / 48_000.0;
                    ((std::f64::consts::TAU * hz * t).sin() * 10_000.0) as i16
                }
                .to_le_bytes()
            })
            .collect();
        let frame = Bytes::from(frame);
        let (sio, stop) = (Arc::clone(&sio), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while stop.load(Relaxed) == 0 {
                tick.tick().await;
                let data = json!({
                    "audioData": {"_placeholder": true, "num": 0},
                    "format": "s16", "sampleRate": 48_000, "seq": now_ns() / 1000,
                });
                if sio
                    .emit_binary("broadcast-audio", data, frame.clone())
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    Ok(Seat {
        who: None,
        sio,
        stop,
    })
}

struct Soak<'a> {
    base: &'a str,
    groups: &'a [Group],
    tally: Arc<Tally>,
    generator: Lite,
    size: usize,
    speakers: usize,
    /// seats[meeting][member]
    seats: Vec<Vec<Option<Seat>>>,
    /// Per meeting: the student in a private talk with the host, and the muted students.
    private: Vec<Option<usize>>,
    muted: Vec<HashSet<usize>>,
    /// The relay meeting (the last group), when there is one.
    relay: Option<usize>,
    relay_tally: Arc<RelayTally>,
    /// Per meeting: whether it records now; and every recording started, with its host.
    recording: Vec<bool>,
    recordings: Vec<(String, String)>,
    actions: Actions,
}

#[derive(Debug, Default, serde::Serialize)]
struct Actions {
    rejoins: u64,
    switches: u64,
    mutes: u64,
    recordings_started: u64,
    recordings_stopped: u64,
    failed: u64,
}

impl Soak<'_> {
    async fn seat(&mut self, m: usize, i: usize) -> Result<()> {
        let g = &self.groups[m];
        let speaker = (i < self.speakers).then_some(i);
        let seat = if self.relay == Some(m) {
            relay_seat(
                self.base,
                &g.members[i].1,
                &g.id,
                speaker,
                Arc::clone(&self.relay_tally),
            )
            .await?
        } else {
            let who = Arc::new(
                join(
                    self.base,
                    &g.members[i].1,
                    &g.id,
                    self.size,
                    Arc::clone(&self.tally),
                    &self.generator,
                )
                .await?,
            );
            let stop = Arc::new(AtomicU64::new(0));
            if speaker.is_some() {
                who.peer.speak((self.size - 1) as u64, Arc::clone(&stop));
            }
            let sio = Arc::clone(who.sio.as_ref().ok_or_else(|| anyhow!("no socket"))?);
            Seat {
                who: Some(who),
                sio,
                stop,
            }
        };
        self.seats[m][i] = Some(seat);
        Ok(())
    }

    fn unseat(&mut self, m: usize, i: usize) {
        if let Some(seat) = self.seats[m][i].take() {
            seat.leave();
        }
    }

    /// Starts or stops meeting `m`'s recording, as its host.
    async fn toggle_recording(&mut self, http: &reqwest::Client, m: usize) -> Result<()> {
        let (g, host) = (&self.groups[m], &self.groups[m].members[0].1);
        let verb = if self.recording[m] { "stop" } else { "start" };
        let v = api(
            http,
            format!("{}/api/meetings/{}/recording/{verb}", self.base, g.id),
            Some(host),
            json!({}),
        )
        .await?;
        if self.recording[m] {
            self.actions.recordings_stopped += 1;
        } else {
            let id = v["recording"]["_id"].as_str().unwrap_or_default();
            self.recordings.push((host.clone(), id.to_owned()));
            self.actions.recordings_started += 1;
        }
        self.recording[m] = !self.recording[m];
        Ok(())
    }

    /// Actions 0.5–2.5 s apart until `until`; a failed one is counted.
    async fn act_until(&mut self, http: &reqwest::Client, until: Instant) {
        while Instant::now() < until {
            if let Err(e) = self.act(http).await {
                self.actions.failed += 1;
                eprintln!("soak action failed: {e:#}");
            }
            tokio::time::sleep(Duration::from_millis(rand::random_range(500..2500))).await;
        }
    }

    /// One thing a class does: a student leaves and comes back, the host starts or ends a
    /// private talk, mutes or unmutes a student, or starts or stops recording.
    async fn act(&mut self, http: &reqwest::Client) -> Result<()> {
        let m = rand::random_range(0..self.groups.len());
        let student = rand::random_range(1..self.groups[m].members.len());
        let host = self.groups[m].members[0].1.clone();
        match rand::random_range(0..4) {
            0 => {
                self.unseat(m, student);
                // A closed tab's seat is held for the reconnect grace; someone coming back
                // later is a new arrival.
                tokio::time::sleep(Duration::from_millis(rand::random_range(200..1500))).await;
                self.seat(m, student).await?;
                self.actions.rejoins += 1;
            }
            1 => {
                let (mode, with) = match self.private[m] {
                    Some(_) => ("broadcast", None),
                    None => ("private", Some(self.groups[m].members[student].0.clone())),
                };
                api(
                    http,
                    format!("{}/api/meetings/switch-mode", self.base),
                    Some(&host),
                    json!({"meetingId": self.groups[m].id, "mode": mode, "participantId": with}),
                )
                .await?;
                self.private[m] = with.map(|_| student);
                self.actions.switches += 1;
            }
            2 => {
                let Some(seat) = &self.seats[m][0] else {
                    bail!("meeting {m} has no host seated");
                };
                let sio = &seat.sio;
                let muted = self.muted[m].contains(&student);
                let event = if muted {
                    "unmute-participant"
                } else {
                    "mute-participant"
                };
                let ack = sio
                    .call(event, json!({"userId": self.groups[m].members[student].0}))
                    .await?;
                if ack["ok"] == false {
                    bail!("{event}: {ack}");
                }
                if muted {
                    self.muted[m].remove(&student);
                } else {
                    self.muted[m].insert(student);
                }
                self.actions.mutes += 1;
            }
            _ => self.toggle_recording(http, m).await?,
        }
        Ok(())
    }
}

#[derive(Debug, serde::Serialize)]
struct Minute {
    minute: u64,
    sample: Sample,
    received_per_s: f64,
    p99_ms: f64,
    relay_per_s: f64,
    relay_p99_ms: f64,
}

/// Percentile of the latencies gathered since the last call (which it empties), in ms.
fn take_p99(latencies: &Mutex<Vec<u32>>) -> Result<f64> {
    let mut lat = std::mem::take(&mut *latencies.lock().map_err(|_| anyhow!("latencies"))?);
    lat.sort_unstable();
    Ok(percentile(&lat, 99.0))
}

/// How the recordings of the soak ended: every one started must be `completed` with audio.
#[derive(Debug, Default, serde::Serialize)]
struct RecordingsOutcome {
    started: usize,
    completed: usize,
    lost: Vec<String>,
    seconds: f64,
}

async fn recordings_outcome(
    http: &reqwest::Client,
    base: &str,
    recordings: &[(String, String)],
) -> RecordingsOutcome {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut out = RecordingsOutcome {
        started: recordings.len(),
        ..RecordingsOutcome::default()
    };
    for (token, id) in recordings {
        match completed(http, base, token, id, deadline).await {
            Ok(r)
                if r["duration"].as_f64().unwrap_or(0.0) > 0.0 && r["size"].as_u64() > Some(0) =>
            {
                out.completed += 1;
                out.seconds += r["duration"].as_f64().unwrap_or(0.0);
            }
            Ok(r) => out.lost.push(format!("{id}: completed without audio: {r}")),
            Err(e) => out.lost.push(format!("{e:#}")),
        }
    }
    out
}

pub async fn run(args: &Args, minutes: u64, engine: &str) -> Result<()> {
    let (meetings, size, speakers) = (args.soak_meetings, args.soak_size, 3.min(args.soak_size));
    let server = start_server(args, engine, 20_000).await?;
    let mut sizes = vec![size; meetings];
    if args.soak_relay > 0 {
        sizes.push(args.soak_relay.max(2));
    }
    let groups = provision(&server.base, &sizes).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = sample(&server.base, server.pid).await;
    let tally = Arc::new(Tally::default());
    let mut soak = Soak {
        base: &server.base,
        groups: &groups,
        tally: Arc::clone(&tally),
        generator: Lite::start(
            meet::config::Config::for_tests(std::path::Path::new("/tmp")).media,
            tally,
        )?,
        size,
        speakers,
        seats: sizes
            .iter()
            .map(|&n| (0..n).map(|_| None).collect())
            .collect(),
        private: vec![None; sizes.len()],
        muted: vec![HashSet::new(); sizes.len()],
        relay: (args.soak_relay > 0).then_some(meetings),
        relay_tally: Arc::default(),
        recording: vec![false; sizes.len()],
        recordings: Vec::new(),
        actions: Actions::default(),
    };
    for (m, &n) in sizes.iter().enumerate() {
        for i in 0..n {
            soak.seat(m, i).await?;
        }
    }
    // Everyone is in, the streams flow; then the warm-up, where every kind of action runs
    // (the first recording, private talk, rejoin... allocate what later ones reuse), and the
    // start is taken after it.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let joined = sample(&server.base, server.pid).await;
    let http = reqwest::Client::new();
    soak.act_until(
        &http,
        Instant::now() + Duration::from_secs(args.soak_warmup),
    )
    .await;
    let start = sample(&server.base, server.pid).await;
    eprintln!(
        "soak on {engine}: {meetings} meetings of {size} on WebRTC ({speakers} speaking in each) and a relay meeting of {} for {minutes} min after {} s of warm-up; baseline {baseline:?}, everyone in {joined:?}, start {start:?}",
        args.soak_relay, args.soak_warmup
    );
    println!(
        "{:>6} {:>9} {:>6} {:>6} {:>7} {:>6} {:>10} {:>8} {:>11} {:>9}",
        "minute",
        "RSS KiB",
        "fds",
        "UDP",
        "tasks",
        "peers",
        "rcvd pkt/s",
        "p99 ms",
        "relay fr/s",
        "relay p99"
    );
    let began = Instant::now();
    let mut rows = Vec::new();
    for minute in 1..=minutes {
        *soak.tally.window.lock().map_err(|_| anyhow!("window"))? = (now_ns(), u64::MAX);
        let received0 = soak.tally.received.load(Relaxed);
        let relay0 = soak.relay_tally.received.load(Relaxed);
        take_p99(&soak.relay_tally.latencies_us)?;
        let from = Instant::now();
        soak.act_until(&http, began + Duration::from_secs(60 * minute))
            .await;
        let secs = from.elapsed().as_secs_f64();
        soak.tally.window.lock().map_err(|_| anyhow!("window"))?.1 = now_ns();
        // The minute's last packets arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let row = Minute {
            minute,
            sample: sample(&server.base, server.pid).await,
            received_per_s: (soak.tally.received.load(Relaxed) - received0) as f64 / secs,
            p99_ms: take_p99(&soak.tally.latencies_us)?,
            relay_per_s: (soak.relay_tally.received.load(Relaxed) - relay0) as f64 / secs,
            relay_p99_ms: take_p99(&soak.relay_tally.latencies_us)?,
        };
        println!(
            "{:>6} {:>9} {:>6} {:>6} {:>7} {:>6} {:>10.0} {:>8.2} {:>11.0} {:>9.2}",
            row.minute,
            row.sample.rss_kib,
            row.sample.fds,
            row.sample.udp_sockets,
            row.sample.tasks,
            row.sample.peers,
            row.received_per_s,
            row.p99_ms,
            row.relay_per_s,
            row.relay_p99_ms
        );
        rows.push(row);
    }
    // Back to where the run started: no private talk, no recording, everyone seated.
    for m in 0..groups.len() {
        if soak.recording[m] {
            soak.toggle_recording(&http, m).await?;
        }
    }
    for (m, g) in groups.iter().enumerate() {
        if soak.private[m].take().is_some() {
            api(
                &http,
                format!("{}/api/meetings/switch-mode", server.base),
                Some(&g.members[0].1),
                json!({"meetingId": g.id, "mode": "broadcast", "participantId": null}),
            )
            .await?;
        }
        for i in 0..g.members.len() {
            if soak.seats[m][i].is_none() {
                soak.seat(m, i).await?;
            }
        }
    }
    let recordings = recordings_outcome(&http, &server.base, &soak.recordings).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let end = sample(&server.base, server.pid).await;
    let errors_5xx = metric(&server.base, "meet_http_requests_total{class=\"5xx\"}").await;
    // The soak's own HTTP connection (kept alive) is not the server's to release.
    drop(http);
    for (m, g) in groups.iter().enumerate() {
        for i in 0..g.members.len() {
            soak.unseat(m, i);
        }
    }
    // Everyone left: the counts come back (a closed socket's seat is held for the grace).
    let back = |after: &Sample| {
        after.peers == 0.0
            && after.fds <= baseline.fds
            && after.udp_sockets <= baseline.udp_sockets
            && after.tasks <= baseline.tasks
    };
    let left = Instant::now();
    let mut after = sample(&server.base, server.pid).await;
    while left.elapsed() < Duration::from_secs(args.soak_settle) && !back(&after) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = sample(&server.base, server.pid).await;
    }
    let settled = left.elapsed();
    // RSS in the middle: the row of the middle minute (with the classes as they were then).
    let middle = rows
        .get(rows.len().saturating_sub(1) / 2)
        .map_or(start, |r| r.sample);
    let change = |s: &Sample| 100.0 * (s.rss_kib as f64 / start.rss_kib as f64 - 1.0);
    let (middle_change, end_change) = (change(&middle), change(&end));
    let checks = [
        (
            "RSS within 10 % of its start",
            middle_change.abs() <= 10.0 && end_change.abs() <= 10.0,
        ),
        ("counts back to the baseline", back(&after)),
        ("every recording completed", recordings.lost.is_empty()),
        ("no 5xx answer", errors_5xx == 0.0),
        ("no action failed", soak.actions.failed == 0),
    ];
    let held = |ok: bool| if ok { "held" } else { "NOT held" };
    println!(
        "actions: {} rejoins, {} mode switches, {} mutes or unmutes, {} recordings started and {} stopped, {} failed",
        soak.actions.rejoins,
        soak.actions.switches,
        soak.actions.mutes,
        soak.actions.recordings_started,
        soak.actions.recordings_stopped,
        soak.actions.failed
    );
    println!(
        "RSS: {} KiB with everyone in, {} KiB at the start (after the warm-up), {} KiB in the middle ({middle_change:+.1} %), {} KiB at the end with everyone in ({end_change:+.1} %): {}",
        joined.rss_kib,
        start.rss_kib,
        middle.rss_kib,
        end.rss_kib,
        held(checks[0].1)
    );
    println!(
        "recordings: {} started, {} completed ({:.0} s of audio), {} lost: {}",
        recordings.started,
        recordings.completed,
        recordings.seconds,
        recordings.lost.len(),
        held(checks[2].1)
    );
    for lost in &recordings.lost {
        println!("  lost: {lost}");
    }
    println!("5xx answers: {errors_5xx}: {}", held(checks[3].1));
    println!(
        "after everyone left ({:.1} s): fds {} (baseline {}), UDP sockets {} ({}), tasks {} ({}), peers {}: {}",
        settled.as_secs_f64(),
        after.fds,
        baseline.fds,
        after.udp_sockets,
        baseline.udp_sockets,
        after.tasks,
        baseline.tasks,
        after.peers,
        held(checks[1].1)
    );
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json!({
                "engine": engine, "meetings": meetings, "size": size, "relay": args.soak_relay,
                "minutes": minutes, "warmup_s": args.soak_warmup, "baseline": baseline,
                "joined": joined, "start": start, "middle": middle,
                "end": end, "after": after, "settled_s": settled.as_secs_f64(),
                "minutes_rows": rows, "actions": soak.actions, "recordings": recordings,
                "errors_5xx": errors_5xx,
            }))?,
        )?;
    }
    soak.tally.over.store(true, Relaxed);
    let mut child = server.child;
    let _ = child.kill().await;
    let failed: Vec<&str> = checks.iter().filter(|c| !c.1).map(|c| c.0).collect();
    if !failed.is_empty() {
        bail!("the soak did not hold: {}", failed.join("; "));
    }
    Ok(())
}
