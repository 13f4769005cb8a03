//! The relay's half of the bridge between WebRTC and the relay (`media::bridge` has the SFU's):
//! which meetings have relay listeners (people connected by Socket.IO without a WebRTC
//! connection) while WebRTC participants speak, and the WebRTC speakers' audio decoded and
//! sent to those listeners as `audio-broadcast`, under the routing rule of every frame.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opus_rs::OpusDecoder;
use tokio::sync::mpsc;

use super::relay::AudioOut;
use super::{Hub, timestamp, user_room};
use crate::domain::routing::may_hear;
use crate::domain::users::Role;
use crate::media::bridge::Heard;
use crate::media::record::ogg::packet_samples;

/// How often meetings are looked at for relay listeners, and the decoders' view of who has a
/// WebRTC connection refreshed.
const LOOK: Duration = Duration::from_millis(500);
/// Packets queued for a meeting's decoder; beyond it, packets are lost for the relay only.
const QUEUE: usize = 256;

/// Opens a meeting's outlet while it has both WebRTC participants and relay listeners, and
/// closes it when it no longer has.
pub async fn run(hub: Arc<Hub>) {
    let mut open: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(LOOK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let meetings = hub.media.meetings();
        open.retain(|m| meetings.contains(m));
        for meeting in meetings {
            // Someone speaks over WebRTC, and someone listens on the relay.
            let connected = hub.media.connected(&meeting);
            let wanted = !connected.is_empty() && has_relay_listener(&hub, &meeting, &connected);
            match (wanted, open.contains(&meeting)) {
                (true, false) => {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    hub.media.set_outlet(&meeting, Some(tx));
                    tokio::spawn(decode(Arc::clone(&hub), Arc::from(meeting.as_str()), rx));
                    tracing::debug!(%meeting, "WebRTC speakers bridged to the relay");
                    open.insert(meeting);
                }
                (false, true) => {
                    hub.media.set_outlet(&meeting, None);
                    open.remove(&meeting);
                }
                _ => {}
            }
        }
    }
}

/// Whether someone has a socket in the meeting but no WebRTC connection.
fn has_relay_listener(hub: &Hub, meeting: &str, connected: &HashSet<Arc<str>>) -> bool {
    hub.presence
        .with_room(meeting, |room| {
            room.members().any(|u| !connected.contains(u))
        })
        .unwrap_or(false)
}

/// Decodes each WebRTC speaker's packets (a decoder per speaker) and sends the PCM to the
/// relay listeners who may hear them; ends when the outlet closes.
async fn decode(hub: Arc<Hub>, meeting: Arc<str>, mut rx: mpsc::Receiver<Heard>) {
    let mut decoders: HashMap<Arc<str>, OpusDecoder> = HashMap::new();
    let mut connected = hub.media.connected(&meeting);
    let mut looked = Instant::now();
    let mut pcm = vec![0f32; 5_760];
    while let Some(heard) = rx.recv().await {
        if looked.elapsed() > LOOK {
            connected = hub.media.connected(&meeting);
            decoders.retain(|u, _| connected.contains(u));
            looked = Instant::now();
        }
        let speaker = heard.user.as_ref();
        let decided = hub.presence.with_room(&meeting, |room| {
            let to: Vec<String> = room
                .members()
                .filter(|u| *u != speaker && !connected.contains(*u))
                .filter(|u| may_hear(&room.route, speaker, u))
                .map(|u| user_room(&meeting, u))
                .collect();
            let role = if room.route.host_id == speaker {
                Role::Host
            } else {
                Role::Student
            };
            (to, role)
        });
        let Some((to, role)) = decided.filter(|(to, _)| !to.is_empty()) else {
            continue;
        };
        let decoder = match decoders.entry(Arc::clone(&heard.user)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => match OpusDecoder::new(48_000, 1) {
                Ok(d) => e.insert(d),
                Err(_) => continue,
            },
        };
        let n = packet_samples(&heard.payload)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0 && *n <= pcm.len())
            .unwrap_or(960);
        let out = &mut pcm[..n];
        if !matches!(decoder.decode(&heard.payload, n, out), Ok(got) if got == n) {
            continue;
        }
        let mut bytes = Vec::with_capacity(n * 2);
        for v in out.iter() {
            let s = (v.clamp(-1.0, 1.0) * 32_767.0) as i16;
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let now = timestamp(hub.services.now());
        let frame = AudioOut {
            audio_data: Bytes::from(bytes),
            user_id: speaker,
            role: Some(role),
            is_private: None,
            sample_rate: 48_000,
            channels: 1,
            timestamp: &now,
            seq: Some(u64::from(heard.seq)),
        };
        let _ = hub.io().to(to).emit("audio-broadcast", &frame).await;
        hub.media.stats().bridged_to_relay.fetch_add(1, Relaxed);
    }
}
