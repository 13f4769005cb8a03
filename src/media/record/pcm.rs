//! Relay audio (Int16 PCM at the client's rate) made into Opus packets for a speaker's file,
//! with RTP-like counters so the track places them like forwarded packets: 20 ms frames at
//! 48 kHz (resampled when the client's rate is another), contiguous timestamps while audio
//! flows, and a timestamp jump where the audio received falls behind the clock by more than
//! [`GAP`]: a pause (the client stopped sending) or a client that sends slower than it plays.
//! The track writes the jump as silence, as it does for DTX, so the speaker's audio stays
//! within [`GAP`] of when it arrived and in step with the other speakers of the mix.

use std::io;
use std::time::Duration;

use opus_rs::OpusEncoder;
use rubato::{FftFixedOut, Resampler};

use super::mix::Encoding;
use super::track::Rtp;

const FRAME: usize = 960;
/// Audio that arrives this much later than the end of what was received before starts after a
/// gap in time.
const GAP: Duration = Duration::from_millis(200);

pub struct PcmEncoder {
    rate: u32,
    resampler: Option<FftFixedOut<f32>>,
    /// Samples at the client's rate waiting for the resampler.
    input: Vec<f32>,
    /// Samples at 48 kHz waiting to fill a frame.
    frame: Vec<f32>,
    encoder: OpusEncoder,
    packet: Vec<u8>,
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    /// Where the audio received so far ends on the recording's timeline (what the timestamps
    /// say, since the first push): contiguous audio is placed after it however late it comes.
    until: Option<Duration>,
}

fn samples_48k(n: usize) -> Duration {
    Duration::from_secs_f64(n as f64 / 48_000.0)
}

fn codec(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("opus: {e}"))
}

