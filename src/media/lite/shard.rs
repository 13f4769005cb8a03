//! A shard: one OS thread with its UDP socket(s), its meetings and their connections, owned
//! outright (no task, channel or lock per connection). One turn of its loop reads a batch of
//! datagrams, hands each to its connection (the port's [`Demux`]), forwards the RTP that comes
//! out to the legs allowed to hear it, drains what the touched connections want to send, and
//! sends it all in batches. Timers come from each connection's `poll_timeout`, in one heap.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::sansio::Protocol;
use rtc::sdp::extmap::AUDIO_LEVEL_URI;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::sync::{mpsc, oneshot};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription, StatsSelector};

use super::conn::{self, Conn, Leg, Out};
use super::demux::{Demux, Directory, Route, accepts_check};
use super::io::Socket;
use crate::domain::routing::{Audience, RouteState, audience, may_hear};
use crate::media::{Candidate, MediaError, MediaEvent, Shared, Signal, rtp, sdp};
use crate::media::{Ending, PeerKey};

/// Receive batches (of up to 32 datagrams) handled a turn, per port.
const READ_BATCHES: usize = 4;
/// Early candidates kept per user while their offer is on its way.
const EARLY_CANDIDATES: usize = 32;
/// Commands handled at most before the stale connections are re-offered, when commands keep
/// coming.
const MAX_DEFERRED: usize = 16;
/// Remote candidates one connection takes.
const MAX_REMOTE_CANDIDATES: usize = 32;
/// Checks in flight per connection whose address may be learned.
const MAX_CHECKING: usize = 8;
/// How often speakers' levels are collected.
const LEVEL_TICK: Duration = Duration::from_millis(100);
/// The connections' timers wake the shard on this grid: timers due within one step run in one
/// wake-up (their cores' timers are reports, consent and retransmissions, none finer than
/// this), so an idle meeting of 50 wakes its shard at most this often instead of at every one.
const TIMER_STEP: Duration = Duration::from_millis(25);
/// Handed-over datagrams waiting for a shard (about what its socket's buffer holds); beyond
/// it they are lost.
const INBOX: usize = 4096;

