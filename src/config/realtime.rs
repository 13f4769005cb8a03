//! `[realtime]`: Socket.IO keepalives, presence and the audio relay's limits.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::{key_err, positive};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRealtime {
    pub ping_interval_seconds: Option<u64>,
    pub ping_timeout_seconds: Option<u64>,
    pub app_ping_interval_seconds: Option<u64>,
    pub reconnect_grace_seconds: Option<u64>,
    pub seat_hold_seconds: Option<u64>,
    pub queue_packets: Option<usize>,
    pub max_audio_bytes: Option<usize>,
    pub audio_messages_per_second: Option<u32>,
    pub audio_burst: Option<u32>,
    pub flood_disconnect_after: Option<u32>,
    pub active_speaker_interval_ms: Option<u64>,
}

/// The live side: Socket.IO keepalives, presence and the audio relay's limits.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Engine.IO heartbeat: how often the server pings, and how long it waits for the pong.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// The application-level `ping {timestamp}` event.
    pub app_ping_interval: Duration,
    /// A user whose last socket dropped is announced as gone only after this long.
    pub reconnect_grace: Duration,
    /// A seat taken by a REST join is released if no socket arrives within this long.
    pub seat_hold: Duration,
    /// Outgoing packets queued per socket; beyond it, audio frames to that socket are dropped.
    pub queue_packets: usize,
    pub max_audio_bytes: usize,
    /// Audio messages a socket may send: a sustained rate and a burst.
    pub audio_messages_per_second: u32,
    pub audio_burst: u32,
    /// Refused (over-rate) audio messages within 10 s after which the socket is disconnected.
    pub flood_disconnect_after: u32,
    /// At most one `active-speaker` per meeting this often.
    pub active_speaker_interval: Duration,
}

pub(super) fn validate(raw: &RawRealtime) -> Result<RealtimeConfig, ConfigError> {
    let secs = |v: Option<u64>, default: u64, key: &str, max: u64| {
        let v = v.unwrap_or(default);
        if (1..=max).contains(&v) {
            Ok(Duration::from_secs(v))
        } else {
            Err(key_err(key, format!("must be between 1 and {max}")))
        }
    };
    let max_audio_bytes = raw.max_audio_bytes.unwrap_or(64 * 1024);
    if !(1024..=1024 * 1024).contains(&max_audio_bytes) {
        return Err(key_err(
            "realtime.max_audio_bytes",
            "must be between 1024 and 1048576",
        ));
    }
    let queue_packets = raw.queue_packets.unwrap_or(64);
    if !(8..=4096).contains(&queue_packets) {
        return Err(key_err(
            "realtime.queue_packets",
            "must be between 8 and 4096",
        ));
    }
    let speaker_ms = raw.active_speaker_interval_ms.unwrap_or(300);
    if !(50..=10_000).contains(&speaker_ms) {
        return Err(key_err(
            "realtime.active_speaker_interval_ms",
            "must be between 50 and 10000",
        ));
    }
    Ok(RealtimeConfig {
        ping_interval: secs(
            raw.ping_interval_seconds,
            25,
            "realtime.ping_interval_seconds",
            300,
        )?,
        ping_timeout: secs(
            raw.ping_timeout_seconds,
            20,
            "realtime.ping_timeout_seconds",
            300,
        )?,
        app_ping_interval: secs(
            raw.app_ping_interval_seconds,
            25,
            "realtime.app_ping_interval_seconds",
            3600,
        )?,
        reconnect_grace: secs(
            raw.reconnect_grace_seconds,
            10,
            "realtime.reconnect_grace_seconds",
            600,
        )?,
        seat_hold: secs(
            raw.seat_hold_seconds,
            60,
            "realtime.seat_hold_seconds",
            3600,
        )?,
        queue_packets,
        max_audio_bytes,
        audio_messages_per_second: positive(
            raw.audio_messages_per_second,
            100,
            "realtime.audio_messages_per_second",
        )?,
        audio_burst: positive(raw.audio_burst, 100, "realtime.audio_burst")?,
        flood_disconnect_after: positive(
            raw.flood_disconnect_after,
            500,
            "realtime.flood_disconnect_after",
        )?,
        active_speaker_interval: Duration::from_millis(speaker_ms),
    })
}
