//! A speaker's file as libopus tools judge it: opus-rs encodes tones, the packets reach a
//! recorder track with loss, reordering, a DTX pause and RTP counters that wrap, and the file
//! must pass `opusinfo`, decode in `opusdec` (libopus) and in PyAV to the wall-clock length,
//! with each tone where it was played and silence elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use meet::media::record::ogg::Tags;
use meet::media::record::track::{Rtp, Track};
use serde_json::Value;

const RATE: usize = 48_000;
const FRAME: usize = 960;

/// 20 ms Opus packets of a sine tone at half scale, 32 kb/s.
fn tone(hz: f64, packets: usize) -> Vec<Vec<u8>> {
    let mut enc =
        opus_rs::OpusEncoder::new(48_000, 1, opus_rs::Application::Audio).expect("encoder");
    enc.bitrate_bps = 32_000;
    (0..packets)
        .map(|p| {
            let pcm: Vec<f32> = (0..FRAME)
                .map(|i| {
                    let t = (p * FRAME + i) as f64 / RATE as f64;
                    (0.5 * (2.0 * std::f64::consts::PI * hz * t).sin()) as f32
                })
                .collect();
            let mut out = vec![0u8; 1500];
            let n = enc.encode(&pcm, FRAME, &mut out).expect("encode");
            out.truncate(n);
            out
        })
        .collect()
}

fn venv_python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/.venv/bin/python");
    assert!(
        p.exists(),
        "tests/.venv is missing: run tests/run (it installs PyAV with aiortc)"
    );
    p
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run installs opus-tools)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed: {text}");
    text
}

/// `opusinfo` accepts the file (no warning, no error); its playback length in seconds.
pub fn opusinfo(path: &Path) -> f64 {
    let text = run(Command::new("opusinfo").arg(path));
    for bad in ["WARNING", "ERROR", "Warning", "Error"] {
        assert!(!text.contains(bad), "opusinfo: {text}");
    }
    let line = text
        .lines()
        .find(|l| l.contains("Playback length"))
        .unwrap_or_else(|| panic!("no playback length: {text}"));
    // "Playback length: 0m:06.500s"
    let (_, t) = line.split_once(':').expect("label: value");
    let t = t.trim().trim_end_matches('s');
    let (m, s) = t.split_once("m:").expect("m:s");
    m.trim().parse::<f64>().expect("minutes") * 60.0 + s.parse::<f64>().expect("seconds")
}

/// Seconds of audio `opusdec` (libopus) decodes, at 48 kHz.
pub fn opusdec(path: &Path) -> f64 {
    let wav = path.with_extension("wav");
    run(Command::new("opusdec")
        .args(["--quiet", "--rate", "48000", "--force-wav"])
        .arg(path)
        .arg(&wav));
    let bytes = std::fs::read(&wav).expect("wav");
    let data = bytes
        .windows(4)
        .position(|w| w == b"data")
        .expect("data chunk");
    let channels = u16::from_le_bytes([bytes[22], bytes[23]]) as usize;
    (bytes.len() - data - 8) as f64 / (2 * channels * RATE) as f64
}

/// PyAV's view of a file: `judge_audio.py` with 0.25 s windows and the power share of `tones`.
pub fn judge(path: &Path, tones: &[f64]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/judge_audio.py");
    let list: Vec<String> = tones.iter().map(|t| t.to_string()).collect();
    let mut cmd = Command::new(venv_python());
    cmd.arg(script).arg(path).arg("0.25");
    if !list.is_empty() {
        cmd.arg(list.join(","));
    }
    let text = run(&mut cmd);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The windows of `j` that start in `[from, to)` seconds.
pub fn windows(j: &Value, from: f64, to: f64) -> Vec<&Value> {
    j["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .filter(|w| (from..to).contains(&w["t"].as_f64().expect("t")))
        .collect()
}

#[test]
fn a_speaker_file_with_loss_reordering_and_dtx_plays_at_wall_clock_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ana.ogg");
    let file = std::fs::File::create(&path).expect("create");
    let tags = Tags {
        title: "Algebra".into(),
        artist: "ana".into(),
        extra: vec![],
    };
    let mut track = Track::create(file, 0x5eed, &tags).expect("track");

    // Joins 0.5 s in: 440 Hz for 2 s; DTX for 2 s (the timestamps jump over it); 660 Hz for
    // 1.5 s; the recording stops at 6.5 s. Sequence numbers and timestamps wrap in the first
    // tone; every 20th packet is lost (5 %); every 7th pair arrives swapped; arrivals jitter.
    let a = tone(440.0, 100);
    let b = tone(660.0, 75);
    let mut packets = Vec::new();
    let (seq0, ts0) = (65_500u16, u32::MAX - 40 * FRAME as u32);
    for (i, payload) in a.into_iter().enumerate() {
        packets.push((i, 500 + i * 20, payload));
    }
    for (k, payload) in b.into_iter().enumerate() {
        let i = 100 + k;
        packets.push((i, 4_500 + k * 20, payload));
    }
    let rtp = |i: usize, at_ms: usize, payload: Vec<u8>| {
        let dtx = if i >= 100 { 100 * FRAME as u32 } else { 0 };
        Rtp {
            ssrc: 42,
            seq: seq0.wrapping_add(i as u16),
            timestamp: ts0.wrapping_add(i as u32 * FRAME as u32).wrapping_add(dtx),
            payload,
            at: Duration::from_millis((at_ms + (i * 7) % 5) as u64),
        }
    };
    let mut sent = Vec::new();
    for (i, at, payload) in packets {
        if i % 20 == 19 {
            continue;
        }
        sent.push(rtp(i, at, payload));
    }
    for pair in (3..sent.len() - 1).step_by(7) {
        sent.swap(pair, pair + 1);
    }
    let count = sent.len() as u64;
    for p in sent {
        track.push(p).expect("push");
    }
    let (_, counts, duration) = track.finish(Duration::from_millis(6_500)).expect("finish");
    assert_eq!(counts.packets, count);
    assert_eq!(counts.missed, 175 / 20);
    assert_eq!((counts.dropped, counts.resyncs), (0, 0));
    assert_eq!(duration, Duration::from_millis(6_500));

    let wall = 6.5;
    let info = opusinfo(&path);
    assert!((info - wall).abs() <= 0.01, "opusinfo says {info} s");
    let dec = opusdec(&path);
    assert!((dec - wall).abs() / wall <= 0.01, "opusdec decoded {dec} s");
    let j = judge(&path, &[]);
    assert_eq!(j["codec"], "libopus", "{j}");
    let decoded = j["decoded"].as_f64().expect("decoded");
    assert!(
        (decoded - wall).abs() / wall <= 0.01,
        "PyAV decoded {decoded} s"
    );

    let quiet = |from, to| {
        for w in windows(&j, from, to) {
            assert!(
                w["rms"].as_f64().expect("rms") < 0.01,
                "silence expected: {w}"
            );
        }
    };
    let tone_at = |from, to, hz: f64| {
        let ws = windows(&j, from, to);
        assert!(!ws.is_empty());
        for w in ws {
            let f = w["freq"].as_f64().expect("freq");
            assert!((f - hz).abs() <= 20.0, "{hz} Hz expected: {w}");
            assert!(
                w["rms"].as_f64().expect("rms") > 0.1,
                "{hz} Hz too quiet: {w}"
            );
        }
    };
    quiet(0.0, 0.5);
    tone_at(0.75, 2.25, 440.0);
    quiet(2.75, 4.25);
    tone_at(4.75, 5.75, 660.0);
    quiet(6.25, 6.5);
}
