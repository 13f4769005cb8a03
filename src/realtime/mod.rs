//! The live side of meetings: Socket.IO at `/ws` (socketioxide, on the HTTP listener), presence,
//! the audio relay, and the meeting events the service announces, turned into socket events.
//!
//! `connect` authenticates and joins at connect time, `events` handles the control events,
//! `relay` the audio, `presence` keeps who is connected where, `session` what one socket carries,
//! `signal` passes WebRTC signalling between sockets and the SFU (`crate::media`).

mod bridge;
mod connect;
mod events;
pub mod pcm;
mod presence;
mod relay;
mod session;
mod signal;
pub mod snapshot;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::json;
use socketioxide::handler::ConnectHandler as _;
use socketioxide::socket::Sid;
use socketioxide::{ParserConfig, SocketIo, layer::SocketIoLayer};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use self::presence::Presence;
use crate::config::RealtimeConfig;
use crate::domain::routing::RouteState;
use crate::media::Sfu;
use crate::service::{MeetingEvent, Services};

/// Engine.IO packets (and polling bodies) may be this large: a 64 KiB audio message in base64
/// over polling, with room to spare.
const MAX_PAYLOAD: u64 = 256 * 1024;

/// The socket.io room of a meeting, and of one user's sockets in it.
pub fn meeting_room(meeting: &str) -> String {
    format!("m:{meeting}")
}

pub fn user_room(meeting: &str, user: &str) -> String {
    format!("u:{meeting}:{user}")
}

/// The room of every socket an account holds, in a meeting or not: closed when its tokens
/// stop working.
pub fn account_room(user: &str) -> String {
    format!("a:{user}")
}

/// A time as the API writes it: RFC 3339, UTC, milliseconds.
fn timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Counters for `/metrics`, `/socket-health` and `meet top`.
#[derive(Default)]
pub struct Stats {
    sockets: AtomicU64,
    connects: AtomicU64,
    auth_failures: AtomicU64,
    audio_in: AtomicU64,
    audio_delivered: AtomicU64,
    audio_dropped: AtomicU64,
    audio_refused: AtomicU64,
    audio_throttled: AtomicU64,
    flood_disconnects: AtomicU64,
    unreadable_disconnects: AtomicU64,
}

impl Stats {
    /// Open Socket.IO connections.
    pub fn sockets(&self) -> u64 {
        self.sockets.load(Relaxed)
    }

