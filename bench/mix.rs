//! The mixer's cost: three speakers' files of real Opus (opus-rs, 32 kb/s tones, each speaking
//! a third of the time, DTX-like silence otherwise, as in a lesson) mixed into one file, timed.
//! Prints CPU seconds per hour of meeting audio, for the mix alone and for decode + mix +
//! encode of every speaker talking all the time (the worst case).
//!
//!   cargo run --release --example mix -- [SECONDS]

use std::fs::File;
use std::time::{Duration, Instant};

use meet::media::record::mix::Mixer;
use meet::media::record::ogg::Tags;
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

fn mix(dir: &std::path::Path, files: &[std::path::PathBuf], seconds: u32) -> f64 {
    let started = Instant::now();
    let out = File::create(dir.join("mix.ogg")).expect("mix");
    let mut m = Mixer::create(out, 9, &Tags::default(), 32_000).expect("mixer");
    for f in files {
        m.add(f).expect("add");
    }
    m.finish(u64::from(seconds) * 48_000).expect("finish");
    started.elapsed().as_secs_f64()
}

fn main() {
    let seconds: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().expect("tmp");
    let lesson: Vec<_> = (0..3u32)
        .map(|k| {
            let p = dir.path().join(format!("lesson{k}.ogg"));
            // Speaker k talks in seconds where (second / 10) % 3 == k.
            speaker(&p, 300.0 + 200.0 * k as f32, seconds, |s| (s / 10) % 3 == k);
            p
        })
        .collect();
    let busy: Vec<_> = (0..3u32)
        .map(|k| {
            let p = dir.path().join(format!("busy{k}.ogg"));
            speaker(&p, 300.0 + 200.0 * k as f32, seconds, |_| true);
            p
        })
        .collect();
    let per_hour = |secs: f64| secs / f64::from(seconds) * 3600.0;
    let a = mix(dir.path(), &lesson, seconds);
    let b = mix(dir.path(), &busy, seconds);
    println!(
        "{:<44} {:>10} {:>14} {:>12}",
        "mix of 3 speakers", "audio s", "CPU s", "CPU s/hour"
    );
    println!(
        "{:<44} {:>10} {:>14.3} {:>12.1}",
        "a lesson (one speaker at a time)",
        seconds,
        a,
        per_hour(a)
    );
    println!(
        "{:<44} {:>10} {:>14.3} {:>12.1}",
        "all three talking all the time",
        seconds,
        b,
        per_hour(b)
    );
    println!(
        "real-time factor: {:.0}× (lesson), {:.0}× (all talking)",
        f64::from(seconds) / a,
        f64::from(seconds) / b
    );
}
