//! The mixer's cost: three speakers' files of real Opus (opus-rs, 32 kb/s tones, each speaking
//! a third of the time, DTX-like silence otherwise, as in a lesson) mixed into one file, timed.
//! Prints CPU seconds per hour of meeting audio, for the mix alone and for decode + mix +
//! encode of every speaker talking all the time (the worst case).
//!
//!   cargo run --release --example mix -- [SECONDS]

use std::fs::File;
use std::time::{Duration, Instant};

use meet::config::DEFAULT_MIX_COMPLEXITY;
use meet::media::record::mix::{Encoding, Mixer};
use meet::media::record::ogg::{Tags, packet_samples};
use meet::media::record::tail::Tail;
use meet::media::record::track::{Rtp, Track};

fn speaker(path: &std::path::Path, hz: f32, seconds: u32, talks: impl Fn(u32) -> bool) {
    let mut enc = opus_rs::OpusEncoder::new(48_000, 1, opus_rs::Application::Voip).expect("enc");
    enc.bitrate_bps = 32_000;
    let mut t =
        Track::create(File::create(path).expect("file"), 1, &Tags::default()).expect("track");
    let mut out = vec![0u8; 1500];
    let mut seq = 0u16;
    for p in 0..seconds * 50 {
        if !talks(p / 50) {
            continue; // DTX: nothing sent, the timestamps run on
        }
        let pcm: Vec<f32> = (0..960)
            .map(|i| {
                0.3 * (2.0 * std::f32::consts::PI * hz * (p * 960 + i) as f32 / 48_000.0).sin()
            })
            .collect();
        let n = enc.encode(&pcm, 960, &mut out).expect("encode");
        t.push(Rtp {
            ssrc: 1,
            seq,
            timestamp: p * 960,
            payload: out[..n].to_vec(),
            at: Duration::from_millis(u64::from(p) * 20),
        })
        .expect("push");
        seq = seq.wrapping_add(1);
    }
    t.finish(Duration::from_secs(u64::from(seconds)))
        .expect("finish");
}

fn mix(dir: &std::path::Path, files: &[std::path::PathBuf], seconds: u32, complexity: u8) -> f64 {
    let started = Instant::now();
    let out = File::create(dir.join("mix.ogg")).expect("mix");
    let encoding = Encoding {
        bitrate: 32_000,
        complexity,
    };
    let mut m = Mixer::create(out, 9, &Tags::default(), encoding).expect("mixer");
    for f in files {
        m.add(f).expect("add");
    }
    m.finish(u64::from(seconds) * 48_000).expect("finish");
    started.elapsed().as_secs_f64()
}

/// A file decoded whole with opus-rs, as the mixer decodes a speaker.
fn decode(path: &std::path::Path) -> Vec<f32> {
    let mut tail = Tail::open(path).expect("open");
    let mut dec = opus_rs::OpusDecoder::new(48_000, 1).expect("decoder");
    let mut pcm = Vec::new();
    for p in tail.poll().expect("read") {
        let n = packet_samples(&p.packet).expect("opus") as usize;
        let mut out = vec![0.0f32; n];
        if p.packet.len() > 3 {
            dec.decode(&p.packet, n, &mut out).expect("decode");
        }
        pcm.extend(out);
    }
    pcm
}

/// The share of the mix's power at the speakers' tones (Goertzel per second, summed): how
/// much of what the encoder kept is the speech it was given rather than its own noise.
fn tone_share(pcm: &[f32], tones: &[f32]) -> f64 {
    let (mut at_tones, mut total) = (0.0f64, 0.0f64);
    for second in pcm.chunks_exact(48_000) {
        total += second.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>();
        for hz in tones {
            let w = 2.0 * std::f64::consts::PI * f64::from(*hz) / 48_000.0;
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for &x in second {
                let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            at_tones += 2.0 * (s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2) / second.len() as f64;
        }
    }
    if total == 0.0 { 0.0 } else { at_tones / total }
}

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().expect("tmp");
    let tones = [300.0, 500.0, 700.0];
    let lesson: Vec<_> = (0..3u32)
        .map(|k| {
            let p = dir.path().join(format!("lesson{k}.ogg"));
            // Speaker k talks in seconds where (second / 10) % 3 == k.
            speaker(&p, tones[k as usize], seconds, |s| (s / 10) % 3 == k);
            p
        })
        .collect();
    let busy: Vec<_> = (0..3u32)
        .map(|k| {
            let p = dir.path().join(format!("busy{k}.ogg"));
            speaker(&p, tones[k as usize], seconds, |_| true);
            p
        })
        .collect();
    let per_hour = |secs: f64| secs / f64::from(seconds) * 3600.0;
    println!("mix of 3 speakers over {seconds} s of audio, CPU seconds per hour of meeting audio");
    println!(
        "{:<11} {:>12} {:>10} {:>12} {:>10} {:>12}",
        "complexity", "lesson s/h", "lesson ×rt", "3 talk s/h", "3 talk ×rt", "tone share"
    );
    // One speaker decoded alone: what every mixed speaker costs whatever the encoder does.
    let started = Instant::now();
    decode(&busy[0]);
    let decode_one = per_hour(started.elapsed().as_secs_f64());
    let mut floors = Vec::new();
    for complexity in [0, 1, 3, 5, 9] {
        let a = mix(dir.path(), &lesson, seconds, complexity);
        let b = mix(dir.path(), &busy, seconds, complexity);
        let share = tone_share(&decode(&dir.path().join("mix.ogg")), &tones);
        floors.push((complexity, per_hour(b)));
        let mark = if complexity == DEFAULT_MIX_COMPLEXITY {
            "*"
        } else {
            ""
        };
        println!(
            "{:<11} {:>12.1} {:>10.0} {:>12.1} {:>10.0} {:>12.3}",
            format!("{complexity}{mark}"),
            per_hour(a),
            f64::from(seconds) / a,
            per_hour(b),
            f64::from(seconds) / b,
            share
        );
    }
    println!(
        "* meet's default (recordings.mix_complexity); lesson: one speaker at a time; 3 talk: all three all the time"
    );
    println!("decoding one speaker: {decode_one:.1} CPU s/hour");
    // bench/sfu.sh's 10x10:3:rec: ten meetings, three speakers talking all the time in each.
    for (complexity, busy) in floors {
        println!(
            "10 mixes of 3 talking at complexity {complexity}: {:.1} % of a core ({:.1} % decoding, {:.1} % encoding)",
            10.0 * busy / 36.0,
            10.0 * 3.0 * decode_one / 36.0,
            10.0 * (busy - 3.0 * decode_one).max(0.0) / 36.0
        );
    }
}
