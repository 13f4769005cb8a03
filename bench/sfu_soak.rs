//! The soak (`--soak MINUTES`): meetings of participants joining, leaving, switching modes and
//! muting on one server for minutes, then everyone leaves. A line per minute (RSS, file
//! descriptors, UDP sockets, tasks, peers, packets/s received and the forwarding p99 of that
//! minute); at the end RSS against its start and every count against its baseline (before
//! anyone joined), and whether each held.
//!
//!   cargo run --release --example sfu-load -- --soak 10
//!   SOAK=10 bash bench/sfu.sh

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use serde_json::json;

use super::lite::Lite;
use super::{
    Args, Group, Participant, Tally, api, join, metric, now_ns, percentile, proc_usage, provision,
    start_server,
};

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
    who: Arc<Participant>,
    stop: Arc<AtomicU64>,
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
    actions: Actions,
}

#[derive(Debug, Default, serde::Serialize)]
struct Actions {
    rejoins: u64,
    switches: u64,
    mutes: u64,
    failed: u64,
}

impl Soak<'_> {
    async fn seat(&mut self, m: usize, i: usize) -> Result<()> {
        let g = &self.groups[m];
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
        if i < self.speakers {
            who.peer.speak((self.size - 1) as u64, Arc::clone(&stop));
        }
        self.seats[m][i] = Some(Seat { who, stop });
        Ok(())
    }

    async fn unseat(&mut self, m: usize, i: usize) {
        if let Some(seat) = self.seats[m][i].take() {
            seat.stop.store(1, Relaxed);
            seat.who.leave();
        }
    }

    /// One thing a class does: a student leaves and comes back, the host starts or ends a
    /// private talk, or mutes or unmutes a student.
    async fn act(&mut self, http: &reqwest::Client) -> Result<()> {
        let m = rand::random_range(0..self.groups.len());
        let student = rand::random_range(1..self.size);
        let host = self.groups[m].members[0].1.clone();
        match rand::random_range(0..3) {
            0 => {
                self.unseat(m, student).await;
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
            _ => {
                let Some(seat) = &self.seats[m][0] else {
                    bail!("meeting {m} has no host seated");
                };
                let sio = seat.who.sio.as_ref().ok_or_else(|| anyhow!("no socket"))?;
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
}

pub async fn run(args: &Args, minutes: u64, engine: &str) -> Result<()> {
    let (meetings, size, speakers) = (args.soak_meetings, args.soak_size, 3.min(args.soak_size));
    let server = start_server(args, engine, 20_000).await?;
    let groups = provision(&server.base, meetings, size).await?;
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
        seats: (0..meetings)
            .map(|_| (0..size).map(|_| None).collect())
            .collect(),
        private: vec![None; meetings],
        muted: vec![HashSet::new(); meetings],
        actions: Actions::default(),
    };
    for m in 0..meetings {
        for i in 0..size {
            soak.seat(m, i).await?;
        }
    }
    // Everyone is in; the start is taken once the streams flow.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let start = sample(&server.base, server.pid).await;
    eprintln!(
        "soak on {engine}: {meetings} meetings of {size} ({speakers} speaking in each) for {minutes} min; baseline {baseline:?}, start {start:?}"
    );
    println!(
        "{:>6} {:>9} {:>6} {:>6} {:>7} {:>6} {:>10} {:>8}",
        "minute", "RSS KiB", "fds", "UDP", "tasks", "peers", "rcvd pkt/s", "p99 ms"
    );
    let http = reqwest::Client::new();
    let began = Instant::now();
    let mut rows = Vec::new();
    for minute in 1..=minutes {
        *soak.tally.window.lock().map_err(|_| anyhow!("window"))? = (now_ns(), u64::MAX);
        let received0 = soak.tally.received.load(Relaxed);
        let until = began + Duration::from_secs(60 * minute);
        let from = Instant::now();
        while Instant::now() < until {
            if let Err(e) = soak.act(&http).await {
                soak.actions.failed += 1;
                eprintln!("soak action failed: {e:#}");
            }
            tokio::time::sleep(Duration::from_millis(rand::random_range(500..2500))).await;
        }
        let secs = from.elapsed().as_secs_f64();
        soak.tally.window.lock().map_err(|_| anyhow!("window"))?.1 = now_ns();
        // The minute's last packets arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut lat =
            std::mem::take(&mut *soak.tally.latencies_us.lock().map_err(|_| anyhow!("lat"))?);
        lat.sort_unstable();
        let row = Minute {
            minute,
            sample: sample(&server.base, server.pid).await,
            received_per_s: (soak.tally.received.load(Relaxed) - received0) as f64 / secs,
            p99_ms: percentile(&lat, 99.0),
        };
        println!(
            "{:>6} {:>9} {:>6} {:>6} {:>7} {:>6} {:>10.0} {:>8.2}",
            row.minute,
            row.sample.rss_kib,
            row.sample.fds,
            row.sample.udp_sockets,
            row.sample.tasks,
            row.sample.peers,
            row.received_per_s,
            row.p99_ms
        );
        rows.push(row);
    }
    // Back to where the run started: no private talk, everyone seated.
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
        for i in 0..size {
            if soak.seats[m][i].is_none() {
                soak.seat(m, i).await?;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let end = sample(&server.base, server.pid).await;
    // The soak's own HTTP connection (kept alive) is not the server's to release.
    drop(http);
    for m in 0..meetings {
        for i in 0..size {
            soak.unseat(m, i).await;
        }
    }
    // Everyone left: the counts come back (a closed socket's seat is held for the grace).
    let left = Instant::now();
    let mut after = sample(&server.base, server.pid).await;
    while left.elapsed() < Duration::from_secs(60) {
        after = sample(&server.base, server.pid).await;
        if after.peers == 0.0
            && after.fds <= baseline.fds
            && after.udp_sockets <= baseline.udp_sockets
            && after.tasks <= baseline.tasks
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled = left.elapsed();
    let rss_change = 100.0 * (end.rss_kib as f64 / start.rss_kib as f64 - 1.0);
    let held = |ok: bool| if ok { "held" } else { "NOT held" };
    println!(
        "actions: {} rejoins, {} mode switches, {} mutes or unmutes, {} failed",
        soak.actions.rejoins, soak.actions.switches, soak.actions.mutes, soak.actions.failed
    );
    println!(
        "RSS: {} KiB at the start, {} KiB at the end with everyone in ({rss_change:+.1} %): {}",
        start.rss_kib,
        end.rss_kib,
        held(rss_change.abs() <= 10.0)
    );
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
        held(
            after.peers == 0.0
                && after.fds <= baseline.fds
                && after.udp_sockets <= baseline.udp_sockets
                && after.tasks <= baseline.tasks
        )
    );
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json!({
                "engine": engine, "meetings": meetings, "size": size, "minutes": minutes,
                "baseline": baseline, "start": start, "end": end, "after": after,
                "settled_s": settled.as_secs_f64(), "minutes_rows": rows,
                "actions": soak.actions,
            }))?,
        )?;
    }
    soak.tally.over.store(true, Relaxed);
    let mut child = server.child;
    let _ = child.kill().await;
    Ok(())
}
