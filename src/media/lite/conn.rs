//! One participant's connection on a shard: the sans-IO peer connection (ICE-lite with the
//! server's own credentials, the one local candidate of the shard's port) and what the shard
//! knows of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::distr::{Alphanumeric, SampleString};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::peer_connection::{RTCPeerConnection, SettingEngine};

use super::super::bridge::Outlet;
use super::super::engine;
use super::super::peer::PeerKey;
use super::super::record::recorder::Tap;
use super::super::stats::PeerStats;
use crate::config::MediaConfig;

/// A stream this participant receives: one speaker's, on a sender of its connection.
pub struct Out {
    pub speaker: PeerKey,
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
}

/// One speaker → one subscriber, as the speaker's side keeps it.
pub struct Leg {
    pub subscriber: usize,
    pub subscriber_key: PeerKey,
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    pub payload_type: u8,
    /// Whether the routing rule lets the subscriber hear the speaker.
    pub audible: bool,
}

pub struct Conn {
    pub key: PeerKey,
    pub meeting: Arc<str>,
    pub owner: String,
    pub pc: RTCPeerConnection,
    /// Which of the shard's sockets it is on.
    pub socket: usize,
    pub stats: Arc<PeerStats>,
    /// The client's audio-level extension id.
    pub level_id: Option<u8>,
    /// The participant's microphone: the first track they sent; any other is dropped.
    pub mic: Option<String>,
    pub tap: Option<Tap>,
    pub outlet: Arc<Outlet>,
    /// Legs of this participant as a speaker.
    pub legs: Vec<Leg>,
    /// Speakers this participant should receive, those it has a negotiated stream of, and
    /// those in the offer it has not answered yet.
    pub wanted: BTreeSet<PeerKey>,
    pub sending: BTreeMap<PeerKey, Out>,
    pub pending: Vec<Out>,
    /// When the unanswered offer expires.
    pub deadline: Option<Instant>,
    pub remote_candidates: usize,
    /// Addresses whose checks were handed to the agent; learned when it answers success.
    pub checking: Vec<SocketAddr>,
    /// The wake-up time in the shard's heap.
    pub armed: Option<Instant>,
    /// Touched this turn: its output is to be drained.
    pub dirty: bool,
    /// DTLS is done (the connection was `connected` once): SRTP can be written to it.
    pub secured: bool,
}

impl Conn {
    /// The next time the shard must call on it.
    pub fn wake(&mut self) -> Option<Instant> {
        use rtc::sansio::Protocol;
        match (self.pc.poll_timeout(), self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Server-chosen ICE credentials: the ufrag is the connection's name on the shard's port.
pub fn credentials() -> (String, String) {
    let mut rng = rand::rng();
    (
        Alphanumeric.sample_string(&mut rng, 16),
        Alphanumeric.sample_string(&mut rng, 32),
    )
}

fn setting_engine(config: &MediaConfig, ufrag: &str, pwd: &str) -> SettingEngine {
    engine::settings(config)
        .with_lite(true)
        .with_ice_credentials(ufrag.to_owned(), pwd.to_owned())
        .with_include_loopback_candidate(true)
        .build()
}

/// A server-side connection whose host candidates are `advertised` (what the agent sees as
/// the local address of every datagram).
pub fn build(
    config: &MediaConfig,
    ufrag: &str,
    pwd: &str,
    advertised: &[SocketAddr],
    now: Instant,
) -> Result<RTCPeerConnection, String> {
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine::media_engine().map_err(|e| e.to_string())?)
        .with_setting_engine(setting_engine(config, ufrag, pwd))
        .with_interceptor_registry(engine::registry())
        .build(now)
        .map_err(|e| e.to_string())?;
    for addr in advertised {
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: addr.ip().to_string(),
                port: addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(|e| e.to_string())?;
        let init = RTCIceCandidate::from(&candidate)
            .to_json()
            .map_err(|e| e.to_string())?;
        pc.add_local_candidate(init).map_err(|e| e.to_string())?;
    }
    Ok(pc)
}

/// Holds the client's own lines without a sender (its microphone's, and any it offered to
/// receive on) with stand-in tracks, so that `add_track`, which takes the first line without a
/// sender, places the server's streams on the server's lines only. A browser names the track
/// of such a line itself (not `a-<userId>`), so a speaker there could not be told by its track.
/// Remove the stand-ins once the streams are placed (they are never negotiated).
pub fn hold_client_lines(pc: &mut RTCPeerConnection) -> Result<Vec<RTCRtpSenderId>, String> {
    let ids: Vec<usize> = pc.get_transceivers().collect();
    let free: Vec<bool> = ids
        .into_iter()
        .filter_map(|id| {
            let t = pc.rtp_transceiver(id)?;
            t.sender().is_none().then(|| t.direction().has_recv())
        })
        .collect();
    let Some(last) = free.iter().rposition(|recv| *recv) else {
        return Ok(Vec::new());
    };
    (0..=last)
        .map(|i| {
            let id = format!("hold-{i}");
            let track = audio_track(&id, &id, rand::random::<u32>() | 1);
            pc.add_track(track).map_err(|e| e.to_string())
        })
        .collect()
}

/// An Opus track of the server's: MediaStream id `stream`, track id (and label) `id`, and one
/// encoding with `ssrc`.
pub fn audio_track(stream: &str, id: &str, ssrc: u32) -> MediaStreamTrack {
    MediaStreamTrack::new(
        stream.to_owned(),
        id.to_owned(),
        id.to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: engine::opus(),
            ..Default::default()
        }],
    )
}
