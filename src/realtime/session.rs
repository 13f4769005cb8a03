//! What one socket carries: its verified user, the meeting it is in, and its audio budget.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::RealtimeConfig;
use crate::domain::access::Identity;

/// Refusals are counted over this window to decide that a client floods.
const FLOOD_WINDOW: Duration = Duration::from_secs(10);

pub struct Session {
    pub user: Arc<Identity>,
    state: Mutex<State>,
    /// Round-trip time of the last app-level ping, in milliseconds (0: none yet).
    pub rtt_ms: AtomicU64,
    /// Audio messages are relayed in the order they arrived (see [`Turn`]).
    tickets: AtomicU64,
    turns: Mutex<Turns>,
    turn_changed: tokio::sync::Notify,
}

/// Which audio message may be relayed now, and those finished out of turn.
#[derive(Default)]
struct Turns {
    serving: u64,
    done_early: std::collections::BTreeSet<u64>,
}

/// The place of one audio message in its socket's arrival order. socketioxide runs every
/// message's handler as its own task, so two frames of one sender could be relayed out of
/// order; extractors, though, run in the socket's reader task, in arrival order. This one
/// takes a ticket there, and the handler waits for its turn.
pub struct Turn {
    session: Arc<Session>,
    ticket: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the socket has no session")]
pub struct NoSession;

impl socketioxide::handler::FromMessageParts<socketioxide::adapter::LocalAdapter> for Turn {
    type Error = NoSession;

    fn from_message_parts(
        s: &Arc<socketioxide::socket::Socket<socketioxide::adapter::LocalAdapter>>,
        _: &mut socketioxide::handler::Value,
        _: &Option<i64>,
    ) -> Result<Self, NoSession> {
        let session = s.extensions.get::<Arc<Session>>().ok_or(NoSession)?;
        let ticket = session.tickets.fetch_add(1, Relaxed);
        Ok(Self { session, ticket })
    }
}

impl Turn {
    /// Waits until every earlier message of this socket is done.
    pub async fn wait(&self) {
        loop {
            let changed = self.session.turn_changed.notified();
            if self.session.turns().serving == self.ticket {
                return;
            }
            changed.await;
        }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        {
            let mut guard = self.session.turns();
            let turns = &mut *guard;
            if turns.serving == self.ticket {
                turns.serving += 1;
                while turns.done_early.remove(&turns.serving) {
                    turns.serving += 1;
                }
            } else {
                turns.done_early.insert(self.ticket);
            }
        }
        self.session.turn_changed.notify_waiters();
    }
}

struct State {
    meeting: Option<Arc<str>>,
    /// What `connection-ack` tells the client, prepared by the connect middleware.
    ack: Option<serde_json::Value>,
    budget: Budget,
    /// `webrtc-signal` messages, and among them offers (each opens a peer connection).
    signals: Budget,
    offers: Budget,
}

/// `webrtc-signal` messages a socket may send: a sustained rate and a burst (a client trickles
/// a dozen candidates at once). Offers, which each open a connection and a UDP port, have a
/// budget of their own.
pub const SIGNALS_PER_SECOND: f64 = 20.0;
pub const SIGNAL_BURST: f64 = 60.0;
pub const OFFERS_PER_SECOND: f64 = 0.2;
pub const OFFER_BURST: f64 = 5.0;

/// The verdict on one audio message.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// Over the rate: refuse this message.
    Throttled,
    /// Over the rate for too long: disconnect the client.
    Flooding,
}

/// A token bucket for audio messages, plus a count of recent refusals.
struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    refused: u32,
    window_start: Instant,
    flood_after: u32,
}

impl Budget {
    fn new(rate: f64, burst: f64, flood_after: u32, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            at: now,
            refused: 0,
            window_start: now,
            flood_after,
        }
    }

    fn admit(&mut self, now: Instant) -> Admit {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Admit::Yes;
        }
        if now.saturating_duration_since(self.window_start) > FLOOD_WINDOW {
            self.window_start = now;
            self.refused = 0;
        }
        self.refused += 1;
        if self.refused >= self.flood_after {
            Admit::Flooding
        } else {
            Admit::Throttled
        }
    }
}