/// What the rest of the server asks of a shard.
pub enum Cmd {
    /// A meeting placed on this shard, with its routing state.
    Open {
        meeting: Arc<str>,
        version: u64,
        route: RouteState,
    },
    Offer {
        meeting: Arc<str>,
        user: Arc<str>,
        owner: String,
        sdp: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    Answer {
        meeting: Arc<str>,
        user: Arc<str>,
        owner: String,
        sdp: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Candidate {
        meeting: Arc<str>,
        user: Arc<str>,
        owner: String,
        candidate: Candidate,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Leave {
        meeting: Arc<str>,
        user: Arc<str>,
        owner: Option<String>,
    },
    Route {
        meeting: Arc<str>,
        version: u64,
        route: RouteState,
    },
    /// A relay speaker becomes a stream of every WebRTC participant; its encoder stops when
    /// `stop` is dropped, and encodes only while `audible`.
    Relayed {
        meeting: Arc<str>,
        key: PeerKey,
        audible: Arc<AtomicBool>,
        stop: mpsc::Sender<()>,
    },
    End {
        meeting: Arc<str>,
        done: oneshot::Sender<()>,
    },
    /// Every meeting ends and the shard stops.
    Close(oneshot::Sender<()>),
}

/// An encoded packet of a relay speaker (from its encoder, through a bounded queue).
pub struct RelayPacket {
    pub meeting: Arc<str>,
    pub key: PeerKey,
    pub packet: rtc::rtp::Packet,
}

/// A datagram another shard received for a connection of this one (shards sharing a port).
pub struct Handed {
    /// The index of the socket it came in on: every shard binds the same addresses in order.
    port: usize,
    from: SocketAddr,
    to: Option<IpAddr>,
    data: BytesMut,
}

/// What the other shards sharing its port leave for a shard: one queue, taken whole when the
/// shard wakes, so a busy shard finds everything that came meanwhile in one go (one wake-up,
/// however many reads the others made).
#[derive(Default)]
pub struct Inbox {
    queue: std::sync::Mutex<Mail>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
struct Mail {
    datagrams: Vec<Handed>,
    /// Addresses a connection of another shard took over (a NAT reused the port), by socket.
    forget: Vec<(usize, SocketAddr)>,
}

impl Inbox {
    fn post(&self, f: impl FnOnce(&mut Mail)) {
        f(&mut self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
        self.ready.notify_one();
    }

    /// Leaves the datagrams of `batch` there is room for (emptying it); how many were kept
    /// and how many lost.
    fn post_datagrams(&self, batch: &mut Vec<Handed>) -> (usize, usize) {
        let (mut kept, mut lost) = (0, 0);
        self.post(|mail| {
            let room = INBOX.saturating_sub(mail.datagrams.len());
            lost = batch.len().saturating_sub(room);
            batch.truncate(room);
            kept = batch.len();
            mail.datagrams.append(batch);
        });
        batch.clear();
        (kept, lost)
    }

    fn take(&self) -> Mail {
        std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// The shards that share this shard's port, if any.
pub struct Neighbours {
    pub directory: Arc<Directory>,
    /// Every shard's inbox, by shard index.
    pub inboxes: Arc<[Inbox]>,
}

/// Why the loop woke.
enum Wake {
    Readable,
    Inbox,
    Cmd(Cmd),
    Relay(RelayPacket),
    Timer,
    Levels,
    Sample,
}

/// A relay speaker the WebRTC participants hear, as of another participant.
struct RelaySpeaker {
    key: PeerKey,
    legs: Vec<Leg>,
    audible: Arc<AtomicBool>,
    _stop: mpsc::Sender<()>,
}

struct Meeting {
    route: RouteState,
    version: u64,
    members: HashMap<Arc<str>, usize>,
    relayed: HashMap<Arc<str>, RelaySpeaker>,
    early: HashMap<Arc<str>, Vec<Candidate>>,
}

/// A socket and the addresses its connections advertise.
struct Port {
    socket: Socket,
    /// Host candidates (the public address when one is announced).
    advertised: Vec<SocketAddr>,
    /// The bound address was a wildcard: the local address comes from the datagram.
    wildcard: bool,
    demux: Demux<usize>,
}

pub struct Shard {
    index: usize,
    shared: Arc<Shared>,
    ports: Vec<Port>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    meetings: HashMap<Arc<str>, Meeting>,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    dirty: Vec<usize>,
    /// RTP read from connections this turn, to forward: (speaker slot, packet).
    inbound: Vec<(usize, rtc::rtp::Packet)>,
    /// How long a client may go unheard before its connection has failed: the ICE
    /// disconnected and failed timeouts.
    silence: Duration,
    /// Connections whose wanted speakers changed, to re-offer once the commands waiting
    /// have been handled (slot, generation): a burst of joins and answers is acknowledged
    /// first, and each connection gets one offer for all of it.
    stale: Vec<(usize, u64)>,
    /// Commands handled since the stale connections were last re-offered.
    deferred: usize,
    neighbours: Option<Neighbours>,
    /// Datagrams for the other shards' connections, by shard, sent at the end of a read.
    handoff: Vec<Vec<Handed>>,
    /// The origin of the timers' grid.
    epoch: Instant,
}

/// The addresses a socket bound to `bound` advertises: the public address if one is set,
/// else the bound one, else (a wildcard) every address of the machine of that family that is
/// neither loopback nor link-local.
pub fn advertised(bound: SocketAddr, public_ip: Option<IpAddr>) -> Vec<SocketAddr> {
    if let Some(ip) = public_ip {
        return vec![SocketAddr::new(ip, bound.port())];
    }
    if !bound.ip().is_unspecified() {
        return vec![bound];
    }
    let mut out = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for ifa in addrs {
            let Some(addr) = ifa.address else { continue };
            let ip: IpAddr = if let Some(v4) = addr.as_sockaddr_in() {
                IpAddr::V4(v4.ip())
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                IpAddr::V6(v6.ip())
            } else {
                continue;
            };
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            if ip.is_ipv4() == bound.is_ipv4() && !ip.is_loopback() && !link_local {
                let a = SocketAddr::new(ip, bound.port());
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn bad(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::BadSignal(format!("{what}: {e}"))
}

impl Shard {
    pub fn new(
        index: usize,
        shared: Arc<Shared>,
        sockets: Vec<std::net::UdpSocket>,
        neighbours: Option<Neighbours>,
    ) -> std::io::Result<Self> {
        let public_ip = shared.config.public_ip;
        let silence = shared.config.ice_disconnected_timeout + shared.config.ice_failed_timeout;
        let mut ports = Vec::new();
        for s in sockets {
            let bound = s.local_addr()?;
            let socket = Socket::new(s)?;
            ports.push(Port {
                advertised: advertised(bound, public_ip),
                wildcard: bound.ip().is_unspecified(),
                socket,
                demux: Demux::default(),
            });
        }
        Ok(Self {
            index,
            shared,
            ports,
            conns: Vec::new(),
            free: Vec::new(),
            meetings: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            inbound: Vec::new(),
            silence,
            stale: Vec::new(),
            deferred: 0,
            handoff: neighbours
                .as_ref()
                .map_or_else(Vec::new, |n| n.inboxes.iter().map(|_| Vec::new()).collect()),
            neighbours,
            epoch: Instant::now(),
        })
    }

    pub async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut relay: mpsc::Receiver<RelayPacket>,
    ) {
        let mut levels = tokio::time::interval(LEVEL_TICK);
        levels.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sample = tokio::time::interval(self.shared.config.stats_interval);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.next_timer();
            let ev = {
                let ports = &self.ports;
                let handed = async {
                    match &self.neighbours {
                        Some(n) => n.inboxes[self.index].ready.notified().await,
                        None => std::future::pending().await,
                    }
                };
                let readable = async {
                    if ports.len() == 1 {
                        let _ = ports[0].socket.udp.readable().await;
                    } else {
                        let all = ports.iter().map(|p| Box::pin(p.socket.udp.readable()));
                        let _ = futures_util::future::select_all(all).await;
                    }
                };
                // Not biased: a socket that is always readable (a full shard) must not starve
                // the commands, the timers, the levels or the stats.
                tokio::select! {
                    () = readable => Wake::Readable,
                    cmd = cmds.recv() => match cmd {
                        Some(cmd) => Wake::Cmd(cmd),
                        None => return,
                    },
                    Some(p) = relay.recv() => Wake::Relay(p),
                    () = handed => Wake::Inbox,
                    () = sleep_until(next) => Wake::Timer,
                    _ = levels.tick(), if !self.meetings.is_empty() => Wake::Levels,
                    _ = sample.tick() => Wake::Sample,
                }
            };
            match ev {
                Wake::Readable => {
                    let now = Instant::now();
                    for p in 0..self.ports.len() {
                        self.receive(p, now);
                    }
                }
                Wake::Cmd(Cmd::Close(done)) => {
                    let meetings: Vec<Arc<str>> = self.meetings.keys().cloned().collect();
                    for m in meetings {
                        self.end(&m);
                    }
                    self.turn().await;
                    let _ = done.send(());
                    return;
                }
                Wake::Inbox => self.inbox(Instant::now()),
                Wake::Cmd(cmd) => self.command(cmd),
                Wake::Relay(p) => self.relayed_packet(p),
                Wake::Timer => {}
                Wake::Levels => self.levels(),
                Wake::Sample => self.sample(),
            }
            // Re-offers wait for the commands queued behind this one, but not for ever.
            if !self.stale.is_empty() {
                self.deferred += 1;
                if cmds.is_empty() || self.deferred >= MAX_DEFERRED {
                    self.renegotiate_stale(Instant::now());
                }
            }
            // The connections' timers that are due, whatever woke the loop: under full load
            // some other branch is always ready, and the core's timers (reports, consent,
            // DTLS) must still run on time.
            self.timers(Instant::now());
            self.turn().await;
        }
    }

    /// Reads the datagrams waiting on port `p`, a batch at a time and at most `READ_BATCHES`
    /// batches a turn: what they make the shard send goes out before more is read (reading the
    /// whole backlog of a full shard first queued each datagram's 49 copies in memory, hundreds
    /// of megabytes, and delayed all of them).
    fn receive(&mut self, p: usize, now: Instant) {
        for _ in 0..READ_BATCHES {
            let mut dropped = 0;
            let Self {
                index,
                ports,
                conns,
                dirty,
                neighbours,
                handoff,
                ..
            } = self;
            let port = &mut ports[p];
            let mut inlet = Inlet {
                advertised: &port.advertised,
                wildcard: port.wildcard,
                demux: &port.demux,
                conns,
                dirty,
            };
            let got = port.socket.recv(|d| {
                if inlet.deliver(d.from, d.to, d.data, now) {
                    return;
                }
                let owner = neighbours
                    .as_ref()
                    .and_then(|n| n.directory.owner(d.from, d.data))
                    .filter(|s| s != index);
                match owner {
                    Some(shard) => handoff[shard].push(Handed {
                        port: p,
                        from: d.from,
                        to: d.to,
                        data: BytesMut::from(d.data),
                    }),
                    None => {
                        tracing::trace!(from = %d.from, len = d.data.len(), "datagram of nobody dropped");
                        dropped += 1;
                    }
                }
            });
            self.count_dropped(dropped);
            self.hand_over();
            match got {
                Ok(n) if n > 0 => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(shard = self.index, error = %e, "receiving failed");
                    return;
                }
            }
        }
    }

    fn count_dropped(&self, dropped: u64) {
        if dropped > 0 {
            let stats = &self.shared.stats;
            stats.unknown_datagrams.fetch_add(dropped, Relaxed);
        }
    }

    /// Leaves the datagrams read for other shards' connections in their shards' inboxes (a
    /// full inbox loses them: that shard is overloaded, and they are UDP).
    fn hand_over(&mut self) {
        let Some(n) = &self.neighbours else { return };
        for (shard, batch) in self.handoff.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let (kept, lost) = n.inboxes[shard].post_datagrams(batch);
            self.shared
                .stats
                .handed_over
                .fetch_add(kept as u64, Relaxed);
            if lost > 0 {
                self.shared
                    .stats
                    .handoff_lost
                    .fetch_add(lost as u64, Relaxed);
                tracing::debug!(shard, lost, "a shard's inbox is full: datagrams lost");
            }
        }
    }

    /// What the other shards left: datagrams for this one's connections (handed over once:
    /// one that is nobody's here is dropped), and addresses to forget.
    fn inbox(&mut self, now: Instant) {
        let Some(n) = &self.neighbours else { return };
        let mail = n.inboxes[self.index].take();
        let directory = Arc::clone(&n.directory);
        for (port, addr) in mail.forget {
            if directory.owner_of(addr) != Some(self.index)
                && let Some(p) = self.ports.get_mut(port)
            {
                p.demux.forget(addr);
            }
        }
        let mut dropped = 0;
        for h in mail.datagrams {
            let Some(port) = self.ports.get(h.port) else {
                continue;
            };
            let mut inlet = Inlet {
                advertised: &port.advertised,
                wildcard: port.wildcard,
                demux: &port.demux,
                conns: &mut self.conns,
                dirty: &mut self.dirty,
            };
            if !inlet.deliver(h.from, h.to, &h.data, now) {
                dropped += 1;
            }
        }
        self.count_dropped(dropped);
    }

    fn touch(&mut self, slot: usize) {
        if let Some(Some(c)) = self.conns.get_mut(slot)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// After any input: the touched connections' reads (RTP forwarded), events and writes,
    /// then everything sent.
    async fn turn(&mut self) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.dirty.len() {
            let slot = self.dirty[i];
            i += 1;
            self.drain_reads(slot);
            self.drain_events(slot);
            let inbound = std::mem::take(&mut self.inbound);
            for (speaker, packet) in &inbound {
                self.forward(*speaker, packet, now);
            }
            self.inbound = inbound;
            self.inbound.clear();
        }
        for slot in std::mem::take(&mut self.dirty) {
            self.drain_writes(slot);
        }
        for p in &mut self.ports {
            if p.socket.queued() > 0
                && let Err(e) = p.socket.flush().await
            {
                tracing::warn!(error = %e, "sending failed");
            }
        }
    }

    fn drain_reads(&mut self, slot: usize) {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        while let Some(msg) = c.pc.poll_read() {
            let RTCMessage::RtpPacket(track, packet) = msg.message else {
                continue;
            };
            if c.mic.is_none() {
                c.mic = Some(track.clone());
            }
            if c.mic.as_deref() == Some(track.as_str()) {
                self.inbound.push((slot, packet));
            }
        }
    }

    fn drain_events(&mut self, slot: usize) {
        let mut ending = None;
        if let Some(Some(c)) = self.conns.get_mut(slot) {
            while let Some(ev) = c.pc.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                        tracing::debug!(user = %c.key.user, ?state, "peer connection state");
                        match state {
                            RTCPeerConnectionState::Failed => ending = Some(Ending::Failed),
                            RTCPeerConnectionState::Closed => ending = Some(Ending::Closed),
                            RTCPeerConnectionState::Connected => c.secured = true,
                            _ => {}
                        }
                    }
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        if c.tap.is_none() {
                            c.tap = self.shared.recorder.as_ref().map(|r| r.tap(&c.meeting));
                        }
                        tracing::debug!(user = %c.key.user, track = %init.track_id, "track");
                    }
                    _ => {}
                }
            }
        }
        if let Some(ending) = ending {
            tracing::info!(shard = self.index, ?ending, "peer connection ended");
            self.close(slot, ending);
        }
    }

    fn drain_writes(&mut self, slot: usize) {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        c.dirty = false;
        let port = &mut self.ports[c.socket];
        while let Some(out) = c.pc.poll_write() {
            let to = out.transport.peer_addr;
            if accepts_check(&out.message)
                && let Some(i) = c.checking.iter().position(|a| *a == to)
            {
                c.checking.swap_remove(i);
                port.demux.learn(to, slot);
                if let Some(n) = &self.neighbours
                    && let Some(was) = n.directory.learn(to, self.index)
                {
                    let socket = c.socket;
                    n.inboxes[was].post(|mail| mail.forget.push((socket, to)));
                }
            }
            let to = c.path.to(to, conn::is_stun(&out.message));
            port.socket.queue(to, out.message);
        }
        // One live heap entry per connection: re-armed only for an earlier wake. A later one
        // waits for the armed entry, which re-arms when it fires (the core's own timers say
        // what is due). Re-arming on every move would leave a stale entry per packet in the
        // heap until its time: gigabytes under full load.
        let t = c.wake(self.silence);
        if c.armed.is_none_or(|armed| t < armed) {
            c.armed = Some(t);
            self.timers.push(Reverse((t, slot, c.key.generation)));
        }
    }

    fn next_timer(&mut self) -> Option<tokio::time::Instant> {
        while let Some(Reverse((t, slot, generation))) = self.timers.peek().copied() {
            let live = matches!(self.conns.get(slot), Some(Some(c)) if c.key.generation == generation && c.armed == Some(t));
            if live {
                return Some(tokio::time::Instant::from_std(on_grid(t, self.epoch)));
            }
            self.timers.pop();
        }
        None
    }

    fn timers(&mut self, now: Instant) {
        while let Some(Reverse((t, slot, generation))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(Some(c)) = self.conns.get_mut(slot) else {
                continue;
            };
            if c.key.generation != generation || c.armed != Some(t) {
                continue;
            }
            c.armed = None;
            if c.deadline.is_some_and(|d| d <= now) {
                tracing::info!(user = %c.key.user, "no answer to the server's offer; closing the peer");
                self.close(slot, Ending::Failed);
                continue;
            }
            if now.saturating_duration_since(c.heard) >= self.silence {
                tracing::info!(user = %c.key.user, silent = ?self.silence, "nothing heard from the client; closing the peer");
                self.close(slot, Ending::Failed);
                continue;
            }
            if let Err(e) = c.pc.handle_timeout(now) {
                tracing::debug!(error = %e, "timeout handling failed");
            }
            self.touch(slot);
        }
    }

    fn command(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Open {
                meeting,
                version,
                route,
            } => {
                self.meetings.entry(meeting).or_insert(Meeting {
                    route,
                    version,
                    members: HashMap::new(),
                    relayed: HashMap::new(),
                    early: HashMap::new(),
                });
            }
            Cmd::Offer {
                meeting,
                user,
                owner,
                sdp,
                reply,
            } => {
                let result = self.offer(&meeting, user, owner, sdp, now);
                let joined = result.is_ok();
                let _ = reply.send(result);
                // The others' re-offers after the answer is on its way (their renegotiations
                // are this turn's slowest work).
                if joined {
                    self.update_speakers(&meeting);
                }
            }
            Cmd::Answer {
                meeting,
                user,
                owner,
                sdp,
                reply,
            } => {
                let result = match self.slot_of(&meeting, &user, Some(&owner)) {
                    Some(slot) => self.answer(slot, sdp, now),
                    None => Err(MediaError::NoPeer),
                };
                tracing::debug!(shard = self.index, took = ?now.elapsed(), "answer applied");
                let _ = reply.send(result);
            }
            Cmd::Candidate {
                meeting,
                user,
                owner,
                candidate,
                reply,
            } => {
                let result = match self.slot_of(&meeting, &user, None) {
                    Some(slot) => {
                        if self.conns[slot].as_ref().is_some_and(|c| c.owner == owner) {
                            self.candidate(slot, candidate)
                        } else {
                            Err(MediaError::NoPeer)
                        }
                    }
                    None => {
                        if let Some(m) = self.meetings.get_mut(&meeting) {
                            let early = m.early.entry(user).or_default();
                            if early.len() < EARLY_CANDIDATES {
                                early.push(candidate);
                            }
                        }
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Cmd::Leave {
                meeting,
                user,
                owner,
            } => {
                let Some(m) = self.meetings.get_mut(&meeting) else {
                    return;
                };
                m.early.remove(&user);
                let dropped = m.relayed.remove(&user).is_some();
                match self.slot_of(&meeting, &user, owner.as_deref()) {
                    Some(slot) => self.close(slot, Ending::Closed),
                    None if dropped => self.update_speakers(&meeting),
                    None => {}
                }
            }
            Cmd::Route {
                meeting,
                version,
                route,
            } => {
                if let Some(m) = self.meetings.get_mut(&meeting)
                    && version > m.version
                {
                    m.version = version;
                    m.route = route;
                    self.apply_route(&meeting);
                }
            }
            Cmd::Relayed {
                meeting,
                key,
                audible,
                stop,
            } => {
                let Some(m) = self.meetings.get_mut(&meeting) else {
                    return;
                };
                if m.members.contains_key(&key.user) {
                    return;
                }
                tracing::debug!(%meeting, user = %key.user, "relay speaker bridged to WebRTC");
                m.relayed.insert(
                    Arc::clone(&key.user),
                    RelaySpeaker {
                        key,
                        legs: Vec::new(),
                        audible,
                        _stop: stop,
                    },
                );
                self.update_speakers(&meeting);
            }
            Cmd::End { meeting, done } => {
                self.end(&meeting);
                let _ = done.send(());
            }
            Cmd::Close(done) => {
                let _ = done.send(());
            }
        }
    }

    /// The slot of the user's connection in the meeting, if `owner` (when given) holds it.
    fn slot_of(&self, meeting: &str, user: &str, owner: Option<&str>) -> Option<usize> {
        let slot = *self.meetings.get(meeting)?.members.get(user)?;
        let c = self.conns.get(slot)?.as_ref()?;
        owner.is_none_or(|o| o == c.owner).then_some(slot)
    }

    /// A client's first offer: its connection, and the answer (also sent as an event, before
    /// any offer of the server). The caller then brings everyone's streams up to date.
    fn offer(
        &mut self,
        meeting: &Arc<str>,
        user: Arc<str>,
        owner: String,
        offer: String,
        now: Instant,
    ) -> Result<String, MediaError> {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return Err(MediaError::Ended);
        };
        m.relayed.remove(&user);
        let early = m.early.remove(&user).unwrap_or_default();
        if let Some(slot) = self.slot_of(meeting, &user, None) {
            self.close(slot, Ending::Closed);
        }
        let port = self.least_loaded_port();
        let (ufrag, pwd) = conn::credentials();
        let mut pc = conn::build(
            &self.shared.config,
            &ufrag,
            &pwd,
            &self.ports[port].advertised,
            now,
        )
        .map_err(|e| MediaError::Unavailable(format!("No connection could be made: {e}")))?;
        let remote =
            RTCSessionDescription::offer(offer.clone()).map_err(|e| bad("Invalid offer", e))?;
        pc.set_remote_description(now, remote)
            .map_err(|e| bad("The offer could not be applied", e))?;
        let answer = pc
            .create_answer(None)
            .map_err(|e| bad("No answer could be made for this offer", e))?;
        pc.set_local_description(now, answer)
            .map_err(|e| bad("No answer could be made for this offer", e))?;
        let answer = pc
            .local_description()
            .map(|d| sdp::prefer_fec_and_dtx(&d.sdp))
            .ok_or_else(|| {
                MediaError::Unavailable("The connection has no local description".into())
            })?;

        let key = PeerKey {
            user: Arc::clone(&user),
            generation: self.shared.next_generation(),
        };
        let server = &self.shared.stats;
        let stats = server.add_participant(meeting, &user);
        server.peers.fetch_add(1, Relaxed);
        server.peers_opened.fetch_add(1, Relaxed);
        let conn = Conn {
            key,
            meeting: Arc::clone(meeting),
            owner: owner.clone(),
            pc,
            socket: port,
            stats,
            level_id: sdp::extmap_id(&offer, AUDIO_LEVEL_URI),
            mic: None,
            tap: None,
            outlet: self.shared.outlets.get(meeting),
            legs: Vec::new(),
            wanted: BTreeSet::new(),
            sending: Default::default(),
            pending: Vec::new(),
            deadline: None,
            remote_candidates: 0,
            checking: Vec::new(),
            armed: None,
            dirty: false,
            secured: false,
            path: conn::Path::default(),
            heard: now,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.conns[s] = Some(conn);
                s
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        if self.ports[port].demux.is_empty() {
            self.shared.stats.ports_leased.fetch_add(1, Relaxed);
        }
        self.ports[port].demux.add(&ufrag, slot);
        if let Some(n) = &self.neighbours {
            n.directory.add(&ufrag, self.index);
        }
        if let Some(m) = self.meetings.get_mut(meeting) {
            m.members.insert(Arc::clone(&user), slot);
        }
        self.shared
            .connected()
            .entry(meeting.to_string())
            .or_default()
            .insert(Arc::clone(&user));
        for c in early {
            let _ = self.candidate(slot, c);
        }
        self.touch(slot);
        let _ = self.shared.events.send(MediaEvent::Signal {
            owner,
            signal: Signal::Answer {
                sdp: answer.clone(),
            },
        });
        Ok(answer)
    }

    fn least_loaded_port(&self) -> usize {
        (0..self.ports.len())
            .min_by_key(|p| self.ports[*p].demux.len())
            .unwrap_or(0)
    }

    fn candidate(&mut self, slot: usize, c: Candidate) -> Result<(), MediaError> {
        if c.candidate.trim().is_empty() {
            return Ok(()); // end of candidates
        }
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return Err(MediaError::NoPeer);
        };
        if conn.remote_candidates >= MAX_REMOTE_CANDIDATES {
            return Err(MediaError::BadSignal(format!(
                "Too many candidates: a connection takes at most {MAX_REMOTE_CANDIDATES}"
            )));
        }
        conn.remote_candidates += 1;
        conn.pc
            .add_remote_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                ..Default::default()
            })
            .map_err(|e| bad("Invalid candidate", e))?;
        self.touch(slot);
        Ok(())
    }

    fn answer(&mut self, slot: usize, sdp: String, now: Instant) -> Result<(), MediaError> {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return Err(MediaError::NoPeer);
        };
        if c.deadline.is_none() {
            return Err(MediaError::BadSignal(
                "No offer of the server is waiting for an answer".into(),
            ));
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| bad("Invalid answer", e))?;
        c.pc.set_remote_description(now, answer)
            .map_err(|e| bad("The answer could not be applied", e))?;
        c.deadline = None;
        let subscriber_key = c.key.clone();
        let meeting = Arc::clone(&c.meeting);
        let mut accepted = Vec::new();
        for out in std::mem::take(&mut c.pending) {
            let payload_type = c.pc.rtp_sender(out.sender).and_then(|mut s| {
                s.get_parameters()
                    .rtp_parameters
                    .codecs
                    .first()
                    .map(|codec| codec.payload_type)
            });
            match payload_type {
                Some(pt) => accepted.push((out.speaker.clone(), out.sender, out.ssrc, pt)),
                None => tracing::warn!(user = %subscriber_key.user, "the client refused a stream"),
            }
            c.sending.insert(out.speaker.clone(), out);
        }
        self.touch(slot);
        let Some(m) = self.meetings.get_mut(&meeting) else {
            return Ok(());
        };
        for (speaker, sender, ssrc, payload_type) in accepted {
            let leg = Leg {
                subscriber: slot,
                subscriber_key: subscriber_key.clone(),
                sender,
                ssrc,
                payload_type,
                audible: may_hear(&m.route, &speaker.user, &subscriber_key.user),
            };
            if let Some(r) = m
                .relayed
                .get_mut(&speaker.user)
                .filter(|r| r.key == speaker)
            {
                r.legs.push(leg);
                r.audible.store(r.legs.iter().any(|l| l.audible), Relaxed);
            } else if let Some(&s) = m.members.get(&speaker.user)
                && let Some(Some(sc)) = self.conns.get_mut(s)
                && sc.key == speaker
            {
                sc.legs.push(leg);
            }
        }
        // What changed while the offer was open is offered next.
        self.mark_stale(slot);
        Ok(())
    }

