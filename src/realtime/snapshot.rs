//! What `meet top` shows, in one value: the server's counters, its live meetings and their
//! people, built from `Services`, the `Hub` and the SFU's `MediaStats` (atomics and short locks
//! only, none held across an await). Counters are totals: a watcher turns two snapshots into
//! rates ([`Snapshot::rates_since`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Hub;
use crate::domain::meetings::{Meeting, Mode};
use crate::error::Result;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub at: DateTime<Utc>,
    pub server: Server,
    pub meetings: Vec<LiveMeeting>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    pub version: String,
    pub uptime_seconds: u64,
    /// CPU seconds this process has used, and its resident memory.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub sockets: u64,
    pub webrtc_peers: u64,
    pub forwarded_packets: u64,
    pub relay_frames: u64,
    pub recordings_running: u64,
    pub storage: String,
    pub upload_backlog: u64,
    /// The next scheduled job: its name and when.
    pub next_job: Option<(String, DateTime<Utc>)>,
    /// Set by a watcher from two snapshots: per second.
    #[serde(default)]
    pub cpu_percent: f64,
    #[serde(default)]
    pub forwarded_per_second: f64,
    #[serde(default)]
    pub relay_frames_per_second: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveMeeting {
    pub id: String,
    pub topic: String,
    pub host: String,
    pub mode: String,
    /// The student of a private talk.
    pub private_with: Option<String>,
    pub online: usize,
    pub seats: u32,
    pub speaking: usize,
    pub recording: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub participants: Vec<LiveParticipant>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveParticipant {
    pub id: String,
    pub username: String,
    pub role: String,
    /// `webrtc`, `relay` (a socket, no peer connection) or `none`.
    pub transport: String,
    pub online: bool,
    pub muted: bool,
    pub level: f32,
    pub packets_in: u64,
    pub packets_out: u64,
    pub lost: i64,
    pub jitter_ms: f64,
    pub rtt_ms: f64,
    #[serde(default)]
    pub packets_in_per_second: f64,
    #[serde(default)]
    pub packets_out_per_second: f64,
    /// Lost packets against those received and lost, since the previous snapshot, in %.
    #[serde(default)]
    pub loss_percent: f64,
}

/// A level above this counts as speaking.
const SPEAKING: f32 = 0.05;

impl Snapshot {
    /// Fills the rates from an earlier snapshot of the same server.
    pub fn rates_since(&mut self, before: &Snapshot) {
        let dt = (self.at - before.at).num_milliseconds() as f64 / 1000.0;
        if dt <= 0.0 {
            return;
        }
        let per = |now: u64, then: u64| now.saturating_sub(then) as f64 / dt;
        let s = &mut self.server;
        s.cpu_percent = ((s.cpu_seconds - before.server.cpu_seconds) / dt * 100.0).max(0.0);
        s.forwarded_per_second = per(s.forwarded_packets, before.server.forwarded_packets);
        s.relay_frames_per_second = per(s.relay_frames, before.server.relay_frames);
        let earlier: HashMap<(&str, &str), &LiveParticipant> = before
            .meetings
            .iter()
            .flat_map(|m| {
                m.participants
                    .iter()
                    .map(move |p| ((m.id.as_str(), p.id.as_str()), p))
            })
            .collect();
        for m in &mut self.meetings {
            for p in &mut m.participants {
                let Some(b) = earlier.get(&(m.id.as_str(), p.id.as_str())) else {
                    continue;
                };
                p.packets_in_per_second = per(p.packets_in, b.packets_in);
                p.packets_out_per_second = per(p.packets_out, b.packets_out);
                let got = p.packets_in.saturating_sub(b.packets_in) as f64;
                let lost = (p.lost - b.lost).max(0) as f64;
                p.loss_percent = if got + lost > 0.0 {
                    lost / (got + lost) * 100.0
                } else {
                    0.0
                };
            }
        }
    }
}

/// This process's CPU seconds and resident bytes, from `/proc/self`.
fn process_usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name in parentheses: fields 14 and 15 (utime, stime), in ticks.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let cpu = (ticks(11) + ticks(12)) as f64 / 100.0;
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, pages * 4096)
}

