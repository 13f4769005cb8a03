//! One speaker's file: RTP Opus packets placed on the recording's timeline.
//!
//! Position 0 is the start of the recording; every file of a recording is that long, so the
//! speakers line up. A packet's place comes from its RTP timestamp relative to the packet
//! before it (wrapping `u32` arithmetic, widened to samples once): a sequence gap (loss) and a
//! timestamp jump over contiguous sequence numbers (DTX) both become silence, so the file's
//! duration is the wall-clock time. Where the timestamps and the arrival time disagree by more
//! than [`RESYNC`] (a sender that restarted, paused its clock, or a new SSRC), the arrival time
//! wins. Nothing arriving (a speaker muted, silent or gone) is silence up to the tick.

use std::io::{self, Write};
use std::num::Wrapping;
use std::time::Duration;

use super::ogg::{OpusFile, RATE, Tags};
use super::reorder::{Out, Reorder};

/// Packets held for reordering: a missing one is given up after this many newer ones (about
/// 100 ms of 20 ms packets).
pub const REORDER_DEPTH: usize = 5;
/// How far the RTP timeline may drift from the arrival times before the arrival times win.
pub const RESYNC: Duration = Duration::from_secs(1);

/// One RTP packet of the speaker's, with its arrival time since the start of the recording.
#[derive(Debug, Clone)]
pub struct Rtp {
    pub ssrc: u32,
    pub seq: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    pub at: Duration,
}

/// What a track counted, for the recording's row and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrackCounts {
    pub packets: u64,
    /// Places given up by the reorder buffer (lost or too late).
    pub missed: u64,
    /// Packets dropped: late, duplicate, or not Opus.
    pub dropped: u64,
    /// Times the arrival time replaced the RTP timeline.
    pub resyncs: u64,
}

pub struct Track<W: Write> {
    file: OpusFile<W>,
    ssrc: Option<u32>,
    reorder: Reorder<Rtp>,
    /// The last written packet's RTP timestamp and the position it was written at.
    anchor: Option<(Wrapping<u32>, u64)>,
    counts: TrackCounts,
}

fn samples(d: Duration) -> u64 {
    u64::try_from(d.as_micros() * u128::from(RATE) / 1_000_000).unwrap_or(u64::MAX)
}

impl<W: Write> Track<W> {
    pub fn create(out: W, serial: u32, tags: &Tags) -> io::Result<Self> {
        Ok(Self {
            file: OpusFile::create(out, serial, tags)?,
            ssrc: None,
            reorder: Reorder::new(REORDER_DEPTH),
            anchor: None,
            counts: TrackCounts::default(),
        })
    }

    pub fn counts(&self) -> TrackCounts {
        self.counts
    }

