//! One participant's peer connection, owned by one task: the negotiation (the client's first
//! offer, then the server's offers as speakers come and go), trickle candidates, stats
//! sampling, and a close on every way out. The participant's incoming audio is read by a
//! publisher task that forwards each packet to the subscribers' legs.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sdp::extmap::AUDIO_LEVEL_URI;
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidate, RTCIceCandidateInit,
    RTCIceCandidateType, RTCPeerConnectionState, RTCSessionDescription, StatsSelector,
};
use webrtc::rtp_transceiver::RtpSender;

use super::bridge::Outlet;
use super::engine::{Bridge, PcEvent};
use super::ports::PortLease;
use super::record::recorder::Tap;
use super::room::RoomCmd;
use super::stats::{MediaStats, PeerStats};
use super::{Candidate, MediaError, MediaEvent, Shared, Signal, engine, rtp, sdp};

/// A participant's connection, as its publisher and the rooms name it: a user id and the
/// generation of the connection (a new first offer makes a new one).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    pub user: Arc<str>,
    pub generation: u64,
}

/// One speaker → one subscriber: the subscriber's own local track for that speaker, with the
/// SSRC and payload type negotiated on the subscriber's connection.
pub struct Leg {
    pub speaker: PeerKey,
    pub subscriber: PeerKey,
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    payload_type: u8,
    /// Whether the routing rule lets the subscriber hear the speaker (set by the room).
    pub audible: AtomicBool,
    subscriber_stats: Arc<PeerStats>,
}

/// What the room tells a peer.
pub enum PeerCmd {
    Answer(String, oneshot::Sender<Result<(), MediaError>>),
    Candidate(Candidate, oneshot::Sender<Result<(), MediaError>>),
    /// The speakers this participant should have a stream of.
    Speakers(BTreeSet<PeerKey>),
    Close,
}

/// What the room tells a publisher: legs to forward to, and legs whose subscriber left.
pub enum PublishCmd {
    Add(Arc<Leg>),
    RemoveSubscriber(PeerKey),
}

/// The room's handle on a peer task.
pub struct PeerHandle {
    pub key: PeerKey,
    pub owner: String,
    pub cmd: mpsc::UnboundedSender<PeerCmd>,
    pub publish: mpsc::UnboundedSender<PublishCmd>,
    pub stats: Arc<PeerStats>,
}

pub struct PeerCtx {
    pub key: PeerKey,
    pub meeting: Arc<str>,
    pub owner: String,
    pub shared: Arc<Shared>,
    pub room: mpsc::UnboundedSender<RoomCmd>,
}

/// Starts a peer for the client's first offer; `reply` gets the answer.
pub fn spawn(
    ctx: PeerCtx,
    offer: String,
    reply: oneshot::Sender<Result<String, MediaError>>,
) -> PeerHandle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (pub_tx, pub_rx) = mpsc::unbounded_channel();
    let stats = ctx
        .shared
        .stats
        .add_participant(&ctx.meeting, &ctx.key.user);
    let handle = PeerHandle {
        key: ctx.key.clone(),
        owner: ctx.owner.clone(),
        cmd: cmd_tx,
        publish: pub_tx,
        stats: Arc::clone(&stats),
    };
    tokio::spawn(run(ctx, stats, offer, reply, cmd_rx, pub_rx));
    handle
}

/// How a peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Closed on purpose (left, replaced, meeting over, server stopping).
    Closed,
    /// ICE failed, or the client never answered an offer.
    Failed,
}

