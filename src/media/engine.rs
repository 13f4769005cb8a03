//! What every peer connection is built with: an Opus-only media engine with the RFC 6464
//! audio-level extension, the RTCP reports interceptors only, and ICE settings from the config.
//! The server's connections (`lite::conn`) take the media engine and the settings; the rest
//! (the `webrtc` crate's driver events, local tracks, the interceptors) is for the peers the
//! tests and the load generator make with the `webrtc` crate.

use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{ReceiverReportBuilder, SenderReportBuilder, Slot};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sdp::extmap::AUDIO_LEVEL_URI;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnectionEventHandler, RTCIceCandidate, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry, SettingEngine,
    SettingEngineBuilder,
};

use crate::config::MediaConfig;

/// A connection's events, passed on from the crate's driver loop (where callbacks must not
/// wait) to the task that owns the connection.
pub enum PcEvent {
    /// Candidate gathering completed (again after every local description).
    Gathered,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
    Candidate(RTCIceCandidate),
}

/// The event handler of a connection: forwards every event to a channel, never waits.
pub struct Bridge(pub mpsc::UnboundedSender<PcEvent>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Bridge {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.0.send(PcEvent::Gathered);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.0.send(PcEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.0.send(PcEvent::Track(track));
    }

    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let _ = self.0.send(PcEvent::Candidate(event.candidate));
    }
}

/// A local Opus track with a fixed SSRC (the crate needs it set to accept the packets).
/// `stream` becomes the SDP's MediaStream id.
pub fn local_track(stream: String, track: String, ssrc: u32) -> TrackLocalStaticRTP {
    TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream,
        track.clone(),
        track,
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus(),
            ..Default::default()
        }],
    ))
}

/// Opus as the server offers it: in-band FEC and DTX welcome.
pub fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1;usedtx=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn media_engine() -> webrtc::error::Result<MediaEngine> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus(),
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )?;
    engine.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: AUDIO_LEVEL_URI.to_owned(),
        },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(engine)
}

/// RTCP reports go out this often per stream: RFC 3550's minimum interval. A meeting of 50 has
/// 2,450 forwarded streams, so the crate's default (every second) costs a core's percent once
/// everyone has spoken.
pub const RTCP_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Sender and receiver reports only: they give loss, jitter and RTT. NACK is useless for Opus
/// (FEC covers loss) and transport-cc would make every client stamp one more extension.
pub fn registry() -> Registry {
    Registry::new()
        .with(
            Slot::ReceiverReport,
            ReceiverReportBuilder::new()
                .with_interval(RTCP_REPORT_INTERVAL)
                .build(),
        )
        .with(
            Slot::SenderReport,
            SenderReportBuilder::new()
                .with_interval(RTCP_REPORT_INTERVAL)
                .build(),
        )
}

pub fn setting_engine(config: &MediaConfig) -> SettingEngine {
    settings(config).build()
}

/// The settings every connection shares, the server's and the test peers': no mDNS, the
/// configured ICE timers.
pub fn settings(config: &MediaConfig) -> SettingEngineBuilder {
    SettingEngineBuilder::new()
        // The default (query-only mDNS) binds port 5353 in every connection.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(
            Some(config.ice_disconnected_timeout),
            Some(config.ice_failed_timeout),
            Some(config.ice_keepalive_interval),
        )
}
