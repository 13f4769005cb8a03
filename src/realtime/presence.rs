//! Who is connected to which meeting right now, socket by socket, with each live meeting's
//! routing state and speaker tracker. One short lock; no I/O under it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use socketioxide::socket::Sid;
use tokio::sync::oneshot;

use crate::domain::routing::RouteState;
use crate::domain::speaker::SpeakerTracker;

/// A live meeting.
pub struct Room {
    pub route: RouteState,
    /// When `route` last changed ([`Presence::next_version`]), so that an older state never
    /// overwrites a newer one, even across a room that went and came back.
    pub route_version: u64,
    pub speaker: SpeakerTracker,
    members: HashMap<String, Member>,
    sockets: usize,
}

struct Member {
    sockets: Vec<Sid>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Room>,
    /// Seats waiting for a socket of their user, by (meeting, user): the one release that may
    /// still happen. A socket that arrives cancels it; a newer wait replaces it.
    awaited: HashMap<(String, String), Awaited>,
    tokens: u64,
}

/// A release waiting for its time. Forgetting it (cancelled, replaced, the meeting ended)
/// drops `_wake`, which ends the wait at once: no task sleeps on for a seat nobody releases.
struct Awaited {
    token: u64,
    _wake: oneshot::Sender<()>,
}

/// A wait started by [`Presence::await_return`]: its token, and `cancelled`, which completes
/// when the release is no longer due before its time is up.
pub struct Wait {
    pub token: u64,
    pub cancelled: oneshot::Receiver<()>,
}

impl Room {
    /// Sockets of everyone but `user`.
    pub fn sockets_except(&self, user: &str) -> usize {
        self.sockets - self.sockets_of(user)
    }

    pub fn sockets_of(&self, user: &str) -> usize {
        self.members.get(user).map_or(0, |m| m.sockets.len())
    }

    pub fn has(&self, user: &str) -> bool {
        self.members.contains_key(user)
    }

    /// The users with a socket in the meeting.
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }
}

/// What detaching a socket left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum Detached {
    /// The user has other sockets in the meeting.
    OthersRemain,
    /// That was the user's last socket.
    LastSocket,
    /// The meeting is not live (it ended): nothing to release.
    NoRoom,
}

pub struct Presence {
    state: Mutex<State>,
    versions: std::sync::atomic::AtomicU64,
    speaker_interval: Duration,
}

