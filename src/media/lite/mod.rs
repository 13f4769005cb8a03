//! The media engine: the sans-IO `rtc` core of webrtc-rs, every peer
//! connection of a shard on one UDP port (ICE-lite, server-chosen ufrags, [`demux`]), one OS
//! thread per shard that owns its meetings' connections outright ([`shard`]), batched I/O
//! ([`io`]). A meeting lives on one shard, placed at its first signal on the shard with the
//! fewest meetings, so forwarding never leaves the thread.

mod conn;
pub mod demux;
mod io;
pub mod shard;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use super::PeerKey;
use super::bridge::{RELAY_QUEUE, RelayEncoder, RelayFrame};
use super::record::mix::Encoding;
use super::{Candidate, MediaError, Shared};
use crate::domain::routing::RouteState;
use shard::{Cmd, RelayPacket};

/// Encoded relay packets queued per shard; beyond it, they are lost (never waited for).
const RELAY_PACKETS: usize = 1024;

struct ShardHandle {
    cmds: mpsc::UnboundedSender<Cmd>,
    relay: mpsc::Sender<RelayPacket>,
    meetings: AtomicUsize,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub struct Lite {
    shards: Vec<ShardHandle>,
    /// Each meeting's shard.
    placed: Mutex<HashMap<String, usize>>,
    /// Relay speakers' frames on their way to their encoder, by (meeting, user).
    relayed: Mutex<HashMap<(String, String), mpsc::Sender<RelayFrame>>>,
    shared: Arc<Shared>,
    /// The bound ports, one per shard (after binding: port 0 became a real one).
    pub ports: Vec<u16>,
}

impl Lite {
    /// Binds every shard's port on every `media.bind` address and starts the shards.
    pub fn start(shared: Arc<Shared>) -> std::io::Result<Self> {
        let config = &shared.config;
        let mut shards = Vec::new();
        let mut ports = Vec::new();
        for (index, port) in config.shard_ports.iter().enumerate() {
            let mut sockets = Vec::new();
            let mut port = *port;
            for ip in &config.bind {
                let socket = std::net::UdpSocket::bind((*ip, port)).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("UDP {ip}:{port} for audio: {e}"))
                })?;
                // Port 0: the first bind picks one, the other addresses take the same.
                port = socket.local_addr()?.port();
                sockets.push(socket);
            }
            ports.push(port);
            let (cmds, cmd_rx) = mpsc::unbounded_channel();
            let (relay, relay_rx) = mpsc::channel(RELAY_PACKETS);
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("meet-media-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = %e, "media shard: no runtime");
                            return;
                        }
                    };
                    runtime.block_on(async move {
                        match shard::Shard::new(index, shared, sockets) {
                            Ok(s) => s.run(cmd_rx, relay_rx).await,
                            Err(e) => tracing::error!(error = %e, "media shard did not start"),
                        }
                    });
                })?;
            shards.push(ShardHandle {
                cmds,
                relay,
                meetings: AtomicUsize::new(0),
                thread: Mutex::new(Some(thread)),
            });
        }
        tracing::info!(?ports, "audio on one UDP port per shard");
        Ok(Self {
            shards,
            placed: Mutex::new(HashMap::new()),
            relayed: Mutex::new(HashMap::new()),
            shared,
            ports,
        })
    }

    fn placed(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.placed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The meeting's shard, placing it (with the routing state `route` gives) if it has none.
    /// Under the placement lock, so a concurrent `set_route` is seen or delivered.
    fn to_shard(
        &self,
        meeting: &str,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
        cmd: Cmd,
    ) -> Result<(), MediaError> {
        let mut placed = self.placed();
        let index = match placed.get(meeting) {
            Some(i) => *i,
            None => {
                let (version, route) = route().ok_or(MediaError::Ended)?;
                let index = (0..self.shards.len())
                    .min_by_key(|i| self.shards[*i].meetings.load(Relaxed))
                    .ok_or(MediaError::Ended)?;
                self.shards[index].meetings.fetch_add(1, Relaxed);
                self.shards[index]
                    .cmds
                    .send(Cmd::Open {
                        meeting: meeting.into(),
                        version,
                        route,
                    })
                    .map_err(|_| MediaError::Ended)?;
                placed.insert(meeting.to_owned(), index);
                index
            }
        };
        self.shards[index]
            .cmds
            .send(cmd)
            .map_err(|_| MediaError::Ended)
    }

    fn ask(&self, meeting: &str, cmd: Cmd) -> Result<(), MediaError> {
        let index = *self.placed().get(meeting).ok_or(MediaError::NoPeer)?;
        self.shards[index]
            .cmds
            .send(cmd)
            .map_err(|_| MediaError::NoPeer)
    }

    /// Which shard holds the meeting (tests and the dashboard).
    pub fn shard_of(&self, meeting: &str) -> Option<usize> {
        self.placed().get(meeting).copied()
    }

    pub async fn offer(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        sdp: String,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
    ) -> Result<String, MediaError> {
        let (reply, answer) = oneshot::channel();
        let cmd = Cmd::Offer {
            meeting: meeting.into(),
            user: user.into(),
            owner: owner.to_owned(),
            sdp,
            reply,
        };
        self.to_shard(meeting, route, cmd)?;
        answer.await.unwrap_or(Err(MediaError::Ended))
    }

    pub async fn answer(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        sdp: String,
    ) -> Result<(), MediaError> {
        let (reply, done) = oneshot::channel();
        self.ask(
            meeting,
            Cmd::Answer {
                meeting: meeting.into(),
                user: user.into(),
                owner: owner.to_owned(),
                sdp,
                reply,
            },
        )?;
        done.await.unwrap_or(Err(MediaError::NoPeer))
    }

    pub async fn candidate(
        &self,
        meeting: &str,
        user: &str,
        owner: &str,
        candidate: Candidate,
        route: impl FnOnce() -> Option<(u64, RouteState)>,
    ) -> Result<(), MediaError> {
        let (reply, done) = oneshot::channel();
        self.to_shard(
            meeting,
            route,
            Cmd::Candidate {
                meeting: meeting.into(),
                user: user.into(),
                owner: owner.to_owned(),
                candidate,
                reply,
            },
        )?;
        done.await.unwrap_or(Err(MediaError::NoPeer))
    }

    pub fn leave(&self, meeting: &str, user: &str, owner: Option<&str>) {
        let _ = self.ask(
            meeting,
            Cmd::Leave {
                meeting: meeting.into(),
                user: user.into(),
                owner: owner.map(str::to_owned),
            },
        );
    }

    pub fn set_route(&self, meeting: &str, version: u64, route: &RouteState) {
        let _ = self.ask(
            meeting,
            Cmd::Route {
                meeting: meeting.into(),
                version,
                route: route.clone(),
            },
        );
    }

    /// A relay speaker's frame for the meeting's WebRTC listeners (see [`super::Sfu::relay_audio`]).
    pub fn relay_audio(&self, meeting: &str, user: &str, rate: u32, pcm: &bytes::Bytes) {
        let Some(index) = self.shard_of(meeting) else {
            return;
        };
        let mut frame = RelayFrame {
            rate,
            pcm: pcm.clone(),
        };
        let mut relayed = self.relayed.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (meeting.to_owned(), user.to_owned());
        if let Some(tx) = relayed.get(&key) {
            match tx.try_send(frame) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => return,
                Err(mpsc::error::TrySendError::Closed(f)) => frame = f,
            }
        }
        let (tx, frames) = mpsc::channel(RELAY_QUEUE);
        let (stop, stopped) = mpsc::channel(1);
        let audible = Arc::new(AtomicBool::new(false));
        let speaker = PeerKey {
            user: user.into(),
            generation: self.shared.next_generation(),
        };
        let shard = &self.shards[index];
        let cmd = Cmd::Relayed {
            meeting: meeting.into(),
            key: speaker.clone(),
            audible: Arc::clone(&audible),
            stop,
        };
        if shard.cmds.send(cmd).is_ok() {
            tokio::spawn(encode_relay(
                Arc::from(meeting),
                speaker,
                frames,
                stopped,
                audible,
                shard.relay.clone(),
            ));
            let _ = tx.try_send(frame);
            relayed.insert(key, tx);
        }
    }

    pub fn meetings(&self) -> Vec<String> {
        self.placed().keys().cloned().collect()
    }

    pub async fn end(&self, meeting: &str) {
        self.relayed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(m, _), _| m != meeting);
        let index = self.placed().remove(meeting);
        if let Some(index) = index {
            let shard = &self.shards[index];
            shard.meetings.fetch_sub(1, Relaxed);
            let (done, closed) = oneshot::channel();
            if shard
                .cmds
                .send(Cmd::End {
                    meeting: meeting.into(),
                    done,
                })
                .is_ok()
            {
                let _ = closed.await;
            }
        }
    }

    /// Ends every meeting and stops the shards.
    pub async fn close(&self) {
        self.placed().clear();
        let mut waits = Vec::new();
        for s in &self.shards {
            let (done, closed) = oneshot::channel();
            if s.cmds.send(Cmd::Close(done)).is_ok() {
                waits.push(closed);
            }
        }
        for w in waits {
            let _ = w.await;
        }
        for s in &self.shards {
            let thread = s
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = thread {
                let _ = tokio::task::spawn_blocking(move || t.join()).await;
            }
        }
    }
}

/// A relay speaker's encoder: their frames to Opus while someone may hear them, into the
/// shard's bounded queue (a full queue loses the packet). Ends when the shard drops the
/// speaker (`stopped` closes) or the frames stop.
async fn encode_relay(
    meeting: Arc<str>,
    key: PeerKey,
    mut frames: mpsc::Receiver<RelayFrame>,
    mut stopped: mpsc::Receiver<()>,
    audible: Arc<AtomicBool>,
    out: mpsc::Sender<RelayPacket>,
) {
    let mut encoder = RelayEncoder::new(Encoding {
        bitrate: 32_000,
        complexity: 0,
    });
    loop {
        tokio::select! {
            _ = stopped.recv() => return,
            frame = frames.recv() => {
                let Some(frame) = frame else { return };
                if !audible.load(Relaxed) {
                    continue; // nobody may hear it: not encoded
                }
                let Ok(packets) = encoder.encode(&frame) else { return };
                for packet in packets {
                    let p = RelayPacket {
                        meeting: Arc::clone(&meeting),
                        key: key.clone(),
                        packet,
                    };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = out.try_send(p) {
                        return;
                    }
                }
            }
        }
    }
}
