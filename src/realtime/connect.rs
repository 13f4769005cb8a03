//! Connecting: credentials in any of the three forms of API.md, the verified identity, joining
//! the meeting under the REST rules, `connection-ack`, and what a disconnect releases.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::session::Session;
use super::{Hub, meeting_room, user_room};
use crate::error::{Error, Result};

/// The one message a refused client gets (`connect_error`), whatever the reason.
#[derive(Debug)]
pub struct AuthFailed;

impl std::fmt::Display for AuthFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authentication failed")
    }
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub meeting_id: Option<String>,
}

impl Credentials {
    fn has_token(&self) -> bool {
        self.token.as_deref().is_some_and(|t| !t.is_empty())
    }
}

/// The credentials, first match wins: the `auth` object; the query's `token` and `meetingId`;
/// the query's `auth`, base64 of a JSON object (the original's clients). Other fields such as
/// `userId` or `role` are ignored: identity comes from the verified token only.
pub fn credentials(auth: Option<&Value>, query: Option<&str>) -> Option<Credentials> {
    if let Some(c) = auth
        .filter(|a| a.is_object())
        .and_then(|a| Credentials::deserialize(a).ok())
        .filter(Credentials::has_token)
    {
        return Some(c);
    }
    let query: HashMap<String, String> = serde_urlencoded::from_str(query?).ok()?;
    if query.get("token").is_some_and(|t| !t.is_empty()) {
        return Some(Credentials {
            token: query.get("token").cloned(),
            meeting_id: query.get("meetingId").cloned(),
        });
    }
    // A `+` that was not percent-encoded arrives as a space.
    let encoded = query.get("auth")?.trim().replace(' ', "+");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_end_matches('='))
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded.trim_end_matches('='))
        })
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('='))
        })
        .ok()?;
    serde_json::from_slice::<Credentials>(&bytes)
        .ok()
        .filter(Credentials::has_token)
}

/// The connect middleware: refuses with "Authentication failed", or leaves a ready session
/// (joined to its meeting, handlers registered) on the socket.
pub async fn authenticate(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    State(hub): State<Arc<Hub>>,
) -> Result<(), AuthFailed> {
    let refuse = |why: &str| {
        hub.stats
            .auth_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(sid = %s.id, reason = why, "socket refused");
        AuthFailed
    };
    let Some(creds) = credentials(auth.ok().as_ref(), s.req_parts().uri.query()) else {
        return Err(refuse("no credentials"));
    };
    let token = creds.token.clone().unwrap_or_default();
    let user = hub
        .services
        .authenticate(&token)
        .await
        .map_err(|e| refuse(&e.to_string()))?;
    // From here a revocation of the account closes this socket (`MeetingEvent::Revoked`);
    // `on_connect` checks the token once more for one made before the socket could be found.
    s.join(super::account_room(&user.id));
    s.extensions.insert(Checked(token));
    let session = Arc::new(Session::new(user, &hub.config, Instant::now()));
    let mut ack = match creds.meeting_id.as_deref() {
        Some(m) if !m.is_empty() => enter(&hub, &s, &session, m)
            .await
            .map_err(|e| refuse(&e.to_string()))?,
        _ => json!({"meetingId": null, "mode": null, "participants": [], "recording": null}),
    };
    ack["status"] = json!("connected");
    ack["socketId"] = json!(s.id.to_string());
    ack["userId"] = json!(session.user.id);
    ack["role"] = json!(session.user.role);
    session.set_ack(ack);
    s.extensions.insert(Arc::clone(&session));
    // Registered before the CONNECT packet goes out, so no early event is lost.
    super::events::register(&s);
    hub.stats
        .connects
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    hub.stats
        .sockets
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(sid = %s.id, user = %session.user.id, "socket connected");
    Ok(())
}

/// The token a socket connected with, until `on_connect` has checked it again.
#[derive(Clone)]
struct Checked(String);

/// After CONNECT: the token checked again (an account revoked while the socket connected, before
/// a revocation could find it, is closed now), then `connection-ack`.
pub async fn on_connect(s: SocketRef, State(hub): State<Arc<Hub>>) {
    if let Some(Checked(token)) = s.extensions.remove::<Checked>()
        && let Err(e) = hub.services.authenticate(&token).await
    {
        tracing::info!(sid = %s.id, reason = %e, "the socket's token was revoked as it connected");
        let _ = s.disconnect();
        return;
    }
    if let Some(ack) = s
        .extensions
        .get::<Arc<Session>>()
        .and_then(|se| se.take_ack())
    {
        let _ = s.emit("connection-ack", &ack);
    }
}

