//! WebRTC signalling over Socket.IO: `webrtc-signal` from a client goes to the SFU, whose
//! offers, answers and candidates come back to the socket that owns the connection; the
//! SFU's audio levels feed the meeting's `active-speaker`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError};
use tokio::sync::mpsc;

use super::events::{current_meeting, payload, reply, session};
use super::session::{OFFERS_PER_SECOND, SIGNALS_PER_SECOND};
use super::{Hub, meeting_room, user_room};
use crate::error::{Error, Result};
use crate::media::{MediaError, MediaEvent, Signal};

/// An SDP larger than this is refused: a server offer for 49 speakers is about 40 KB.
const MAX_SDP_BYTES: usize = 128 * 1024;

#[derive(Deserialize)]
pub struct SignalIn {
    signal: Signal,
}

pub async fn webrtc_signal(
    s: SocketRef,
    TryData(data): TryData<SignalIn>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = session(&s)?;
        let SignalIn { signal } = payload(data)?;
        let meeting = current_meeting(&session)?;
        if !session.admit_signal(Instant::now()) {
            return Err(rate_limited(SIGNALS_PER_SECOND));
        }
        let user = session.user.id.as_str();
        let owner = s.id.to_string();
        let media = &hub.media;
        match signal {
            Signal::Offer { sdp } => {
                check_size(&sdp)?;
                let sections = sdp.lines().filter(|l| l.starts_with("m=")).count();
                if sections != 1 || crate::media::sdp::audio_sections(&sdp) != 1 {
                    return Err(Error::invalid(
                        "signal.sdp",
                        "an offer has exactly one section: the microphone's audio",
                    ));
                }
                // Only an offer that will open a connection (and take a port) counts here.
                if !session.admit_offer(Instant::now()) {
                    return Err(rate_limited(OFFERS_PER_SECOND));
                }
                let answer = media
                    .offer(&meeting, user, &owner, sdp, || hub.route(&meeting))
                    .await
                    .map_err(error)?;
                Ok(json!({"signal": {"type": "answer", "sdp": answer}}))
            }
            Signal::Answer { sdp } => {
                check_size(&sdp)?;
                media
                    .answer(&meeting, user, &owner, sdp)
                    .await
                    .map_err(error)?;
                Ok(json!({}))
            }
            Signal::Candidate { candidate } => {
                if candidate.candidate.len() > 1024 {
                    return Err(Error::invalid(
                        "signal.candidate.candidate",
                        "is longer than 1024 characters",
                    ));
                }
                media
                    .candidate(&meeting, user, &owner, candidate, || hub.route(&meeting))
                    .await
                    .map_err(error)?;
                Ok(json!({}))
            }
        }
    }
    .await;
    reply(&hub, &s, ack, result);
}

fn rate_limited(per_second: f64) -> Error {
    Error::RateLimited {
        retry_after: std::time::Duration::from_secs_f64((1.0 / per_second).ceil()),
    }
}

fn check_size(sdp: &str) -> Result<()> {
    if sdp.len() > MAX_SDP_BYTES {
        return Err(Error::TooLarge {
            what: "SDP",
            limit: MAX_SDP_BYTES,
        });
    }
    if sdp.trim().is_empty() {
        return Err(Error::invalid("signal.sdp", "is empty"));
    }
    Ok(())
}

fn error(e: MediaError) -> Error {
    match e {
        MediaError::BadSignal(m) => Error::BadRequest(m),
        MediaError::NoPeer => Error::conflict("no_peer_connection", e.to_string()),
        MediaError::Unavailable(message) => Error::Unavailable {
            code: "media_unavailable",
            message,
        },
        MediaError::Ended => Error::conflict("meeting_ended", e.to_string()),
    }
}

/// Signals waiting for room in their socket's queue, oldest first. A signal is never
/// dropped for a momentarily full queue (a lost offer would close the connection after the
/// answer timeout): it waits here, and every later signal of that socket waits behind it, so
/// the order holds.
#[derive(Default)]
struct Backlog {
    waiting: HashMap<Sid, (Instant, VecDeque<Value>)>,
}

