//! The SFU: one WebRTC peer connection per participant (Opus only), each speaker's RTP
//! forwarded to every participant the routing rule lets hear them.
//!
//! The rest of the server sees a narrow interface: commands in ([`Sfu`]: offer, answer,
//! candidate, leave, route, end), events out ([`MediaEvent`]: signals for a socket, audio
//! levels), and counters ([`MediaStats`]). Inside: a task per meeting ([`room`]) that owns
//! peers and legs, a task per peer connection ([`peer`]), and a publisher task per speaker
//! that forwards packets. Nothing of the `webrtc` crate leaks out, so another engine (one
//! socket on the sans-IO core, with batched sends) can replace this one behind the same
//! interface.

pub mod bridge;
pub mod engine;
pub mod lite;
mod peer;
mod ports;
pub mod record;
mod room;
pub mod rtp;
pub mod sdp;
mod stats;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use stats::{MediaStats, ParticipantSnapshot, PeerStats};

use crate::config::MediaConfig;
use crate::domain::routing::RouteState;
use ports::PortAllocator;
use room::RoomCmd;

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

/// What rooms and peers share.
pub struct Shared {
    config: MediaConfig,
    /// Offered every received packet of a meeting that records.
    recorder: Option<record::recorder::Recorder>,
    ports: Arc<PortAllocator>,
    stats: Arc<MediaStats>,
    events: mpsc::UnboundedSender<MediaEvent>,
    generation: AtomicU64,
    /// Each meeting's packets for its relay listeners ([`bridge`]).
    outlets: bridge::Outlets,
    /// Who has a WebRTC connection, by meeting (kept by the rooms).
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
    rooms: Mutex<HashMap<String, mpsc::UnboundedSender<RoomCmd>>>,
    /// Relay speakers' frames on their way to their publisher, by (meeting, user).
    relayed: Mutex<HashMap<(String, String), mpsc::Sender<bridge::RelayFrame>>>,
    /// The `rtc` engine, when it is the one (`media.engine`); else rooms and peers above.
    lite: Option<lite::Lite>,
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
            ports: PortAllocator::new(config.udp_ports.clone()),
            recorder,
            config,
            stats: Arc::new(MediaStats::default()),
            events,
            generation: AtomicU64::new(0),
            outlets: bridge::Outlets::default(),
            connected: Mutex::new(HashMap::new()),
        });
        let lite = match shared.config.engine {
            crate::config::MediaEngineKind::Rtc => Some(lite::Lite::start(Arc::clone(&shared))?),
            crate::config::MediaEngineKind::Webrtc => None,
        };
        let sampler = tokio::spawn(sample_rates(Arc::clone(&shared)));
        let sfu = Self {
            shared,
            rooms: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            lite,
            sampler,
        };
        Ok((sfu, rx))
    }

    /// The `rtc` engine's bound ports, one per shard (empty with the `webrtc` engine).
    pub fn udp_ports(&self) -> Vec<u16> {
        self.lite
            .as_ref()
            .map(|l| l.ports.clone())
            .unwrap_or_default()
    }

    /// The shard a meeting is on (`rtc` engine).
    pub fn shard_of(&self, meeting: &str) -> Option<usize> {
        self.lite.as_ref()?.shard_of(meeting)
    }

    pub fn stats(&self) -> &MediaStats {
        &self.shared.stats
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<String, mpsc::UnboundedSender<RoomCmd>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn room(&self, meeting: &str) -> Option<mpsc::UnboundedSender<RoomCmd>> {
        self.rooms().get(meeting).cloned()
    }

    /// The client's first offer (a new connection for the user, replacing any earlier one);
    /// returns the answer. `route` gives the meeting's routing state if the room is new: it
    /// is read under the SFU's lock, so a concurrent [`Sfu::set_route`] is never lost.
    pub async fn offer(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        sdp: String,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
    ) -> Result<String, MediaError> {
        if let Some(l) = &self.lite {
            return l.offer(meeting, user, owner, sdp, route).await;
        }
        let (reply, answer) = oneshot::channel();
        let cmd = RoomCmd::Offer {
            user: user.into(),
            owner: owner.to_owned(),
            sdp,
            reply,
        };
        self.to_room(meeting, route, cmd)?;
        answer.await.unwrap_or(Err(MediaError::Ended))
    }

    /// Sends `cmd` to the meeting's room, starting the room (with the routing state `route`
    /// gives) if there is none. Under the SFU's lock, so a concurrent [`Sfu::set_route`] is
    /// either seen by `route` or delivered to the new room.
    fn to_room(
        &self,
        meeting: &str,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
        cmd: RoomCmd,
    ) -> Result<(), MediaError> {
        let mut rooms = self.rooms();
        let tx = match rooms.get(meeting) {
            Some(tx) if !tx.is_closed() => tx.clone(),
            _ => {
                let (version, route) = route().ok_or(MediaError::Ended)?;
                let tx = room::spawn(meeting.into(), Arc::clone(&self.shared), version, route);
                rooms.insert(meeting.to_owned(), tx.clone());
                tx
            }
        };
        tx.send(cmd).map_err(|_| MediaError::Ended)
    }

    /// The client's answer to the server's offer.
    pub async fn answer(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        sdp: String,
    ) -> Result<(), MediaError> {
        if let Some(l) = &self.lite {
            return l.answer(meeting, user, owner, sdp).await;
        }
        let (reply, done) = oneshot::channel();
        self.ask(
            meeting,
            RoomCmd::Answer {
                user: user.into(),
                owner: owner.to_owned(),
                sdp,
                reply,
            },
        )?;
        done.await.unwrap_or(Err(MediaError::NoPeer))
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
        if let Some(l) = &self.lite {
            return l.candidate(meeting, user, owner, candidate, route).await;
        }
        let (reply, done) = oneshot::channel();
        self.to_room(
            meeting,
            route,
            RoomCmd::Candidate {
                user: user.into(),
                owner: owner.to_owned(),
                candidate,
                reply,
            },
        )?;
        done.await.unwrap_or(Err(MediaError::NoPeer))
    }

    fn ask(&self, meeting: &str, cmd: RoomCmd) -> Result<(), MediaError> {
        self.room(meeting)
            .ok_or(MediaError::NoPeer)?
            .send(cmd)
            .map_err(|_| MediaError::NoPeer)
    }

    /// The socket `owner` of `user` left the meeting: its connection closes.
    pub fn leave(&self, meeting: &str, user: &str, owner: Option<&str>) {
        if let Some(l) = &self.lite {
            return l.leave(meeting, user, owner);
        }
        if let Some(tx) = self.room(meeting) {
            let _ = tx.send(RoomCmd::Leave {
                user: user.into(),
                owner: owner.map(str::to_owned),
            });
        }
    }

    /// The meeting's mode or mutes changed: applies to the next packet.
    /// `version` orders the states: an older one arriving late is ignored.
    pub fn set_route(&self, meeting: &str, version: u64, route: &RouteState) {
        if let Some(l) = &self.lite {
            return l.set_route(meeting, version, route);
        }
        if let Some(tx) = self.rooms().get(meeting) {
            let _ = tx.send(RoomCmd::Route(version, route.clone()));
        }
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
    /// nothing when the meeting has no WebRTC room or the speaker has a connection of their
    /// own. Never waits: a speaker whose publisher is behind loses the frame.
    pub fn relay_audio(&self, meeting: &str, user: &str, rate: u32, pcm: &bytes::Bytes) {
        if self
            .shared
            .connected()
            .get(meeting)
            .is_some_and(|c| c.contains(user))
        {
            return;
        }
        if let Some(l) = &self.lite {
            return l.relay_audio(meeting, user, rate, pcm);
        }
        let Some(room) = self.room(meeting) else {
            return;
        };
        let mut frame = bridge::RelayFrame {
            rate,
            pcm: pcm.clone(),
        };
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (meeting.to_owned(), user.to_owned());
        if let Some(tx) = relayed.get(&key) {
            match tx.try_send(frame) {
                // Queued, or lost because the publisher is behind.
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => return,
                // The publisher has ended (the user left, or the room dropped them): a new one.
                Err(mpsc::error::TrySendError::Closed(f)) => frame = f,
            }
        }
        let (tx, frames) = mpsc::channel(bridge::RELAY_QUEUE);
        if room
            .send(RoomCmd::Relayed {
                user: user.into(),
                frames,
            })
            .is_ok()
        {
            let _ = tx.try_send(frame);
            relayed.insert(key, tx);
        }
    }

    /// From now on the meeting's WebRTC speakers' packets go to `tx` as well (`None`: no
    /// more), for the relay listeners ([`bridge`]).
    pub fn set_outlet(&self, meeting: &str, tx: Option<mpsc::Sender<bridge::Heard>>) {
        self.shared.outlets.set(meeting, tx);
    }

    /// The meetings that have a room.
    pub fn meetings(&self) -> Vec<String> {
        if let Some(l) = &self.lite {
            return l.meetings();
        }
        self.rooms().keys().cloned().collect()
    }

    /// The meeting ended: every connection in it closes.
    pub async fn end(&self, meeting: &str) {
        self.shared.outlets.remove(meeting);
        if let Some(l) = &self.lite {
            return l.end(meeting).await;
        }
        self.relayed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(m, _), _| m != meeting);
        let tx = self.rooms().remove(meeting);
        if let Some(tx) = tx {
            let (done, closed) = oneshot::channel();
            if tx.send(RoomCmd::End(done)).is_ok() {
                let _ = closed.await;
            }
        }
    }

    /// Closes every connection (server shutdown).
    pub async fn close(&self) {
        if let Some(l) = &self.lite {
            l.close().await;
            self.sampler.abort();
            return;
        }
        let rooms: Vec<_> = self.rooms().drain().collect();
        let mut waits = Vec::new();
        for (_, tx) in rooms {
            let (done, closed) = oneshot::channel();
            if tx.send(RoomCmd::End(done)).is_ok() {
                waits.push(closed);
            }
        }
        for w in waits {
            let _ = w.await;
        }
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