    fn mark_stale(&mut self, slot: usize) {
        if let Some(Some(c)) = self.conns.get(slot) {
            let entry = (slot, c.key.generation);
            if !self.stale.contains(&entry) {
                self.stale.push(entry);
            }
        }
    }

    /// Re-offers every stale connection that has no offer open.
    fn renegotiate_stale(&mut self, now: Instant) {
        self.deferred = 0;
        let started = Instant::now();
        let stale = self.stale.len();
        for (slot, generation) in std::mem::take(&mut self.stale) {
            let open = match self.conns.get(slot) {
                Some(Some(c)) if c.key.generation == generation => c.deadline.is_none(),
                _ => false,
            };
            if open && let Err(e) = self.renegotiate(slot, now) {
                tracing::warn!(error = %e, "renegotiation failed");
                self.close(slot, Ending::Failed);
            }
        }
        tracing::debug!(shard = self.index, stale, took = ?started.elapsed(), "re-offers made");
    }

    /// Tells each member which speakers it should have a stream of: every other member and
    /// every relay speaker. Who is heard is the routing rule's, applied on the legs.
    fn update_speakers(&mut self, meeting: &str) {
        let Some(m) = self.meetings.get(meeting) else {
            return;
        };
        let members: Vec<usize> = m.members.values().copied().collect();
        let keys: Vec<PeerKey> = members
            .iter()
            .filter_map(|s| self.conns.get(*s)?.as_ref().map(|c| c.key.clone()))
            .chain(m.relayed.values().map(|r| r.key.clone()))
            .collect();
        for slot in members {
            let Some(Some(c)) = self.conns.get_mut(slot) else {
                continue;
            };
            c.wanted = keys.iter().filter(|k| **k != c.key).cloned().collect();
            self.mark_stale(slot);
        }
    }

