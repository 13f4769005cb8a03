//! The SFU: one WebRTC peer connection per participant (Opus only), each speaker's RTP
//! forwarded to every participant the routing rule lets hear them.
//!
//! The rest of the server sees a narrow interface: commands in ([`Sfu`]: offer, answer,
//! candidate, leave, route, end), events out ([`MediaEvent`]: signals for a socket, audio
//! levels), and counters ([`MediaStats`]). Inside ([`lite`], docs/ENGINE.md): every peer
//! connection on one UDP port per shard, on the sans-IO `rtc` core, a thread per shard
//! owning its meetings' connections outright.

pub mod bridge;
pub mod engine;
pub mod lite;
pub mod record;
pub mod rtp;
pub mod sdp;
mod stats;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use stats::{MediaStats, ParticipantSnapshot, PeerStats};

use crate::config::MediaConfig;
use crate::domain::routing::RouteState;

/// A participant's connection, as the shards name it: a user id and the generation of the
/// connection (a new first offer makes a new one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub user: Arc<str>,
    pub generation: u64,
}

/// How a peer connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Closed on purpose (left, replaced, meeting over, server stopping).
    Closed,
    /// ICE failed, the client fell silent, or it never answered an offer.
    Failed,
}

/// A `webrtc-signal` payload's `signal`, either way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Signal {
    Offer { sdp: String },
    Answer { sdp: String },
    Candidate { candidate: Candidate },
}

/// An ICE candidate as the browser's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    pub sdp_mline_index: Option<u16>,
}

