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
        let mut s = Session::create(
            &spool,
            Manifest {
                recording_id: "r1".into(),
                meeting_id: "m1".into(),
                topic: "Algebra".into(),
                start: "2026-03-10T09:05:00Z".into(),
                speakers: vec![],
            },
        )
        .expect("session");
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
