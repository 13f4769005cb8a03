//! The mixed file of a recording: every speaker's file decoded as it grows, summed on the one
//! timeline (every speaker's file starts at the recording's start, so a late joiner comes in
//! where they joined), soft-clipped, encoded once.
//!
//! The mixer reads the files the recorder writes, never the packets on their way: it can fall
//! behind and catch up without touching forwarding or the speakers' files, and after a crash
//! the same code rebuilds the mix from what the files kept.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;

use opus_rs::{Application, OpusDecoder, OpusEncoder};

use super::ogg::{OpusFile, Tags, packet_samples};
use super::tail::Tail;

/// 20 ms at 48 kHz: the mix is encoded in frames of this size.
pub const FRAME: usize = 960;
/// How meet encodes the audio it makes itself: the mixed file, and a relay speaker's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    /// Bits per second.
    pub bitrate: u32,
    /// The encoder's effort, 0–10: CPU against quality (bench/README.md, "Recording cost").
    pub complexity: u8,
}

/// The tests' encoding.
#[cfg(test)]
pub const TEST: Encoding = Encoding {
    bitrate: 32_000,
    complexity: 1,
};

impl From<&crate::config::RecordingsConfig> for Encoding {
    fn from(c: &crate::config::RecordingsConfig) -> Self {
        Self {
            bitrate: c.mix_bitrate,
            complexity: c.mix_complexity,
        }
    }
}

impl Encoding {
    /// An Opus encoder for 48 kHz mono speech with these settings.
    pub fn encoder(self) -> io::Result<OpusEncoder> {
        let mut encoder = OpusEncoder::new(48_000, 1, Application::Voip).map_err(codec)?;
        encoder.bitrate_bps = i32::try_from(self.bitrate).unwrap_or(i32::MAX);
        encoder.complexity = i32::from(self.complexity.min(10));
        Ok(encoder)
    }
}

struct Source {
    tail: Tail,
    decoder: OpusDecoder,
    /// Decoded samples from the mixer's position on.
    pcm: VecDeque<f32>,
    /// Samples of the file before the mixer's position when it was added (already mixed
    /// without it: a speaker's file starts with silence up to their first packet).
    skip: u64,
    /// Packets that did not decode (written as silence).
    undecodable: u64,
}

pub struct Mixer<W: Write> {
    out: OpusFile<W>,
    encoder: OpusEncoder,
    sources: Vec<Source>,
    /// Samples mixed and written.
    mixed: u64,
    packet: Vec<u8>,
}

fn codec(e: &'static str) -> io::Error {
    io::Error::other(format!("opus: {e}"))
}

/// A silence frame as [`super::ogg`] writes them: decoded as zeros without the decoder.
fn is_silence_frame(p: &[u8]) -> bool {
    p.len() == 3 && p[0] >> 3 >= 28 && p[0] & 7 == 0 && p[1..] == [0xff, 0xfe]
}

/// Limits peaks smoothly: unchanged up to 0.85, then bent towards ±1, never past it.
pub fn soft_clip(x: f32) -> f32 {
    const KNEE: f32 = 0.85;
    let a = x.abs();
    if a <= KNEE {
        x
    } else {
        x.signum() * (KNEE + (1.0 - KNEE) * ((a - KNEE) / (1.0 - KNEE)).tanh())
    }
}

impl<W: Write> Mixer<W> {
    pub fn create(out: W, serial: u32, tags: &Tags, encoding: Encoding) -> io::Result<Self> {
        Ok(Self {
            out: OpusFile::create(out, serial, tags)?,
            encoder: encoding.encoder()?,
            sources: Vec::new(),
            mixed: 0,
            packet: vec![0; 1500],
        })
    }

    /// Follows one more speaker's file (which starts, like every file of the recording, at
    /// the recording's start).
    pub fn add(&mut self, path: &Path) -> io::Result<()> {
        self.sources.push(Source {
            tail: Tail::open(path)?,
            decoder: OpusDecoder::new(48_000, 1).map_err(codec)?,
            pcm: VecDeque::new(),
            skip: self.mixed,
            undecodable: 0,
        });
        Ok(())
    }

    /// Samples mixed so far.
    pub fn mixed(&self) -> u64 {
        self.mixed
    }

    /// Packets of the sources that did not decode.
    pub fn undecodable(&self) -> u64 {
        self.sources.iter().map(|s| s.undecodable).sum()
    }

