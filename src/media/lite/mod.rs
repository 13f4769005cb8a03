//! The media engine: the sans-IO `rtc` core of webrtc-rs, every peer
//! connection of a shard on one UDP port (ICE-lite, server-chosen ufrags, [`demux`]), one OS
//! thread per shard that owns its meetings' connections outright ([`shard`]), batched I/O
//! ([`io`]). A meeting lives on one shard, placed at its first signal on the shard with the
//! fewest meetings, so forwarding never leaves the thread. Shards share one port by default
//! (one shard per core, `SO_REUSEPORT`): the kernel spreads the port's datagrams over their
//! sockets by address, and a shard passes what is another's on to it ([`demux::Directory`]).

mod conn;
pub mod demux;
mod io;
pub mod shard;

/// What a sans-IO connection of the generator's (bench/sfu_lite.rs) is built with, as the
/// server's are.
pub use conn::{audio_track, host_candidate};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use super::PeerKey;
use super::bridge::{RELAY_QUEUE, RelayEncoder, RelayFrame};
use super::record::mix::Encoding;
use super::{Candidate, MediaError, Shared};
use crate::domain::routing::RouteState;
use demux::Directory;
use shard::{Cmd, Inbox, Neighbours, RelayPacket};

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
        let bound = bind(config)?;
        let ports: Vec<u16> = bound
            .iter()
            .map(|sockets| {
                sockets
                    .first()
                    .map_or(Ok(0), |s| s.local_addr().map(|a| a.port()))
            })
            .collect::<std::io::Result<_>>()?;
        let inboxes: Arc<[Inbox]> = (0..bound.len()).map(|_| Inbox::default()).collect();
        // Shards on one port find each other's connections in one directory.
        let shared_port = bound.len() > 1 && ports.iter().all(|p| *p == ports[0]);
        let directory = Arc::new(Directory::default());
        let mut shards = Vec::new();
        for (index, sockets) in bound.into_iter().enumerate() {
            let neighbours = shared_port.then(|| Neighbours {
                directory: Arc::clone(&directory),
                inboxes: Arc::clone(&inboxes),
            });
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
                        match shard::Shard::new(index, shared, sockets, neighbours) {
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
        if shared_port {
            tracing::info!(
                port = ports[0],
                shards = ports.len(),
                "audio on one UDP port, shared by the shards"
            );
        } else {
            tracing::info!(?ports, "audio on one UDP port per shard");
        }
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

/// Every shard's sockets, one per `media.bind` address: each on its own port of
/// `media.udp_ports`, or all on `media.udp_port`, shared (`SO_REUSEPORT`). Port 0 takes any free
/// port (the first address's; the others take the same).
fn bind(config: &crate::config::MediaConfig) -> std::io::Result<Vec<Vec<std::net::UdpSocket>>> {
    let in_use = |ip, port, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("UDP {ip}:{port} for audio: {e}"))
    };
    if config.shard_ports.len() > 1 || config.shards == 1 {
        return config
            .shard_ports
            .iter()
            .map(|port| {
                let mut port = *port;
                let mut sockets = Vec::new();
                for ip in &config.bind {
                    let socket =
                        std::net::UdpSocket::bind((*ip, port)).map_err(|e| in_use(ip, port, e))?;
                    port = socket.local_addr()?.port();
                    sockets.push(socket);
                }
                Ok(sockets)
            })
            .collect();
    }
    let mut port = config.shard_ports.first().copied().unwrap_or(0);
    let mut shards: Vec<Vec<std::net::UdpSocket>> =
        (0..config.shards).map(|_| Vec::new()).collect();
    for ip in &config.bind {
        // A plain bind first: a port someone holds is an error here, never a port shared with
        // them (a reuse group takes any socket of the same user). It also picks port 0's.
        let probe = std::net::UdpSocket::bind((*ip, port)).map_err(|e| in_use(ip, port, e))?;
        port = probe.local_addr()?.port();
        drop(probe);
        let addr = std::net::SocketAddr::new(*ip, port);
        for sockets in &mut shards {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            socket.set_reuse_port(true)?;
            socket.bind(&addr.into()).map_err(|e| in_use(ip, port, e))?;
            sockets.push(socket.into());
        }
    }
    Ok(shards)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn media(shards: usize, port: u16) -> crate::config::MediaConfig {
        let dir = std::env::temp_dir();
        let mut config = crate::config::Config::for_tests(&dir).media;
        config.shards = shards;
        config.shard_ports = vec![port];
        config
    }

    #[test]
    fn shards_bind_one_port_together_and_never_a_port_someone_holds() {
        let shards = bind(&media(3, 0)).expect("three shards on one port");
        let ports: Vec<u16> = shards
            .iter()
            .map(|s| s[0].local_addr().expect("bound").port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
        // Nobody else joins that port, not even the same user's next server...
        let err = bind(&media(2, ports[0])).expect_err("a second group");
        assert!(err.to_string().contains("for audio"), "{err}");
        drop(shards);
        // ...and a port another program holds is refused, not shared.
        let holder = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let held = holder.local_addr().expect("bound").port();
        let err = bind(&media(2, held)).expect_err("a held port");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{held}")),
            "{err}"
        );
        // One shard: a plain socket.
        assert_eq!(bind(&media(1, 0)).expect("one").len(), 1);
    }
}