/// Joins the socket's user to a meeting under the REST rules and puts the socket in it.
/// Returns `{meetingId, mode, participants}`.
pub async fn enter(
    hub: &Arc<Hub>,
    s: &SocketRef,
    session: &Session,
    meeting_id: &str,
) -> Result<Value> {
    let user = &session.user;
    let joined = hub.services.join_meeting(user, meeting_id).await?;
    let id = joined.meeting.id.clone();
    let (_, route) = hub.services.route_state(&id).await?;
    hub.presence.attach(&id, route, &user.id, s.id);
    let attached = hub.presence.with_room(&id, |r| r.route_version);
    // Read again now that the socket is visible to the event task: a mode change, a mute or
    // the end that happened in between is not missed.
    let (meeting, route) = hub.services.route_state(&id).await?;
    if !meeting.status.is_open() {
        hub.presence.detach(&id, &user.id, s.id);
        return Err(Error::conflict("meeting_ended", "This meeting has ended"));
    }
    // Unless the event task changed the route meanwhile (then it is newer than this read).
    hub.update_room(&id, |r| {
        if Some(r.route_version) == attached {
            r.route = route;
        }
    });
    s.join([meeting_room(&id), user_room(&id, &user.id)]);
    session.set_meeting(Some(id.as_str().into()));
    // The recording running now, read after the socket joined its rooms: a `recording-started`
    // sent before (by this very join, with `recordings.auto_start`) did not reach it, and one
    // started from now on will.
    let recording = hub.services.meeting(&id).await?.recording;
    Ok(json!({
        "meetingId": id,
        "mode": meeting.mode,
        "participants": joined.participants,
        "recording": recording,
    }))
}

/// When a socket's seat is released after it leaves its meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// At once: the client or the server ended the connection on purpose.
    Now,
    /// After the reconnect grace, if no socket of the user is back.
    AfterGrace,
    /// Never: the server is stopping; the next start clears stale seats.
    Never,
}

/// Takes the socket out of its meeting; releases the user's seat when it was their last socket.
pub async fn leave(hub: &Arc<Hub>, s: &SocketRef, session: &Session, release: Release) {
    let Some(meeting) = session.set_meeting(None) else {
        return;
    };
    let user = &session.user.id;
    s.leave([meeting_room(&meeting), user_room(&meeting, user)]);
    hub.media.leave(&meeting, user, Some(&s.id.to_string()));
    if hub.presence.detach(&meeting, user, s.id) != super::presence::Detached::LastSocket {
        return;
    }
    match release {
        Release::Now => {
            if let Err(e) = hub.services.release_seat(&meeting, user).await {
                tracing::warn!(error = %e, %meeting, "could not release a seat");
            }
        }
        Release::AfterGrace => {
            hub.release_unless_back(meeting, user.clone(), hub.config.reconnect_grace);
        }
        Release::Never => {}
    }
}

pub async fn on_disconnect(s: SocketRef, reason: DisconnectReason, State(hub): State<Arc<Hub>>) {
    let Some(session) = s.extensions.get::<Arc<Session>>() else {
        return;
    };
    hub.stats
        .sockets
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let release = match reason {
        DisconnectReason::ClientNSDisconnect | DisconnectReason::ServerNSDisconnect => Release::Now,
        DisconnectReason::ClosingServer => Release::Never,
        _ => Release::AfterGrace,
    };
    tracing::debug!(sid = %s.id, %reason, "socket disconnected");
    leave(&hub, &s, &session, release).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(token: &str, meeting: Option<&str>) -> Option<Credentials> {
        Some(Credentials {
            token: Some(token.into()),
            meeting_id: meeting.map(Into::into),
        })
    }

    #[test]
    fn three_forms_first_match_wins() {
        let auth = json!({"token": "a", "meetingId": "m1", "userId": "ignored", "role": "admin"});
        assert_eq!(
            credentials(Some(&auth), Some("token=b&meetingId=m2")),
            creds("a", Some("m1"))
        );
        assert_eq!(
            credentials(Some(&json!({})), Some("token=b&meetingId=m2")),
            creds("b", Some("m2"))
        );
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(br#"{"token":"c","meetingId":"m3","userId":"x","role":"host","username":"u"}"#);
        let q = format!("auth={}", urlencode(&b64));
        assert_eq!(credentials(None, Some(&q)), creds("c", Some("m3")));
        // Unencoded `+` (read as a space) and missing padding still decode.
        let raw = format!("auth={}", b64.trim_end_matches('=').replace('+', " "));
        assert_eq!(credentials(None, Some(&raw)), creds("c", Some("m3")));
        assert_eq!(credentials(Some(&json!({"meetingId": "m"})), None), None);
        assert_eq!(credentials(None, Some("auth=%%%")), None);
        assert_eq!(
            credentials(None, Some("auth=bm90IGpzb24")),
            None,
            "not JSON"
        );
        assert_eq!(credentials(Some(&json!({"token": 5})), None), None);
        assert_eq!(credentials(None, Some("token=")), None);
    }

    fn urlencode(s: &str) -> String {
        s.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    }
}
