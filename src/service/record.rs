//! Recording control: starting and stopping, private spans, the end of a meeting, and storing
//! the files once the recorder has finished them.
//!
//! While recording is on in a meeting, a normal recording runs in broadcast mode and a private
//! one for each private conversation; switching the mode ends one and starts the other (the
//! normal one, when it runs, just keeps going with silence while the pair talks). Every change
//! happens under the meeting's lock. Stopping marks the rows `processing` at once; the recorder
//! finishes the files in the background and the storer puts them in the storage, retrying
//! until it succeeds.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::{MeetingEvent, Recording, Services, new_id};
use crate::domain::access::{self, Identity};
use crate::domain::meetings::{Meeting, Mode};
use crate::error::{Error, Result};
use crate::media::record::mix::Encoding;
use crate::media::record::recorder::{Finished, Scope, Start};
use crate::store::{NewRecording, RecordingRow, TrackRow};

/// A recording the recorder has finished (or failed to), for the storer.
pub struct Done {
    pub recording_id: String,
    pub files: std::io::Result<Finished>,
}

/// The key of a speaker's file beside the recording's mix.
fn track_key(mix_key: &str, user_id: &str) -> String {
    let dir = mix_key.rsplit_once('/').map_or("", |(d, _)| d);
    format!("{dir}/{user_id}.ogg")
}

impl Services {
    /// `POST /api/meetings/:id/recording/start`: the meeting's host starts recording.
    pub async fn start_recording(&self, who: &Identity, meeting_id: &str) -> Result<Recording> {
        let meeting = self.meeting(meeting_id).await?;
        if !access::is_meeting_host(who, &meeting) {
            return Err(Error::Forbidden("Only the host can record this meeting"));
        }
        let _guard = self.locks.lock(&meeting.id).await;
        let meeting = self.meeting(meeting_id).await?;
        if !meeting.status.is_open() {
            return Err(Error::conflict("meeting_ended", "This meeting has ended"));
        }
        if !self.running_recordings(&meeting.id).await?.is_empty() {
            return Err(Error::conflict(
                "already_recording",
                "This meeting is already being recorded",
            ));
        }
        let row = self.begin_recording(&meeting).await?;
        Ok(row.into())
    }

    /// `POST /api/meetings/:id/recording/stop`: the host (or an admin) stops recording.
    /// Answers the recording shown on the meeting, now `processing`.
    pub async fn stop_recording(&self, who: &Identity, meeting_id: &str) -> Result<Recording> {
        let meeting = self.meeting(meeting_id).await?;
        if !access::may_end(who, &meeting) {
            return Err(Error::Forbidden("Only the host can stop this recording"));
        }
        let _guard = self.locks.lock(&meeting.id).await;
        let shown = self.meeting(meeting_id).await?.recording.map(|r| r.id);
        let stopped = self.stop_recordings_locked(&meeting.id, |_| true).await?;
        let first = stopped
            .iter()
            .find(|r| Some(&r.id) == shown.as_ref())
            .or(stopped.first())
            .cloned()
            .ok_or_else(|| {
                Error::conflict("not_recording", "This meeting is not being recorded")
            })?;
        Ok(first.into())
    }

    fn began_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, std::time::Instant>> {
        self.began
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) async fn running_recordings(&self, meeting_id: &str) -> Result<Vec<RecordingRow>> {
        self.store
            .recordings_in("recording", Some(meeting_id))
            .await
    }

    /// Starts the recording the meeting's mode calls for: private with the pair in private
    /// mode, normal otherwise. The caller holds the meeting's lock.
    pub(super) async fn begin_recording(&self, meeting: &Meeting) -> Result<RecordingRow> {
        let present: Vec<_> = self
            .store
            .participants(&meeting.id)
            .await?
            .into_iter()
            .filter(|p| p.present)
            .collect();
        let student = match meeting.mode {
            Mode::Private => meeting.private_participant_id.clone(),
            Mode::Broadcast => None,
        };
        let audience = match &student {
            Some(s) => vec![meeting.host_id.clone(), s.clone()],
            None => present.iter().map(|p| p.user_id.clone()).collect(),
        };
        let now = self.now();
        let id = new_id();
        let row = self
            .store
            .create_recording(NewRecording {
                id: id.clone(),
                meeting_id: meeting.id.clone(),
                meeting_topic: meeting.topic.clone(),
                host_id: meeting.host_id.clone(),
                host_name: meeting.host_name.clone(),
                is_private: student.is_some(),
                student_id: student.clone(),
                start_time: now,
                expires_at: now + self.config.retention,
                object_key: format!("{}/{id}/mix.ogg", meeting.id),
                participant_ids: audience,
            })
            .await?;
        self.show_recording(&meeting.id).await?;
        let (_, route) = self.route_state(&meeting.id).await?;
        let mut names: HashMap<String, String> = present
            .into_iter()
            .map(|p| (p.user_id, p.username))
            .collect();
        names.insert(meeting.host_id.clone(), meeting.host_name.clone());
        let began = std::time::Instant::now();
        self.began_lock().insert(id.clone(), began);
        self.recorder.start(Start {
            began,
            recording_id: id.clone(),
            meeting_id: meeting.id.clone(),
            topic: meeting.topic.clone(),
            start: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            scope: student.map_or(Scope::Normal, |student| Scope::Private { student }),
            names,
            route,
        });
        tracing::info!(meeting = %meeting.id, recording = %id, private = row.is_private, "recording started");
        self.emit(MeetingEvent::RecordingStarted {
            meeting_id: meeting.id.clone(),
            recording_id: id,
            is_private: row.is_private,
            student_id: row.student_id.clone(),
            start_time: now,
        });
        Ok(row)
    }

