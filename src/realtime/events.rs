//! The client's control events: join and leave, self-mute status, host mutes, the mode and
//! private-talk requests (also by the original server's event names), pong, and the
//! acknowledgement every event may ask for: `{ok:true, ...}` or `{ok:false, code, message}`.
//! Every one goes through the service's permission checks: an original event name gives a
//! student no more than meet's own.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::{SendError, SocketError};

use super::connect::{self, Release};
use super::session::Session;
use super::{Hub, meeting_room, user_room};
use crate::domain::meetings::Mode;
use crate::error::{ApiError, Error, Result};

pub fn register(s: &SocketRef) {
    s.on("join-meeting", join_meeting);
    s.on("leave-meeting", leave_meeting);
    s.on("broadcast-audio", super::relay::broadcast_audio);
    s.on("audio-stream", super::relay::broadcast_audio);
    s.on("audio-stream-data", super::relay::broadcast_audio);
    s.on("private-audio-stream", super::relay::private_audio);
    s.on("private-stream-data", super::relay::private_audio);
    s.on("private-stream-end", super::relay::private_stream_end);
    s.on("audio-status", audio_status);
    s.on("audio-status-change", audio_status);
    s.on("mute-participant", mute_participant);
    s.on("unmute-participant", unmute_participant);
    // The mode events and the answers to a private-talk request: each one call of
    // `set_mode` or `answer_private`.
    for (event, mode) in [
        ("switch-mode", None),
        ("enable-private-mode", Some(Mode::Private)),
        ("disable-private-mode", Some(Mode::Broadcast)),
        ("end-private-chat", Some(Mode::Broadcast)),
    ] {
        s.on(
            event,
            move |s: SocketRef,
                  TryData(d): TryData<Value>,
                  ack: AckSender,
                  State(hub): State<Arc<Hub>>| async move {
                reply(&hub, &s, ack, set_mode(&s, &hub, d, mode).await);
            },
        );
    }
    for (event, accept) in [
        ("accept-private-conversation", true),
        ("accept-private-chat", true),
        ("decline-private-conversation", false),
    ] {
        s.on(
            event,
            move |s: SocketRef,
                  TryData(d): TryData<Value>,
                  ack: AckSender,
                  State(hub): State<Arc<Hub>>| async move {
                reply(&hub, &s, ack, answer_private(&s, &hub, d, accept).await);
            },
        );
    }
    s.on("request-private-conversation", request_private);
    s.on("request-private-chat", request_private);
    s.on("pong", pong);
    s.on("webrtc-signal", super::signal::webrtc_signal);
    s.on_fallback(unknown_event);
    s.on_disconnect(connect::on_disconnect);
}

/// The socket's session (always present on a connected socket).
pub fn session(s: &SocketRef) -> Result<Arc<Session>> {
    s.extensions
        .get::<Arc<Session>>()
        .ok_or(Error::Unauthorized)
}

/// The error acknowledgement for `e`.
pub fn error_body(e: Error) -> Value {
    let api = ApiError::from(e);
    json!({"ok": false, "code": api.code, "message": api.message})
}

/// Answers the acknowledgement, if the client asked for one: `{ok:true, ...}` or the error.
pub fn reply(hub: &Arc<Hub>, s: &SocketRef, ack: AckSender, result: Result<Value>) {
    let body = match result {
        Ok(Value::Object(mut m)) => {
            m.insert("ok".into(), Value::Bool(true));
            Value::Object(m)
        }
        Ok(_) => json!({"ok": true}),
        Err(e) => error_body(e),
    };
    send_ack(hub, s, ack, &body);
}

/// Sends an acknowledgement. One that finds the socket's outgoing queue full (the client has
/// stopped reading: megabytes wait in the connection already) cannot wait for room, and a
/// lost one leaves the client waiting for ever on that request: the socket is disconnected
/// instead, and the client reconnects and asks again.
pub fn send_ack<T: Serialize + ?Sized>(hub: &Arc<Hub>, s: &SocketRef, ack: AckSender, body: &T) {
    match ack.send(body) {
        Ok(()) => {}
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            tracing::warn!(sid = %s.id, "an acknowledgement found the socket's queue full: disconnecting it");
            hub.disconnect_unreadable(s.id);
        }
        Err(SendError::Socket(SocketError::Closed)) => {
            tracing::debug!(sid = %s.id, "an acknowledgement for a closed socket");
        }
        Err(e) => tracing::warn!(sid = %s.id, error = %e, "an acknowledgement was not sent"),
    }
}

