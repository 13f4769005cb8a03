//! One UDP port for every peer connection: which connection a datagram is for.
//!
//! A connection is first found by the STUN binding request its client sends (RFC 8445): the
//! USERNAME attribute is `<our ufrag>:<their ufrag>`, and our ufrag is chosen by the server,
//! one per connection. Once the connection's ICE agent has accepted a check from an address
//! (`learn`), every later datagram from that address (DTLS, SRTP, SRTCP, consent checks) goes
//! to it by a hash-map lookup. An address that moves (NAT rebinding) is re-learned from the
//! next valid check; a datagram from an address nobody has learned that is not a STUN request
//! naming a known ufrag is dropped and counted. Message integrity is the ICE agent's to check:
//! `route` only proposes a connection, and only the agent's acceptance teaches an address.
//!
//! Shards that share one port (`SO_REUSEPORT`) each have a socket on it, and the kernel picks
//! the socket by the datagram's addresses, not by meeting: a [`Directory`] says which shard
//! holds the connection of a datagram its receiving shard does not know.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{PoisonError, RwLock};

/// STUN's magic cookie (RFC 5389).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const BINDING_REQUEST: u16 = 0x0001;
const USERNAME: u16 = 0x0006;

/// Where a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<K> {
    /// To this connection, whose agent has accepted this address.
    Known(K),
    /// A STUN binding request naming this connection's ufrag, from an address it has not
    /// accepted (yet): the agent decides, and `learn` follows if it accepts.
    Candidate(K),
    /// Nobody's: dropped.
    Unknown,
}

/// The table of one port.
#[derive(Debug)]
pub struct Demux<K> {
    by_ufrag: HashMap<String, K>,
    by_addr: HashMap<SocketAddr, K>,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq> Demux<K> {
    /// A new connection, known by the ufrag the server gave it.
    pub fn add(&mut self, ufrag: &str, key: K) {
        self.by_ufrag.insert(ufrag.to_owned(), key);
    }

    /// The connection is gone: its ufrag and addresses go too (and are returned).
    pub fn remove(&mut self, key: K) -> (Vec<String>, Vec<SocketAddr>) {
        let ufrags = self.by_ufrag.extract_if(|_, k| *k == key).map(|(u, _)| u);
        let ufrags = ufrags.collect();
        let addrs = self.by_addr.extract_if(|_, k| *k == key).map(|(a, _)| a);
        (ufrags, addrs.collect())
    }

    /// A connection of another shard took the address over (a NAT reused the port).
    pub fn forget(&mut self, addr: SocketAddr) {
        self.by_addr.remove(&addr);
    }

    /// The connection's agent accepted a check from `addr`: later datagrams from there are its
    /// (an address another connection had is taken over: the port was reused by a NAT).
    pub fn learn(&mut self, addr: SocketAddr, key: K) {
        self.by_addr.insert(addr, key);
    }

    pub fn route(&self, from: SocketAddr, datagram: &[u8]) -> Route<K> {
        // A binding request naming a connection wins over the address: that is how a moved
        // or reused address is found again. One naming no connection of this port's is not
        // for the address's connection either.
        if let Some(ufrag) = binding_ufrag(datagram) {
            return match self.by_ufrag.get(ufrag) {
                Some(key) if self.by_addr.get(&from) == Some(key) => Route::Known(*key),
                Some(key) => Route::Candidate(*key),
                None => Route::Unknown,
            };
        }
        match self.by_addr.get(&from) {
            Some(key) => Route::Known(*key),
            None => Route::Unknown,
        }
    }

    pub fn len(&self) -> usize {
        self.by_ufrag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty()
    }
}

/// Which shard holds each connection of a port the shards share: its ufrag and the addresses
/// its agent accepted, as the shard's own [`Demux`] has them.
#[derive(Debug, Default)]
pub struct Directory {
    ufrags: RwLock<HashMap<String, usize>>,
    addrs: RwLock<HashMap<SocketAddr, usize>>,
}

impl Directory {
    pub fn add(&self, ufrag: &str, shard: usize) {
        let mut ufrags = self.ufrags.write().unwrap_or_else(PoisonError::into_inner);
        ufrags.insert(ufrag.to_owned(), shard);
    }

    /// `shard` learned the address; the shard that had it before, if another.
    pub fn learn(&self, addr: SocketAddr, shard: usize) -> Option<usize> {
        let mut addrs = self.addrs.write().unwrap_or_else(PoisonError::into_inner);
        addrs.insert(addr, shard).filter(|was| *was != shard)
    }