    /// Audio written so far.
    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.file.position() * 1_000_000 / RATE)
    }

    /// Takes a packet; writes what the reorder buffer lets out.
    pub fn push(&mut self, rtp: Rtp) -> io::Result<()> {
        if self.ssrc != Some(rtp.ssrc) {
            // A new stream (a reconnect): what the old one held goes first, then the arrival
            // time places the new one.
            self.flush()?;
            self.reorder = Reorder::new(REORDER_DEPTH);
            self.ssrc = Some(rtp.ssrc);
            self.anchor = None;
        }
        match self.reorder.push(rtp.seq, rtp) {
            super::reorder::Pushed::Late | super::reorder::Pushed::Duplicate => {
                self.counts.dropped += 1;
            }
            super::reorder::Pushed::Held | super::reorder::Pushed::Restarted => {}
        }
        while let Some(out) = self.reorder.pop() {
            self.place(out)?;
        }
        Ok(())
    }

    /// Time passed with nothing to write: what is held is written, gaps given up, and silence
    /// fills up to `now`. The caller waits past the reorder delay since the last packet.
    pub fn advance(&mut self, now: Duration) -> io::Result<()> {
        self.flush()?;
        let target = samples(now);
        if target > self.file.position() {
            self.file.silence(target - self.file.position())?;
        }
        Ok(())
    }

    /// Ends the file at `end` (silence up to there) and hands the writer back.
    pub fn finish(mut self, end: Duration) -> io::Result<(W, TrackCounts, Duration)> {
        self.advance(end)?;
        let counts = self.counts;
        let duration = self.duration();
        Ok((self.file.finish()?, counts, duration))
    }

    fn flush(&mut self) -> io::Result<()> {
        for out in self.reorder.drain() {
            self.place(out)?;
        }
        Ok(())
    }

    fn place(&mut self, out: Out<Rtp>) -> io::Result<()> {
        let Out::Packet(rtp) = out else {
            self.counts.missed += 1;
            return Ok(());
        };
        let arrival = samples(rtp.at);
        let ts = Wrapping(rtp.timestamp);
        let by_clock = self.anchor.and_then(|(prev, pos)| {
            // Forward distance only: a timestamp before the last one is a new timeline.
            let ahead = (ts - prev).0;
            (ahead < u32::MAX / 2).then(|| pos + u64::from(ahead))
        });
        let pos = match by_clock {
            Some(p) if p.abs_diff(arrival) <= samples(RESYNC) => p,
            Some(_) => {
                self.counts.resyncs += 1;
                arrival
            }
            None => arrival,
        };
        if pos > self.file.position() {
            self.file.silence(pos - self.file.position())?;
        }
        // Written where the file is: an overlap (at most what the clocks disagree by) shifts
        // the packet a little later rather than losing it.
        let at = self.file.position();
        if self.file.write(&rtp.payload)?.is_some() {
            self.counts.packets += 1;
            self.anchor = Some((ts, at));
        } else {
            self.counts.dropped += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::ogg::tests::read_back;
    use super::*;

    const MS20: u32 = 960;

    fn rtp(seq: u16, timestamp: u32, at_ms: u64) -> Rtp {
        Rtp {
            ssrc: 1,
            seq,
            timestamp,
            payload: vec![0xfc, 0xaa, 0xbb],
            at: Duration::from_millis(at_ms),
        }
    }

    /// Samples of audio after the pre-skip frame, the granule of the last page, and the
    /// positions of real (non-silence) packets.
    fn layout(bytes: &[u8]) -> (u64, u64, Vec<u64>) {
        let packets = read_back(bytes);
        let mut pos = 0;
        let mut real = Vec::new();
        assert_eq!(packets[2].data, [0xf8, 0xff, 0xfe], "pre-skip frame");
        for p in &packets[3..] {
            if p.data[0] == 0xfc {
                real.push(pos);
            }
            pos += super::super::ogg::packet_samples(&p.data).expect("opus");
        }
        (pos, packets.last().expect("packets").absgp_page(), real)
    }

    fn track() -> Track<Vec<u8>> {
        Track::create(Vec::new(), 9, &Tags::default()).expect("create")
    }

    #[test]
    fn a_late_joiner_starts_where_they_joined_and_loss_and_dtx_are_silence() {
        let mut t = track();
        // Joins 1 s in; seq 0..50 with seq 10 lost; then DTX: 2 s without packets, the
        // timestamps jump over it; 50 more packets; the recording stops 1 s after.
        let base = 123_456u32;
        for i in 0..50u16 {
            if i != 10 {
                t.push(rtp(
                    i,
                    base + u32::from(i) * MS20,
                    1_000 + u64::from(i) * 20,
                ))
                .expect("push");
            }
        }
        for i in 50..100u16 {
            let ts = base + u32::from(i) * MS20 + 100 * MS20;
            t.push(rtp(i, ts, 3_000 + u64::from(i) * 20)).expect("push");
        }
        let (bytes, counts, duration) = t.finish(Duration::from_millis(6_000)).expect("finish");
        assert_eq!(counts.packets, 99);
        assert_eq!(counts.missed, 1);
        assert_eq!(counts.resyncs, 0);
        assert_eq!(duration, Duration::from_secs(6));
        let (total, last_granule, real) = layout(&bytes);
        assert_eq!(total, 6 * 48_000);
        assert_eq!(
            last_granule,
            total + 960,
            "the pre-skip frame counts in granules"
        );
        assert_eq!(real[0], 48_000, "1 s of silence first");
        assert_eq!(
            real[10] - real[9],
            2 * 960,
            "the lost packet is 20 ms of silence"
        );
        assert_eq!(real[49] - real[48], 101 * 960, "DTX: 2 s of silence");
    }

    #[test]
    fn reordered_packets_and_a_wrapping_timestamp_and_sequence() {
        let mut t = track();
        let base = u32::MAX - 5 * MS20 + 1;
        let order = [0u16, 2, 1, 3, 5, 4, 6, 7, 8, 9];
        for &i in &order {
            let seq = 65_530u16.wrapping_add(i);
            let ts = base.wrapping_add(u32::from(i) * MS20);
            t.push(rtp(seq, ts, 200 + u64::from(i) * 20)).expect("push");
        }
        let (bytes, counts, _) = t.finish(Duration::from_millis(400)).expect("finish");
        assert_eq!(counts.packets, 10);
        assert_eq!((counts.missed, counts.dropped, counts.resyncs), (0, 0, 0));
        let (_, _, real) = layout(&bytes);
        let want: Vec<u64> = (0..10).map(|i| 9_600 + i * 960).collect();
        assert_eq!(real, want, "in order, 20 ms apart, across both wraps");
    }

    #[test]
    fn a_clock_that_disagrees_with_arrival_is_resynced_and_a_new_ssrc_placed_by_arrival() {
        let mut t = track();
        t.push(rtp(1, 1_000, 0)).expect("push");
        // The sender's timestamp stands still for 3 s of wall clock (a paused clock).
        t.push(rtp(2, 1_000 + MS20, 3_000)).expect("push");
        // A reconnect 1 s later: a new SSRC, its sequence behind the old one's, its timestamp
        // from elsewhere.
        let mut again = rtp(0, 7, 4_000);
        again.ssrc = 2;
        t.push(again).expect("push");
        let (bytes, counts, duration) = t.finish(Duration::from_millis(5_000)).expect("finish");
        assert_eq!(counts.resyncs, 1);
        assert_eq!(duration, Duration::from_secs(5));
        let (_, _, real) = layout(&bytes);
        assert_eq!(real, [0, 3 * 48_000, 4 * 48_000]);
    }

    #[test]
    fn silence_fills_up_to_the_tick_and_a_packet_behind_it_is_shifted_not_lost() {
        let mut t = track();
        t.push(rtp(1, 0, 0)).expect("push");
        t.advance(Duration::from_millis(1_000)).expect("advance");
        assert_eq!(t.duration(), Duration::from_secs(1));
        // Its clock says 0.5 s: behind what is written; it goes at 1 s.
        t.push(rtp(2, 24_000, 980)).expect("push");
        let (bytes, counts, _) = t.finish(Duration::from_millis(1_500)).expect("finish");
        assert_eq!(counts.packets, 2);
        let (total, _, real) = layout(&bytes);
        assert_eq!(real, [0, 48_000]);
        assert_eq!(total, 72_000);
    }
}
