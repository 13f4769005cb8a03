//! What every peer connection is built with: an Opus-only media engine with the RFC 6464
//! audio-level extension, the RTCP reports interceptors only, and ICE settings from the config.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{ReceiverReportBuilder, SenderReportBuilder, Slot};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sdp::extmap::AUDIO_LEVEL_URI;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, Registry, SettingEngine, SettingEngineBuilder,
};

use crate::config::MediaConfig;

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
    SettingEngineBuilder::new()
        // The default (query-only mDNS) binds port 5353 in every connection.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(
            Some(config.ice_disconnected_timeout),
            Some(config.ice_failed_timeout),
            Some(config.ice_keepalive_interval),
        )
        .build()
}

/// Builds one server-side peer connection bound to `addrs`.
pub async fn build(
    config: &MediaConfig,
    addrs: Vec<SocketAddr>,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine()?)
        .with_setting_engine(setting_engine(config))
        .with_interceptor_registry(registry())
        .with_handler(handler)
        .with_udp_addrs(addrs)
        .build()
        .await?;
    Ok(Arc::new(pc))
}