    /// Offers the change between the wanted speakers and the negotiated streams, if any.
    fn renegotiate(&mut self, slot: usize, now: Instant) -> Result<(), String> {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        let gone: Vec<PeerKey> = c
            .sending
            .keys()
            .filter(|k| !c.wanted.contains(*k))
            .cloned()
            .collect();
        let new: Vec<PeerKey> = c
            .wanted
            .iter()
            .filter(|k| !c.sending.contains_key(*k))
            .cloned()
            .collect();
        if gone.is_empty() && new.is_empty() {
            return Ok(());
        }
        // New streams first, on the m-lines freed in earlier rounds (each went inactive in an
        // offer that was answered, so a client sees the new stream as a new track), then the
        // departed speakers' lines are freed for the next round.
        let held = if new.is_empty() {
            Vec::new()
        } else {
            conn::hold_client_lines(&mut c.pc)?
        };
        for speaker in new {
            let ssrc = loop {
                let s = rand::random::<u32>();
                if s != 0
                    && !c.sending.values().any(|o| o.ssrc == s)
                    && !c.pending.iter().any(|o| o.ssrc == s)
                {
                    break s;
                }
            };
            let track = conn::audio_track(&speaker.user, &format!("a-{}", speaker.user), ssrc);
            // `add_track` takes the first m-line without a sender (a departed speaker's; the
            // client's are held), or makes a new one: sendonly here.
            let lines = c.pc.get_transceivers().count();
            let sender = c.pc.add_track(track).map_err(|e| e.to_string())?;
            if usize::from(sender) >= lines
                && let Some(mut t) = c.pc.rtp_transceiver(sender.into())
            {
                t.set_direction(RTCRtpTransceiverDirection::Sendonly);
            }
            c.pending.push(Out {
                speaker,
                sender,
                ssrc,
            });
        }
        for sender in held {
            c.pc.remove_track(sender).map_err(|e| e.to_string())?;
        }
        for key in &gone {
            if let Some(out) = c.sending.remove(key) {
                c.pc.remove_track(out.sender).map_err(|e| e.to_string())?;
            }
        }
        let offer = c.pc.create_offer(None).map_err(|e| e.to_string())?;
        c.pc.set_local_description(now, offer)
            .map_err(|e| e.to_string())?;
        let sdp =
            c.pc.local_description()
                .map(|d| sdp::prefer_fec_and_dtx(&d.sdp))
                .ok_or("no local description")?;
        let _ = self.shared.events.send(MediaEvent::Signal {
            owner: c.owner.clone(),
            signal: Signal::Offer { sdp },
        });
        self.shared.stats.renegotiations.fetch_add(1, Relaxed);
        c.deadline = Some(now + self.shared.config.answer_timeout);
        // The legs of the streams that went were their speakers': gone with them.
        self.touch(slot);
        Ok(())
    }

