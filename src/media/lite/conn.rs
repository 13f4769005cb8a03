//! One participant's connection on a shard: the sans-IO peer connection (ICE-lite with the
//! server's own credentials, the one local candidate of the shard's port) and what the shard
//! knows of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::peer_connection::{RTCPeerConnection, SettingEngine};

use super::super::PeerKey;
use super::super::bridge::Outlet;
use super::super::engine;
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
    pub path: Path,
    /// When the client was last heard: any datagram its connection took from an address its
    /// agent had accepted (or the connection's start). The agent itself counts only STUN
    /// checks (a client sending media may send none for many seconds), so the shard ends a
    /// connection silent for `ice_disconnected_timeout + ice_failed_timeout`.
    pub heard: Instant,
}

/// Where the client is now, which is not always where the ICE agent believes it is.
///
/// The agent keeps the first pair its client nominated for good (`rtc-ice` 0.21: a later
/// USE-CANDIDATE on another pair is answered but never selected) and sends everything there.
/// A client moves on anyway: Chrome switches to a better pair after it has nominated one, and
/// a NAT rebinding moves the address. The client sends its media only on the pair it uses now,
/// so the source of its latest DTLS, SRTP or SRTCP datagram (from an address the agent
/// accepted a check from: nothing else reaches the connection) is where it is, and what the
/// agent sends goes there. STUN goes where the agent says: checks are answered to their source.
#[derive(Debug, Default)]
pub struct Path {
    client: Option<SocketAddr>,
}

impl Path {
    /// A datagram from `from` reached the connection (`stun`: a STUN message).
    pub fn heard(&mut self, from: SocketAddr, stun: bool) {
        if !stun && self.client != Some(from) {
            if let Some(was) = self.client {
                tracing::debug!(%was, now = %from, "the client's media moved to another address");
            }
            self.client = Some(from);
        }
    }

    /// Where a datagram the agent sends to `to` goes (`stun`: a STUN message).
    pub fn to(&self, to: SocketAddr, stun: bool) -> SocketAddr {
        match self.client {
            Some(client) if !stun => client,
            _ => to,
        }
    }
}

/// Whether a datagram is a STUN message (RFC 7983: its first byte is 0 to 3).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.first().is_some_and(|b| *b < 4)
}

impl Conn {
    /// The next time the shard must call on it: its core's timers, the unanswered offer's
    /// deadline, or when it will have been silent for `silence`.
    pub fn wake(&mut self, silence: Duration) -> Instant {
        use rtc::sansio::Protocol;
        [self.pc.poll_timeout(), self.deadline]
            .into_iter()
            .flatten()
            .fold(self.heard + silence, Instant::min)
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
        // The agent's own timeouts count STUN checks only: zero turns them off, and the shard
        // times the connection by every datagram it takes (`Conn::heard`).
        .with_ice_timeouts(
            Some(Duration::ZERO),
            Some(Duration::ZERO),
            Some(config.ice_keepalive_interval),
        )
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
        pc.add_local_candidate(host_candidate(*addr)?)
            .map_err(|e| e.to_string())?;
    }
    Ok(pc)
}

/// A host candidate at `addr`, as `add_local_candidate` takes it: a sans-IO connection
/// gathers nothing itself, so each address its socket is reached at is added this way.
pub fn host_candidate(addr: SocketAddr) -> Result<RTCIceCandidateInit, String> {
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
    RTCIceCandidate::from(&candidate)
        .to_json()
        .map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_follows_the_client_and_stun_goes_where_the_agent_says() {
        let (first, second): (SocketAddr, SocketAddr) = (
            "192.0.2.1:1000".parse().expect("address"),
            "192.0.2.1:2000".parse().expect("address"),
        );
        let mut path = Path::default();
        // Nothing heard yet: the agent's choice.
        assert_eq!(path.to(first, false), first);
        path.heard(first, false);
        // A check from a new address does not move the media (the client may only be probing).
        path.heard(second, true);
        assert_eq!(path.to(first, false), first);
        // Media from there does; the agent's STUN still goes where it says.
        path.heard(second, false);
        assert_eq!(path.to(first, false), second);
        assert_eq!(path.to(first, true), first);
    }

    #[test]
    fn stun_is_told_from_dtls_and_rtp() {
        let mut binding = vec![0x00, 0x01, 0, 0];
        binding.extend([0x21, 0x12, 0xA4, 0x42]);
        binding.extend([0; 12]);
        assert!(is_stun(&binding));
        assert!(!is_stun(&[22, 254, 253])); // DTLS handshake
        assert!(!is_stun(&[0x80, 111])); // RTP
        assert!(!is_stun(&[]));
    }
}