    /// A connection of `shard` is gone: what it had, unless another shard has it now.
    pub fn remove(&self, shard: usize, ufrags: &[String], addrs: &[SocketAddr]) {
        let mut table = self.ufrags.write().unwrap_or_else(PoisonError::into_inner);
        for u in ufrags {
            if table.get(u) == Some(&shard) {
                table.remove(u);
            }
        }
        drop(table);
        let mut table = self.addrs.write().unwrap_or_else(PoisonError::into_inner);
        for a in addrs {
            if table.get(a) == Some(&shard) {
                table.remove(a);
            }
        }
    }

    /// The shard whose connection a datagram is for, as [`Demux::route`] would find it there.
    pub fn owner(&self, from: SocketAddr, datagram: &[u8]) -> Option<usize> {
        if let Some(ufrag) = binding_ufrag(datagram) {
            let ufrags = self.ufrags.read().unwrap_or_else(PoisonError::into_inner);
            return ufrags.get(ufrag).copied();
        }
        self.owner_of(from)
    }

    pub fn owner_of(&self, addr: SocketAddr) -> Option<usize> {
        let addrs = self.addrs.read().unwrap_or_else(PoisonError::into_inner);
        addrs.get(&addr).copied()
    }
}

/// Whether a datagram the connection sends is a STUN binding success response: the agent's
/// acceptance of a check (its MESSAGE-INTEGRITY held), after which the check's address is
/// learned. A check that fails integrity gets no success response, so it teaches nothing.
fn is_binding_success(datagram: &[u8]) -> bool {
    datagram.len() >= 20 && datagram[0..2] == [0x01, 0x01] && datagram[4..8] == MAGIC_COOKIE
}

/// Whether a datagram the connection sends to an address that checked it shows that the agent
/// accepted the check: its binding success, or the triggered check it sends back instead when
/// the check nominated a pair not yet valid (USE-CANDIDATE on the first check: Firefox's
/// aggressive nomination towards an ICE-lite server). The reply to that triggered check comes
/// from the address, so it must be routed. The agent does neither for a check whose USERNAME
/// or MESSAGE-INTEGRITY is wrong.
pub fn accepts_check(datagram: &[u8]) -> bool {
    is_binding_success(datagram)
        || (datagram.len() >= 20
            && u16::from_be_bytes([datagram[0], datagram[1]]) == BINDING_REQUEST
            && datagram[4..8] == MAGIC_COOKIE)
}

/// Our ufrag in a STUN binding request's USERNAME (`ours:theirs`), if the datagram is one.
pub fn binding_ufrag(datagram: &[u8]) -> Option<&str> {
    // RFC 7983: STUN datagrams start with 0 or 1; then the header is 20 bytes.
    if datagram.len() < 20 || datagram[0] > 3 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    if u16::from_be_bytes([datagram[0], datagram[1]]) != BINDING_REQUEST {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let body = datagram.get(20..20 + length)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            let (ours, theirs) = username.split_once(':')?;
            return (!ours.is_empty() && !theirs.is_empty()).then_some(ours);
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&USERNAME.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&attr);
        m
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn the_first_check_names_the_connection_then_the_address_does() {
        let mut d = Demux::default();
        d.add("srv1", 1u32);
        d.add("srv2", 2u32);
        assert_eq!(
            d.route(addr(5000), &binding("srv2:cli")),
            Route::Candidate(2)
        );
        d.learn(addr(5000), 2);
        assert_eq!(d.route(addr(5000), &binding("srv2:cli")), Route::Known(2));
        // DTLS (20..63) and SRTP (128..191) from that address: the same connection.
        assert_eq!(d.route(addr(5000), &[22, 254, 253, 0]), Route::Known(2));
        assert_eq!(d.route(addr(5000), &[0x80, 111, 0, 1]), Route::Known(2));
        // A check naming no connection here is not the address's connection's.
        assert_eq!(d.route(addr(5000), &binding("other:cli")), Route::Unknown);
    }

    #[test]
    fn unknown_addresses_and_ufrags_are_nobodys() {
        let mut d = Demux::default();
        d.add("srv1", 1u32);
        assert_eq!(d.route(addr(1), &[0x80, 111, 0, 1]), Route::Unknown);
        assert_eq!(d.route(addr(1), &binding("nobody:cli")), Route::Unknown);
        assert_eq!(d.route(addr(1), &binding(":cli")), Route::Unknown);
        assert_eq!(d.route(addr(1), &[]), Route::Unknown);
    }

    #[test]
    fn the_directory_finds_another_shards_connection_as_its_demux_would() {
        let dir = Directory::default();
        dir.add("srv1", 1);
        // The first check by its ufrag, later datagrams by the learned address.
        assert_eq!(dir.owner(addr(5000), &binding("srv1:cli")), Some(1));
        assert_eq!(dir.owner(addr(5000), &[0x80, 111, 0, 1]), None);
        assert_eq!(dir.learn(addr(5000), 1), None);
        assert_eq!(dir.owner(addr(5000), &[0x80, 111, 0, 1]), Some(1));
        // Shard 0 takes the address over: shard 1 is told to forget it, and its connection
        // going away leaves shard 0's entry alone.
        assert_eq!(dir.learn(addr(5000), 0), Some(1));
        let mut d = Demux::default();
        d.add("srv1", 7u32);
        d.learn(addr(5000), 7);
        let (ufrags, addrs) = d.remove(7);
        assert_eq!(
            (ufrags.as_slice(), addrs.as_slice()),
            (&["srv1".to_owned()][..], &[addr(5000)][..])
        );
        dir.remove(1, &ufrags, &addrs);
        assert_eq!(dir.owner(addr(5000), &[0x80, 111, 0, 1]), Some(0));
        assert_eq!(dir.owner(addr(6000), &binding("srv1:cli")), None);
        assert_eq!(dir.owner(addr(1), &[]), None);
    }

    #[test]
    fn a_moved_client_is_found_again_by_its_next_check() {
        let mut d = Demux::default();
        d.add("srv1", 1u32);
        d.learn(addr(5000), 1);
        // NAT rebinding: SRTP from the new port is nobody's until a check is accepted there.
        assert_eq!(d.route(addr(6000), &[0x80, 111, 0, 1]), Route::Unknown);
        assert_eq!(
            d.route(addr(6000), &binding("srv1:cli")),
            Route::Candidate(1)
        );
        d.learn(addr(6000), 1);
        assert_eq!(d.route(addr(6000), &[0x80, 111, 0, 1]), Route::Known(1));
        d.forget(addr(5000));
        assert_eq!(d.route(addr(5000), &[0x80, 111, 0, 1]), Route::Unknown);
        d.remove(1);
        assert_eq!(d.route(addr(6000), &[0x80, 111, 0, 1]), Route::Unknown);
        assert!(d.is_empty());
    }

    #[test]
    fn a_success_or_a_triggered_check_is_an_acceptance() {
        let mut ok = binding("srv1:cli");
        ok[0..2].copy_from_slice(&[0x01, 0x01]);
        assert!(is_binding_success(&ok));
        let mut error = ok.clone();
        error[0..2].copy_from_slice(&[0x01, 0x11]);
        assert!(!is_binding_success(&error));
        assert!(!is_binding_success(&binding("srv1:cli")));
        assert!(!is_binding_success(&[0x80, 111, 0, 1]));
        assert!(accepts_check(&ok));
        assert!(accepts_check(&binding("cli:srv1")));
        assert!(!accepts_check(&error));
        assert!(!accepts_check(&[0x80, 111, 0, 1]));
    }

    #[test]
    fn malformed_stun_never_panics() {
        let good = binding("srv1:cli");
        for cut in 0..good.len() {
            let _ = binding_ufrag(&good[..cut]);
        }
        let mut lying = good.clone();
        lying[2] = 0xFF; // a length past the end
        assert_eq!(binding_ufrag(&lying), None);
        let mut not_request = good;
        not_request[1] = 0x11; // an indication
        assert_eq!(binding_ufrag(&not_request), None);
    }
}

#[cfg(test)]
mod fuzz {
    //! The demultiplexer on any datagram (tests/fuzz/README.md): STUN read as `rtc`'s STUN
    //! decoder reads it, nothing routed to a connection that did not earn it.
    use std::collections::HashMap;

