//! After a crash: a recording's spool folder made whole from what reached the disk. Each
//! speaker's file is cut at its last complete page and closed (end of stream); the mix is
//! rebuilt from those files unless a complete one is there. Pages close every second of audio,
//! so at most about a second before the crash is lost.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::mix::{Encoding, Mixer};
use super::ogg::{OpusFile, RATE, Tags};
use super::recorder::Finished;
use super::session::{Manifest, TrackFile, file_stem};
use super::tail::Tail;
use super::track::TrackCounts;

/// A complete file's audio length, or `None` when the file is not complete (no end of
/// stream, or torn).
fn complete_length(path: &Path) -> io::Result<Option<u64>> {
    let mut tail = Tail::open(path)?;
    tail.poll()?;
    Ok((tail.ended() && !tail.broken()).then(|| tail.position()))
}

/// Rewrites the whole pages of `part` into a complete file at `to`; its audio length.
fn repair(part: &Path, to: &Path) -> io::Result<u64> {
    let mut tail = Tail::open(part)?;
    let packets = tail.poll()?;
    let (head, tags, serial) = tail
        .headers()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no complete header pages"))?;
    let tmp = to.with_extension("ogg.repair");
    let mut out = OpusFile::create_with_headers(File::create(&tmp)?, serial, head, tags)?;
    for p in packets {
        out.write(&p.packet)?;
    }
    let length = out.position();
    out.finish()?.sync_all()?;
    std::fs::rename(&tmp, to)?;
    std::fs::remove_file(part)?;
    Ok(length)
}

fn duration(samples: u64) -> Duration {
    Duration::from_micros(samples * 1_000_000 / RATE)
}