    /// Removes, from every speaker of the meeting, the legs `f` picks.
    fn drop_legs(&mut self, meeting: &str, f: impl Fn(&Leg) -> bool) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        for slot in m.members.values() {
            if let Some(Some(c)) = self.conns.get_mut(*slot) {
                c.legs.retain(|l| !f(l));
            }
        }
        for r in m.relayed.values_mut() {
            r.legs.retain(|l| !f(l));
            r.audible.store(r.legs.iter().any(|l| l.audible), Relaxed);
        }
    }

    fn apply_route(&mut self, meeting: &str) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        for slot in m.members.values() {
            if let Some(Some(c)) = self.conns.get_mut(*slot) {
                for l in &mut c.legs {
                    l.audible = may_hear(&m.route, &c.key.user, &l.subscriber_key.user);
                }
            }
        }
        for r in m.relayed.values_mut() {
            for l in &mut r.legs {
                l.audible = may_hear(&m.route, &r.key.user, &l.subscriber_key.user);
            }
            r.audible.store(r.legs.iter().any(|l| l.audible), Relaxed);
        }
    }

    /// One packet of speaker `slot`: counted, its level read, offered to the recordings and the
    /// relay listeners, then written to every audible leg (extensions stripped, SSRC and
    /// payload type the leg's).
    fn forward(&mut self, slot: usize, packet: &rtc::rtp::Packet, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let server = &self.shared.stats;
        let bytes = packet.payload.len() as u64;
        c.stats.packets_in.fetch_add(1, Relaxed);
        c.stats.bytes_in.fetch_add(bytes, Relaxed);
        server.received_packets.fetch_add(1, Relaxed);
        if let Some(level) = c
            .level_id
            .and_then(|id| rtp::audio_level(&packet.header, id))
        {
            let loudness = (rtp::loudness(level) * 1e6) as u32;
            c.stats.peak_level.fetch_max(loudness, Relaxed);
        }
        let h = &packet.header;
        if let Some(tap) = &c.tap {
            tap.rtp(
                &c.key.user,
                h.ssrc,
                h.sequence_number,
                h.timestamp,
                &packet.payload,
            );
        }
        c.outlet
            .offer(&c.key.user, h.sequence_number, &packet.payload);
        let legs = std::mem::take(&mut c.legs);
        self.write_legs(&legs, packet, now);
        if let Some(Some(c)) = self.conns.get_mut(slot) {
            c.legs = legs;
        }
    }

    fn write_legs(&mut self, legs: &[Leg], packet: &rtc::rtp::Packet, now: Instant) {
        let bytes = packet.payload.len() as u64;
        let mut sent = 0u64;
        let mut stripped = packet.clone();
        rtp::strip_extensions(&mut stripped.header);
        for leg in legs {
            if !leg.audible {
                continue;
            }
            let Some(Some(sub)) = self.conns.get_mut(leg.subscriber) else {
                continue;
            };
            // Not before its keys exist (the core would fail each packet, loudly).
            if sub.key != leg.subscriber_key || !sub.secured {
                continue;
            }
            let mut copy = stripped.clone();
            rtp::retarget(&mut copy.header, leg.ssrc, leg.payload_type);
            let Some(mut sender) = sub.pc.rtp_sender(leg.sender) else {
                continue;
            };
            match sender.write_rtp(now, copy) {
                Ok(()) => {
                    sent += 1;
                    sub.stats.packets_out.fetch_add(1, Relaxed);
                    sub.stats.bytes_out.fetch_add(bytes, Relaxed);
                }
                Err(e) => {
                    sub.stats.dropped_out.fetch_add(1, Relaxed);
                    self.shared.stats.dropped_packets.fetch_add(1, Relaxed);
                    tracing::trace!(error = %e, "packet not forwarded");
                }
            }
            if !sub.dirty {
                sub.dirty = true;
                self.dirty.push(leg.subscriber);
            }
        }
        if sent > 0 {
            let server = &self.shared.stats;
            server.forwarded_packets.fetch_add(sent, Relaxed);
            server.forwarded_bytes.fetch_add(sent * bytes, Relaxed);
        }
    }

    fn relayed_packet(&mut self, p: RelayPacket) {
        let Some(m) = self.meetings.get_mut(&p.meeting) else {
            return;
        };
        let Some(r) = m.relayed.get_mut(&p.key.user).filter(|r| r.key == p.key) else {
            return;
        };
        let legs = std::mem::take(&mut r.legs);
        self.shared.stats.bridged_to_webrtc.fetch_add(1, Relaxed);
        self.write_legs(&legs, &p.packet, Instant::now());
        if let Some(r) = self
            .meetings
            .get_mut(&p.meeting)
            .and_then(|m| m.relayed.get_mut(&p.key.user))
            .filter(|r| r.key == p.key)
        {
            r.legs = legs;
        }
    }

    /// Closes a connection: its ufrag and addresses leave the port's table, its legs (as a
    /// speaker and as a subscriber) go, and the others' streams of it are taken out.
    fn close(&mut self, slot: usize, ending: Ending) {
        let Some(c) = self.release(slot) else {
            return;
        };
        if ending == Ending::Failed {
            self.shared.stats.peers_failed.fetch_add(1, Relaxed);
        }
        let meeting = Arc::clone(&c.meeting);
        if let Some(m) = self.meetings.get_mut(&meeting)
            && m.members.get(&c.key.user) == Some(&slot)
        {
            m.members.remove(&c.key.user);
            if let Some(set) = self.shared.connected().get_mut(&*meeting) {
                set.remove(&c.key.user);
            }
        }
        let key = c.key;
        self.drop_legs(&meeting, |l| l.subscriber_key == key);
        self.update_speakers(&meeting);
    }

    fn end(&mut self, meeting: &str) {
        let Some(m) = self.meetings.get_mut(meeting) else {
            return;
        };
        m.relayed.clear();
        let slots: Vec<usize> = m.members.values().copied().collect();
        // Nobody is offered anything any more: the meeting goes first.
        let m = self.meetings.remove(meeting);
        self.shared.connected().remove(meeting);
        for slot in slots {
            self.release(slot);
        }
        drop(m);
    }

    /// Takes a connection out of its slot: closed (its goodbye queued), out of the port's
    /// table and of the server's figures, the slot free again.
    fn release(&mut self, slot: usize) -> Option<Conn> {
        let mut c = self.conns.get_mut(slot).and_then(Option::take)?;
        let _ = c.pc.close();
        let port = &mut self.ports[c.socket];
        while let Some(out) = c.pc.poll_write() {
            port.socket.queue(out.transport.peer_addr, out.message);
        }
        let (ufrags, addrs) = port.demux.remove(slot);
        if let Some(n) = &self.neighbours {
            n.directory.remove(self.index, &ufrags, &addrs);
        }
        let server = &self.shared.stats;
        if port.demux.is_empty() {
            server.ports_leased.fetch_sub(1, Relaxed);
        }
        self.free.push(slot);
        server.peers.fetch_sub(1, Relaxed);
        server.remove_participant(&c.meeting, &c.key.user, &c.stats);
        Some(c)
    }

    /// The loudest level each heard speaker reached since the last tick.
    fn levels(&mut self) {
        for (id, m) in &self.meetings {
            let mut levels = Vec::new();
            for (user, slot) in &m.members {
                let Some(Some(c)) = self.conns.get(*slot) else {
                    continue;
                };
                let peak = c.stats.peak_level.swap(0, Relaxed);
                let level = peak as f32 / 1e6;
                c.stats.level.store(level.to_bits(), Relaxed);
                if peak > 0 && audience(&m.route, user) != Audience::Nobody {
                    levels.push((Arc::clone(user), level));
                }
            }
            if !levels.is_empty() {
                let _ = self.shared.events.send(MediaEvent::Levels {
                    meeting: Arc::clone(id),
                    levels,
                });
            }
        }
    }

    /// Loss and jitter of each participant's audio, and the ICE round trip.
    fn sample(&mut self) {
        let now = Instant::now();
        for c in self.conns.iter_mut().flatten() {
            let report = c.pc.get_stats(now, StatsSelector::None);
            let (mut lost, mut jitter) = (0i64, 0f64);
            for s in report.inbound_rtp_streams() {
                lost += s.received_rtp_stream_stats.packets_lost;
                jitter = jitter.max(s.received_rtp_stream_stats.jitter);
            }
            let rtt = report
                .candidate_pairs()
                .filter(|p| p.nominated)
                .map(|p| p.current_round_trip_time)
                .fold(0f64, f64::max);
            c.stats.lost_in.store(lost, Relaxed);
            c.stats.jitter_us.store((jitter * 1e6) as u64, Relaxed);
            c.stats.rtt_us.store((rtt * 1e6) as u64, Relaxed);
        }
    }
}