    use proptest::prelude::*;
    use rtc::stun::attributes::ATTR_USERNAME;
    use rtc::stun::message::{BINDING_REQUEST as STUN_BINDING_REQUEST, Message};
    use rtc::stun::textattrs::TextAttribute;

    use super::*;
    use crate::fuzzing;

    /// One attribute: its type and value (padded on the wire unless `unpadded`).
    #[derive(Debug, Clone)]
    struct Attr {
        kind: u16,
        value: Vec<u8>,
    }

    /// A STUN message from its parts, with a length that may lie.
    fn stun(kind: u16, cookie: [u8; 4], attrs: &[Attr], pad: bool, lie: Option<u16>) -> Vec<u8> {
        let mut body = Vec::new();
        for a in attrs {
            body.extend_from_slice(&a.kind.to_be_bytes());
            body.extend_from_slice(&u16::try_from(a.value.len()).expect("short").to_be_bytes());
            body.extend_from_slice(&a.value);
            while pad && !body.len().is_multiple_of(4) {
                body.push(0);
            }
        }
        let len = lie.unwrap_or_else(|| u16::try_from(body.len()).expect("short"));
        let mut m = Vec::new();
        m.extend_from_slice(&kind.to_be_bytes());
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&cookie);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    fn username() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "(srv[0-9]|[a-zA-Z0-9+/]{0,6}):[a-zA-Z0-9+/]{0,6}".prop_map(String::into_bytes),
            "[a-z:]{0,8}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..12),
        ]
    }

    fn attr() -> impl Strategy<Value = Attr> {
        prop_oneof![
            3 => username().prop_map(|value| Attr { kind: USERNAME, value }),
            // MESSAGE-INTEGRITY (random: never the right one), FINGERPRINT, PRIORITY,
            // USE-CANDIDATE, ICE-CONTROLLING, anything.
            1 => prop::collection::vec(any::<u8>(), 20).prop_map(|value| Attr { kind: 0x0008, value }),
            1 => prop::collection::vec(any::<u8>(), 4).prop_map(|value| Attr { kind: 0x8028, value }),
            1 => prop::collection::vec(any::<u8>(), 4).prop_map(|value| Attr { kind: 0x0024, value }),
            1 => Just(Attr { kind: 0x0025, value: vec![] }),
            1 => prop::collection::vec(any::<u8>(), 8).prop_map(|value| Attr { kind: 0x802A, value }),
            1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(kind, value)| Attr { kind, value }),
        ]
    }

    fn stun_datagram() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![4 => Just(BINDING_REQUEST), 1 => Just(0x0101u16), 1 => Just(0x0111u16), 1 => Just(0x0011u16), 1 => any::<u16>()],
            prop_oneof![9 => Just(MAGIC_COOKIE), 1 => any::<[u8; 4]>()],
            prop::collection::vec(attr(), 0..5),
            prop_oneof![9 => Just(true), 1 => Just(false)],
            prop_oneof![9 => Just(None), 1 => any::<u16>().prop_map(Some)],
            prop::option::of(any::<prop::sample::Index>()),
        )
            .prop_map(|(kind, cookie, attrs, pad, lie, cut)| {
                let mut m = stun(kind, cookie, &attrs, pad, lie);
                if let Some(cut) = cut {
                    m.truncate(cut.index(m.len() + 1));
                }
                m
            })
    }

    /// Any datagram: STUN, seeds (real binding requests) mutated, DTLS/RTP/RTCP-looking, bytes.
    fn datagram() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => stun_datagram(),
            2 => fuzzing::mutated(fuzzing::seeds("demux"), 4),
            1 => (prop_oneof![20u8..64, 128u8..192], prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(first, rest)| [vec![first], rest].concat()),
            1 => prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    /// `rtc`'s reading of a binding request's USERNAME: our ufrag, when the message is one.
    fn rtc_ufrag(datagram: &[u8]) -> Option<String> {
        let mut m = Message::new();
        m.unmarshal_binary(datagram).ok()?;
        if m.typ != STUN_BINDING_REQUEST {
            return None;
        }
        let name = TextAttribute::get_from_as(&m, ATTR_USERNAME).ok()?.text;
        let (ours, theirs) = name.split_once(':')?;
        (!ours.is_empty() && !theirs.is_empty()).then(|| ours.to_owned())
    }

    /// What a route may do, against a table kept beside the demux.
    #[derive(Debug, Clone)]
    enum Op {
        Add(u8, u8),
        Learn(u8, u8),
        Forget(u8),
        Remove(u8),
        Route(u8, Vec<u8>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => (0u8..6, 0u8..4).prop_map(|(u, k)| Op::Add(u, k)),
            1 => (0u8..4, 0u8..4).prop_map(|(a, k)| Op::Learn(a, k)),
            1 => (0u8..4).prop_map(Op::Forget),
            1 => (0u8..4).prop_map(Op::Remove),
            4 => (0u8..4, prop_oneof![
                2 => datagram(),
                2 => (0u8..8, any::<bool>()).prop_map(|(u, bad)| {
                    // A binding request naming `srvN`, with a MESSAGE-INTEGRITY that is
                    // never right: the demux cannot tell, the agent does.
                    let mut attrs = vec![Attr { kind: USERNAME, value: format!("srv{u}:cli").into_bytes() }];
                    if bad {
                        attrs.push(Attr { kind: 0x0008, value: vec![0xAB; 20] });
                    }
                    stun(BINDING_REQUEST, MAGIC_COOKIE, &attrs, true, None)
                }),
            ]).prop_map(|(a, d)| Op::Route(a, d)),
        ]
    }

    fn addr(a: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], 5000 + u16::from(a)))
    }

    proptest! {
        #![proptest_config(fuzzing::config(10_000))]

        /// Any datagram: never a panic; a ufrag only from a well-formed binding request, the
        /// one `rtc`'s decoder reads whenever it reads the message; acceptance only from a
        /// binding success or request.
        #[test]
        fn fuzz_demux_binding_ufrag(d in datagram()) {
            let ours = binding_ufrag(&d);
            if let Some(u) = ours {
                prop_assert!(d.len() >= 20 && d[..2] == [0, 1] && d[4..8] == MAGIC_COOKIE);
                prop_assert!(!u.is_empty() && !u.contains(':'));
                let needle = format!("{u}:");
                prop_assert!(d.windows(needle.len()).any(|w| w == needle.as_bytes()));
            }
            // `rtc`'s decoder ignores the two top bits of the type, which RFC 5389 says are
            // zero (RFC 7983: a first byte of 64..79 is a TURN channel): there the demux is
            // the stricter (`fuzz_regression_the_top_bits_are_not_stun`).
            if let Some(theirs) = rtc_ufrag(&d).filter(|_| d[0] < 4) {
                prop_assert_eq!(ours, Some(theirs.as_str()), "{:?}", d);
            }
            if accepts_check(&d) {
                prop_assert!(d.len() >= 20 && (d[..2] == [1, 1] || d[..2] == [0, 1]) && d[4..8] == MAGIC_COOKIE);
            }
        }

        /// Any sequence of adds, learns, forgets, removes and datagrams: a route names a
        /// connection only by a ufrag it was given (a candidate: never known, never learned
        /// by routing) or by an address its agent accepted; a wrong ufrag is nobody's, and
        /// nothing reaches a removed connection.
        #[test]
        fn fuzz_demux_routes(ops in prop::collection::vec(op(), 1..40)) {
            let mut d = Demux::default();
            let mut ufrags: HashMap<String, u8> = HashMap::new();
            let mut addrs: HashMap<SocketAddr, u8> = HashMap::new();
            for op in ops {
                match op {
                    Op::Add(u, k) => {
                        d.add(&format!("srv{u}"), k);
                        ufrags.insert(format!("srv{u}"), k);
                    }
                    Op::Learn(a, k) => {
                        d.learn(addr(a), k);
                        addrs.insert(addr(a), k);
                    }
                    Op::Forget(a) => {
                        d.forget(addr(a));
                        addrs.remove(&addr(a));
                    }
                    Op::Remove(k) => {
                        let (mut u, mut a) = d.remove(k);
                        let (mut mu, mut ma): (Vec<String>, Vec<SocketAddr>) = (
                            ufrags.iter().filter(|e| *e.1 == k).map(|e| e.0.clone()).collect(),
                            addrs.iter().filter(|e| *e.1 == k).map(|e| *e.0).collect(),
                        );
                        ufrags.retain(|_, v| *v != k);
                        addrs.retain(|_, v| *v != k);
                        u.sort();
                        mu.sort();
                        a.sort();
                        ma.sort();
                        prop_assert_eq!((u, a), (mu, ma));
                    }
                    Op::Route(a, datagram) => {
                        let from = addr(a);
                        let route = d.route(from, &datagram);
                        let named = binding_ufrag(&datagram);
                        match (named, route) {
                            (Some(u), Route::Candidate(k)) => {
                                prop_assert_eq!(ufrags.get(u), Some(&k));
                                prop_assert_ne!(addrs.get(&from), Some(&k));
                            }
                            (Some(u), Route::Known(k)) => {
                                prop_assert_eq!(ufrags.get(u), Some(&k));
                                prop_assert_eq!(addrs.get(&from), Some(&k));
                            }
                            (Some(u), Route::Unknown) => prop_assert!(!ufrags.contains_key(u)),
                            (None, Route::Known(k)) => prop_assert_eq!(addrs.get(&from), Some(&k)),
                            (None, Route::Candidate(_)) => prop_assert!(false, "a candidate without a ufrag"),
                            (None, Route::Unknown) => prop_assert!(!addrs.contains_key(&from)),
                        }
                        prop_assert_eq!(d.route(from, &datagram), route, "routing learns nothing");
                    }
                }
                prop_assert_eq!(d.len(), ufrags.len());
            }
        }
    }

    /// Found by a long run of `fuzz_demux_binding_ufrag` (PROPTEST_CASES=50000): `rtc` reads
    /// the Chrome seed with its type's top bits set (0x4001) as a binding request; the demux
    /// does not, as RFC 5389 and 7983 say, and drops it.
    #[test]
    fn fuzz_regression_the_top_bits_are_not_stun() {
        let mut d = fuzzing::seeds("demux")[0].clone();
        assert_eq!(binding_ufrag(&d), Some("srv1abcd"));
        d[0] = 0x40;
        assert_eq!(rtc_ufrag(&d).as_deref(), Some("srv1abcd"), "rtc is lax");
        assert_eq!(binding_ufrag(&d), None);
    }

    /// Seeds: binding requests as Chrome and Firefox send them to an ICE-lite server
    /// (USERNAME, ICE-CONTROLLING, USE-CANDIDATE, PRIORITY, MESSAGE-INTEGRITY, FINGERPRINT),
    /// a binding success, a DTLS ClientHello's first bytes and an RTP packet.
    #[test]
    #[ignore = "writes tests/fuzz/corpus/demux once"]
    fn write_seeds() {
        let attrs = |user: &str, nominate: bool| {
            let mut a = vec![
                Attr {
                    kind: USERNAME,
                    value: user.as_bytes().to_vec(),
                },
                Attr {
                    kind: 0xC057,
                    value: vec![0, 1, 0, 10],
                },
                Attr {
                    kind: 0x802A,
                    value: vec![0x5e, 0x1d, 0x22, 0x9c, 0x0b, 0x3f, 0x41, 0x77],
                },
                Attr {
                    kind: 0x0024,
                    value: vec![0x6e, 0x7f, 0x1e, 0xff],
                },
            ];
            if nominate {
                a.push(Attr {
                    kind: 0x0025,
                    value: vec![],
                });
            }
            a.push(Attr {
                kind: 0x0008,
                value: (0..20).collect(),
            });
            a.push(Attr {
                kind: 0x8028,
                value: vec![0x8a, 0x0c, 0x3d, 0x51],
            });
            a
        };
        fuzzing::write_seed(
            "demux",
            "chrome-check.bin",
            &stun(
                BINDING_REQUEST,
                MAGIC_COOKIE,
                &attrs("srv1abcd:Xk3q", false),
                true,
                None,
            ),
        );
        fuzzing::write_seed(
            "demux",
            "firefox-check.bin",
            &stun(
                BINDING_REQUEST,
                MAGIC_COOKIE,
                &attrs("srv1abcd:a1b2c3d4", true),
                true,
                None,
            ),
        );
        fuzzing::write_seed(
            "demux",
            "success.bin",
            &stun(
                0x0101,
                MAGIC_COOKIE,
                &[
                    Attr {
                        kind: 0x0020,
                        value: vec![0, 1, 0x3f, 0x44, 0xe1, 0x12, 0xa6, 0x43],
                    },
                    Attr {
                        kind: 0x0008,
                        value: (0..20).collect(),
                    },
                ],
                true,
                None,
            ),
        );
        fuzzing::write_seed(
            "demux",
            "dtls.bin",
            &[22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 1, 0, 0, 0x34],
        );
        fuzzing::write_seed(
            "demux",
            "rtp.bin",
            &[
                0x90, 111, 0, 1, 0, 0, 3, 0xc0, 0, 0, 0, 5, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0,
                0xfc, 0xff, 0xfe,
            ],
        );
    }
}