impl Presence {
    pub fn new(speaker_interval: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            versions: std::sync::atomic::AtomicU64::new(0),
            speaker_interval,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A routing-state version, greater than every one before (all meetings share the count).
    pub fn next_version(&self) -> u64 {
        self.versions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Adds a socket of `user` to the meeting, creating the live room with `route` if needed,
    /// and cancels any release awaiting the user's return. Returns true when the room was
    /// created by this call.
    pub fn attach(&self, meeting: &str, route: RouteState, user: &str, sid: Sid) -> bool {
        let mut state = self.lock();
        let State { rooms, awaited, .. } = &mut *state;
        awaited.remove(&(meeting.to_owned(), user.to_owned()));
        let mut created = false;
        let room = rooms.entry(meeting.to_owned()).or_insert_with(|| {
            created = true;
            Room {
                route,
                route_version: self.next_version(),
                speaker: SpeakerTracker::new(self.speaker_interval),
                members: HashMap::new(),
                sockets: 0,
            }
        });
        let member = room
            .members
            .entry(user.to_owned())
            .or_insert_with(|| Member {
                sockets: Vec::new(),
            });
        if !member.sockets.contains(&sid) {
            member.sockets.push(sid);
            room.sockets += 1;
        }
        created
    }

    /// Removes a socket. The room goes when its last socket does.
    pub fn detach(&self, meeting: &str, user: &str, sid: Sid) -> Detached {
        let mut state = self.lock();
        let rooms = &mut state.rooms;
        let Some(room) = rooms.get_mut(meeting) else {
            return Detached::NoRoom;
        };
        let Some(member) = room.members.get_mut(user) else {
            return Detached::LastSocket;
        };
        if let Some(i) = member.sockets.iter().position(|s| *s == sid) {
            member.sockets.swap_remove(i);
            room.sockets -= 1;
        }
        if !member.sockets.is_empty() {
            return Detached::OthersRemain;
        }
        room.members.remove(user);
        room.speaker.forget(user);
        if room.sockets == 0 {
            rooms.remove(meeting);
        }
        Detached::LastSocket
    }

    /// Runs `f` on a live meeting.
    pub fn with_room<R>(&self, meeting: &str, f: impl FnOnce(&mut Room) -> R) -> Option<R> {
        self.lock().rooms.get_mut(meeting).map(f)
    }

    /// Starts waiting for `user` to come back to the meeting: returns the wait, whose token is
    /// the release to make once it is over ([`Presence::take_release`]), or `None` when the user
    /// has a socket there (nothing to wait for). Checked and recorded under the one lock, so a
    /// socket attached at any moment after this call cancels the release.
    pub fn await_return(&self, meeting: &str, user: &str) -> Option<Wait> {
        let mut state = self.lock();
        let present = state.rooms.get(meeting).is_some_and(|r| r.has(user));
        if present {
            return None;
        }
        state.tokens += 1;
        let token = state.tokens;
        let (wake, cancelled) = oneshot::channel();
        state.awaited.insert(
            (meeting.to_owned(), user.to_owned()),
            Awaited { token, _wake: wake },
        );
        Some(Wait { token, cancelled })
    }

    /// Whether the release `token` is still due: no socket of the user arrived since
    /// [`Presence::await_return`], no newer wait replaced it, the meeting did not end. Due once.
    pub fn take_release(&self, meeting: &str, user: &str, token: u64) -> bool {
        let mut state = self.lock();
        let key = (meeting.to_owned(), user.to_owned());
        if state.awaited.get(&key).map(|a| a.token) != Some(token) {
            return false;
        }
        state.awaited.remove(&key);
        !state.rooms.get(meeting).is_some_and(|r| r.has(user))
    }

    /// Cancels the release awaiting the user's return: they left the meeting, so their seat is
    /// already released.
    pub fn forget_wait(&self, meeting: &str, user: &str) {
        self.lock()
            .awaited
            .remove(&(meeting.to_owned(), user.to_owned()));
    }

    /// The user's sockets in the meeting.
    pub fn sockets_of(&self, meeting: &str, user: &str) -> Vec<Sid> {
        self.with_room(meeting, |r| {
            r.members
                .get(user)
                .map(|m| m.sockets.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }

    /// Forgets a meeting (it ended), and the releases awaited in it; returns its sockets so
    /// they can be closed.
    pub fn remove_room(&self, meeting: &str) -> Vec<Sid> {
        let mut state = self.lock();
        state.awaited.retain(|(m, _), _| m != meeting);
        state
            .rooms
            .remove(meeting)
            .map(|r| r.members.into_values().flat_map(|m| m.sockets).collect())
            .unwrap_or_default()
    }

    /// Ids of the live meetings.
    pub fn meetings(&self) -> Vec<String> {
        self.lock().rooms.keys().cloned().collect()
    }

    /// Live meetings and sockets in them.
    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let rooms = &self.lock().rooms;
        (rooms.len(), rooms.values().map(|r| r.sockets).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_that_comes_back_starts_above_every_earlier_version() {
        let p = Presence::new(Duration::from_millis(300));
        let s = Sid::new();
        p.attach("m", RouteState::default(), "a", s);
        let first = p.with_room("m", |r| r.route_version);
        let bumped = p.with_room("m", |r| {
            r.route_version = p.next_version();
            r.route_version
        });
        assert!(bumped > first);
        p.detach("m", "a", s);
        assert!(p.with_room("m", |r| r.route_version).is_none());
        p.attach("m", RouteState::default(), "a", s);
        assert!(p.with_room("m", |r| r.route_version) > bumped);
    }

    #[test]
    fn last_socket_of_a_user_and_of_a_room() {
        let p = Presence::new(Duration::from_millis(300));
        let (a1, a2, b) = (Sid::new(), Sid::new(), Sid::new());
        assert!(p.attach("m", RouteState::default(), "a", a1));
        assert!(!p.attach("m", RouteState::default(), "a", a2));
        assert!(!p.attach("m", RouteState::default(), "b", b));
        assert!(!p.attach("m", RouteState::default(), "b", b), "idempotent");
        assert_eq!(p.counts(), (1, 3));
        assert_eq!(p.with_room("m", |r| r.sockets_except("a")), Some(1));
        assert_eq!(p.detach("m", "a", a1), Detached::OthersRemain);
        assert_eq!(p.detach("m", "a", a2), Detached::LastSocket);
        assert_eq!(p.sockets_of("m", "a"), Vec::<Sid>::new());
        assert_eq!(p.detach("m", "b", b), Detached::LastSocket);
        assert_eq!(p.counts(), (0, 0), "the room goes with its last socket");
        assert_eq!(p.detach("m", "b", b), Detached::NoRoom);
    }

    #[test]
    fn a_socket_that_arrives_cancels_the_awaited_release() {
        use tokio::sync::oneshot::error::TryRecvError;
        let p = Presence::new(Duration::from_millis(300));
        let (a1, a2, host) = (Sid::new(), Sid::new(), Sid::new());
        p.attach("m", RouteState::default(), "h", host);
        // The join's event is seen before its socket is attached (the seat-hold wait starts),
        // then the socket arrives and later drops: the old wait must not release the seat.
        let mut hold = p.await_return("m", "a").expect("no socket yet");
        assert_eq!(hold.cancelled.try_recv(), Err(TryRecvError::Empty), "due");
        p.attach("m", RouteState::default(), "a", a1);
        assert_eq!(
            hold.cancelled.try_recv(),
            Err(TryRecvError::Closed),
            "the socket ends the wait"
        );
        assert!(
            p.await_return("m", "a").is_none(),
            "present: nothing to await"
        );
        assert_eq!(p.detach("m", "a", a1), Detached::LastSocket);
        let mut grace = p.await_return("m", "a").expect("gone");
        assert!(
            !p.take_release("m", "a", hold.token),
            "cancelled by the socket"
        );
        // Back within the grace, dropped again: only the newest wait counts.
        p.attach("m", RouteState::default(), "a", a2);
        assert_eq!(p.detach("m", "a", a2), Detached::LastSocket);
        let again = p.await_return("m", "a").expect("gone again");
        assert_eq!(grace.cancelled.try_recv(), Err(TryRecvError::Closed));
        assert!(!p.take_release("m", "a", grace.token), "superseded");
        // A newer wait replaces an older one that nothing cancelled.
        let mut older = p.await_return("m", "c").expect("never came");
        let newer = p.await_return("m", "c").expect("never came");
        assert_eq!(
            older.cancelled.try_recv(),
            Err(TryRecvError::Closed),
            "replaced"
        );
        assert!(!p.take_release("m", "c", older.token));
        assert!(p.take_release("m", "c", newer.token));
        // Leaving the meeting ends the wait.
        let mut left = p.await_return("m", "d").expect("never came");
        p.forget_wait("m", "d");
        assert_eq!(left.cancelled.try_recv(), Err(TryRecvError::Closed), "left");
        assert!(!p.take_release("m", "d", left.token));
        assert!(p.take_release("m", "a", again.token));
        assert!(!p.take_release("m", "a", again.token), "due once");
        // The end of the meeting cancels what was awaited in it.
        let mut ended = p.await_return("m", "b").expect("never came");
        p.remove_room("m");
        assert_eq!(ended.cancelled.try_recv(), Err(TryRecvError::Closed));
        assert!(!p.take_release("m", "b", ended.token));
    }

    #[test]
    fn removing_a_room_hands_back_its_sockets() {
        let p = Presence::new(Duration::from_millis(300));
        let (a, b) = (Sid::new(), Sid::new());
        p.attach("m", RouteState::default(), "a", a);
        p.attach("m", RouteState::default(), "b", b);
        let mut gone = p.remove_room("m");
        gone.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(gone, want);
        assert_eq!(p.detach("m", "a", a), Detached::NoRoom);
    }
}