/// What a datagram needs of its shard to reach its connection.
struct Inlet<'a> {
    advertised: &'a [SocketAddr],
    wildcard: bool,
    demux: &'a Demux<usize>,
    conns: &'a mut Vec<Option<Conn>>,
    dirty: &'a mut Vec<usize>,
}

impl Inlet<'_> {
    /// Hands a datagram to its connection on this shard (`to`: the local address it came in
    /// at, if the kernel said); false if it is no connection's here.
    fn deliver(&mut self, from: SocketAddr, to: Option<IpAddr>, data: &[u8], now: Instant) -> bool {
        let (slot, known) = match self.demux.route(from, data) {
            Route::Known(s) => (s, true),
            Route::Candidate(s) => {
                if let Some(Some(c)) = self.conns.get_mut(s)
                    && !c.checking.contains(&from)
                {
                    if c.checking.len() >= MAX_CHECKING {
                        c.checking.remove(0);
                    }
                    c.checking.push(from);
                }
                (s, false)
            }
            Route::Unknown => return false,
        };
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return true;
        };
        let local = local_for(self.advertised, self.wildcard, to, from);
        let stun = conn::is_stun(data);
        let read = c.pc.handle_read(TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: local,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        });
        match read {
            Err(e) => tracing::trace!(error = %e, "datagram refused by its connection"),
            Ok(()) if known => {
                c.heard = now;
                c.path.heard(from, stun);
            }
            Ok(()) => {}
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(slot);
        }
        true
    }
}

