//! SFU counters: per participant (packets and bytes in and out, loss, jitter, RTT, level) and
//! for the server (forwarded packets, and their rate). Atomics on the forward path; the
//! participant list is locked only when a peer comes or goes and when metrics are rendered.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

/// One participant's peer connection.
#[derive(Debug, Default)]
pub struct PeerStats {
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Packets for this subscriber dropped because its connection's queue was full.
    pub dropped_out: AtomicU64,
    /// From the receiver reports of our side: packets the participant sent that never came.
    pub lost_in: AtomicI64,
    pub jitter_us: AtomicU64,
    /// ICE round-trip time of the selected candidate pair.
    pub rtt_us: AtomicU64,
    /// Peak loudness (0–1, ×1e6) since the room last looked, and the last one it saw.
    pub(super) peak_level: AtomicU32,
    pub level: AtomicU32,
}

impl PeerStats {
    /// The last audio level the participant's packets carried, 0..=1.
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level.load(Relaxed))
    }
}

/// A participant as the dashboard and the metrics see them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParticipantSnapshot {
    pub meeting: String,
    pub user: String,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub dropped_out: u64,
    pub lost_in: i64,
    pub jitter_ms: f64,
    pub rtt_ms: f64,
    pub level: f32,
}

#[derive(Debug, Default)]
pub struct MediaStats {
    pub peers: AtomicU64,
    pub peers_opened: AtomicU64,
    pub peers_failed: AtomicU64,
    pub forwarded_packets: AtomicU64,
    pub forwarded_bytes: AtomicU64,
    pub dropped_packets: AtomicU64,
    pub received_packets: AtomicU64,
    pub renegotiations: AtomicU64,
    /// Opus packets made from relay speakers' PCM for WebRTC listeners, and WebRTC speakers'
    /// packets decoded for relay listeners (counted by the realtime side).
    pub bridged_to_webrtc: AtomicU64,
    pub bridged_to_relay: AtomicU64,
    /// Datagrams on the `rtc` engine's ports that were nobody's (an unknown address, not a
    /// check naming a connection): dropped.
    pub unknown_datagrams: AtomicU64,
    /// Datagrams the kernel gave to a shard other than their connection's (shards sharing a
    /// port), passed on to that one.
    pub handed_over: AtomicU64,
    /// Datagrams for another shard's connection that did not fit in its inbox (that shard is
    /// overloaded): lost.
    pub handoff_lost: AtomicU64,
    /// Forwarded packets per second over the last sampling second.
    pub forwarded_per_second: AtomicU64,
    pub(super) ports_leased: AtomicU64,
    participants: Mutex<BTreeMap<(String, String), Arc<PeerStats>>>,
}

impl MediaStats {
    pub(super) fn add_participant(&self, meeting: &str, user: &str) -> Arc<PeerStats> {
        let stats = Arc::new(PeerStats::default());
        self.participants
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((meeting.to_owned(), user.to_owned()), Arc::clone(&stats));
        stats
    }

    pub(super) fn remove_participant(&self, meeting: &str, user: &str, stats: &Arc<PeerStats>) {
        let mut all = self
            .participants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (meeting.to_owned(), user.to_owned());
        if all.get(&key).is_some_and(|s| Arc::ptr_eq(s, stats)) {
            all.remove(&key);
        }
    }