    /// Relay audio frames delivered to listeners, since the start.
    pub fn relay_frames(&self) -> u64 {
        self.audio_delivered.load(Relaxed)
    }

    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP meet_realtime_connections Open Socket.IO connections.\n# TYPE meet_realtime_connections gauge\nmeet_realtime_connections {}",
            self.sockets()
        );
        for (name, help, v) in [
            (
                "meet_realtime_connects_total",
                "Socket.IO connections accepted.",
                &self.connects,
            ),
            (
                "meet_realtime_auth_failures_total",
                "Socket.IO connections refused at authentication.",
                &self.auth_failures,
            ),
            (
                "meet_audio_frames_received_total",
                "Audio messages received from clients.",
                &self.audio_in,
            ),
            (
                "meet_audio_frames_delivered_total",
                "Audio frames queued to receiving sockets.",
                &self.audio_delivered,
            ),
            (
                "meet_audio_frames_dropped_total",
                "Audio frames dropped because the receiver's queue was full (slow consumer).",
                &self.audio_dropped,
            ),
            (
                "meet_audio_frames_refused_total",
                "Audio messages refused as malformed, too large or not allowed.",
                &self.audio_refused,
            ),
            (
                "meet_audio_frames_throttled_total",
                "Audio messages refused for exceeding the per-socket rate.",
                &self.audio_throttled,
            ),
            (
                "meet_realtime_flood_disconnects_total",
                "Sockets disconnected for flooding.",
                &self.flood_disconnects,
            ),
            (
                "meet_realtime_unreadable_disconnects_total",
                "Sockets disconnected because an acknowledgement or a WebRTC signal found their outgoing queue full (the client had stopped reading).",
                &self.unreadable_disconnects,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

/// Shared by every socket handler and the background tasks.
pub struct Hub {
    pub services: Arc<Services>,
    pub config: RealtimeConfig,
    pub presence: Presence,
    pub stats: Stats,
    /// The SFU: WebRTC peers of this server's participants.
    pub media: Sfu,
    io: OnceLock<SocketIo>,
    stop: watch::Sender<bool>,
}

impl Hub {
    fn io(&self) -> &SocketIo {
        // Set in `Realtime::start` before the namespace is registered.
        self.io
            .get()
            .unwrap_or_else(|| unreachable!("io is set at start"))
    }

    /// Disconnects a socket that had to be answered while its outgoing queue was full (it
    /// stopped reading): what it waits for cannot reach it, so it reconnects and asks again.
    fn disconnect_unreadable(self: &Arc<Self>, sid: Sid) {
        self.stats.unreadable_disconnects.fetch_add(1, Relaxed);
        self.close_socket(sid);
    }

    /// Closes one socket from the server side. A socket whose queue is full cannot take the
    /// DISCONNECT packet yet: retry a while (the heartbeat closes it in the end anyway).
    fn close_socket(self: &Arc<Self>, sid: Sid) {
        let Some(s) = self.io().get_socket(sid) else {
            return;
        };
        if s.disconnect().is_ok() {
            return;
        }
        let hub = Arc::clone(self);
        tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(s) = hub.io().get_socket(sid) else {
                    return;
                };
                if s.disconnect().is_ok() {
                    return;
                }
            }
        });
    }

    /// Changes a live meeting's routing state (and whatever else of the room) and hands the
    /// new state to the SFU, so the relay and the forwarded packets follow it alike.
    fn update_room(&self, meeting: &str, f: impl FnOnce(&mut presence::Room)) {
        let route = self.presence.with_room(meeting, |r| {
            f(r);
            r.route_version = self.presence.next_version();
            (r.route_version, r.route.clone())
        });
        // Outside the presence lock (the SFU takes its own, then presence's); the version
        // makes the SFU keep the newest state whatever order two updates arrive in.
        if let Some((version, route)) = route {
            self.media.set_route(meeting, version, &route);
            self.services.recorder.set_route(meeting, &route);
        }
    }

    /// A live meeting's routing state, with its version.
    fn route(&self, meeting: &str) -> Option<(u64, RouteState)> {
        self.presence
            .with_room(meeting, |r| (r.route_version, r.route.clone()))
    }

    /// Releases a user's seat `delay` from now unless a socket of theirs arrives before: a
    /// socket that arrives, even one that drops again, cancels this release (a later drop
    /// starts its own wait). Nothing happens when the user has a socket there now.
    fn release_unless_back(self: &Arc<Self>, meeting: Arc<str>, user: String, delay: Duration) {
        let Some(wait) = self.presence.await_return(&meeting, &user) else {
            return;
        };
        let hub = Arc::clone(self);
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // The user came back, a newer wait replaced this one or the meeting ended.
                _ = wait.cancelled => return,
                _ = stop.wait_for(|s| *s) => return,
            }
            if hub.presence.take_release(&meeting, &user, wait.token)
                && let Err(e) = hub.services.release_seat(&meeting, &user).await
            {
                tracing::warn!(error = %e, %meeting, "could not release a seat");
            }
        });
    }
}

/// The running realtime layer.
pub struct Realtime {
    pub hub: Arc<Hub>,
    layer: SocketIoLayer,
    tasks: Vec<JoinHandle<()>>,
}

impl Realtime {
    /// Builds the Socket.IO service and starts the tasks that turn meeting events into socket
    /// events and send the app-level pings.
    pub fn start(services: Arc<Services>) -> std::io::Result<Self> {
        let config = services.config.realtime.clone();
        let (stop, _) = watch::channel(false);
        let (media, media_events) = Sfu::start(
            services.config.media.clone(),
            Some(services.recorder.clone()),
        )?;
        let hub = Arc::new(Hub {
            media,
            presence: Presence::new(config.active_speaker_interval),
            stats: Stats::default(),
            io: OnceLock::new(),
            stop,
            config: config.clone(),
            services: Arc::clone(&services),
        });
        let max_audio = config.max_audio_bytes;
        let (layer, io) = SocketIo::builder()
            .req_path(services.config.socketio_path.clone())
            .ping_interval(config.ping_interval)
            .ping_timeout(config.ping_timeout)
            .max_buffer_size(config.queue_packets)
            .max_payload(MAX_PAYLOAD)
            .ws_max_message_size(MAX_PAYLOAD as usize)
            .ws_max_frame_size(MAX_PAYLOAD as usize)
            .connect_timeout(Duration::from_secs(10))
            // Oversized audio must reach the handler (for an error acknowledgement), not close
            // the connection: the parser allows twice the audio limit.
            .with_parser(
                ParserConfig::common()
                    .max_incoming_binary_buf_size(max_audio * 2)
                    .max_incoming_binaries(2),
            )
            .with_state(Arc::clone(&hub))
            .build_layer();
        let _ = hub.io.set(io);
        hub.io()
            .ns("/", connect::on_connect.with(connect::authenticate));

        let events = tokio::spawn(run_events(Arc::clone(&hub), services.subscribe()));
        let pings = tokio::spawn(run_pings(Arc::clone(&hub)));
        let media = tokio::spawn(signal::run_media_events(Arc::clone(&hub), media_events));
        let bridge = tokio::spawn(bridge::run(Arc::clone(&hub)));
        Ok(Self {
            hub,
            layer,
            tasks: vec![events, pings, media, bridge],
        })
    }