async fn run(
    ctx: PeerCtx,
    stats: Arc<PeerStats>,
    offer: String,
    reply: oneshot::Sender<Result<String, MediaError>>,
    cmd_rx: mpsc::UnboundedReceiver<PeerCmd>,
    pub_rx: mpsc::UnboundedReceiver<PublishCmd>,
) {
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let opened = open(&ctx.shared, Arc::new(Bridge(ev_tx))).await;
    let (pc, lease) = match opened {
        Ok(x) => x,
        Err(e) => {
            let _ = reply.send(Err(e));
            finish(&ctx, &stats, Ending::Closed);
            return;
        }
    };
    let server = Arc::clone(&ctx.shared.stats);
    let ports = Arc::clone(&ctx.shared.ports);
    server.ports_leased.store(ports.leased() as u64, Relaxed);
    server.peers.fetch_add(1, Relaxed);
    server.peers_opened.fetch_add(1, Relaxed);
    let mut peer = Peer {
        level_id: sdp::extmap_id(&offer, AUDIO_LEVEL_URI),
        mid: sdp::first_mid(&offer).unwrap_or_default(),
        ctx,
        stats,
        pc,
        ev_rx,
        stashed: VecDeque::new(),
        publisher: Some(pub_rx),
        early_legs: Vec::new(),
        wanted: BTreeSet::new(),
        sending: BTreeMap::new(),
        pending: Vec::new(),
        deadline: None,
        answered: false,
        remote_candidates: 0,
        broken: false,
    };
    let ending = match peer.answer_first(offer).await {
        Ok(answer) => {
            peer.signal(Signal::Answer {
                sdp: answer.clone(),
            });
            let _ = reply.send(Ok(answer));
            peer.answered = true;
            peer.serve(cmd_rx).await
        }
        Err(e) => {
            let _ = reply.send(Err(e));
            Ending::Closed
        }
    };
    let _ = peer.pc.close().await;
    drop(lease);
    server.ports_leased.store(ports.leased() as u64, Relaxed);
    server.peers.fetch_sub(1, Relaxed);
    if ending == Ending::Failed {
        server.peers_failed.fetch_add(1, Relaxed);
    }
    finish(&peer.ctx, &peer.stats, ending);
}

fn finish(ctx: &PeerCtx, stats: &Arc<PeerStats>, ending: Ending) {
    ctx.shared
        .stats
        .remove_participant(&ctx.meeting, &ctx.key.user, stats);
    let _ = ctx.room.send(RoomCmd::Closed {
        key: ctx.key.clone(),
        ending,
    });
}

