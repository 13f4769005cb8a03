//! The SFU's own UDP port allocator (the crate has no port range): each peer connection takes
//! one port of `media.udp_port_min..=max` on every bound address. A released port rests a few
//! seconds before reuse, so stray packets of a closed session never reach a new one.

use std::collections::{HashSet, VecDeque};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const QUARANTINE: Duration = Duration::from_secs(3);

pub struct PortAllocator {
    range: RangeInclusive<u16>,
    state: Mutex<State>,
}

struct State {
    next: u16,
    in_use: HashSet<u16>,
    resting: VecDeque<(u16, Instant)>,
}

/// A port held by one peer connection; returned (to rest) when dropped.
pub struct PortLease {
    pub port: u16,
    owner: Arc<PortAllocator>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.owner.release(self.port, Instant::now());
    }
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                next: *range.start(),
                in_use: HashSet::new(),
                resting: VecDeque::new(),
            }),
            range,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next free port after the last one handed out, or `None` when all are taken.
    pub fn lease(self: &Arc<Self>) -> Option<PortLease> {
        self.lease_at(Instant::now())
    }

    fn lease_at(self: &Arc<Self>, now: Instant) -> Option<PortLease> {
        let (start, end) = (*self.range.start(), *self.range.end());
        let size = usize::from(end - start) + 1;
        let mut state = self.lock();
        while state
            .resting
            .front()
            .is_some_and(|(_, since)| now.duration_since(*since) >= QUARANTINE)
        {
            if let Some((port, _)) = state.resting.pop_front() {
                state.in_use.remove(&port);
            }
        }
        for _ in 0..size {
            let port = state.next;
            state.next = if port >= end { start } else { port + 1 };
            if state.in_use.insert(port) {
                return Some(PortLease {
                    port,
                    owner: Arc::clone(self),
                });
            }
        }
        None
    }

    fn release(&self, port: u16, now: Instant) {
        self.lock().resting.push_back((port, now));
    }

    /// Ports leased or resting.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        let state = self.lock();
        state.in_use.len()
    }

    /// Ports leased by live connections (not resting).
    pub fn leased(&self) -> usize {
        let state = self.lock();
        state.in_use.len() - state.resting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_each_port_once_then_none() {
        let ports = PortAllocator::new(5000..=5002);
        let now = Instant::now();
        let a = ports.lease_at(now).map(|l| l.port);
        let leases: Vec<_> = (0..3).filter_map(|_| ports.lease_at(now)).collect();
        assert_eq!(a, Some(5000));
        // The first lease was dropped at once: it rests, so the three others are new ports
        // and the range is then exhausted.
        assert_eq!(leases.len(), 2);
        assert_eq!(
            leases.iter().map(|l| l.port).collect::<Vec<_>>(),
            vec![5001, 5002]
        );
        assert!(ports.lease_at(now).is_none());
        assert_eq!((ports.leased(), ports.in_use()), (2, 3));
    }

    #[test]
    fn a_released_port_rests_before_reuse() {
        let ports = PortAllocator::new(6000..=6000);
        let t0 = Instant::now();
        let lease = ports.lease_at(t0);
        assert!(lease.is_some());
        drop(lease);
        assert!(ports.lease_at(t0 + Duration::from_secs(1)).is_none());
        let again = ports.lease_at(t0 + QUARANTINE + Duration::from_millis(10));
        assert_eq!(again.as_ref().map(|l| l.port), Some(6000));
        assert_eq!(ports.leased(), 1);
        drop(again);
        assert_eq!(ports.leased(), 0);
    }
}