    pub fn layer(&self) -> SocketIoLayer {
        self.layer.clone()
    }

    /// Disconnects every socket (reason: the server is closing) and stops the tasks. Seats are
    /// not released: clients reconnect to the next start, which clears stale seats.
    pub async fn close(self) {
        let _ = self.hub.stop.send(true);
        self.hub.media.close().await;
        self.hub.io().close().await;
        for t in self.tasks {
            t.abort();
        }
    }
}

/// Meeting events from the service → socket events (and closing sockets of ended meetings).
async fn run_events(hub: Arc<Hub>, mut rx: broadcast::Receiver<MeetingEvent>) {
    loop {
        match rx.recv().await {
            Ok(event) => on_event(&hub, event).await,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "realtime fell behind the meeting events; resyncing"
                );
                resync(&hub).await;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn on_event(hub: &Arc<Hub>, event: MeetingEvent) {
    let io = hub.io();
    let now = timestamp(hub.services.now());
    match event {
        MeetingEvent::Joined {
            meeting_id,
            user_id,
            username,
            role,
        } => {
            let body =
                json!({"userId": user_id, "username": username, "role": role, "timestamp": now});
            let _ = io
                .to(meeting_room(&meeting_id))
                .except(user_room(&meeting_id, &user_id))
                .emit("participant-joined", &body)
                .await;
            // A REST join holds the seat for a while until a socket arrives. A socket's own
            // join is often seen here before the socket is attached: the socket cancels it.
            hub.release_unless_back(meeting_id.into(), user_id, hub.config.seat_hold);
        }
        MeetingEvent::Left {
            meeting_id,
            user_id,
        } => {
            let who = hub
                .services
                .store
                .participant(&meeting_id, &user_id)
                .await
                .ok()
                .flatten();
            let (username, role) = who.map(|p| (p.username, p.role)).unwrap_or_default();
            let body =
                json!({"userId": user_id, "username": username, "role": role, "timestamp": now});
            let _ = io
                .to(meeting_room(&meeting_id))
                .except(user_room(&meeting_id, &user_id))
                .emit("participant-left", &body)
                .await;
            // The seat is released: no wait for the user's return is due any more.
            hub.presence.forget_wait(&meeting_id, &user_id);
            // Left through REST (or an account change) while connected: close those sockets.
            for sid in hub.presence.sockets_of(&meeting_id, &user_id) {
                hub.close_socket(sid);
            }
        }
        MeetingEvent::Revoked { user_ids } => {
            for user in user_ids {
                for s in io.within(account_room(&user)).sockets() {
                    tracing::info!(sid = %s.id, %user, "the account's tokens were revoked; closing its socket");
                    hub.close_socket(s.id);
                }
            }
        }
        MeetingEvent::ModeChanged { meeting } => {
            hub.update_room(&meeting.id, |r| r.route.set_mode(&meeting));
            let body = json!({
                "meetingId": meeting.id, "mode": meeting.mode, "isPrivate": meeting.is_private,
                "participantId": meeting.private_participant_id, "hostId": meeting.host_id,
            });
            let _ = io
                .within(meeting_room(&meeting.id))
                .emit("mode-changed", &body)
                .await;
            // The original's clients wait for this one to start talking in private.
            if let Some(student) = &meeting.private_participant_id {
                let body = json!({
                    "meetingId": meeting.id, "studentId": student, "hostId": meeting.host_id,
                });
                let _ = io
                    .to([
                        user_room(&meeting.id, &meeting.host_id),
                        user_room(&meeting.id, student),
                    ])
                    .emit("private-conversation-started", &body)
                    .await;
            }
        }
        MeetingEvent::PrivateRequested { host_id, request } => {
            let body = json!({
                "meetingId": request.meeting_id, "studentId": request.student_id,
                "username": request.username, "hostId": host_id, "at": timestamp(request.at),
            });
            let _ = io
                .to(user_room(&request.meeting_id, &host_id))
                .emit("private-conversation-requested", &body)
                .await;
        }
        MeetingEvent::PrivateDeclined {
            meeting_id,
            student_id,
        } => {
            let body = json!({"meetingId": meeting_id, "studentId": student_id});
            let _ = io
                .to(user_room(&meeting_id, &student_id))
                .emit("private-conversation-declined", &body)
                .await;
        }
        MeetingEvent::Muted {
            meeting_id,
            user_id,
            muted,
        } => {
            hub.update_room(&meeting_id, |r| {
                if muted {
                    r.route.muted.insert(user_id.clone());
                    r.speaker.forget(&user_id);
                } else {
                    r.route.muted.remove(&user_id);
                }
            });
            let event = if muted {
                "participant-muted"
            } else {
                "participant-unmuted"
            };
            let _ = io
                .within(meeting_room(&meeting_id))
                .emit(event, &json!({"userId": user_id}))
                .await;
        }
        MeetingEvent::RecordingStarted {
            meeting_id,
            recording_id,
            is_private,
            student_id,
            start_time,
        } => {
            let body = json!({
                "recordingId": recording_id, "meetingId": meeting_id,
                "isPrivate": is_private, "startTime": timestamp(start_time),
            });
            recording_audience(hub, &meeting_id, student_id.as_deref())
                .emit("recording-started", &body)
                .await
                .ok();
        }
        MeetingEvent::RecordingEnded {
            meeting_id,
            recording_id,
            student_id,
            duration,
            ..
        } => {
            let body = json!({
                "recordingId": recording_id, "meetingId": meeting_id, "duration": duration,
            });
            recording_audience(hub, &meeting_id, student_id.as_deref())
                .emit("recording-ended", &body)
                .await
                .ok();
        }
        MeetingEvent::Ended { meeting } => {
            let body = json!({
                "meetingId": meeting.id,
                "reason": meeting.end_reason,
                "endTime": meeting.end_time,
            });
            let _ = io
                .within(meeting_room(&meeting.id))
                .emit("meeting-ended", &body)
                .await;
            // The live room goes first: an offer racing with the end then finds no routing
            // state and opens nothing.
            let sockets = hub.presence.remove_room(&meeting.id);
            hub.media.end(&meeting.id).await;
            hub.services.recorder.end_meeting(&meeting.id);
            for sid in sockets {
                hub.close_socket(sid);
            }
        }
    }
}

/// Who hears of a recording: everyone in the meeting, or the pair of a private one.
fn recording_audience(
    hub: &Hub,
    meeting_id: &str,
    student: Option<&str>,
) -> socketioxide::operators::BroadcastOperators<socketioxide::adapter::LocalAdapter> {
    match student {
        None => hub.io().within(meeting_room(meeting_id)),
        Some(student) => {
            let host = hub
                .presence
                .with_room(meeting_id, |r| r.route.host_id.clone())
                .unwrap_or_default();
            hub.io()
                .to([user_room(meeting_id, &host), user_room(meeting_id, student)])
        }
    }
}

/// After missed events: reload every live meeting's routing state, close ended ones.
async fn resync(hub: &Arc<Hub>) {
    for id in hub.presence.meetings() {
        match hub.services.route_state(&id).await {
            Ok((meeting, route)) if meeting.status.is_open() => {
                hub.update_room(&id, |r| r.route = route);
            }
            Ok((meeting, _)) => {
                Box::pin(on_event(
                    hub,
                    MeetingEvent::Ended {
                        meeting: Box::new(meeting),
                    },
                ))
                .await;
            }
            Err(e) => tracing::warn!(error = %e, meeting = %id, "resync failed"),
        }
    }
    // The SFU may hold a meeting no socket is in any more: drop it if the meeting ended.
    let live = hub.presence.meetings();
    for id in hub.media.meetings() {
        if live.contains(&id) {
            continue;
        }
        if let Ok((meeting, _)) = hub.services.route_state(&id).await
            && !meeting.status.is_open()
        {
            hub.media.end(&id).await;
        }
    }
}

/// The app-level keepalive: `ping {timestamp}` to every socket; clients answer `pong`.
async fn run_pings(hub: Arc<Hub>) {
    let mut tick = tokio::time::interval(hub.config.app_ping_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let body = json!({"timestamp": timestamp(hub.services.now())});
        let _ = hub.io().emit("ping", &body).await;
    }
}
