//! WebRTC signalling over Socket.IO: `webrtc-signal` from a client goes to the SFU, whose
//! offers, answers and candidates come back to the socket that owns the connection; the
//! SFU's audio levels feed the meeting's `active-speaker`.

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, SocketRef, State, TryData};
use socketioxide::socket::Sid;
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
    reply(ack, result);
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

/// SFU events → socket events.
pub async fn run_media_events(hub: Arc<Hub>, mut rx: mpsc::UnboundedReceiver<MediaEvent>) {
    while let Some(event) = rx.recv().await {
        match event {
            MediaEvent::Signal { owner, signal } => {
                let socket = owner
                    .parse::<Sid>()
                    .ok()
                    .and_then(|sid| hub.io().get_socket(sid));
                if let Some(s) = socket
                    && let Err(e) = s.emit("webrtc-signal", &json!({"signal": signal}))
                {
                    // A full socket queue: an unanswered offer then closes the connection
                    // after `media.answer_timeout_ms`, and the client makes a new one.
                    tracing::warn!(sid = %s.id, error = %e, "a WebRTC signal could not be sent");
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