/// How often a backlog is retried, how many signals a socket may have waiting, and how long.
const RETRY: Duration = Duration::from_millis(20);
const BACKLOG_SIGNALS: usize = 256;
const BACKLOG_AGE: Duration = Duration::from_secs(15);

impl Backlog {
    fn send(&mut self, hub: &Arc<Hub>, sid: Sid, body: Value) {
        match self.waiting.get_mut(&sid) {
            Some((since, queue)) => {
                if queue.len() >= BACKLOG_SIGNALS || since.elapsed() > BACKLOG_AGE {
                    // Its connection cannot be negotiated any more: the client reconnects.
                    tracing::warn!(%sid, waiting = queue.len(), "a socket takes no WebRTC signals: disconnecting it");
                    self.waiting.remove(&sid);
                    hub.disconnect_unreadable(sid);
                } else {
                    queue.push_back(body);
                }
            }
            None => {
                if let Some(body) = Self::emit(hub, sid, body) {
                    self.waiting
                        .insert(sid, (Instant::now(), VecDeque::from([body])));
                }
            }
        }
    }

    /// Emits; gives the body back when the socket's queue is full.
    fn emit(hub: &Hub, sid: Sid, body: Value) -> Option<Value> {
        let socket = hub.io().get_socket(sid)?;
        match socket.emit("webrtc-signal", &body) {
            Ok(()) => None,
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Some(body),
            Err(e) => {
                tracing::debug!(%sid, error = %e, "a WebRTC signal for a closed socket");
                None
            }
        }
    }

    /// Sends what now fits, oldest first; a socket that took something starts a new wait.
    fn retry(&mut self, hub: &Hub) {
        self.waiting.retain(|sid, (since, queue)| {
            let before = queue.len();
            while let Some(body) = queue.pop_front() {
                if let Some(body) = Self::emit(hub, *sid, body) {
                    queue.push_front(body);
                    if queue.len() < before {
                        *since = Instant::now();
                    }
                    return true;
                }
            }
            false
        });
    }
}

