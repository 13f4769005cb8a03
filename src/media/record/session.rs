//! One recording's files while it runs, in its spool folder: a file per speaker, created at
//! their first packet, kept to the recording's timeline by ticks when nothing arrives.
//!
//! Files are written as `NAME.ogg.part` and renamed to `NAME.ogg` when they are complete, so
//! a crash leaves an obvious partial file. `recording.json` beside them names the speakers.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ogg::Tags;
use super::track::{REORDER_DEPTH, Rtp, Track, TrackCounts};

/// A packet that has waited this long in the reorder buffer is written (or given up) at the
/// next tick: the reorder depth in 20 ms packets, and some.
pub const IDLE: Duration = Duration::from_millis(20 * REORDER_DEPTH as u64 + 100);

/// What a recording's folder says about it (`recording.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub recording_id: String,
    pub meeting_id: String,
    pub topic: String,
    /// RFC 3339 wall-clock time of position 0 of every file.
    pub start: String,
    /// Speakers by user id: their usernames.
    pub speakers: Vec<Speaker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Speaker {
    pub user_id: String,
    pub username: String,
}

/// A finished speaker's file.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackFile {
    pub user_id: String,
    pub username: String,
    pub path: PathBuf,
    pub duration: Duration,
    pub size: u64,
    pub counts: TrackCounts,
}

struct Open {
    track: Track<File>,
    part: PathBuf,
    username: String,
    last: Duration,
}

pub struct Session {
    dir: PathBuf,
    manifest: Manifest,
    tracks: HashMap<String, Open>,
}

/// A file name from a user id (ids are `a-z0-9`; anything else is replaced, never a path).
pub fn file_stem(user_id: &str) -> String {
    user_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(64)
        .collect()
}

impl Session {
    /// Creates the folder and its manifest.
    pub fn create(dir: &Path, manifest: Manifest) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let s = Self {
            dir: dir.to_owned(),
            manifest,
            tracks: HashMap::new(),
        };
        s.save()?;
        Ok(s)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn save(&self) -> io::Result<()> {
        let tmp = self.dir.join("recording.json.part");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.manifest)?)?;
        std::fs::rename(tmp, self.dir.join("recording.json"))
    }

    /// The path a speaker's file has while it is written.
    pub fn part_path(&self, user_id: &str) -> PathBuf {
        self.dir.join(format!("{}.ogg.part", file_stem(user_id)))
    }

    /// A speaker's packet. Returns the path of the file when this packet created it (for the
    /// mixer to follow).
    pub fn rtp(&mut self, user_id: &str, username: &str, rtp: Rtp) -> io::Result<Option<PathBuf>> {
        let at = rtp.at;
        let mut created = None;
        if !self.tracks.contains_key(user_id) {
            let part = self.part_path(user_id);
            let tags = Tags {
                title: self.manifest.topic.clone(),
                artist: username.to_owned(),
                extra: vec![
                    ("MEET_RECORDING".into(), self.manifest.recording_id.clone()),
                    ("MEET_USER".into(), user_id.to_owned()),
                    ("MEET_START".into(), self.manifest.start.clone()),
                ],
            };
            let serial = u32::try_from(self.tracks.len() + 1).unwrap_or(u32::MAX);
            let track = Track::create(File::create(&part)?, serial, &tags)?;
            self.tracks.insert(
                user_id.to_owned(),
                Open {
                    track,
                    part: part.clone(),
                    username: username.to_owned(),
                    last: at,
                },
            );
            self.manifest.speakers.push(Speaker {
                user_id: user_id.to_owned(),
                username: username.to_owned(),
            });
            self.save()?;
            created = Some(part);
        }
        if let Some(open) = self.tracks.get_mut(user_id) {
            open.last = open.last.max(at);
            open.track.push(rtp)?;
        }
        Ok(created)
    }

    /// Keeps every file up to `now`: a speaker who sent nothing for [`IDLE`] gets silence up
    /// to `now - IDLE` (muted, silent without DTX packets, or gone).
    pub fn tick(&mut self, now: Duration) -> io::Result<()> {
        let upto = now.saturating_sub(IDLE);
        for open in self.tracks.values_mut() {
            if now.saturating_sub(open.last) >= IDLE && upto > open.track.duration() {
                open.track.advance(upto)?;
            }
        }
        Ok(())
    }

    /// Speakers so far.
    pub fn speakers(&self) -> usize {
        self.tracks.len()
    }

    /// Ends every file at `end` and renames it to its final name.
    pub fn finish(self, end: Duration) -> io::Result<Vec<TrackFile>> {
        let mut out = Vec::new();
        for (user_id, open) in self.tracks {
            let (file, counts, duration) = open.track.finish(end)?;
            file.sync_all()?;
            drop(file);
            let path = open.part.with_extension("");
            std::fs::rename(&open.part, &path)?;
            let size = std::fs::metadata(&path)?.len();
            out.push(TrackFile {
                user_id,
                username: open.username,
                path,
                duration,
                size,
                counts,
            });
        }
        out.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        Ok(out)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The manifest of a test recording `r1` (the salvage tests use it too).
    pub(in crate::media::record) fn manifest() -> Manifest {
        Manifest {
            recording_id: "r1".into(),
            meeting_id: "m1".into(),
            topic: "Algebra".into(),
            start: "2026-03-10T09:05:00Z".into(),
            speakers: vec![],
        }
    }

    fn rtp(seq: u16, at_ms: u64) -> Rtp {
        Rtp {
            ssrc: 1,
            seq,
            timestamp: u32::from(seq) * 960,
            payload: vec![0xfc, 1, 2],
            at: Duration::from_millis(at_ms),
        }
    }

    #[test]
    fn a_file_per_speaker_kept_to_the_timeline_and_renamed_when_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = dir.path().join("r1");
        let mut s = Session::create(&spool, manifest()).expect("create");
        let created = s.rtp("ana1", "ana", rtp(0, 100)).expect("rtp");
        assert_eq!(created, Some(spool.join("ana1.ogg.part")));
        assert_eq!(s.rtp("ana1", "ana", rtp(1, 120)).expect("rtp"), None);
        s.rtp("../ben", "ben", rtp(0, 500)).expect("rtp");
        assert!(spool.join("___ben.ogg.part").exists(), "no path from an id");
        let saved: Manifest =
            serde_json::from_slice(&std::fs::read(spool.join("recording.json")).expect("read"))
                .expect("json");
        assert_eq!(saved.speakers.len(), 2);
        assert_eq!(saved.speakers[0].username, "ana");
        // Ana says nothing more: the tick keeps her file up to the clock.
        s.tick(Duration::from_millis(3_000)).expect("tick");
        let files = s.finish(Duration::from_millis(4_000)).expect("finish");
        assert_eq!(files.len(), 2);
        for f in &files {
            assert_eq!(f.duration, Duration::from_secs(4), "{}", f.user_id);
            assert!(f.path.extension().is_some_and(|e| e == "ogg"));
            assert!(f.path.exists() && f.size > 0);
        }
        assert!(!spool.join("ana1.ogg.part").exists());
        assert_eq!(files[1].counts.packets, 2);
    }
}
