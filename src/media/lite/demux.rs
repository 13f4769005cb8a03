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

use std::collections::HashMap;
use std::net::SocketAddr;

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
    /// Datagrams routed to nobody.
    pub dropped: u64,
}

impl<K> Default for Demux<K> {
    fn default() -> Self {
        Self {
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            dropped: 0,
        }
    }
}

impl<K: Copy + Eq> Demux<K> {
    /// A new connection, known by the ufrag the server gave it.
    pub fn add(&mut self, ufrag: &str, key: K) {
        self.by_ufrag.insert(ufrag.to_owned(), key);
    }

    /// The connection is gone: its ufrag and addresses go too.
    pub fn remove(&mut self, key: K) {
        self.by_ufrag.retain(|_, k| *k != key);
        self.by_addr.retain(|_, k| *k != key);
    }

    /// The connection's agent accepted a check from `addr`: later datagrams from there are its
    /// (an address another connection had is taken over: the port was reused by a NAT).
    pub fn learn(&mut self, addr: SocketAddr, key: K) {
        self.by_addr.insert(addr, key);
    }

    pub fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Route<K> {
        // A binding request naming a connection wins over the address: that is how a moved
        // or reused address is found again.
        if let Some(key) = binding_ufrag(datagram).and_then(|u| self.by_ufrag.get(u)) {
            return match self.by_addr.get(&from) {
                Some(k) if k == key => Route::Known(*key),
                _ => Route::Candidate(*key),
            };
        }
        match self.by_addr.get(&from) {
            Some(key) => Route::Known(*key),
            None => {
                self.dropped += 1;
                Route::Unknown
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_ufrag.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_ufrag.is_empty()
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
        assert_eq!(d.dropped, 0);
    }

    #[test]
    fn unknown_addresses_and_ufrags_are_dropped_and_counted() {
        let mut d = Demux::default();
        d.add("srv1", 1u32);
        assert_eq!(d.route(addr(1), &[0x80, 111, 0, 1]), Route::Unknown);
        assert_eq!(d.route(addr(1), &binding("nobody:cli")), Route::Unknown);
        assert_eq!(d.route(addr(1), &binding(":cli")), Route::Unknown);
        assert_eq!(d.route(addr(1), &[]), Route::Unknown);
        assert_eq!(d.dropped, 4);
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