    pub fn participants(&self) -> Vec<ParticipantSnapshot> {
        let all = self
            .participants
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .map(|((meeting, user), s)| ParticipantSnapshot {
                meeting: meeting.clone(),
                user: user.clone(),
                packets_in: s.packets_in.load(Relaxed),
                bytes_in: s.bytes_in.load(Relaxed),
                packets_out: s.packets_out.load(Relaxed),
                bytes_out: s.bytes_out.load(Relaxed),
                dropped_out: s.dropped_out.load(Relaxed),
                lost_in: s.lost_in.load(Relaxed),
                jitter_ms: s.jitter_us.load(Relaxed) as f64 / 1000.0,
                rtt_ms: s.rtt_us.load(Relaxed) as f64 / 1000.0,
                level: s.level(),
            })
            .collect()
    }

    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        let counters = [
            (
                "meet_sfu_peers",
                "gauge",
                "Open WebRTC peer connections",
                self.peers.load(Relaxed),
            ),
            (
                "meet_sfu_peers_opened_total",
                "counter",
                "Peer connections opened",
                self.peers_opened.load(Relaxed),
            ),
            (
                "meet_sfu_peers_failed_total",
                "counter",
                "Peer connections closed by an ICE failure or a missing answer",
                self.peers_failed.load(Relaxed),
            ),
            (
                "meet_sfu_received_packets_total",
                "counter",
                "RTP packets received from participants",
                self.received_packets.load(Relaxed),
            ),
            (
                "meet_sfu_forwarded_packets_total",
                "counter",
                "RTP packets forwarded to subscribers",
                self.forwarded_packets.load(Relaxed),
            ),
            (
                "meet_sfu_forwarded_bytes_total",
                "counter",
                "RTP payload bytes forwarded to subscribers",
                self.forwarded_bytes.load(Relaxed),
            ),
            (
                "meet_sfu_dropped_packets_total",
                "counter",
                "RTP packets dropped because a subscriber's queue was full",
                self.dropped_packets.load(Relaxed),
            ),
            (
                "meet_sfu_forwarded_packets_per_second",
                "gauge",
                "RTP packets forwarded in the last second",
                self.forwarded_per_second.load(Relaxed),
            ),
            (
                "meet_sfu_renegotiations_total",
                "counter",
                "Offers the server made to change a participant's streams",
                self.renegotiations.load(Relaxed),
            ),
            (
                "meet_bridge_packets_to_webrtc_total",
                "counter",
                "Opus packets encoded from relay speakers for WebRTC listeners",
                self.bridged_to_webrtc.load(Relaxed),
            ),
            (
                "meet_bridge_packets_to_relay_total",
                "counter",
                "WebRTC speakers' packets decoded for relay listeners",
                self.bridged_to_relay.load(Relaxed),
            ),
            (
                "meet_sfu_unknown_datagrams_total",
                "counter",
                "Datagrams from an address no connection has (and not a check naming one): dropped",
                self.unknown_datagrams.load(Relaxed),
            ),
            (
                "meet_sfu_handed_over_datagrams_total",
                "counter",
                "Datagrams received by one shard and passed on to the shard of their connection",
                self.handed_over.load(Relaxed),
            ),
            (
                "meet_sfu_handoff_lost_datagrams_total",
                "counter",
                "Datagrams for another shard's connection lost because that shard's inbox was full",
                self.handoff_lost.load(Relaxed),
            ),
            (
                "meet_sfu_udp_ports_leased",
                "gauge",
                "UDP ports in use by open peer connections: each shard port with a connection",
                self.ports_leased.load(Relaxed),
            ),
        ];
        for (name, kind, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        let participants = self.participants();
        type Field = fn(&ParticipantSnapshot) -> String;
        let per: [(&str, &str, &str, Field); 9] = [
            (
                "meet_sfu_participant_packets_in_total",
                "counter",
                "RTP packets received from the participant",
                |p| p.packets_in.to_string(),
            ),
            (
                "meet_sfu_participant_bytes_in_total",
                "counter",
                "RTP payload bytes received from the participant",
                |p| p.bytes_in.to_string(),
            ),
            (
                "meet_sfu_participant_packets_out_total",
                "counter",
                "RTP packets forwarded to the participant",
                |p| p.packets_out.to_string(),
            ),
            (
                "meet_sfu_participant_bytes_out_total",
                "counter",
                "RTP payload bytes forwarded to the participant",
                |p| p.bytes_out.to_string(),
            ),
            (
                "meet_sfu_participant_dropped_out_total",
                "counter",
                "Packets for the participant dropped on a full queue",
                |p| p.dropped_out.to_string(),
            ),
            (
                "meet_sfu_participant_lost_in",
                "gauge",
                "Packets from the participant lost on the way (receiver reports)",
                |p| p.lost_in.to_string(),
            ),
            (
                "meet_sfu_participant_jitter_seconds",
                "gauge",
                "Interarrival jitter of the participant's packets",
                |p| format!("{}", p.jitter_ms / 1000.0),
            ),
            (
                "meet_sfu_participant_rtt_seconds",
                "gauge",
                "ICE round-trip time to the participant",
                |p| format!("{}", p.rtt_ms / 1000.0),
            ),
            (
                "meet_sfu_participant_audio_level",
                "gauge",
                "Last audio level of the participant (0..1: -60 dBov..0 dBov, from RFC 6464)",
                |p| format!("{}", p.level),
            ),
        ];
        for (name, kind, help, field) in per {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for p in &participants {
                let _ = writeln!(
                    out,
                    "{name}{{meeting=\"{}\",user=\"{}\"}} {}",
                    p.meeting,
                    p.user,
                    field(p)
                );
            }
        }
    }
}
