//! A reorder buffer per RTP stream: packets leave in sequence order, a missing one is given up
//! once `depth` newer packets have arrived, so a gap is a value the caller handles.
//!
//! Slots are indexed by the wrapping distance from the next expected sequence number
//! (`Wrapping<u16>`): a packet before it is late and dropped, one too far ahead restarts the
//! stream (a sender that restarted, or a long outage), after what was held is handed out.

use std::collections::VecDeque;
use std::num::Wrapping;

/// What [`Reorder::pop`] hands out, in sequence order.
#[derive(Debug, PartialEq, Eq)]
pub enum Out<T> {
    Packet(T),
    /// The packet of this place never came (lost, or later than the buffer waits).
    Missed,
}

/// What became of a pushed packet.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Pushed {
    Held,
    /// Its place was handed out already (as a packet or as missed).
    Late,
    Duplicate,
    /// Far from the expected sequence: what was held is flushed, the stream starts again here.
    Restarted,
}

pub struct Reorder<T> {
    next: Option<Wrapping<u16>>,
    /// `slots[i]` holds sequence number `next + i`.
    slots: VecDeque<Option<T>>,
    depth: usize,
    /// Packets handed out by a restart, before the new stream's.
    flushed: VecDeque<Out<T>>,
}

/// How far ahead a packet may be before it is taken for a new stream (about 20 s of 20 ms
/// packets): beyond any reordering, within any real loss burst.
const MAX_AHEAD: u16 = 1000;

impl<T> Reorder<T> {
    /// A buffer that waits for at most `depth` newer packets before giving a place up (`depth`
    /// 0: packets leave as they come, gaps are given up at once).
    pub fn new(depth: usize) -> Self {
        Self {
            next: None,
            slots: VecDeque::new(),
            depth,
            flushed: VecDeque::new(),
        }
    }

    pub fn push(&mut self, seq: u16, packet: T) -> Pushed {
        let seq = Wrapping(seq);
        let Some(next) = self.next else {
            self.next = Some(seq);
            self.slots.push_back(Some(packet));
            return Pushed::Held;
        };
        let ahead = (seq - next).0;
        if ahead >= u16::MAX - MAX_AHEAD {
            return Pushed::Late;
        }
        if ahead > MAX_AHEAD {
            self.flush();
            self.next = Some(seq);
            self.slots.push_back(Some(packet));
            return Pushed::Restarted;
        }
        let i = usize::from(ahead);
        while self.slots.len() <= i {
            self.slots.push_back(None);
        }
        if self.slots[i].is_some() {
            return Pushed::Duplicate;
        }
        self.slots[i] = Some(packet);
        Pushed::Held
    }

    /// The next packet or gap in order, when it is decided: the packet is there, or `depth`
    /// packets after its place are held.
    pub fn pop(&mut self) -> Option<Out<T>> {
        if let Some(out) = self.flushed.pop_front() {
            return Some(out);
        }
        match self.slots.front() {
            Some(Some(_)) => self.take_front(),
            Some(None) if self.slots.len() > self.depth => self.take_front(),
            _ => None,
        }
    }

    /// Everything still held, in order, gaps included (the stream ends).
    pub fn drain(&mut self) -> Vec<Out<T>> {
        self.flush();
        self.flushed.drain(..).collect()
    }

    fn flush(&mut self) {
        while !self.slots.is_empty() {
            if let Some(out) = self.take_front() {
                self.flushed.push_back(out);
            }
        }
    }

    fn take_front(&mut self) -> Option<Out<T>> {
        let slot = self.slots.pop_front()?;
        if let Some(next) = self.next.as_mut() {
            *next += 1;
        }
        Some(slot.map_or(Out::Missed, Out::Packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn popped(r: &mut Reorder<u16>) -> Vec<Out<u16>> {
        std::iter::from_fn(|| r.pop()).collect()
    }

    #[test]
    fn in_order_packets_leave_at_once() {
        let mut r = Reorder::new(3);
        for s in [10, 11, 12] {
            assert_eq!(r.push(s, s), Pushed::Held);
        }
        assert_eq!(
            popped(&mut r),
            [Out::Packet(10), Out::Packet(11), Out::Packet(12)]
        );
    }

    #[test]
    fn a_swapped_pair_is_put_back_in_order() {
        let mut r = Reorder::new(3);
        r.push(1, 1);
        assert_eq!(popped(&mut r), [Out::Packet(1)]);
        r.push(3, 3);
        assert_eq!(popped(&mut r), [], "waits for 2");
        r.push(2, 2);
        assert_eq!(popped(&mut r), [Out::Packet(2), Out::Packet(3)]);
    }

    #[test]
    fn a_lost_packet_is_given_up_after_depth_newer_ones_and_a_late_one_dropped() {
        let mut r = Reorder::new(2);
        r.push(100, 100);
        r.pop();
        r.push(102, 102);
        assert_eq!(popped(&mut r), []);
        r.push(103, 103);
        assert_eq!(
            popped(&mut r),
            [Out::Missed, Out::Packet(102), Out::Packet(103)]
        );
        assert_eq!(r.push(101, 101), Pushed::Late);
        assert_eq!(r.push(103, 103), Pushed::Late);
        r.push(104, 104);
        assert_eq!(r.push(104, 104), Pushed::Duplicate);
        assert_eq!(popped(&mut r), [Out::Packet(104)]);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Reorder::new(4);
        r.push(65_534, 1);
        r.push(0, 3);
        r.push(65_535, 2);
        r.push(1, 4);
        assert_eq!(
            popped(&mut r),
            [
                Out::Packet(1),
                Out::Packet(2),
                Out::Packet(3),
                Out::Packet(4)
            ]
        );
    }

    #[test]
    fn a_jump_restarts_after_handing_out_what_was_held() {
        let mut r = Reorder::new(4);
        r.push(5, 5);
        r.push(7, 7);
        assert_eq!(r.push(40_000, 9), Pushed::Restarted);
        assert_eq!(
            popped(&mut r),
            [Out::Packet(5), Out::Missed, Out::Packet(7), Out::Packet(9)]
        );
        r.push(40_001, 10);
        assert_eq!(popped(&mut r), [Out::Packet(10)]);
    }

    #[test]
    fn drain_hands_out_the_rest_with_its_gaps() {
        let mut r = Reorder::new(8);
        r.push(1, 1);
        r.pop();
        r.push(3, 3);
        r.push(5, 5);
        assert_eq!(
            r.drain(),
            [Out::Missed, Out::Packet(3), Out::Missed, Out::Packet(5)]
        );
        assert!(r.pop().is_none());
    }
}