impl Session {
    pub fn new(user: Arc<Identity>, config: &RealtimeConfig, now: Instant) -> Self {
        let burst = f64::from(config.audio_burst);
        Self {
            user,
            state: Mutex::new(State {
                meeting: None,
                ack: None,
                budget: Budget::new(
                    f64::from(config.audio_messages_per_second),
                    burst,
                    config.flood_disconnect_after,
                    now,
                ),
                signals: Budget::new(SIGNALS_PER_SECOND, SIGNAL_BURST, u32::MAX, now),
                offers: Budget::new(OFFERS_PER_SECOND, OFFER_BURST, u32::MAX, now),
            }),
            rtt_ms: AtomicU64::new(0),
            tickets: AtomicU64::new(0),
            turns: Mutex::new(Turns::default()),
            turn_changed: tokio::sync::Notify::new(),
        }
    }

    fn turns(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn meeting(&self) -> Option<Arc<str>> {
        self.state().meeting.clone()
    }

    /// Sets the meeting, returning the one it replaces.
    pub fn set_meeting(&self, meeting: Option<Arc<str>>) -> Option<Arc<str>> {
        std::mem::replace(&mut self.state().meeting, meeting)
    }

    pub fn set_ack(&self, ack: serde_json::Value) {
        self.state().ack = Some(ack);
    }

    pub fn take_ack(&self) -> Option<serde_json::Value> {
        self.state().ack.take()
    }

    pub fn admit_audio(&self, now: Instant) -> Admit {
        self.state().budget.admit(now)
    }

    /// Whether one more `webrtc-signal` is within the socket's budget.
    pub fn admit_signal(&self, now: Instant) -> bool {
        self.state().signals.admit(now) == Admit::Yes
    }

    /// Whether one more offer (a new connection) is within the socket's budget.
    pub fn admit_offer(&self, now: Instant) -> bool {
        self.state().offers.admit(now) == Admit::Yes
    }

    pub fn set_rtt(&self, rtt: Duration) {
        self.rtt_ms
            .store(u64::try_from(rtt.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::users::Role;

    fn session(rate: u32, burst: u32, flood: u32, now: Instant) -> Session {
        let config = RealtimeConfig {
            audio_messages_per_second: rate,
            audio_burst: burst,
            flood_disconnect_after: flood,
            ..crate::config::Config::for_tests(std::path::Path::new("/nonexistent")).realtime
        };
        let user = Arc::new(Identity {
            id: "u".into(),
            username: "u".into(),
            role: Role::Student,
            host_id: None,
        });
        Session::new(user, &config, now)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn turns_follow_the_tickets_whatever_order_the_tasks_run_in() {
        let session = Arc::new(session(50, 10, 5, Instant::now()));
        let order = Arc::new(Mutex::new(Vec::new()));
        let turns: Vec<Turn> = (0..6)
            .map(|_| Turn {
                ticket: session.tickets.fetch_add(1, Relaxed),
                session: Arc::clone(&session),
            })
            .collect();
        // Ticket 3 is abandoned before its turn (its handler never ran to completion).
        let mut tasks = Vec::new();
        for turn in turns.into_iter().rev() {
            if turn.ticket == 3 {
                drop(turn);
                continue;
            }
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                turn.wait().await;
                order.lock().expect("lock").push(turn.ticket);
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        assert_eq!(*order.lock().expect("lock"), vec![0, 1, 2, 4, 5]);
        assert_eq!(session.turns().serving, 6);
    }

    #[test]
    fn audio_budget_at_its_boundaries() {
        let t0 = Instant::now();
        let s = session(50, 10, 5, t0);
        for _ in 0..10 {
            assert_eq!(s.admit_audio(t0), Admit::Yes, "the burst");
        }
        assert_eq!(s.admit_audio(t0), Admit::Throttled, "the 11th at once");
        // 20 ms later one message's worth has refilled.
        let t1 = t0 + Duration::from_millis(20);
        assert_eq!(s.admit_audio(t1), Admit::Yes);
        assert_eq!(s.admit_audio(t1), Admit::Throttled);
        assert_eq!(s.admit_audio(t1), Admit::Throttled);
        assert_eq!(s.admit_audio(t1), Admit::Throttled);
        assert_eq!(
            s.admit_audio(t1),
            Admit::Flooding,
            "the 5th refusal in 10 s"
        );
        // A steady 50 a second is always admitted.
        let s = session(50, 10, 5, t0);
        for i in 1..=500 {
            assert_eq!(
                s.admit_audio(t0 + Duration::from_millis(20 * i)),
                Admit::Yes
            );
        }
    }
}