    /// Reads what the sources' files have gained and mixes as far as every unfinished source
    /// reaches; with no source at all, silence up to `idle_until` samples (a speaker who comes
    /// later starts after it: the recorder keeps `idle_until` behind the clock). Returns the
    /// samples mixed by this call.
    pub fn step(&mut self, idle_until: u64) -> io::Result<u64> {
        self.read()?;
        let before = self.mixed;
        if self.sources.is_empty() {
            while self.mixed + FRAME as u64 <= idle_until {
                self.mix_frame()?;
            }
        }
        while self
            .sources
            .iter()
            .all(|s| s.pcm.len() >= FRAME || s.tail.ended() || s.tail.broken())
            && self.sources.iter().any(|s| s.pcm.len() >= FRAME)
        {
            self.mix_frame()?;
        }
        Ok(self.mixed - before)
    }

    /// The sources are complete: mixes the rest, pads with silence up to `end` samples and
    /// ends the file.
    pub fn finish(mut self, end: u64) -> io::Result<W> {
        self.read()?;
        while self.sources.iter().any(|s| !s.pcm.is_empty()) || self.mixed < end {
            self.mix_frame()?;
        }
        self.out.finish()
    }

    fn read(&mut self) -> io::Result<()> {
        let mut decoded = vec![0.0f32; 5_760];
        for s in &mut self.sources {
            for placed in s.tail.poll()? {
                let n = packet_samples(&placed.packet)
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0);
                let end = placed.pos + n as u64;
                if end <= s.skip {
                    continue;
                }
                let out = &mut decoded[..n];
                out.fill(0.0);
                if !is_silence_frame(&placed.packet)
                    && !matches!(s.decoder.decode(&placed.packet, n, out), Ok(got) if got == n)
                {
                    s.undecodable += 1;
                    out.fill(0.0);
                }
                let head = usize::try_from(s.skip.saturating_sub(placed.pos)).unwrap_or(n);
                s.pcm.extend(out[head.min(n)..].iter());
            }
        }
        Ok(())
    }

    fn mix_frame(&mut self) -> io::Result<()> {
        let mut frame = [0.0f32; FRAME];
        for s in &mut self.sources {
            for (slot, v) in frame.iter_mut().zip(s.pcm.drain(..FRAME.min(s.pcm.len()))) {
                *slot += v;
            }
        }
        if frame.iter().all(|v| *v == 0.0) {
            // Nobody spoke in these 20 ms: a silence frame, without the encoder.
            self.out.silence(FRAME as u64)?;
            self.mixed += FRAME as u64;
            return Ok(());
        }
        for v in &mut frame {
            *v = soft_clip(*v);
        }
        let n = self
            .encoder
            .encode(&frame, FRAME, &mut self.packet)
            .map_err(codec)?;
        if self.out.write(&self.packet[..n])?.is_none() {
            return Err(io::Error::other("opus: the encoder made an invalid packet"));
        }
        self.mixed += FRAME as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::time::Duration;

    use super::super::track::{Rtp, Track};
    use super::*;

    /// 20 ms packets of a tone at `amp`, from opus-rs.
    fn tone(hz: f32, amp: f32, packets: usize) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(48_000, 1, Application::Audio).expect("encoder");
        enc.bitrate_bps = 48_000;
        (0..packets)
            .map(|p| {
                let pcm: Vec<f32> = (0..FRAME)
                    .map(|i| {
                        let t = (p * FRAME + i) as f32 / 48_000.0;
                        amp * (2.0 * std::f32::consts::PI * hz * t).sin()
                    })
                    .collect();
                let mut out = vec![0u8; 1500];
                let n = enc.encode(&pcm, FRAME, &mut out).expect("encode");
                out.truncate(n);
                out
            })
            .collect()
    }

    fn speaker(path: &Path, from_ms: u64, packets: Vec<Vec<u8>>, end: Duration) {
        let mut t =
            Track::create(File::create(path).expect("create"), 1, &Tags::default()).expect("track");
        for (i, payload) in packets.into_iter().enumerate() {
            let i16 = u16::try_from(i).expect("few");
            t.push(Rtp {
                ssrc: 5,
                seq: i16,
                timestamp: u32::from(i16) * 960,
                payload,
                at: Duration::from_millis(from_ms + 20 * u64::from(i16)),
            })
            .expect("push");
        }
        t.finish(end).expect("finish");
    }

    /// Power of `hz` in `pcm` (Goertzel), relative to the signal's power.
    fn share(pcm: &[f32], hz: f32) -> f32 {
        let w = 2.0 * std::f32::consts::PI * hz / 48_000.0;
        let (mut s1, mut s2) = (0.0f32, 0.0f32);
        for &x in pcm {
            let s = x + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        let e: f32 = pcm.iter().map(|x| x * x).sum();
        if e == 0.0 {
            0.0
        } else {
            2.0 * p / (e * pcm.len() as f32)
        }
    }

    fn decode_all(path: &Path) -> Vec<f32> {
        let mut tail = Tail::open(path).expect("open");
        let mut dec = OpusDecoder::new(48_000, 1).expect("decoder");
        let mut pcm = Vec::new();
        for p in tail.poll().expect("poll") {
            let n = usize::try_from(packet_samples(&p.packet).expect("opus")).expect("n");
            let mut out = vec![0.0; n];
            dec.decode(&p.packet, n, &mut out).expect("decode");
            pcm.extend(out);
        }
        assert!(tail.ended());
        pcm
    }

    #[test]
    fn two_speakers_on_one_timeline_a_late_joiner_where_they_joined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.ogg"), dir.path().join("b.ogg"));
        let end = Duration::from_millis(2_000);
        speaker(&a, 0, tone(440.0, 0.5, 50), end);
        speaker(&b, 1_000, tone(1_000.0, 0.5, 50), end);
        let out = dir.path().join("mix.ogg");
        let mut m = Mixer::create(
            File::create(&out).expect("create"),
            9,
            &Tags::default(),
            TEST,
        )
        .expect("mixer");
        m.add(&a).expect("add");
        m.add(&b).expect("add");
        assert!(
            m.step(0).expect("step") >= 48_000,
            "complete files mix at once"
        );
        m.finish(96_000).expect("finish");
        let pcm = decode_all(&out);
        assert_eq!(pcm.len(), 96_000);
        let first = &pcm[4_800..43_200];
        let second = &pcm[52_800..91_200];
        assert!(share(first, 440.0) > 0.5, "440 Hz in the first second");
        assert!(share(first, 1_000.0) < 0.05, "1 kHz not yet");
        assert!(share(second, 1_000.0) > 0.5, "1 kHz in the second");
        assert!(share(second, 440.0) < 0.05, "440 Hz has stopped");
        assert_eq!(m_undecodable(&a, &b), 0);
    }

    fn m_undecodable(a: &Path, b: &Path) -> u64 {
        let mut m = Mixer::create(Vec::new(), 1, &Tags::default(), TEST).expect("mixer");
        m.add(a).expect("add");
        m.add(b).expect("add");
        m.step(0).expect("step");
        m.undecodable()
    }

    #[test]
    fn the_mixer_waits_for_the_slowest_file_and_clips_softly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.ogg");
        speaker(&a, 0, tone(300.0, 0.9, 50), Duration::from_secs(1));
        // The second file has its headers only: nothing can be mixed yet.
        let b = dir.path().join("b.ogg");
        let growing =
            OpusFile::create(File::create(&b).expect("create"), 2, &Tags::default()).expect("opus");
        let mut m = Mixer::create(Vec::new(), 9, &Tags::default(), TEST).expect("mixer");
        m.add(&a).expect("add");
        m.add(&b).expect("add");
        assert_eq!(m.step(0).expect("step"), 0);
        growing.finish().expect("finish");
        assert!(
            m.step(0).expect("step") >= 48_000,
            "the ended file no longer holds it back"
        );
        assert!(soft_clip(1.8) < 1.0 && soft_clip(-1.8) > -1.0);
        // With no speaker yet, the mix runs on in silence up to where it is told.
        let mut alone = Mixer::create(Vec::new(), 9, &Tags::default(), TEST).expect("mixer");
        assert_eq!(alone.step(48_000).expect("step"), 48_000);
        assert_eq!(alone.step(48_500).expect("step"), 0, "whole frames only");
        assert!((soft_clip(0.5) - 0.5).abs() < f32::EPSILON);
        assert!(
            soft_clip(0.9) > soft_clip(0.86),
            "still rising past the knee"
        );
    }
}