/// A payload, or a validation error that says what is wrong with it.
pub fn payload<T: DeserializeOwned>(data: Result<T, socketioxide::ParserError>) -> Result<T> {
    data.map_err(|e| Error::BadRequest(format!("Malformed payload: {e}")))
}

/// The meeting the socket is in.
pub fn current_meeting(session: &Session) -> Result<Arc<str>> {
    session
        .meeting()
        .ok_or(Error::Forbidden("Join a meeting first"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MeetingRef {
    meeting_id: String,
}

async fn join_meeting(
    s: SocketRef,
    TryData(data): TryData<MeetingRef>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = session(&s)?;
        let MeetingRef { meeting_id } = payload(data)?;
        // One meeting per socket: joining another leaves the current one. Joining the same
        // one again is a rejoin (no write) and answers the same way.
        if session.meeting().as_deref() != Some(meeting_id.as_str()) {
            connect::leave(&hub, &s, &session, Release::Now).await;
        }
        connect::enter(&hub, &s, &session, &meeting_id).await
    }
    .await;
    reply(&hub, &s, ack, result);
}

async fn leave_meeting(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = session(&s)?;
        let current = current_meeting(&session)?;
        if let Some(id) = data
            .ok()
            .as_ref()
            .and_then(|d| d.get("meetingId"))
            .and_then(Value::as_str)
            && id != &*current
        {
            return Err(Error::Forbidden("You are not in this meeting"));
        }
        connect::leave(&hub, &s, &session, Release::Now).await;
        Ok(json!({"meetingId": &*current}))
    }
    .await;
    reply(&hub, &s, ack, result);
}

/// `audio-status {muted}`, or the original's `audio-status-change {isActive}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AudioStatus {
    muted: Option<bool>,
    is_active: Option<bool>,
}

async fn audio_status(
    s: SocketRef,
    TryData(data): TryData<AudioStatus>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = session(&s)?;
        let status = payload(data)?;
        let muted = status
            .muted
            .or(status.is_active.map(|active| !active))
            .ok_or_else(|| Error::invalid("muted", "is required (or isActive)"))?;
        let meeting = current_meeting(&session)?;
        let user = &session.user.id;
        let body = json!({
            "userId": user, "muted": muted, "isActive": !muted, "role": session.user.role,
        });
        let _ = hub
            .io()
            .to(meeting_room(&meeting))
            .except(user_room(&meeting, user))
            .emit("participant-audio-status", &body)
            .await;
        Ok(json!({}))
    }
    .await;
    reply(&hub, &s, ack, result);
}

/// `{userId}`, or the original's `{participantId}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserRef {
    user_id: Option<String>,
    participant_id: Option<String>,
}

async fn set_muted(
    s: &SocketRef,
    hub: &Hub,
    data: Result<UserRef, socketioxide::ParserError>,
    muted: bool,
) -> Result<Value> {
    let session = session(s)?;
    let who = payload(data)?;
    let user_id = who
        .user_id
        .or(who.participant_id)
        .ok_or_else(|| Error::invalid("userId", "is required"))?;
    let meeting = current_meeting(&session)?;
    hub.services
        .set_muted(&session.user, &meeting, &user_id, muted)
        .await?;
    Ok(json!({"userId": user_id, "muted": muted}))
}

async fn mute_participant(
    s: SocketRef,
    TryData(data): TryData<UserRef>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    reply(&hub, &s, ack, set_muted(&s, &hub, data, true).await);
}

async fn unmute_participant(
    s: SocketRef,
    TryData(data): TryData<UserRef>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    reply(&hub, &s, ack, set_muted(&s, &hub, data, false).await);
}