impl Hub {
    /// The server and its live meetings now.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        let services = &self.services;
        let media = self.media.stats();
        let (cpu_seconds, rss_bytes) = process_usage();
        let next_job = crate::jobs::list(services)
            .into_iter()
            .filter_map(|j| j.next_run.map(|at| (j.name, at)))
            .min_by_key(|(_, at)| *at);
        let server = Server {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_seconds: services.uptime().as_secs(),
            cpu_seconds,
            rss_bytes,
            sockets: self.stats.sockets(),
            webrtc_peers: media.peers.load(std::sync::atomic::Ordering::Relaxed),
            forwarded_packets: media
                .forwarded_packets
                .load(std::sync::atomic::Ordering::Relaxed),
            relay_frames: self.stats.relay_frames(),
            recordings_running: services
                .recorder
                .stats()
                .running
                .load(std::sync::atomic::Ordering::Relaxed),
            storage: services.storage.kind().into(),
            upload_backlog: services.recordings_pending(),
            next_job,
            ..Server::default()
        };
        let peers: HashMap<(String, String), crate::media::ParticipantSnapshot> = media
            .participants()
            .into_iter()
            .map(|p| ((p.meeting.clone(), p.user.clone()), p))
            .collect();
        let mut meetings = Vec::new();
        for row in services.store.meetings(None, Some(&["active"])).await? {
            let meeting: Meeting = row.into();
            let rows = services.store.participants(&meeting.id).await?;
            let names: HashMap<&str, &str> = rows
                .iter()
                .map(|p| (p.user_id.as_str(), p.username.as_str()))
                .collect();
            let mut participants = Vec::new();
            for p in &rows {
                let sockets = self
                    .presence
                    .with_room(&meeting.id, |r| r.sockets_of(&p.user_id))
                    .unwrap_or(0);
                let peer = peers.get(&(meeting.id.clone(), p.user_id.clone()));
                participants.push(LiveParticipant {
                    id: p.user_id.clone(),
                    username: p.username.clone(),
                    role: p.role.clone(),
                    transport: match (peer, sockets) {
                        (Some(_), _) => "webrtc",
                        (None, n) if n > 0 => "relay",
                        _ => "none",
                    }
                    .into(),
                    online: p.present,
                    muted: p.muted,
                    level: peer.map_or(0.0, |s| s.level),
                    packets_in: peer.map_or(0, |s| s.packets_in),
                    packets_out: peer.map_or(0, |s| s.packets_out),
                    lost: peer.map_or(0, |s| s.lost_in),
                    jitter_ms: peer.map_or(0.0, |s| s.jitter_ms),
                    rtt_ms: peer.map_or(0.0, |s| s.rtt_ms),
                    ..LiveParticipant::default()
                });
            }
            let private_with = match meeting.mode {
                Mode::Private => meeting
                    .private_participant_id
                    .as_deref()
                    .map(|id| names.get(id).copied().unwrap_or(id).to_owned()),
                Mode::Broadcast => None,
            };
            meetings.push(LiveMeeting {
                online: participants.iter().filter(|p| p.online).count(),
                speaking: participants.iter().filter(|p| p.level > SPEAKING).count(),
                id: meeting.id.clone(),
                topic: meeting.topic.clone(),
                host: meeting.host_name.clone(),
                mode: meeting.mode.as_str().into(),
                private_with,
                seats: meeting.max_participants,
                recording: meeting.recording.is_some(),
                started_at: meeting.start_time,
                ends_at: meeting.deadline(),
                participants,
            });
        }
        Ok(Snapshot {
            // The wall clock, not the settable one: rates are per real second.
            at: Utc::now(),
            server,
            meetings,
        })
    }
}