/// SFU events → socket events.
pub async fn run_media_events(hub: Arc<Hub>, mut rx: mpsc::UnboundedReceiver<MediaEvent>) {
    let mut backlog = Backlog::default();
    let mut retry = tokio::time::interval(RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = rx.recv() => match event {
                Some(event) => event,
                None => return,
            },
            _ = retry.tick(), if !backlog.waiting.is_empty() => {
                backlog.retry(&hub);
                continue;
            }
        };
        match event {
            MediaEvent::Signal { owner, signal } => {
                if let Ok(sid) = owner.parse::<Sid>() {
                    backlog.send(&hub, sid, json!({"signal": signal}));
                }
            }
            MediaEvent::Levels { meeting, levels } => {
                let now = Instant::now();
                let announced = hub.presence.with_room(&meeting, |r| {
                    let mut out = None;
                    for (user, level) in &levels {
                        if let Some(a) = r.speaker.observe(user, *level, now) {
                            out = Some(a);
                        }
                    }
                    out.map(|a| (a, r.route.private_with.clone(), r.route.host_id.clone()))
                });
                if let Some(Some(((user, level), private_with, host))) = announced {
                    let body: Value = json!({"userId": user, "level": level});
                    let to = match private_with {
                        Some(student) => hub
                            .io()
                            .to([user_room(&meeting, &host), user_room(&meeting, &student)]),
                        None => hub.io().within(meeting_room(&meeting)),
                    };
                    let _ = to.emit("active-speaker", &body).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! The `webrtc-signal` payload's decoding and checks (tests/fuzz/README.md).
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::fuzzing;
    use crate::media::Candidate;

    fn signal() -> impl Strategy<Value = Signal> {
        let sdp = prop_oneof![
            fuzzing::mutated_text(fuzzing::text_seeds("sdp"), 4),
            "\\PC{0,40}"
        ];
        prop_oneof![
            sdp.clone().prop_map(|sdp| Signal::Offer { sdp }),
            sdp.prop_map(|sdp| Signal::Answer { sdp }),
            (
                "\\PC{0,60}",
                prop::option::of("\\PC{0,4}"),
                prop::option::of(any::<u16>()),
            )
                .prop_map(|(candidate, sdp_mid, sdp_mline_index)| Signal::Candidate {
                    candidate: Candidate {
                        candidate,
                        sdp_mid,
                        sdp_mline_index
                    },
                }),
        ]
    }

    /// A payload near a valid one: the type, the fields, each valid, missing or anything.
    fn signal_payload() -> impl Strategy<Value = Value> {
        let kind = prop_oneof![
            Just(json!("offer")),
            Just(json!("answer")),
            Just(json!("candidate")),
            fuzzing::json()
        ];
        (kind, fuzzing::json(), fuzzing::json(), any::<bool>()).prop_map(|(kind, a, b, wrap)| {
            let inner = json!({"type": kind, "sdp": a, "candidate": b});
            if wrap {
                json!({"signal": inner})
            } else {
                inner
            }
        })
    }

    proptest! {
        #![proptest_config(fuzzing::config(10_000))]

        /// Any payload: refused with the error answer, or a signal of one of the three kinds.
        #[test]
        fn fuzz_signal_payloads(v in prop_oneof![signal_payload(), fuzzing::json()]) {
            let data = serde_json::from_value::<SignalIn>(v.clone()).map_err(socketioxide::ParserError::new);
            match payload(data) {
                Ok(SignalIn { signal }) => {
                    let kind = v["signal"]["type"].as_str().expect("a typed signal");
                    let same = match &signal {
                        Signal::Offer { .. } => kind == "offer",
                        Signal::Answer { .. } => kind == "answer",
                        Signal::Candidate { .. } => kind == "candidate",
                    };
                    prop_assert!(same, "{}", v);
                }
                Err(e) => {
                    let body = super::super::events::error_body(e);
                    prop_assert_eq!(&body["ok"], &json!(false));
                    prop_assert_eq!(&body["code"], &json!("bad_request"), "{}", body);
                }
            }
        }

        /// Every signal the server sends or takes reads back as itself.
        #[test]
        fn fuzz_signal_round_trip(s in signal()) {
            let v = json!({"signal": serde_json::to_value(&s).expect("json")});
            let SignalIn { signal } = serde_json::from_value(v).expect("reads back");
            prop_assert_eq!(signal, s);
        }

        /// The size check: refused exactly when too large or blank.
        #[test]
        fn fuzz_signal_sdp_size(sdp in prop_oneof!["\\PC{0,40}", "[ \t\r\n]{0,8}"], pad in 0usize..3) {
            let sdp = match pad {
                0 => sdp,
                1 => format!("{sdp}{}", "a".repeat(MAX_SDP_BYTES - sdp.len().min(MAX_SDP_BYTES))),
                _ => format!("{sdp}{}", "a".repeat(MAX_SDP_BYTES + 1)),
            };
            let refused = sdp.len() > MAX_SDP_BYTES || sdp.trim().is_empty();
            prop_assert_eq!(check_size(&sdp).is_err(), refused);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::error;
    use crate::error::ApiError;
    use crate::media::MediaError;

    /// What the media engine answers reaches the client as the error table of docs/API.md has
    /// it. `media_unavailable` (a connection the engine could not build) has no outside trigger:
    /// this is where it is checked.
    #[test]
    fn media_errors_are_the_documented_answers() {
        for (e, status, code) in [
            (
                MediaError::BadSignal("Invalid offer".into()),
                400,
                "bad_request",
            ),
            (MediaError::NoPeer, 409, "no_peer_connection"),
            (
                MediaError::Unavailable("No connection could be made: no port".into()),
                503,
                "media_unavailable",
            ),
            (MediaError::Ended, 409, "meeting_ended"),
        ] {
            let message = e.to_string();
            let api = ApiError::from(error(e));
            assert_eq!((api.status.as_u16(), api.code), (status, code), "{message}");
            assert!(!api.message.is_empty());
        }
        let body = super::super::events::error_body(error(MediaError::Unavailable("x".into())));
        assert_eq!(
            body,
            json!({"ok": false, "code": "media_unavailable", "message": "x"})
        );
    }
}