/// The mode events' payload: meet's `participantId` or the original's `studentId` /
/// `targetUserId` for the student; `meetingId` (optional) must be the socket's meeting.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ModeBody {
    meeting_id: Option<String>,
    mode: Option<String>,
    participant_id: Option<String>,
    student_id: Option<String>,
    target_user_id: Option<String>,
}

impl ModeBody {
    fn student(&self) -> Option<&str> {
        self.participant_id
            .as_deref()
            .or(self.student_id.as_deref())
            .or(self.target_user_id.as_deref())
    }
}

/// A mode event's payload; none at all (`emit("disable-private-mode")`) reads as `{}`.
fn mode_body(data: Result<Value, socketioxide::ParserError>) -> Result<ModeBody> {
    match payload(data)? {
        Value::Null => Ok(ModeBody::default()),
        v => serde_json::from_value(v)
            .map_err(|e| Error::BadRequest(format!("Malformed payload: {e}"))),
    }
}

/// The socket's meeting, checked against a `meetingId` the payload may name.
fn meeting_of(session: &Session, named: Option<&str>) -> Result<Arc<str>> {
    let current = current_meeting(session)?;
    match named {
        Some(id) if id != &*current => Err(Error::Forbidden("You are not in this meeting")),
        _ => Ok(current),
    }
}

async fn set_mode(
    s: &SocketRef,
    hub: &Hub,
    data: Result<Value, socketioxide::ParserError>,
    mode: Option<Mode>,
) -> Result<Value> {
    let session = session(s)?;
    let body = mode_body(data)?;
    let meeting = meeting_of(&session, body.meeting_id.as_deref())?;
    let mode = match mode {
        Some(m) => m,
        None => body
            .mode
            .as_deref()
            .and_then(Mode::parse)
            .ok_or_else(|| Error::invalid("mode", "must be \"private\" or \"broadcast\""))?,
    };
    let m = hub
        .services
        .switch_mode(&session.user, &meeting, mode, body.student())
        .await?;
    Ok(json!({"meetingId": m.id, "mode": m.mode, "participantId": m.private_participant_id}))
}

/// A student asks the host for a private talk (`request-private-conversation`).
async fn request_private(
    s: SocketRef,
    TryData(data): TryData<Value>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = session(&s)?;
        let body = mode_body(data)?;
        let meeting = meeting_of(&session, body.meeting_id.as_deref())?;
        let r = hub
            .services
            .request_private(&session.user, &meeting)
            .await?;
        Ok(json!({"meetingId": r.meeting_id, "at": super::timestamp(r.at)}))
    }
    .await;
    reply(&hub, &s, ack, result);
}

async fn answer_private(
    s: &SocketRef,
    hub: &Hub,
    data: Result<Value, socketioxide::ParserError>,
    accept: bool,
) -> Result<Value> {
    let session = session(s)?;
    let body = mode_body(data)?;
    let meeting = meeting_of(&session, body.meeting_id.as_deref())?;
    let student = body
        .student()
        .ok_or_else(|| Error::invalid("studentId", "is required"))?;
    let m = hub
        .services
        .answer_private(&session.user, &meeting, student, accept)
        .await?;
    Ok(json!({"meetingId": m.id, "mode": m.mode, "participantId": m.private_participant_id}))
}

#[derive(Deserialize)]
struct Pong {
    timestamp: Option<String>,
}

/// The answer to our `ping {timestamp}`: the round trip, kept for the dashboard.
async fn pong(
    s: SocketRef,
    TryData(data): TryData<Pong>,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let result = async {
        let session = session(&s)?;
        let Pong { timestamp } = payload(data)?;
        if let Some(sent) = timestamp
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            && let Ok(rtt) = (hub.services.now() - sent.with_timezone(&chrono::Utc)).to_std()
        {
            session.set_rtt(rtt);
        }
        Ok(json!({}))
    }
    .await;
    reply(&hub, &s, ack, result);
}

async fn unknown_event(
    s: SocketRef,
    Event(name): Event,
    ack: AckSender,
    State(hub): State<Arc<Hub>>,
) {
    let message = format!(
        "Unknown event `{}`",
        name.chars().take(64).collect::<String>()
    );
    let body = json!({"ok": false, "code": "unknown_event", "message": message});
    send_ack(&hub, &s, ack, &body);
}
