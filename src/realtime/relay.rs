//! The audio relay: `broadcast-audio` (aliases `audio-stream`, `audio-stream-data`) and
//! `private-audio-stream` (alias `private-stream-data`) in, Int16 LE `audio-broadcast` /
//! `private-stream-data` out, to exactly those the routing rule lets hear the sender. Each
//! receiver's queue is bounded: a full one loses the frame (counted), nobody else waits. A
//! refused frame is answered in the acknowledgement and, for the original's clients, which
//! listen for it, as `stream-error` (not for the rate limit's refusals: a flood is not echoed).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::json;
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::{BroadcastError, ParserError, SocketError};

use super::events::{current_meeting, error_body, payload, send_ack};
use super::pcm::{self, Format};
use super::session::{Session, Turn};
use super::{Hub, meeting_room, timestamp, user_room};
use crate::domain::routing::{Audience, audience, may_hear};
use crate::domain::users::Role;
use crate::error::{Error, Result};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioIn {
    audio_data: Bytes,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    sample_rate: Option<u32>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    target_user_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AudioOut<'a> {
    pub audio_data: Bytes,
    pub user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_private: Option<bool>,
    pub sample_rate: u32,
    pub channels: u8,
    pub timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

#[derive(Serialize)]
struct Delivered {
    ok: bool,
    delivered: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Broadcast,
    Private,
}

/// Where one frame goes.
enum Target {
    Nobody,
    /// Everyone in the meeting but the sender: `sockets` of them.
    Room {
        sockets: usize,
    },
    /// One user's sockets.
    User {
        id: String,
        sockets: usize,
    },
}

// `Turn` comes last: it takes the message's place in the socket's arrival order, and an
// extractor failing after it would waste the ticket.
pub async fn broadcast_audio(
    s: SocketRef,
    TryData(data): TryData<AudioIn>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
    turn: Turn,
) {
    turn.wait().await;
    let result = relay(&hub, &s, turn.session(), data, Kind::Broadcast).await;
    answer(&hub, &s, ack, result);
}

pub async fn private_audio(
    s: SocketRef,
    TryData(data): TryData<AudioIn>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
    turn: Turn,
) {
    turn.wait().await;
    let result = relay(&hub, &s, turn.session(), data, Kind::Private).await;
    answer(&hub, &s, ack, result);
}

fn answer(hub: &Arc<Hub>, s: &SocketRef, ack: AckSender, result: Result<u64>) {
    match result {
        Ok(delivered) => send_ack(
            hub,
            s,
            ack,
            &Delivered {
                ok: true,
                delivered,
            },
        ),
        Err(e) => {
            let limited = matches!(e, Error::RateLimited { .. });
            let body = error_body(e);
            if !limited {
                let _ = s.emit(
                    "stream-error",
                    &json!({"code": body["code"], "message": body["message"]}),
                );
            }
            send_ack(hub, s, ack, &body);
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEnd {
    #[serde(default)]
    target_user_id: Option<String>,
}

/// `private-stream-end`: the sender stopped talking in private; their counterpart gets
/// `private-stream-end {userId, timestamp}`. Without `targetUserId` the counterpart is the
/// meeting's private student (from the host) or the host (from a student).
pub async fn private_stream_end(
    s: SocketRef,
    TryData(data): TryData<StreamEnd>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = super::events::session(&s)?;
        let StreamEnd { target_user_id } = payload(data)?;
        let meeting = current_meeting(&session)?;
        let me = session.user.id.as_str();
        let to = hub
            .presence
            .with_room(&meeting, |room| {
                let to = target_user_id.clone().or_else(|| {
                    if me == room.route.host_id {
                        room.route.private_with.clone()
                    } else {
                        Some(room.route.host_id.clone())
                    }
                })?;
                paired(room, me, &to).then_some(to)
            })
            .flatten()
            .ok_or(Error::Forbidden(PAIRS_ONLY))?;
        let body = json!({"userId": me, "timestamp": timestamp(hub.services.now())});
        let _ = hub
            .io()
            .to(user_room(&meeting, &to))
            .emit("private-stream-end", &body)
            .await;
        Ok(json!({"targetUserId": to}))
    }
    .await;
    super::events::reply(&hub, &s, ack, result);
}

const PAIRS_ONLY: &str =
    "Private audio goes from the host to one participant, or from a student to the host";

/// Whether `speaker` may talk in private to `to`: the host to anyone else in the meeting, a
/// student to the host.
fn paired(room: &super::presence::Room, speaker: &str, to: &str) -> bool {
    let host = room.route.host_id.as_str();
    if speaker == host {
        to != host && room.has(to)
    } else {
        to == host
    }
}

async fn relay(
    hub: &Arc<Hub>,
    s: &SocketRef,
    session: &Session,
    data: Result<AudioIn, ParserError>,
    kind: Kind,
) -> Result<u64> {
    let stats = &hub.stats;
    stats.audio_in.fetch_add(1, Relaxed);
    match session.admit_audio(Instant::now()) {
        super::session::Admit::Yes => {}
        super::session::Admit::Throttled => {
            stats.audio_throttled.fetch_add(1, Relaxed);
            return Err(Error::RateLimited {
                retry_after: Duration::from_secs(1),
            });
        }
        super::session::Admit::Flooding => {
            stats.audio_throttled.fetch_add(1, Relaxed);
            stats.flood_disconnects.fetch_add(1, Relaxed);
            tracing::warn!(sid = %s.id, user = %session.user.id, "audio flood: disconnecting");
            hub.close_socket(s.id);
            return Err(Error::RateLimited {
                retry_after: Duration::from_secs(10),
            });
        }
    }
    let prepared = prepare(hub, data, &session.user.id, kind, session);
    let (frame, meeting, target, speaker) = match prepared {
        Ok(p) => p,
        Err(e) => {
            stats.audio_refused.fetch_add(1, Relaxed);
            return Err(e);
        }
    };
    // Offered to the meeting's recordings, which apply the routing rule themselves; a private
    // stream only when it reaches its one listener.
    let tap = match (&target, kind) {
        (_, Kind::Broadcast) => Some(None),
        (Target::User { id, .. }, Kind::Private) => Some(Some(id.as_str())),
        _ => None,
    };
    if let Some(to) = tap {
        hub.services.recorder.tap(&meeting).pcm(
            &session.user.id,
            frame.sample_rate,
            &frame.pcm,
            to,
        );
    }
    // For the meeting's WebRTC listeners (the SFU applies the routing rule on its legs).
    if kind == Kind::Broadcast {
        hub.media
            .relay_audio(&meeting, &session.user.id, frame.sample_rate, &frame.pcm);
    }
    let (expected, room) = match &target {
        Target::Nobody => return Ok(0),
        Target::Room { sockets } => (
            *sockets,
            hub.io()
                .to(meeting_room(&meeting))
                .except(user_room(&meeting, &session.user.id)),
        ),
        Target::User { id, sockets } => (*sockets, hub.io().to(user_room(&meeting, id))),
    };
    let now = timestamp(hub.services.now());
    let out = AudioOut {
        audio_data: frame.pcm,
        user_id: &session.user.id,
        role: (kind == Kind::Broadcast).then_some(session.user.role),
        is_private: (kind == Kind::Private).then_some(true),
        sample_rate: frame.sample_rate,
        channels: 1,
        timestamp: &now,
        seq: frame.seq,
    };
    let event = match kind {
        Kind::Broadcast => "audio-broadcast",
        Kind::Private => "private-stream-data",
    };
    let failed = failures(room.emit(event, &out).await);
    stats.audio_dropped.fetch_add(failed, Relaxed);
    let delivered = (expected as u64).saturating_sub(failed);
    stats.audio_delivered.fetch_add(delivered, Relaxed);

    if let Some((user, level)) = speaker {
        let body = json!({"userId": user, "level": level});
        let to = match &target {
            Target::User { id, .. } => hub
                .io()
                .to([user_room(&meeting, id), user_room(&meeting, &user)]),
            _ => hub.io().within(meeting_room(&meeting)),
        };
        let _ = to.emit("active-speaker", &body).await;
    }
    Ok(delivered)
}

struct Frame {
    pcm: Bytes,
    sample_rate: u32,
    seq: Option<u64>,
}

type Prepared = (Frame, Arc<str>, Target, Option<(String, f32)>);

/// The checks of a message's own fields: its size, format and sample rate.
fn checked(d: &AudioIn, limit: usize) -> Result<(Format, u32)> {
    if d.audio_data.len() > limit {
        return Err(Error::TooLarge {
            what: "audioData",
            limit,
        });
    }
    let format = Format::parse(d.format.as_deref())
        .ok_or_else(|| Error::invalid("format", "must be \"f32\" or \"s16\""))?;
    let sample_rate = d.sample_rate.unwrap_or(48_000);
    if !pcm::SAMPLE_RATES.contains(&sample_rate) {
        return Err(Error::invalid(
            "sampleRate",
            "must be between 8000 and 96000",
        ));
    }
    Ok((format, sample_rate))
}

/// Checks and converts one message and decides where it goes (under the presence lock, so a
/// mode switch or a mute applies from the next frame on).
fn prepare(
    hub: &Hub,
    data: Result<AudioIn, ParserError>,
    speaker: &str,
    kind: Kind,
    session: &Session,
) -> Result<Prepared> {
    let d = payload(data)?;
    let (format, sample_rate) = checked(&d, hub.config.max_audio_bytes)?;
    let meeting = current_meeting(session)?;
    let (pcm, level) = pcm::to_s16(&d.audio_data, format)
        .map_err(|e| Error::invalid("audioData", e.to_string()))?;
    let decided = hub.presence.with_room(&meeting, |room| {
        let target = match kind {
            Kind::Broadcast => match audience(&room.route, speaker) {
                Audience::Nobody => Target::Nobody,
                Audience::Everyone => Target::Room {
                    sockets: room.sockets_except(speaker),
                },
                Audience::Only(id) => Target::User {
                    id: id.to_owned(),
                    sockets: room.sockets_of(id),
                },
            },
            Kind::Private => {
                let to = d.target_user_id.as_deref().unwrap_or_default();
                if !paired(room, speaker, to) {
                    return Err(Error::Forbidden(PAIRS_ONLY));
                }
                if may_hear(&room.route, speaker, to) {
                    Target::User {
                        id: to.to_owned(),
                        sockets: room.sockets_of(to),
                    }
                } else {
                    Target::Nobody
                }
            }
        };
        let announce = match target {
            Target::Nobody => None,
            _ => room.speaker.observe(speaker, level, Instant::now()),
        };
        Ok((target, announce))
    });
    let (target, announce) = decided.ok_or(Error::Forbidden("Join a meeting first"))??;
    Ok((
        Frame {
            pcm,
            sample_rate,
            seq: d.seq,
        },
        meeting,
        target,
        announce,
    ))
}

/// Receivers whose queue was full (the frame is lost for them only).
fn failures(result: Result<(), BroadcastError>) -> u64 {
    match result {
        Ok(()) => 0,
        Err(BroadcastError::Socket(errors)) => errors
            .iter()
            .filter(|e| matches!(e, SocketError::InternalChannelFull))
            .count() as u64,
        Err(e) => {
            tracing::warn!(error = %e, "audio relay failed");
            0
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! The audio payload's decoding and checks (tests/fuzz/README.md): what socketioxide's
    //! `TryData<AudioIn>` deserializes, then `checked` and `pcm::to_s16`, as `prepare` runs them.
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzzing;

    const LIMIT: usize = 64 * 1024;

    /// The decoding and checks of one payload, and its error answer if refused.
    fn decode(v: Value) -> Result<(Bytes, f32, u32, Option<u64>), Value> {
        let data = serde_json::from_value::<AudioIn>(v).map_err(ParserError::new);
        let run = || -> Result<_> {
            let d = payload(data)?;
            let (format, rate) = checked(&d, LIMIT)?;
            let (pcm, level) = pcm::to_s16(&d.audio_data, format)
                .map_err(|e| Error::invalid("audioData", e.to_string()))?;
            Ok((pcm, level, rate, d.seq))
        };
        run().map_err(error_body)
    }

    fn is_error_answer(body: &Value) -> bool {
        body["ok"] == json!(false)
            && body["code"].as_str().is_some_and(|c| !c.is_empty())
            && body["message"].as_str().is_some_and(|m| !m.is_empty())
    }

    /// An audio payload near a valid one: each field valid, missing, or of another kind.
    fn audio_payload() -> impl Strategy<Value = Value> {
        let data = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| json!(b)),
            fuzzing::mutated(fuzzing::seeds("audio"), 4).prop_map(|b| json!(b)),
            Just(json!(vec![0u8; LIMIT + 2])),
            fuzzing::json(),
        ];
        let format = prop_oneof![
            Just(None),
            Just(Some(json!("f32"))),
            Just(Some(json!("s16"))),
            fuzzing::json().prop_map(Some),
        ];
        let rate = prop_oneof![
            Just(None),
            (0u32..200_000).prop_map(|r| Some(json!(r))),
            fuzzing::json().prop_map(Some),
        ];
        let seq = prop_oneof![
            Just(None),
            any::<u64>().prop_map(|s| Some(json!(s))),
            fuzzing::json().prop_map(Some)
        ];
        (prop::option::of(data), format, rate, seq).prop_map(|(data, format, rate, seq)| {
            let mut m = serde_json::Map::new();
            for (k, v) in [
                ("audioData", data),
                ("format", format),
                ("sampleRate", rate),
                ("seq", seq),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
    }

    proptest! {
        #![proptest_config(fuzzing::config(5_000))]

        /// Any payload: the error answer, or PCM that is what the payload said.
        #[test]
        fn fuzz_audio_payloads(v in prop_oneof![audio_payload(), fuzzing::json()]) {
            match decode(v.clone()) {
                Err(body) => prop_assert!(is_error_answer(&body), "{}", body),
                Ok((pcm, level, rate, seq)) => {
                    // As serde read it (an object, or an array in field order).
                    let d: AudioIn = serde_json::from_value(v).expect("decoded once");
                    let bytes = d.audio_data;
                    let s16 = d.format.as_deref() == Some("s16");
                    let width = if s16 { 2 } else { 4 };
                    prop_assert!(!bytes.is_empty() && bytes.len().is_multiple_of(width) && bytes.len() <= LIMIT);
                    prop_assert_eq!(pcm.len(), bytes.len() / width * 2);
                    if s16 {
                        prop_assert_eq!(&pcm[..], &bytes[..], "Int16 passes through");
                    }
                    prop_assert!((0.0..=1.0).contains(&level), "{}", level);
                    prop_assert!(pcm::SAMPLE_RATES.contains(&rate));
                    prop_assert_eq!(seq, d.seq);
                }
            }
        }

        /// Valid payloads round-trip: Int16 as it was, Float32 back to the Int16 it came from.
        #[test]
        fn fuzz_audio_round_trip(samples in prop::collection::vec(any::<i16>(), 1..480), rate in pcm::SAMPLE_RATES) {
            let s16: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            let (pcm, ..) = decode(json!({"audioData": s16, "format": "s16", "sampleRate": rate}))
                .expect("valid");
            prop_assert_eq!(&pcm[..], &s16[..]);
            let f32s: Vec<u8> = samples
                .iter()
                .map(|&s| if s < 0 { f32::from(s) / 32_768.0 } else { f32::from(s) / 32_767.0 })
                .flat_map(f32::to_le_bytes)
                .collect();
            let (pcm, level, back_rate, _) = decode(json!({"audioData": f32s, "sampleRate": rate}))
                .expect("valid");
            prop_assert_eq!(back_rate, rate);
            let back: Vec<i16> = pcm.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect();
            for (a, b) in samples.iter().zip(&back) {
                // Truncation toward zero may take the last bit.
                prop_assert!((i32::from(*a) - i32::from(*b)).abs() <= 1, "{} became {}", a, b);
            }
            let (_, level16, ..) = decode(json!({"audioData": s16, "format": "s16"})).expect("valid");
            prop_assert!((level - level16).abs() < 0.01, "{} against {}", level, level16);
        }

        /// Any bytes as PCM: refused only for what is not whole samples.
        #[test]
        fn fuzz_audio_to_s16(data in prop::collection::vec(any::<u8>(), 0..64), s16 in any::<bool>()) {
            let format = if s16 { Format::S16 } else { Format::F32 };
            let width = if s16 { 2 } else { 4 };
            match pcm::to_s16(&data, format) {
                Ok((out, level)) => {
                    prop_assert!(!data.is_empty() && data.len().is_multiple_of(width));
                    prop_assert_eq!(out.len(), data.len() / width * 2);
                    prop_assert!(level.is_finite() && (0.0..=1.0).contains(&level));
                }
                Err(_) => prop_assert!(data.is_empty() || !data.len().is_multiple_of(width)),
            }
        }
    }

    /// Seeds: 10 ms of a tone as the clients send it, Float32 and Int16.
    #[test]
    #[ignore = "writes tests/fuzz/corpus/audio once"]
    fn write_seeds() {
        let tone: Vec<f32> = (0..480)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect();
        let f32s: Vec<u8> = tone.iter().flat_map(|s| s.to_le_bytes()).collect();
        fuzzing::write_seed("audio", "tone-f32.bin", &f32s);
        let s16: Vec<u8> = tone
            .iter()
            .flat_map(|&s| pcm::f32_to_s16(s).to_le_bytes())
            .collect();
        fuzzing::write_seed("audio", "tone-s16.bin", &s16);
    }
}