impl PcmEncoder {
    pub fn new(rate: u32, encoding: Encoding) -> io::Result<Self> {
        let encoder = encoding.encoder()?;
        let resampler = if rate == 48_000 {
            None
        } else {
            Some(
                FftFixedOut::new(rate as usize, 48_000, FRAME, 1, 1)
                    .map_err(|e| io::Error::other(format!("resampler: {e}")))?,
            )
        };
        Ok(Self {
            rate,
            resampler,
            input: Vec::new(),
            frame: Vec::with_capacity(FRAME),
            encoder,
            packet: vec![0; 1500],
            ssrc: rand::random(),
            seq: rand::random(),
            timestamp: rand::random(),
            until: None,
        })
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Takes Int16 samples that arrived at `at` (since the recording's start); returns the
    /// packets they complete.
    pub fn push(&mut self, samples: &[i16], at: Duration) -> io::Result<Vec<Rtp>> {
        let mut out = Vec::new();
        let length = Duration::from_secs_f64(samples.len() as f64 / f64::from(self.rate));
        if let Some(mut until) = self.until
            && at > until + GAP
        {
            // A pause, or audio that came slower than it plays: what is pending is sent as it
            // is (its padding is time too), and time jumps to the clock.
            if !self.frame.is_empty() {
                until += samples_48k(FRAME - self.frame.len());
                self.frame.resize(FRAME, 0.0);
                self.encode(at, &mut out)?;
            }
            let gap = at.saturating_sub(until).as_secs_f64() * 48_000.0;
            let frames = (gap / FRAME as f64).round() as u32;
            self.timestamp = self
                .timestamp
                .wrapping_add(frames.wrapping_mul(FRAME as u32));
            self.until = Some(until + samples_48k(frames as usize * FRAME));
        }
        self.until = Some(self.until.unwrap_or(at) + length);
        let floats = samples.iter().map(|&s| f32::from(s) / 32_768.0);
        match &mut self.resampler {
            None => {
                for v in floats {
                    self.frame.push(v);
                    if self.frame.len() == FRAME {
                        self.encode(at, &mut out)?;
                    }
                }
            }
            Some(_) => {
                self.input.extend(floats);
                while let Some(r) = self.resampler.as_mut() {
                    let need = r.input_frames_next();
                    if self.input.len() < need {
                        break;
                    }
                    let chunk: Vec<f32> = self.input.drain(..need).collect();
                    let resampled = r
                        .process(&[chunk], None)
                        .map_err(|e| io::Error::other(format!("resampler: {e}")))?;
                    for v in resampled.into_iter().next().unwrap_or_default() {
                        self.frame.push(v);
                        if self.frame.len() == FRAME {
                            self.encode(at, &mut out)?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn encode(&mut self, at: Duration, out: &mut Vec<Rtp>) -> io::Result<()> {
        let n = self
            .encoder
            .encode(&self.frame, FRAME, &mut self.packet)
            .map_err(codec)?;
        self.frame.clear();
        out.push(Rtp {
            ssrc: self.ssrc,
            seq: self.seq,
            timestamp: self.timestamp,
            payload: self.packet[..n].to_vec(),
            at,
        });
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(FRAME as u32);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::mix::TEST;
    use super::*;

    fn tone(rate: u32, hz: f64, from: usize, n: usize) -> Vec<i16> {
        (from..from + n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (0.5 * 32_767.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn frames_of_20_ms_contiguous_then_a_jump_over_a_pause() {
        let mut e = PcmEncoder::new(48_000, TEST).expect("encoder");
        // 100 ms in odd-sized messages: 5 packets, timestamps 960 apart.
        let mut packets = Vec::new();
        let mut sent = 0;
        for (i, n) in [1_000usize, 2_000, 1_800].into_iter().enumerate() {
            let at = Duration::from_millis(i as u64 * 30);
            packets.extend(e.push(&tone(48_000, 440.0, sent, n), at).expect("push"));
            sent += n;
        }
        assert_eq!(packets.len(), 4800 / 960);
        for w in packets.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(960));
        }
        // One second later: the timestamp jumps by about a second, the sequence does not.
        let last = packets.last().expect("packets").clone();
        let after = e
            .push(&tone(48_000, 440.0, 0, 960), Duration::from_millis(1_100))
            .expect("push");
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].seq, last.seq.wrapping_add(1));
        let jump = after[0].timestamp.wrapping_sub(last.timestamp);
        assert!((48_000..=49_920).contains(&jump), "jump {jump}");
    }

    #[test]
    fn a_client_slower_than_real_time_stays_in_step_with_the_clock() {
        // 20 ms of audio every 30 ms for 3 s: 2 s of audio over 3 s. The timestamps must keep
        // up with the arrivals (within GAP and a frame), not run 1 s behind them.
        let mut e = PcmEncoder::new(48_000, TEST).expect("encoder");
        let mut packets = Vec::new();
        for i in 0..100u64 {
            let at = Duration::from_millis(i * 30);
            packets.extend(e.push(&tone(48_000, 440.0, 0, 960), at).expect("push"));
        }
        let first = packets.first().expect("packets").clone();
        for p in &packets {
            let placed = f64::from(p.timestamp.wrapping_sub(first.timestamp)) / 48_000.0;
            let lag = p.at.as_secs_f64() - placed;
            assert!(
                (-0.021..=0.221).contains(&lag),
                "packet {} placed at {placed:.3} s, arrived at {:.3} s",
                p.seq.wrapping_sub(first.seq),
                p.at.as_secs_f64()
            );
        }
        // Nothing is lost or padded: a packet a message.
        assert_eq!(packets.len(), 100);
    }

    #[test]
    fn other_rates_are_resampled_to_48_khz() {
        for rate in [44_100u32, 16_000, 8_000] {
            let mut e = PcmEncoder::new(rate, TEST).expect("encoder");
            let n = rate as usize; // one second
            let packets = e
                .push(&tone(rate, 440.0, 0, n), Duration::ZERO)
                .expect("push");
            // One second makes 50 frames, less the resampler's start-up.
            assert!(
                (48..=50).contains(&packets.len()),
                "{rate}: {}",
                packets.len()
            );
            assert!(packets.iter().all(|p| !p.payload.is_empty()));
        }
    }
}