/// Makes the folder's files whole. `Ok(None)` when nothing usable is left (no speaker's file
/// with a complete header).
pub fn salvage(dir: &Path, encoding: Encoding) -> io::Result<Option<Finished>> {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("recording.json"))?)?;
    let mut tracks = Vec::new();
    for speaker in &manifest.speakers {
        let stem = file_stem(&speaker.user_id);
        let path = dir.join(format!("{stem}.ogg"));
        let part = dir.join(format!("{stem}.ogg.part"));
        let length = match complete_length(&path) {
            Ok(Some(n)) => Some(n),
            _ if part.exists() => match repair(&part, &path) {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::warn!(file = %part.display(), error = %e, "a speaker's file could not be saved");
                    None
                }
            },
            _ => None,
        };
        if let Some(samples) = length {
            tracks.push(TrackFile {
                user_id: speaker.user_id.clone(),
                username: speaker.username.clone(),
                size: std::fs::metadata(&path)?.len(),
                path,
                duration: duration(samples),
                counts: TrackCounts::default(),
            });
        }
    }
    let Some(end) = tracks.iter().map(|t| t.duration).max() else {
        return Ok(None);
    };
    let mix = dir.join("mix.ogg");
    if !matches!(complete_length(&mix), Ok(Some(_))) {
        let part: PathBuf = dir.join("mix.ogg.rebuild");
        let tags = Tags {
            title: manifest.topic.clone(),
            artist: "meet".into(),
            extra: vec![
                ("MEET_RECORDING".into(), manifest.recording_id.clone()),
                ("MEET_START".into(), manifest.start.clone()),
            ],
        };
        let mut mixer = Mixer::create(File::create(&part)?, 0x6d69_7800, &tags, encoding)?;
        for t in &tracks {
            mixer.add(&t.path)?;
        }
        let samples = u64::try_from(end.as_micros() * 48 / 1_000).unwrap_or(u64::MAX);
        mixer.finish(samples)?.sync_all()?;
        std::fs::rename(&part, &mix)?;
        let _ = std::fs::remove_file(dir.join("mix.ogg.part"));
    }
    Ok(Some(Finished {
        dir: dir.to_owned(),
        mix_size: std::fs::metadata(&mix)?.len(),
        mix,
        duration: end,
        tracks,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::mix::TEST;
    use super::super::session::Session;
    use super::super::track::Rtp;
    use super::*;

    #[test]
    fn a_folder_cut_short_is_closed_at_its_last_whole_pages_and_mixed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = dir.path().join("r1");
        let mut s =
            Session::create(&spool, super::super::session::tests::manifest()).expect("session");
        // 3.5 s of one speaker, then the process "dies": the session is leaked, not finished.
        for i in 0..175u16 {
            s.rtp(
                "ana1",
                "ana",
                Rtp {
                    ssrc: 1,
                    seq: i,
                    timestamp: u32::from(i) * 960,
                    payload: vec![0xf8, 0xff, 0xfe],
                    at: Duration::from_millis(u64::from(i) * 20),
                },
            )
            .expect("rtp");
        }
        std::mem::forget(s);
        // A torn last page, as a kill mid-write leaves it.
        let part = spool.join("ana1.ogg.part");
        let mut bytes = std::fs::read(&part).expect("read");
        bytes.extend_from_slice(b"OggS\0\0\0");
        std::fs::write(&part, bytes).expect("write");

        let done = salvage(&spool, TEST).expect("salvage").expect("usable");
        assert_eq!(done.tracks.len(), 1);
        let t = &done.tracks[0];
        assert_eq!((t.user_id.as_str(), t.username.as_str()), ("ana1", "ana"));
        // Whole pages: the first three seconds (each page a second of granule).
        assert!(
            t.duration >= Duration::from_millis(2_900)
                && t.duration <= Duration::from_millis(3_500),
            "{:?}",
            t.duration
        );
        assert!(!part.exists() && t.path.exists());
        assert_eq!(
            complete_length(&t.path).expect("read"),
            Some(t.duration.as_micros() as u64 * 48 / 1000)
        );
        assert!(
            complete_length(&done.mix).expect("read").is_some(),
            "the mix is complete"
        );
        assert_eq!(done.duration, t.duration);
        // Run again (a second crash during recovery): the same files, nothing rebuilt wrongly.
        let again = salvage(&spool, TEST).expect("salvage").expect("usable");
        assert_eq!(again.tracks[0].duration, t.duration);

        // A folder whose only file never got its header pages out: nothing usable.
        let empty = dir.path().join("r2");
        std::fs::create_dir_all(&empty).expect("dir");
        std::fs::write(
            empty.join("recording.json"),
            serde_json::to_vec(&Manifest {
                recording_id: "r2".into(),
                meeting_id: "m1".into(),
                topic: "t".into(),
                start: "2026-03-10T09:05:00Z".into(),
                speakers: vec![super::super::session::Speaker {
                    user_id: "ben".into(),
                    username: "ben".into(),
                }],
            })
            .expect("json"),
        )
        .expect("write");
        std::fs::write(empty.join("ben.ogg.part"), b"OggS").expect("write");
        assert!(salvage(&empty, TEST).expect("salvage").is_none());
    }
}

#[cfg(test)]
mod fuzz {
    //! The repair path on spool files cut short or corrupted (tests/fuzz/README.md).
    use proptest::prelude::*;

    use super::super::mix::TEST;
    use super::super::ogg::fuzz::pages;
    use super::super::session::{Session, Speaker};
    use super::super::track::Rtp;
    use super::*;
    use crate::fuzzing;

    /// A folder in memory when the machine has one (`repair` syncs every file it writes).
    fn tempdir() -> tempfile::TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm).expect("tempdir")
        } else {
            tempfile::tempdir().expect("tempdir")
        }
    }

    /// The audio packets of a file, as far as it is whole, and its audio length.
    fn audio(path: &Path) -> (Vec<Vec<u8>>, u64) {
        let mut tail = Tail::open(path).expect("open");
        let packets = tail.poll().expect("poll");
        (
            packets.into_iter().map(|p| p.packet).collect(),
            tail.position(),
        )
    }

    /// What a repaired file must be: whole pages with right CRCs, ended, its audio a prefix
    /// of what the spool file had (never more), its length the one `repair` said.
    fn check_repaired(path: &Path, length: u64, written: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let bytes = std::fs::read(path).expect("read");
        let pages = pages(&bytes).map_err(TestCaseError::fail)?;
        prop_assert!(pages.last().is_some_and(|p| p.flags & 0x04 != 0), "ended");
        prop_assert_eq!(complete_length(path).expect("read"), Some(length));
        let (got, samples) = audio(path);
        prop_assert_eq!(samples, length);
        prop_assert!(got.len() <= written.len(), "more audio than was written");
        prop_assert_eq!(&got[..], &written[..got.len()]);
        Ok(())
    }

    /// `repair` of `bytes` as a spool file: `Ok` with a file that checks, or a clear error.
    fn repair_bytes(bytes: &[u8], written: &[Vec<u8>]) -> Result<(), TestCaseError> {
        let dir = tempdir();
        let (part, to) = (dir.path().join("a.ogg.part"), dir.path().join("a.ogg"));
        std::fs::write(&part, bytes).expect("write");
        match repair(&part, &to) {
            Ok(length) => check_repaired(&to, length, written),
            Err(e) => {
                prop_assert!(
                    matches!(e.kind(), io::ErrorKind::InvalidData),
                    "an unclear error: {e}"
                );
                prop_assert!(!to.exists(), "no file for a failed repair");
                Ok(())
            }
        }
    }

    /// The seed spool files (`*.ogg.part`: a speaker's file as a crash leaves it, and a
    /// complete one) and the audio packets each holds.
    fn spools() -> Vec<(Vec<u8>, Vec<Vec<u8>>)> {
        let dir = tempdir();
        fuzzing::seeds("salvage")
            .into_iter()
            .map(|b| {
                let p = dir.path().join("seed.ogg");
                std::fs::write(&p, &b).expect("write");
                let (packets, _) = audio(&p);
                (b, packets)
            })
            .collect()
    }

    #[test]
    fn fuzz_salvage_every_truncation_repairs_or_refuses() {
        let started = std::time::Instant::now();
        for (bytes, written) in spools() {
            for cut in 0..=bytes.len() {
                repair_bytes(&bytes[..cut], &written)
                    .unwrap_or_else(|e| panic!("cut at {cut} of {}: {e}", bytes.len()));
            }
        }
        eprintln!(
            "every truncation of the salvage seeds: {:?}",
            started.elapsed()
        );
    }

    /// A recording folder with one speaker whose spool file is `part`.
    fn folder(dir: &Path, part: &[u8], mix_part: Option<&[u8]>) -> PathBuf {
        let spool = dir.join("r1");
        std::fs::create_dir_all(&spool).expect("dir");
        let manifest = Manifest {
            recording_id: "r1".into(),
            meeting_id: "m1".into(),
            topic: "t".into(),
            start: "2026-03-10T09:05:00Z".into(),
            speakers: vec![Speaker {
                user_id: "ana1".into(),
                username: "ana".into(),
            }],
        };
        std::fs::write(
            spool.join("recording.json"),
            serde_json::to_vec(&manifest).expect("json"),
        )
        .expect("write");
        std::fs::write(spool.join("ana1.ogg.part"), part).expect("write");
        if let Some(m) = mix_part {
            std::fs::write(spool.join("mix.ogg"), m).expect("write");
        }
        spool
    }

    /// `salvage` of a folder: never a panic; what it keeps is complete, no longer than what
    /// was written, and the mix as long as the longest track.
    fn salvage_checks(spool: &Path, written: &[Vec<u8>]) -> Result<(), TestCaseError> {
        match salvage(spool, TEST) {
            Ok(None) => {}
            Ok(Some(done)) => {
                prop_assert_eq!(done.tracks.len(), 1);
                let t = &done.tracks[0];
                let (got, samples) = audio(&t.path);
                prop_assert_eq!(duration(samples), t.duration);
                prop_assert!(got.len() <= written.len());
                prop_assert_eq!(&got[..], &written[..got.len()]);
                let mix = complete_length(&done.mix).expect("read");
                prop_assert!(mix.is_some(), "the mix is complete");
                pages(&std::fs::read(&done.mix).expect("read")).map_err(TestCaseError::fail)?;
            }
            Err(e) => prop_assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::NotFound
                ),
                "an unclear error: {e}"
            ),
        }
        Ok(())
    }

    fn spool_seed() -> impl Strategy<Value = (Vec<u8>, Vec<Vec<u8>>)> {
        let spools = spools();
        (
            0..spools.len(),
            prop::collection::vec(fuzzing::mutation(), 0..6),
        )
            .prop_map(move |(i, ms)| {
                let (mut b, written) = spools[i].clone();
                for m in &ms {
                    m.apply(&mut b);
                }
                (b, written)
            })
    }

    proptest! {
        #![proptest_config(fuzzing::config(2_000))]

        /// A spool file with bytes flipped, set, inserted, removed or duplicated: repaired
        /// into a file that reads back, or refused clearly.
        #[test]
        fn fuzz_salvage_corrupted_spool_files(seed in spool_seed()) {
            let (bytes, written) = seed;
            repair_bytes(&bytes, &written)?;
        }
    }

    proptest! {
        #![proptest_config(fuzzing::config(300))]

        /// The whole of `salvage` (the mix rebuilt, decoding what the files kept) on a
        /// corrupted spool file and a corrupted mix.
        #[test]
        fn fuzz_salvage_folders(seed in spool_seed(), mix in spool_seed(), with_mix in any::<bool>()) {
            let dir = tempdir();
            let (bytes, written) = seed;
            let spool = folder(dir.path(), &bytes, with_mix.then_some(&mix.0[..]));
            salvage_checks(&spool, &written)?;
        }

        /// A speaker whose client sent anything with an Opus TOC in front: the spool file
        /// keeps it, and the mix decodes it (as silence when it does not decode).
        #[test]
        fn fuzz_salvage_arbitrary_client_packets(
            payloads in prop::collection::vec(
                prop_oneof![
                    super::super::ogg::fuzz::packet(),
                    (any::<u8>(), prop::collection::vec(any::<u8>(), 0..120))
                        .prop_map(|(toc, rest)| [vec![toc & !3], rest].concat()),
                ],
                1..60,
            ),
        ) {
            let dir = tempdir();
            let spool = dir.path().join("r1");
            let mut s = Session::create(&spool, Manifest {
                recording_id: "r1".into(),
                meeting_id: "m1".into(),
                topic: "t".into(),
                start: "2026-03-10T09:05:00Z".into(),
                speakers: vec![],
            }).expect("session");
            for (i, payload) in payloads.into_iter().enumerate() {
                let i = u16::try_from(i).expect("few");
                s.rtp("ana1", "ana", Rtp {
                    ssrc: 1,
                    seq: i,
                    timestamp: u32::from(i) * 960,
                    payload,
                    at: Duration::from_millis(u64::from(i) * 20),
                }).expect("rtp");
            }
            // The process dies here: the session is leaked, not finished.
            std::mem::forget(s);
            let (written, _) = audio(&spool.join("ana1.ogg.part"));
            salvage_checks(&spool, &written)?;
        }
    }

    /// The seeds: one speaker's spool file as a crash leaves it (1.5 s, the last page not
    /// closed) and a complete one (1 s), from real Opus packets.
    #[test]
    #[ignore = "writes tests/fuzz/corpus/salvage once"]
    fn write_seeds() {
        let packets = fuzzing::seeds("ogg");
        let dir = tempdir();
        for (name, n, finish) in [
            ("crashed.ogg.part", 75u16, false),
            ("complete.ogg.part", 50, true),
        ] {
            let spool = dir.path().join(name);
            let mut s =
                Session::create(&spool, super::super::session::tests::manifest()).expect("session");
            for i in 0..n {
                s.rtp(
                    "ana1",
                    "ana",
                    Rtp {
                        ssrc: 1,
                        seq: i,
                        timestamp: u32::from(i) * 960,
                        payload: packets[usize::from(i) % packets.len()].clone(),
                        at: Duration::from_millis(u64::from(i) * 20),
                    },
                )
                .expect("rtp");
            }
            let path = if finish {
                s.finish(Duration::from_millis(u64::from(n) * 20))
                    .expect("finish");
                spool.join("ana1.ogg")
            } else {
                std::mem::forget(s);
                spool.join("ana1.ogg.part")
            };
            fuzzing::write_seed("salvage", name, &std::fs::read(path).expect("read"));
        }
    }
}
