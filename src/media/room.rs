//! A meeting's SFU room, one task: its peers, the legs between them and the routing state
//! that switches each leg on or off. Peers and legs change here; packets never pass here.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::bridge::{self, RelayFrame};
use super::peer::{self, Ending, Leg, PeerCmd, PeerCtx, PeerHandle, PeerKey, PublishCmd};
use super::record::mix::Encoding;
use super::{Candidate, MediaError, MediaEvent, Shared};
use crate::domain::routing::{Audience, RouteState, audience, may_hear};

/// Early candidates kept per user while their offer is on its way.
const EARLY_CANDIDATES: usize = 32;
/// How often speakers' levels are collected.
const LEVEL_TICK: Duration = Duration::from_millis(100);

pub enum RoomCmd {
    Offer {
        user: Arc<str>,
        owner: String,
        sdp: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    },
    Answer {
        user: Arc<str>,
        owner: String,
        sdp: String,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    Candidate {
        user: Arc<str>,
        owner: String,
        candidate: Candidate,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// The user's socket `owner` left (any socket of theirs when `None`).
    Leave {
        user: Arc<str>,
        owner: Option<String>,
    },
    /// A routing state and its version (newer ones only are applied).
    Route(u64, RouteState),
    /// Close every peer; `done` when they are closed.
    End(oneshot::Sender<()>),
    /// From a peer: a stream the subscriber has accepted.
    LegReady(Arc<Leg>),
    /// From a peer task, as it ends.
    Closed { key: PeerKey, ending: Ending },
    /// A relay speaker's frames, to be heard by the WebRTC participants ([`super::bridge`]).
    Relayed {
        user: Arc<str>,
        frames: mpsc::Receiver<RelayFrame>,
    },
}

/// A relay speaker the WebRTC participants get a stream of, as of another participant.
struct Relayed {
    key: PeerKey,
    publish: mpsc::UnboundedSender<PublishCmd>,
}

struct Room {
    id: Arc<str>,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<RoomCmd>,
    route: RouteState,
    route_version: u64,
    peers: HashMap<Arc<str>, PeerHandle>,
    relayed: HashMap<Arc<str>, Relayed>,
    legs: Vec<Arc<Leg>>,
    early: HashMap<Arc<str>, Vec<Candidate>>,
    /// Peers closed by the room whose tasks have not finished yet.
    closing: usize,
    /// The room is closing: nobody is offered anything any more.
    ending: bool,
}

pub fn spawn(
    id: Arc<str>,
    shared: Arc<Shared>,
    route_version: u64,
    route: RouteState,
) -> mpsc::UnboundedSender<RoomCmd> {
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Room {
        id,
        shared,
        tx: tx.clone(),
        route,
        route_version,
        peers: HashMap::new(),
        relayed: HashMap::new(),
        legs: Vec::new(),
        early: HashMap::new(),
        closing: 0,
        ending: false,
    };
    tokio::spawn(room.run(rx));
    tx
}

impl Room {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<RoomCmd>) {
        let mut tick = tokio::time::interval(LEVEL_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(RoomCmd::End(done)) => {
                        self.end(&mut rx).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.handle(cmd),
                    None => return,
                },
                _ = tick.tick() => self.levels(),
            }
        }
    }

    fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Offer {
                user,
                owner,
                sdp,
                reply,
            } => self.offer(user, owner, sdp, reply),
            RoomCmd::Answer {
                user,
                owner,
                sdp,
                reply,
            } => self.to_peer(&user, &owner, PeerCmd::Answer(sdp, reply)),
            RoomCmd::Candidate {
                user,
                owner,
                candidate,
                reply,
            } => {
                if self.peers.contains_key(&user) {
                    // Another socket's connection is not this one's to feed.
                    self.to_peer(&user, &owner, PeerCmd::Candidate(candidate, reply));
                } else {
                    // The offer may still be on its way: keep a few.
                    let early = self.early.entry(user).or_default();
                    if early.len() < EARLY_CANDIDATES {
                        early.push(candidate);
                    }
                    let _ = reply.send(Ok(()));
                }
            }
            RoomCmd::Leave { user, owner } => {
                self.early.remove(&user);
                if self.drop_relayed(&user) {
                    self.update_speakers();
                }
                let owned = self
                    .peers
                    .get(&user)
                    .is_some_and(|p| owner.as_ref().is_none_or(|o| *o == p.owner));
                if owned {
                    self.remove(&user, true);
                }
            }
            RoomCmd::Route(version, route) => {
                if version > self.route_version {
                    self.route_version = version;
                    self.route = route;
                    self.apply_route();
                }
            }
            RoomCmd::End(done) => {
                let _ = done.send(());
            }
            RoomCmd::LegReady(leg) => self.add_leg(leg),
            RoomCmd::Relayed { user, frames } => self.add_relayed(user, frames),
            RoomCmd::Closed { key, ending } => {
                if self.peers.get(&key.user).is_some_and(|p| p.key == key) {
                    tracing::info!(meeting = %self.id, user = %key.user, ?ending, "peer connection ended");
                    self.remove(&key.user, false);
                } else {
                    self.closing = self.closing.saturating_sub(1);
                }
            }
        }
    }

    /// Passes a command to the user's peer if `owner` holds it; its reply says `NoPeer` if not.
    fn to_peer(&self, user: &str, owner: &str, cmd: PeerCmd) {
        let refused = match self.peer_of(user, owner) {
            Some(p) => p.cmd.send(cmd).err().map(|e| e.0),
            None => Some(cmd),
        };
        if let Some(PeerCmd::Answer(_, reply) | PeerCmd::Candidate(_, reply)) = refused {
            let _ = reply.send(Err(MediaError::NoPeer));
        }
    }

    fn peer_of(&self, user: &str, owner: &str) -> Option<&PeerHandle> {
        self.peers.get(user).filter(|p| p.owner == owner)
    }

    /// A first offer: a new peer for the user (replacing any earlier one), then every peer's
    /// set of speakers is brought up to date.
    fn offer(
        &mut self,
        user: Arc<str>,
        owner: String,
        sdp: String,
        reply: oneshot::Sender<Result<String, MediaError>>,
    ) {
        if self.peers.contains_key(&user) {
            self.remove(&user, true);
        }
        self.drop_relayed(&user);
        let key = PeerKey {
            user: Arc::clone(&user),
            generation: self.shared.next_generation(),
        };
        let handle = peer::spawn(
            PeerCtx {
                key,
                meeting: Arc::clone(&self.id),
                owner,
                shared: Arc::clone(&self.shared),
                room: self.tx.clone(),
            },
            sdp,
            reply,
        );
        for candidate in self.early.remove(&user).unwrap_or_default() {
            let (tx, _) = oneshot::channel();
            let _ = handle.cmd.send(PeerCmd::Candidate(candidate, tx));
        }
        self.shared
            .connected()
            .entry(self.id.to_string())
            .or_default()
            .insert(Arc::clone(&user));
        self.peers.insert(user, handle);
        self.update_speakers();
    }

    /// A relay speaker becomes a stream of every WebRTC participant (unless they have a
    /// connection of their own, or already are one: then the newer frames replace the older).
    fn add_relayed(&mut self, user: Arc<str>, frames: mpsc::Receiver<RelayFrame>) {
        if self.ending || self.peers.contains_key(&user) {
            return;
        }
        self.drop_relayed(&user);
        let key = PeerKey {
            user: Arc::clone(&user),
            generation: self.shared.next_generation(),
        };
        let (publish, cmds) = mpsc::unbounded_channel();
        tokio::spawn(bridge::publish_relay(
            frames,
            cmds,
            Encoding {
                bitrate: 32_000,
                complexity: 0,
            },
            Arc::clone(&self.shared.stats),
        ));
        tracing::debug!(meeting = %self.id, %user, "relay speaker bridged to WebRTC");
        self.relayed.insert(user, Relayed { key, publish });
        self.update_speakers();
    }

    /// The user's relayed stream goes (their publisher ends with its command channel); the
    /// caller brings the peers' speakers up to date. Whether there was one.
    fn drop_relayed(&mut self, user: &str) -> bool {
        let Some(r) = self.relayed.remove(user) else {
            return false;
        };
        self.legs.retain(|leg| {
            let keep = leg.speaker != r.key;
            if !keep {
                leg.audible.store(false, Relaxed);
            }
            keep
        });
        true
    }

    /// Closes the user's peer (when `close`) and takes its legs out.
    fn remove(&mut self, user: &str, close: bool) {
        let Some(handle) = self.peers.remove(user) else {
            return;
        };
        if let Some(c) = self.shared.connected().get_mut(&*self.id) {
            c.remove(user);
        }
        if close && handle.cmd.send(PeerCmd::Close).is_ok() {
            self.closing += 1;
        }
        let key = handle.key;
        self.legs.retain(|leg| {
            let keep = leg.speaker != key && leg.subscriber != key;
            if !keep {
                leg.audible.store(false, Relaxed);
            }
            keep
        });
        for p in self.peers.values() {
            let _ = p.publish.send(PublishCmd::RemoveSubscriber(key.clone()));
        }
        for r in self.relayed.values() {
            let _ = r.publish.send(PublishCmd::RemoveSubscriber(key.clone()));
        }
        self.update_speakers();
    }

    /// Tells each peer which speakers it should have a stream of: every other peer. Who is
    /// heard is the routing rule's business, applied on the legs without renegotiation.
    fn update_speakers(&self) {
        if self.ending {
            return;
        }
        for p in self.peers.values() {
            let speakers: BTreeSet<PeerKey> = self
                .peers
                .values()
                .filter(|o| o.key != p.key)
                .map(|o| o.key.clone())
                .chain(self.relayed.values().map(|r| r.key.clone()))
                .collect();
            let _ = p.cmd.send(PeerCmd::Speakers(speakers));
        }
    }

    fn add_leg(&mut self, leg: Arc<Leg>) {
        let live = |k: &PeerKey| self.peers.get(&k.user).is_some_and(|p| p.key == *k);
        let relayed = self
            .relayed
            .get(&leg.speaker.user)
            .filter(|r| r.key == leg.speaker);
        if !(live(&leg.speaker) || relayed.is_some()) || !live(&leg.subscriber) {
            return;
        }
        leg.audible.store(
            may_hear(&self.route, &leg.speaker.user, &leg.subscriber.user),
            Relaxed,
        );
        let publisher = match relayed {
            Some(r) => &r.publish,
            None => match self.peers.get(&leg.speaker.user) {
                Some(p) => &p.publish,
                None => return,
            },
        };
        let _ = publisher.send(PublishCmd::Add(Arc::clone(&leg)));
        self.legs.push(leg);
    }

    fn apply_route(&self) {
        for leg in &self.legs {
            leg.audible.store(
                may_hear(&self.route, &leg.speaker.user, &leg.subscriber.user),
                Relaxed,
            );
        }
    }

    /// The loudest level each heard speaker reached since the last tick, for `active-speaker`
    /// and the dashboard.
    fn levels(&self) {
        let mut levels = Vec::new();
        for (user, p) in &self.peers {
            let peak = p.stats.peak_level.swap(0, Relaxed);
            let level = peak as f32 / 1e6;
            p.stats.level.store(level.to_bits(), Relaxed);
            if peak > 0 && audience(&self.route, user) != Audience::Nobody {
                levels.push((Arc::clone(user), level));
            }
        }
        if !levels.is_empty() {
            let _ = self.shared.events.send(MediaEvent::Levels {
                meeting: Arc::clone(&self.id),
                levels,
            });
        }
    }

    /// Closes every peer and waits (a while) for their tasks to finish.
    async fn end(&mut self, rx: &mut mpsc::UnboundedReceiver<RoomCmd>) {
        self.ending = true;
        self.relayed.clear();
        self.shared.connected().remove(&*self.id);
        let users: Vec<Arc<str>> = self.peers.keys().cloned().collect();
        for user in users {
            self.remove(&user, true);
        }
        let wait = async {
            while self.closing > 0 {
                match rx.recv().await {
                    Some(RoomCmd::Closed { .. }) => self.closing -= 1,
                    Some(RoomCmd::Offer { reply, .. }) => {
                        let _ = reply.send(Err(MediaError::Ended));
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), wait).await;
    }
}