/// What the SFU tells the rest of the server.
#[derive(Debug)]
pub enum MediaEvent {
    /// A signal for the client socket `owner` (the socket that made the connection's offer).
    Signal { owner: String, signal: Signal },
    /// Speakers' loudest levels over the last 100 ms (0..=1, −60..0 dBov, the relay's scale),
    /// for `active-speaker`.
    Levels {
        meeting: Arc<str>,
        levels: Vec<(Arc<str>, f32)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    #[error("{0}")]
    BadSignal(String),
    #[error("There is no WebRTC connection of this socket to signal to; send an offer first")]
    NoPeer,
    #[error("{0}")]
    Unavailable(String),
    #[error("This meeting has ended")]
    Ended,
}

/// What the shards share.
pub struct Shared {
    config: MediaConfig,
    /// Offered every received packet of a meeting that records.
    recorder: Option<record::recorder::Recorder>,
    stats: Arc<MediaStats>,
    events: mpsc::UnboundedSender<MediaEvent>,
    generation: AtomicU64,
    /// Each meeting's packets for its relay listeners ([`bridge`]).
    outlets: bridge::Outlets,
    /// Who has a WebRTC connection, by meeting (kept by the shards).
    connected: Mutex<HashMap<String, HashSet<Arc<str>>>>,
}

impl Shared {
    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Relaxed) + 1
    }

    fn connected(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<Arc<str>>>> {
        self.connected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The SFU's handle.
pub struct Sfu {
    shared: Arc<Shared>,
    lite: lite::Lite,
    sampler: JoinHandle<()>,
}

impl Sfu {
    /// Starts the SFU; its events come out of the returned receiver. Received audio of a
    /// meeting that records is offered to `recorder`.
    pub fn start(
        config: MediaConfig,
        recorder: Option<record::recorder::Recorder>,
    ) -> std::io::Result<(Self, mpsc::UnboundedReceiver<MediaEvent>)> {
        let (events, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            recorder,
            config,
            stats: Arc::new(MediaStats::default()),
            events,
            generation: AtomicU64::new(0),
            outlets: bridge::Outlets::default(),
            connected: Mutex::new(HashMap::new()),
        });
        let lite = lite::Lite::start(Arc::clone(&shared))?;
        let sampler = tokio::spawn(sample_rates(Arc::clone(&shared)));
        Ok((
            Self {
                shared,
                lite,
                sampler,
            },
            rx,
        ))
    }

    /// The bound UDP ports, one per shard.
    pub fn udp_ports(&self) -> Vec<u16> {
        self.lite.ports.clone()
    }

    /// The shard a meeting is on.
    pub fn shard_of(&self, meeting: &str) -> Option<usize> {
        self.lite.shard_of(meeting)
    }

    pub fn stats(&self) -> &MediaStats {
        &self.shared.stats
    }

    /// The client's first offer (a new connection for the user, replacing any earlier one);
    /// returns the answer. `route` gives the meeting's routing state if the meeting is new to
    /// the SFU: it is read under the SFU's lock, so a concurrent [`Sfu::set_route`] is never
    /// lost.
    pub async fn offer(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        sdp: String,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
    ) -> Result<String, MediaError> {
        self.lite.offer(meeting, user, owner, sdp, route).await
    }

    /// The client's answer to the server's offer.
    pub async fn answer(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        sdp: String,
    ) -> Result<(), MediaError> {
        self.lite.answer(meeting, user, owner, sdp).await
    }

    /// A trickled candidate of the client (kept for its offer if that is still on its way).
    pub async fn candidate(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        candidate: Candidate,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
    ) -> Result<(), MediaError> {
        self.lite
            .candidate(meeting, user, owner, candidate, route)
            .await
    }

    /// The socket `owner` of `user` left the meeting: its connection closes.
    pub fn leave(&self, meeting: &str, user: &str, owner: Option<&str>) {
        self.lite.leave(meeting, user, owner);
    }

    /// The meeting's mode or mutes changed: applies to the next packet.
    /// `version` orders the states: an older one arriving late is ignored.
    pub fn set_route(&self, meeting: &str, version: u64, route: &RouteState) {
        self.lite.set_route(meeting, version, route);
    }

    /// The users of `meeting` who have a WebRTC connection.
    pub fn connected(&self, meeting: &str) -> HashSet<Arc<str>> {
        self.shared
            .connected()
            .get(meeting)
            .cloned()
            .unwrap_or_default()
    }

    /// A relay speaker's frame (Int16 LE mono at `rate`), for the meeting's WebRTC listeners;
    /// nothing when the meeting has no WebRTC connection or the speaker has a connection of
    /// their own. Never waits: a speaker whose encoder is behind loses the frame.
    pub fn relay_audio(&self, meeting: &str, user: &str, rate: u32, pcm: &bytes::Bytes) {
        if self
            .shared
            .connected()
            .get(meeting)
            .is_some_and(|c| c.contains(user))
        {
            return;
        }
        self.lite.relay_audio(meeting, user, rate, pcm);
    }

    /// From now on the meeting's WebRTC speakers' packets go to `tx` as well (`None`: no
    /// more), for the relay listeners ([`bridge`]).
    pub fn set_outlet(&self, meeting: &str, tx: Option<mpsc::Sender<bridge::Heard>>) {
        self.shared.outlets.set(meeting, tx);
    }

    /// The meetings the SFU holds.
    pub fn meetings(&self) -> Vec<String> {
        self.lite.meetings()
    }

    /// The meeting ended: every connection in it closes.
    pub async fn end(&self, meeting: &str) {
        self.shared.outlets.remove(meeting);
        self.lite.end(meeting).await;
    }

    /// Closes every connection (server shutdown).
    pub async fn close(&self) {
        self.lite.close().await;
        self.sampler.abort();
    }
}

/// Forwarded packets per second, once a second.
async fn sample_rates(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (tokio::time::Instant::now(), 0u64);
    loop {
        tick.tick().await;
        let now = tokio::time::Instant::now();
        let total = shared.stats.forwarded_packets.load(Relaxed);
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = (total.saturating_sub(last.1) as f64 / secs).round() as u64;
        shared.stats.forwarded_per_second.store(rate, Relaxed);
        last = (now, total);
    }
}
