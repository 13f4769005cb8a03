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