/// The local address the agent must see for a datagram: the advertised candidate (the
/// public address, or the bound one), or for a wildcard bind the one it arrived at.
fn local_for(
    advertised: &[SocketAddr],
    wildcard: bool,
    to: Option<IpAddr>,
    from: SocketAddr,
) -> SocketAddr {
    if wildcard
        && let Some(ip) = to
        && let Some(a) = advertised.iter().find(|a| a.ip() == ip)
    {
        return *a;
    }
    advertised
        .iter()
        .find(|a| a.is_ipv4() == from.is_ipv4())
        .or(advertised.first())
        .copied()
        .unwrap_or(from)
}

/// The first point of the timers' grid (`TIMER_STEP` apart from `epoch`) at or after `t`.
fn on_grid(t: Instant, epoch: Instant) -> Instant {
    let step = TIMER_STEP.as_nanos();
    let since = t.saturating_duration_since(epoch).as_nanos();
    let steps = since.div_ceil(step);
    epoch + Duration::from_nanos(u64::try_from(steps * step).unwrap_or(u64::MAX))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagrams(n: usize) -> Vec<Handed> {
        (0..n)
            .map(|i| Handed {
                port: 0,
                from: SocketAddr::from(([192, 0, 2, 1], 1000)),
                to: None,
                data: BytesMut::from(&[0x80, i as u8][..]),
            })
            .collect()
    }

    #[test]
    fn timers_wake_on_the_grid_never_early() {
        let epoch = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(on_grid(epoch, epoch), epoch);
        assert_eq!(on_grid(epoch + ms(1), epoch), epoch + TIMER_STEP);
        assert_eq!(on_grid(epoch + TIMER_STEP, epoch), epoch + TIMER_STEP);
        assert_eq!(
            on_grid(epoch + TIMER_STEP + ms(1), epoch),
            epoch + TIMER_STEP * 2
        );
        // Before the epoch (a deadline already past): at once.
        assert_eq!(on_grid(epoch - ms(5), epoch), epoch);
    }

    #[test]
    fn an_inbox_keeps_what_it_has_room_for_and_wakes_its_shard_once() {
        let inbox = Inbox::default();
        assert_eq!(
            inbox.post_datagrams(&mut datagrams(INBOX - 10)),
            (INBOX - 10, 0)
        );
        let mut more = datagrams(25);
        assert_eq!(inbox.post_datagrams(&mut more), (10, 15));
        assert!(more.is_empty());
        inbox.post(|mail| mail.forget.push((0, SocketAddr::from(([192, 0, 2, 1], 1)))));
        // Three posts, one stored wake-up: the shard takes everything at once.
        let woken = inbox.ready.notified();
        wait_a_second_for(woken);
        let mail = inbox.take();
        assert_eq!((mail.datagrams.len(), mail.forget.len()), (INBOX, 1));
        // Emptied: room again.
        assert_eq!(inbox.post_datagrams(&mut datagrams(1)), (1, 0));
    }

    fn wait_a_second_for(f: impl std::future::Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(1), f)
                    .await
                    .expect("the shard was woken");
            });
    }
}
