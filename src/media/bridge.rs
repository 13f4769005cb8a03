//! Where the two audio paths meet, so that a browser on WebRTC and a client on the Socket.IO
//! relay hear each other (docs/API.md "WebRTC and the relay together").
//!
//! - WebRTC → relay: each meeting has an [`Outlet`]. While the meeting has relay listeners, the
//!   realtime side opens it and the meeting's shard offers it each packet a speaker sends (one
//!   atomic load when it is closed; a full queue loses the packet for the relay only). The
//!   realtime side decodes and sends PCM to the relay listeners the routing rule allows.
//! - Relay → WebRTC: a relay speaker in a meeting with WebRTC participants becomes a *relayed
//!   speaker* of the meeting's shard: every WebRTC participant gets a stream of them, like one
//!   of another participant, and a [`RelayEncoder`] encodes their PCM to Opus (only while
//!   someone may hear it) for the shard to forward under the same routing rule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::record::mix::Encoding;
use super::record::pcm::PcmEncoder;

/// One packet a WebRTC speaker sent, for the relay listeners.
#[derive(Debug, Clone)]
pub struct Heard {
    pub user: Arc<str>,
    pub seq: u16,
    pub payload: Bytes,
}

/// A meeting's packets for its relay listeners, while they want them.
#[derive(Default)]
pub struct Outlet {
    on: AtomicBool,
    tx: Mutex<Option<mpsc::Sender<Heard>>>,
    /// Packets lost because the relay side was behind.
    pub dropped: AtomicU64,
}

impl Outlet {
    pub(super) fn offer(&self, user: &Arc<str>, seq: u16, payload: &Bytes) {
        if !self.on.load(Relaxed) {
            return;
        }
        let tx = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = tx.as_ref() {
            let heard = Heard {
                user: Arc::clone(user),
                seq,
                payload: payload.clone(),
            };
            if tx.try_send(heard).is_err() {
                self.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    fn set(&self, tx: Option<mpsc::Sender<Heard>>) {
        let on = tx.is_some();
        *self.tx.lock().unwrap_or_else(PoisonError::into_inner) = tx;
        self.on.store(on, Relaxed);
    }
}

/// Every meeting's outlet.
#[derive(Default)]
pub struct Outlets(Mutex<HashMap<String, Arc<Outlet>>>);

impl Outlets {
    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Outlet>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, meeting: &str) -> Arc<Outlet> {
        Arc::clone(self.locked().entry(meeting.to_owned()).or_default())
    }

    /// Sends the meeting's packets to `tx` from now on (or stops, with `None`).
    pub(super) fn set(&self, meeting: &str, tx: Option<mpsc::Sender<Heard>>) {
        match tx {
            Some(tx) => self.get(meeting).set(Some(tx)),
            None => {
                if let Some(o) = self.locked().get(meeting) {
                    o.set(None);
                }
            }
        }
    }

    pub(super) fn remove(&self, meeting: &str) {
        if let Some(o) = self.locked().remove(meeting) {
            o.set(None);
        }
    }
}

/// A frame of relay audio for a relayed speaker: Int16 LE mono at `rate`.
pub struct RelayFrame {
    pub rate: u32,
    pub pcm: Bytes,
}

/// Frames queued per relayed speaker (a second of audio); beyond it, frames are lost.
pub(super) const RELAY_QUEUE: usize = 50;

/// A relayed speaker's PCM as Opus packets (the encoder follows the frames' rate).
pub(super) struct RelayEncoder {
    encoding: Encoding,
    encoder: Option<PcmEncoder>,
    start: Instant,
}

impl RelayEncoder {
    pub(super) fn new(encoding: Encoding) -> Self {
        Self {
            encoding,
            encoder: None,
            start: Instant::now(),
        }
    }

    /// The packets one frame completes; `Err` when no encoder can be made for its rate (the
    /// speaker's publisher then ends).
    pub(super) fn encode(&mut self, frame: &RelayFrame) -> Result<Vec<rtc::rtp::Packet>, ()> {
        if self.encoder.as_ref().is_none_or(|e| e.rate() != frame.rate) {
            match PcmEncoder::new(frame.rate, self.encoding) {
                Ok(e) => self.encoder = Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "relayed speaker: no encoder");
                    return Err(());
                }
            }
        }
        let Some(enc) = self.encoder.as_mut() else {
            return Ok(Vec::new());
        };
        let samples: Vec<i16> = frame
            .pcm
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let packets = match enc.push(&samples, self.start.elapsed()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "relayed speaker: encoding failed");
                return Ok(Vec::new());
            }
        };
        Ok(packets
            .into_iter()
            .map(|p| rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    sequence_number: p.seq,
                    timestamp: p.timestamp,
                    ssrc: p.ssrc,
                    ..Default::default()
                },
                payload: Bytes::from(p.payload),
            })
            .collect())
    }
}