    /// Stops the running recordings of a meeting that `which` selects; the caller holds the
    /// meeting's lock. Returns them, `processing`.
    pub(super) async fn stop_recordings_locked(
        &self,
        meeting_id: &str,
        which: impl Fn(&RecordingRow) -> bool,
    ) -> Result<Vec<RecordingRow>> {
        let mut stopped = Vec::new();
        for row in self.running_recordings(meeting_id).await? {
            if !which(&row) {
                continue;
            }
            let end = self.now();
            let duration = self.began_lock().remove(&row.id).map_or_else(
                || (end - row.start_time).num_milliseconds().max(0) as f64 / 1000.0,
                |b| b.elapsed().as_secs_f64(),
            );
            let Some(row) = self.store.recording_stopped(&row.id, end, duration).await? else {
                continue;
            };
            tracing::info!(meeting = %meeting_id, recording = %row.id, duration, "recording stopped");
            self.emit(MeetingEvent::RecordingEnded {
                meeting_id: meeting_id.to_owned(),
                recording_id: row.id.clone(),
                is_private: row.is_private,
                student_id: row.student_id.clone(),
                duration,
            });
            let recorder = self.recorder.clone();
            let done = self.done_tx.clone();
            let (meeting, id) = (meeting_id.to_owned(), row.id.clone());
            self.pending.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let files = recorder.stop(&meeting, &id).await;
                let _ = done.send(Done {
                    recording_id: id,
                    files,
                });
            });
            stopped.push(row);
        }
        self.show_recording(meeting_id).await?;
        Ok(stopped)
    }

    /// Sets the recording the meeting shows: the normal one when it runs, else the private one.
    async fn show_recording(&self, meeting_id: &str) -> Result<()> {
        let running = self.running_recordings(meeting_id).await?;
        let shown = running
            .iter()
            .find(|r| !r.is_private)
            .or(running.first())
            .map(|r| (r.id.clone(), r.is_private, r.start_time));
        self.store.set_meeting_recording(meeting_id, shown).await
    }

    /// After a mode switch (lock held): with recording on, the private span of the new pair
    /// starts, one of another pair ends; back in broadcast the private span ends and the normal
    /// recording runs (started now if recording began in private mode).
    pub(super) async fn recording_follow_mode(&self, meeting: &Meeting) -> Result<()> {
        let running = self.running_recordings(&meeting.id).await?;
        if running.is_empty() {
            return Ok(());
        }
        let pair = match meeting.mode {
            Mode::Private => meeting.private_participant_id.clone(),
            Mode::Broadcast => None,
        };
        self.stop_recordings_locked(&meeting.id, |r| r.is_private && r.student_id != pair)
            .await?;
        let wanted_running = running
            .iter()
            .any(|r| r.is_private == pair.is_some() && r.student_id == pair);
        if !wanted_running {
            let has_normal = running.iter().any(|r| !r.is_private);
            // In private mode with a normal recording running, the span is the only new one;
            // in broadcast mode the normal one is missing only when recording began privately.
            if pair.is_some() || !has_normal {
                self.begin_recording(meeting).await?;
            }
        }
        Ok(())
    }

    /// Every recording that runs, stopped (the server is stopping).
    pub async fn stop_all_recordings(&self) -> Result<usize> {
        let mut n = 0;
        for row in self.store.recordings_in("recording", None).await? {
            let _guard = self.locks.lock(&row.meeting_id).await;
            n += self
                .stop_recordings_locked(&row.meeting_id, |r| r.id == row.id)
                .await?
                .len();
        }
        Ok(n)
    }

    /// At start-up: recordings a previous run left `recording` (it died meanwhile) or
    /// `processing` are made whole from the spool, then stored like any other, or marked
    /// `failed` when nothing usable is left. Runs in the background; returns how many.
    pub async fn recover_recordings(&self) -> Result<usize> {
        let mut rows = self.store.recordings_in("recording", None).await?;
        rows.extend(self.store.recordings_in("processing", None).await?);
        for row in &rows {
            tracing::info!(recording = %row.id, status = %row.status, "recovering a recording from the spool");
            let dir = self.recorder.dir_of(&row.id);
            let encoding: Encoding = (&self.config.recordings).into();
            let done = self.done_tx.clone();
            let id = row.id.clone();
            self.pending.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let salvaged = tokio::task::spawn_blocking(move || {
                    crate::media::record::salvage::salvage(&dir, encoding)
                })
                .await;
                let files = match salvaged {
                    Ok(Ok(Some(f))) => Ok(f),
                    Ok(Ok(None)) => Err(std::io::Error::other("nothing usable was recorded")),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                let _ = done.send(Done {
                    recording_id: id,
                    files,
                });
            });
        }
        Ok(rows.len())
    }

    /// Recordings stopped whose files are not stored yet.
    pub fn recordings_pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    /// Waits until every stopped recording is stored (or `limit` passes).
    pub async fn recordings_settled(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.recordings_pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Stores finished recordings: the mix under the recording's key, each speaker's file
    /// beside it, then the row is `completed`. A storage failure is retried with backoff (1 s
    /// doubling to 5 min); the spool keeps the files meanwhile.
    pub async fn run_storer(self: Arc<Self>, mut rx: tokio::sync::mpsc::UnboundedReceiver<Done>) {
        while let Some(done) = rx.recv().await {
            let services = Arc::clone(&self);
            tokio::spawn(async move {
                services.store_done(done).await;
                services.pending.fetch_sub(1, Relaxed);
            });
        }
    }

    async fn store_done(&self, done: Done) {
        let id = done.recording_id;
        let files = match done.files {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(recording = %id, error = %e, "recording failed");
                if let Err(e) = self.recording_failed(&id, &e.to_string()).await {
                    tracing::error!(recording = %id, error = %e, "could not mark a recording failed");
                }
                return;
            }
        };
        let mut wait = Duration::from_secs(1);
        loop {
            match self.store_files(&id, &files).await {
                Ok(()) => {
                    let _ = tokio::fs::remove_dir_all(&files.dir).await;
                    return;
                }
                Err(e) => {
                    self.recorder.stats().failures.fetch_add(1, Relaxed);
                    tracing::warn!(recording = %id, error = %e, retry_in = ?wait, "could not store a recording");
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(300));
        }
    }

    async fn recording_failed(&self, id: &str, reason: &str) -> Result<()> {
        self.store.recording_failed(id, reason).await?;
        if let Some(row) = self.store.recording(id).await? {
            self.show_recording(&row.meeting_id).await?;
        }
        Ok(())
    }

    async fn store_files(&self, id: &str, files: &Finished) -> Result<()> {
        let Some(mut row) = self.store.recording(id).await? else {
            // Deleted meanwhile: nothing to store.
            return Ok(());
        };
        if row.status == "recording" {
            // Recovered after a crash: it ended where its files end.
            let end = row.start_time
                + chrono::Duration::milliseconds(
                    i64::try_from(files.duration.as_millis()).unwrap_or(i64::MAX),
                );
            let secs = files.duration.as_secs_f64();
            if let Some(r) = self.store.recording_stopped(id, end, secs).await? {
                row = r;
            }
            self.show_recording(&row.meeting_id).await?;
        }
        let storage = |e: crate::storage::StorageError| Error::Storage(e.to_string());
        let mut tracks = Vec::new();
        for t in &files.tracks {
            let key = track_key(&row.object_key, &t.user_id);
            self.storage
                .put_file(&key, &t.path, "audio/ogg")
                .await
                .map_err(storage)?;
            tracks.push(TrackRow {
                user_id: t.user_id.clone(),
                username: t.username.clone(),
                duration: t.duration.as_secs_f64(),
                size: i64::try_from(t.size).unwrap_or(i64::MAX),
                object_key: key,
            });
        }
        self.storage
            .put_file(&row.object_key, &files.mix, "audio/ogg")
            .await
            .map_err(storage)?;
        self.store
            .recording_completed(
                id,
                files.duration.as_secs_f64(),
                i64::try_from(files.mix_size).unwrap_or(i64::MAX),
                tracks,
            )
            .await?;
        tracing::info!(recording = %id, duration = files.duration.as_secs_f64(), size = files.mix_size, "recording stored");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_speakers_file_sits_beside_the_mix() {
        assert_eq!(super::track_key("m1/r1/mix.ogg", "u7"), "m1/r1/u7.ogg");
    }
}