/// Builds a connection on a port of the range; a port another program holds is skipped.
async fn open(
    shared: &Shared,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<(Arc<dyn PeerConnection>, PortLease), MediaError> {
    let config = &shared.config;
    let mut last = String::new();
    for _ in 0..16 {
        let Some(lease) = shared.ports.lease() else {
            return Err(MediaError::Unavailable(
                "Every UDP port for audio is in use; try again later".into(),
            ));
        };
        let addrs: Vec<SocketAddr> = config
            .bind
            .iter()
            .map(|ip| SocketAddr::new(*ip, lease.port))
            .collect();
        match engine::build(config, addrs, Arc::clone(&handler)).await {
            Ok(pc) => return Ok((pc, lease)),
            Err(e) => {
                tracing::debug!(port = lease.port, error = %e, "could not open a peer connection");
                last = e.to_string();
            }
        }
    }
    tracing::warn!(error = %last, "no peer connection could be opened");
    Err(MediaError::Unavailable(
        "No UDP port for audio could be opened; try again later".into(),
    ))
}

/// A stream this participant receives: the local track for one speaker.
struct Outgoing {
    speaker: PeerKey,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
}

struct Peer {
    ctx: PeerCtx,
    stats: Arc<PeerStats>,
    pc: Arc<dyn PeerConnection>,
    ev_rx: mpsc::UnboundedReceiver<PcEvent>,
    /// Events that came while waiting for gathering.
    stashed: VecDeque<PcEvent>,
    publisher: Option<mpsc::UnboundedReceiver<PublishCmd>>,
    /// Until the participant's first packet starts the publisher: its legs so far (the queue is
    /// folded into this now and then, so a silent participant holds no stale legs).
    early_legs: Vec<Arc<Leg>>,
    /// The client's audio-level extension id, and the first mid (for trickled candidates).
    level_id: Option<u8>,
    mid: String,
    /// Speakers this participant should receive, and those it has a negotiated stream of.
    wanted: BTreeSet<PeerKey>,
    sending: BTreeMap<PeerKey, Outgoing>,
    /// Streams in the offer the client has not answered yet.
    pending: Vec<Outgoing>,
    /// When the unanswered offer expires.
    deadline: Option<tokio::time::Instant>,
    answered: bool,
    /// Remote candidates taken so far (at most `MAX_REMOTE_CANDIDATES`).
    remote_candidates: usize,
    /// A renegotiation failed half-way: the connection's streams are no longer known.
    broken: bool,
}

/// Remote candidates one connection takes: every one is a pair the ICE agent checks.
const MAX_REMOTE_CANDIDATES: usize = 32;

fn bad(what: &str, e: impl std::fmt::Display) -> MediaError {
    MediaError::BadSignal(format!("{what}: {e}"))
}

impl Peer {
    fn signal(&self, signal: Signal) {
        let _ = self.ctx.shared.events.send(MediaEvent::Signal {
            owner: self.ctx.owner.clone(),
            signal,
        });
    }

    /// SDP as the client gets it: the public address in host candidates, FEC and DTX asked.
    fn outgoing(&self, sdp: &str) -> String {
        let sdp = sdp::prefer_fec_and_dtx(sdp);
        match self.ctx.shared.config.public_ip {
            Some(ip) => sdp::announce(&sdp, ip),
            None => sdp,
        }
    }

    async fn answer_first(&mut self, offer: String) -> Result<String, MediaError> {
        let offer = RTCSessionDescription::offer(offer).map_err(|e| bad("Invalid offer", e))?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| bad("The offer could not be applied", e))?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| bad("No answer could be made for this offer", e))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| bad("No answer could be made for this offer", e))?;
        self.local_description().await
    }

    /// The local description once its candidates are gathered.
    async fn local_description(&mut self) -> Result<String, MediaError> {
        let wait = tokio::time::timeout(Duration::from_secs(3), async {
            while let Some(ev) = self.ev_rx.recv().await {
                if matches!(ev, PcEvent::Gathered) {
                    return;
                }
                self.stashed.push_back(ev);
            }
        });
        if wait.await.is_err() {
            tracing::warn!(user = %self.ctx.key.user, "candidate gathering took over 3 s");
        }
        let desc = self.pc.local_description().await.ok_or_else(|| {
            MediaError::Unavailable("The connection has no local description".into())
        })?;
        Ok(self.outgoing(&desc.sdp))
    }

    async fn serve(&mut self, mut cmds: mpsc::UnboundedReceiver<PeerCmd>) -> Ending {
        let mut stats_tick = tokio::time::interval(self.ctx.shared.config.stats_interval);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if let Some(ev) = self.stashed.pop_front() {
                if let Some(ending) = self.on_event(ev) {
                    return ending;
                }
                continue;
            }
            let deadline = self.deadline;
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    None | Some(PeerCmd::Close) => return Ending::Closed,
                    Some(PeerCmd::Answer(sdp, reply)) => {
                        let result = self.apply_answer(sdp).await;
                        let _ = reply.send(result);
                        if self.broken {
                            return Ending::Failed;
                        }
                    }
                    Some(PeerCmd::Candidate(c, reply)) => {
                        let _ = reply.send(self.add_candidate(c).await);
                    }
                    Some(PeerCmd::Speakers(wanted)) => {
                        self.wanted = wanted;
                        if self.deadline.is_none()
                            && let Err(e) = self.renegotiate().await
                        {
                            tracing::warn!(user = %self.ctx.key.user, error = %e, "renegotiation failed");
                            return Ending::Failed;
                        }
                    }
                },
                ev = self.ev_rx.recv() => match ev {
                    Some(ev) => if let Some(ending) = self.on_event(ev) { return ending; },
                    None => return Ending::Closed,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    tracing::info!(user = %self.ctx.key.user, "no answer to the server's offer; closing the peer");
                    return Ending::Failed;
                }
                _ = stats_tick.tick() => {
                    self.fold_publisher_queue();
                    self.sample().await;
                }
            }
        }
    }

    fn on_event(&mut self, ev: PcEvent) -> Option<Ending> {
        match ev {
            PcEvent::Gathered => {}
            PcEvent::State(state) => {
                tracing::debug!(user = %self.ctx.key.user, ?state, "peer connection state");
                match state {
                    RTCPeerConnectionState::Failed => return Some(Ending::Failed),
                    RTCPeerConnectionState::Closed => return Some(Ending::Closed),
                    _ => {}
                }
            }
            PcEvent::Track(track) => {
                match self.publisher.take() {
                    Some(cmds) => {
                        let tap = self
                            .ctx
                            .shared
                            .recorder
                            .as_ref()
                            .map(|r| r.tap(&self.ctx.meeting));
                        let publisher = Publisher {
                            user: Arc::clone(&self.ctx.key.user),
                            legs: std::mem::take(&mut self.early_legs),
                            cmds,
                            level_id: self.level_id,
                            stats: Arc::clone(&self.stats),
                            server: Arc::clone(&self.ctx.shared.stats),
                            tap,
                            outlet: self.ctx.shared.outlets.get(&self.ctx.meeting),
                        };
                        tokio::spawn(publish(track, publisher));
                    }
                    // One microphone per participant: any other stream is read and dropped.
                    None => {
                        tokio::spawn(async move { while track.poll().await.is_some() {} });
                    }
                }
            }
            PcEvent::Candidate(c) => {
                // Candidates gathered before the answer are in it already.
                if self.answered {
                    self.trickle(&c);
                }
            }
        }
        None
    }

    /// Applies the queued leg changes of a publisher that has not started.
    fn fold_publisher_queue(&mut self) {
        let Some(cmds) = self.publisher.as_mut() else {
            return;
        };
        while let Ok(cmd) = cmds.try_recv() {
            apply(&mut self.early_legs, cmd);
        }
    }

    fn trickle(&self, c: &RTCIceCandidate) {
        let mut c = c.clone();
        if let Some(ip) = self.ctx.shared.config.public_ip
            && c.typ == RTCIceCandidateType::Host
        {
            c.address = ip.to_string();
        }
        if let Ok(init) = c.to_json() {
            self.signal(Signal::Candidate {
                candidate: Candidate {
                    candidate: init.candidate,
                    sdp_mid: Some(self.mid.clone()),
                    sdp_mline_index: Some(0),
                },
            });
        }
    }

    async fn add_candidate(&mut self, c: Candidate) -> Result<(), MediaError> {
        if c.candidate.trim().is_empty() {
            return Ok(()); // end of candidates
        }
        if self.remote_candidates >= MAX_REMOTE_CANDIDATES {
            return Err(MediaError::BadSignal(format!(
                "Too many candidates: a connection takes at most {MAX_REMOTE_CANDIDATES}"
            )));
        }
        self.remote_candidates += 1;
        self.pc
            .add_ice_candidate(RTCIceCandidateInit {
                candidate: c.candidate,
                sdp_mid: c.sdp_mid,
                sdp_mline_index: c.sdp_mline_index,
                ..Default::default()
            })
            .await
            .map_err(|e| bad("Invalid candidate", e))
    }

    /// Offers the change between the wanted speakers and the negotiated streams, if any.
    async fn renegotiate(&mut self) -> webrtc::error::Result<()> {
        let gone: Vec<PeerKey> = self
            .sending
            .keys()
            .filter(|k| !self.wanted.contains(*k))
            .cloned()
            .collect();
        let new: Vec<PeerKey> = self
            .wanted
            .iter()
            .filter(|k| !self.sending.contains_key(*k))
            .cloned()
            .collect();
        if gone.is_empty() && new.is_empty() {
            return Ok(());
        }
        for key in gone {
            if let Some(out) = self.sending.remove(&key) {
                self.pc.remove_track(&out.sender).await?;
            }
        }
        for speaker in new {
            self.pending.push(self.add_stream(speaker).await?);
        }
        let offer = self.pc.create_offer(None).await?;
        self.pc.set_local_description(offer).await?;
        let sdp = self
            .local_description()
            .await
            .map_err(|e| webrtc::error::Error::Other(e.to_string()))?;
        self.signal(Signal::Offer { sdp });
        self.ctx.shared.stats.renegotiations.fetch_add(1, Relaxed);
        self.deadline = Some(tokio::time::Instant::now() + self.ctx.shared.config.answer_timeout);
        Ok(())
    }

    /// A sendonly stream of `speaker`: MediaStream id = their user id (track id `a-<id>`).
    async fn add_stream(&self, speaker: PeerKey) -> webrtc::error::Result<Outgoing> {
        let taken: BTreeSet<u32> = self.sending.values().map(|o| o.ssrc).collect();
        let ssrc = loop {
            let s = rand::random::<u32>();
            if s != 0 && !taken.contains(&s) && !self.pending.iter().any(|o| o.ssrc == s) {
                break s;
            }
        };
        let id = format!("a-{}", speaker.user);
        let track = Arc::new(engine::local_track(speaker.user.to_string(), id, ssrc));
        let local: Arc<dyn TrackLocal> = Arc::clone(&track) as Arc<dyn TrackLocal>;
        let transceiver = self
            .pc
            .add_transceiver_from_track(
                local,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Sendonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .await?;
        let sender = transceiver
            .sender()
            .await?
            .ok_or_else(|| webrtc::error::Error::Other("transceiver without sender".into()))?;
        Ok(Outgoing {
            speaker,
            track,
            sender,
            ssrc,
        })
    }

    async fn apply_answer(&mut self, sdp: String) -> Result<(), MediaError> {
        if self.deadline.is_none() {
            return Err(MediaError::BadSignal(
                "No offer of the server is waiting for an answer".into(),
            ));
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(|e| bad("Invalid answer", e))?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| bad("The answer could not be applied", e))?;
        self.deadline = None;
        for out in std::mem::take(&mut self.pending) {
            let payload_type = out
                .sender
                .get_parameters()
                .await
                .ok()
                .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
            if let Some(payload_type) = payload_type {
                let leg = Arc::new(Leg {
                    speaker: out.speaker.clone(),
                    subscriber: self.ctx.key.clone(),
                    track: Arc::clone(&out.track),
                    ssrc: out.ssrc,
                    payload_type,
                    audible: AtomicBool::new(false),
                    subscriber_stats: Arc::clone(&self.stats),
                });
                let _ = self.ctx.room.send(RoomCmd::LegReady(leg));
            } else {
                tracing::warn!(user = %self.ctx.key.user, "the client refused a stream");
            }
            self.sending.insert(out.speaker.clone(), out);
        }
        if let Err(e) = self.renegotiate().await {
            // The answer itself was fine; the connection is not: it ends (as failed).
            tracing::warn!(user = %self.ctx.key.user, error = %e, "renegotiation failed");
            self.broken = true;
        }
        Ok(())
    }

    /// Loss and jitter of the participant's audio, and the ICE round trip.
    async fn sample(&self) {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
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
        self.stats.lost_in.store(lost, Relaxed);
        self.stats.jitter_us.store((jitter * 1e6) as u64, Relaxed);
        self.stats.rtt_us.store((rtt * 1e6) as u64, Relaxed);
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Reads a participant's audio and forwards every packet to the legs allowed to hear it (and
/// offers it to the meeting's recordings, a flag check when none runs). No
/// allocation, lock or await of our own per packet: leg changes are picked up with a
/// non-blocking receive, routing is one atomic load per leg, and a subscriber whose
/// connection cannot take the packet at once loses that packet rather than stalling others.
pub(super) fn apply(legs: &mut Vec<Arc<Leg>>, cmd: PublishCmd) {
    match cmd {
        PublishCmd::Add(leg) => legs.push(leg),
        PublishCmd::RemoveSubscriber(key) => legs.retain(|l| l.subscriber != key),
    }
}

/// What a speaker's publisher works with besides the track.
struct Publisher {
    user: Arc<str>,
    legs: Vec<Arc<Leg>>,
    cmds: mpsc::UnboundedReceiver<PublishCmd>,
    level_id: Option<u8>,
    stats: Arc<PeerStats>,
    server: Arc<MediaStats>,
    /// The meeting's recordings, and its relay listeners (`bridge`).
    tap: Option<Tap>,
    outlet: Arc<Outlet>,
}

async fn publish(track: Arc<dyn TrackRemote>, p: Publisher) {
    let Publisher {
        user,
        mut legs,
        mut cmds,
        level_id,
        stats,
        server,
        tap,
        outlet,
    } = p;
    while let Some(ev) = track.poll().await {
        let mut packet = match ev {
            TrackRemoteEvent::OnRtpPacket(p) => p,
            TrackRemoteEvent::OnEnded => break,
            _ => continue,
        };
        while let Ok(cmd) = cmds.try_recv() {
            apply(&mut legs, cmd);
        }
        let bytes = packet.payload.len() as u64;
        stats.packets_in.fetch_add(1, Relaxed);
        stats.bytes_in.fetch_add(bytes, Relaxed);
        server.received_packets.fetch_add(1, Relaxed);
        if let Some(level) = level_id.and_then(|id| rtp::audio_level(&packet.header, id)) {
            let loudness = (rtp::loudness(level) * 1e6) as u32;
            stats.peak_level.fetch_max(loudness, Relaxed);
        }
        if let Some(tap) = &tap {
            let h = &packet.header;
            tap.rtp(
                &user,
                h.ssrc,
                h.sequence_number,
                h.timestamp,
                &packet.payload,
            );
        }
        outlet.offer(&user, packet.header.sequence_number, &packet.payload);
        rtp::strip_extensions(&mut packet.header);
        forward(&legs, &packet, &server);
    }
}

/// Sends one (stripped) packet to every audible leg; a subscriber whose connection cannot take
/// it at once loses it, and nobody waits.
pub(super) fn forward(legs: &[Arc<Leg>], packet: &rtc::rtp::Packet, server: &MediaStats) {
    let bytes = packet.payload.len() as u64;
    let (mut sent, mut dropped) = (0u64, 0u64);
    for leg in legs {
        if !leg.audible.load(Relaxed) {
            continue;
        }
        let mut copy = packet.clone();
        rtp::retarget(&mut copy.header, leg.ssrc, leg.payload_type);
        match leg.track.write_rtp(copy).now_or_never() {
            Some(Ok(())) => {
                sent += 1;
                leg.subscriber_stats.packets_out.fetch_add(1, Relaxed);
                leg.subscriber_stats.bytes_out.fetch_add(bytes, Relaxed);
            }
            // The subscriber's connection is closing: its leg goes with the next update.
            Some(Err(_)) => {}
            None => {
                dropped += 1;
                leg.subscriber_stats.dropped_out.fetch_add(1, Relaxed);
            }
        }
    }
    if sent > 0 {
        server.forwarded_packets.fetch_add(sent, Relaxed);
        server.forwarded_bytes.fetch_add(sent * bytes, Relaxed);
    }
    if dropped > 0 {
        server.dropped_packets.fetch_add(dropped, Relaxed);
    }
}
