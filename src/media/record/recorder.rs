//! The recorder at run time: a task per meeting that records, fed by taps on the audio paths.
//!
//! The forwarding path only offers packets ([`Tap::rtp`]: a lock-free check when nothing
//! records, a `try_send` on a bounded queue when something does): a full queue loses the
//! packet for the recording (counted), never for a listener. The meeting's task keeps the
//! routing state and sends each packet to the recordings allowed to hold it: the normal one
//! while everyone could hear the speaker, the private one for the pair in private mode, none
//! while the speaker is muted. Each recording's mixer runs on a blocking thread of its own,
//! following the speakers' files.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::mix::{Encoding, Mixer};
use super::ogg::Tags;
use super::pcm::PcmEncoder;
use super::session::{Manifest, Session, TrackFile};
use super::track::Rtp;
use crate::domain::routing::{Audience, RouteState, audience};

/// Packets a meeting's recorder queue holds (about 4 s of 50 speakers).
const QUEUE: usize = 10_000;
/// How often files are kept up to the clock and the mixer reads them.
const TICK: Duration = Duration::from_millis(250);
const MIX_EVERY: Duration = Duration::from_millis(500);
/// With no speaker yet, the mix runs on in silence this far behind the clock: a speaker's first
/// packet (and so their file's first sound) is never before it.
const IDLE_MIX_MARGIN_MS: u64 = 2_000;

/// Whose audio a recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// What everyone could hear.
    Normal,
    /// The host and this student, while they talk in private.
    Private { student: String },
}

/// What starting a recording needs.
#[derive(Debug, Clone)]
pub struct Start {
    pub recording_id: String,
    pub meeting_id: String,
    pub topic: String,
    /// RFC 3339: the wall-clock time of position 0.
    pub start: String,
    pub scope: Scope,
    /// Usernames by user id, for the files' ARTIST tag.
    pub names: HashMap<String, String>,
    /// The meeting's routing state now.
    pub route: RouteState,
    /// Position 0 of the files, on the monotonic clock.
    pub began: Instant,
}

/// A finished recording's files, in its spool folder.
#[derive(Debug, Clone)]
pub struct Finished {
    pub dir: PathBuf,
    pub mix: PathBuf,
    pub mix_size: u64,
    pub duration: Duration,
    pub tracks: Vec<TrackFile>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RecorderStats {
    pub running: AtomicU64,
    pub packets: AtomicU64,
    pub dropped: AtomicU64,
    /// Bytes of finished files.
    pub bytes_written: AtomicU64,
    /// How far, in milliseconds, each running mix is behind its recording's clock.
    lags: Mutex<HashMap<String, u64>>,
    pub failures: AtomicU64,
}

impl RecorderStats {
    /// The largest distance, in milliseconds, between a running recording's clock and its mix.
    pub fn mixer_lag_ms(&self) -> u64 {
        locked(&self.lags).values().copied().max().unwrap_or(0)
    }

    fn set_lag(&self, recording: &str, ms: u64) {
        locked(&self.lags).insert(recording.to_owned(), ms);
    }

    fn clear_lag(&self, recording: &str) {
        locked(&self.lags).remove(recording);
    }
}

/// Audio offered to a meeting's recordings.
#[derive(Debug)]
pub enum Tapped {
    /// An Opus RTP packet the SFU received.
    Rtp {
        user: Arc<str>,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        payload: Bytes,
        at: Instant,
    },
    /// Int16 LE PCM the Socket.IO relay received; `to` for a private stream to one user.
    Pcm {
        user: Arc<str>,
        rate: u32,
        samples: Bytes,
        to: Option<Arc<str>>,
        at: Instant,
    },
}

/// A meeting's tap, held by the forwarding path.
#[derive(Clone, Default)]
pub struct Tap(Arc<TapInner>);

#[derive(Default)]
struct TapInner {
    on: AtomicBool,
    tx: Mutex<Option<mpsc::Sender<Tapped>>>,
    stats: Option<Arc<RecorderStats>>,
}

impl Tap {
    /// Offers a packet to the meeting's recordings: nothing when none runs; a full queue
    /// loses the packet for the recording only.
    pub fn rtp(&self, user: &Arc<str>, ssrc: u32, seq: u16, timestamp: u32, payload: &Bytes) {
        if self.0.on.load(Relaxed) {
            self.offer(Tapped::Rtp {
                user: Arc::clone(user),
                ssrc,
                seq,
                timestamp,
                payload: payload.clone(),
                at: Instant::now(),
            });
        }
    }

    /// Offers relay PCM (Int16 LE at `rate`), like [`Tap::rtp`].
    pub fn pcm(&self, user: &str, rate: u32, samples: &Bytes, to: Option<&str>) {
        if self.0.on.load(Relaxed) {
            self.offer(Tapped::Pcm {
                user: user.into(),
                rate,
                samples: samples.clone(),
                to: to.map(Into::into),
                at: Instant::now(),
            });
        }
    }

    fn offer(&self, tapped: Tapped) {
        let tx = self.0.tx.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(tx) = tx.as_ref() else { return };
        let sent = tx.try_send(tapped);
        if let Some(stats) = &self.0.stats {
            let counter = if sent.is_ok() {
                &stats.packets
            } else {
                &stats.dropped
            };
            counter.fetch_add(1, Relaxed);
        }
    }
}

enum Control {
    Start(Box<Start>),
    Stop {
        recording_id: String,
        reply: oneshot::Sender<io::Result<Finished>>,
    },
    Route(RouteState),
    Name(String, String),
}

struct Shared {
    spool: PathBuf,
    encoding: Encoding,
    /// Each meeting's tap, for as long as the meeting lives: the forwarding paths keep theirs.
    taps: Mutex<HashMap<String, Tap>>,
    /// The task of each meeting that records.
    tasks: Mutex<HashMap<String, mpsc::UnboundedSender<Control>>>,
    stats: Arc<RecorderStats>,
}

/// The recorder: cheap to clone, shared by the service layer and the SFU.
#[derive(Clone)]
pub struct Recorder(Arc<Shared>);

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// Recordings are spooled under `spool`; what meet encodes itself (the mixes, the relay
    /// speakers' files) is encoded with `encoding`.
    pub fn new(spool: PathBuf, encoding: Encoding) -> Self {
        Self(Arc::new(Shared {
            spool,
            encoding,
            taps: Mutex::new(HashMap::new()),
            tasks: Mutex::new(HashMap::new()),
            stats: Arc::new(RecorderStats::default()),
        }))
    }

    pub fn stats(&self) -> &RecorderStats {
        &self.0.stats
    }

    pub fn spool(&self) -> &Path {
        &self.0.spool
    }

    /// The folder a recording is spooled in.
    pub fn dir_of(&self, recording_id: &str) -> PathBuf {
        self.0.spool.join(recording_id)
    }

    /// The tap of a meeting, for the forwarding path (on while the meeting records).
    pub fn tap(&self, meeting: &str) -> Tap {
        locked(&self.0.taps)
            .entry(meeting.to_owned())
            .or_insert_with(|| {
                Tap(Arc::new(TapInner {
                    on: AtomicBool::new(false),
                    tx: Mutex::new(None),
                    stats: Some(Arc::clone(&self.0.stats)),
                }))
            })
            .clone()
    }

    /// The meeting ended: its tap goes (its forwarding paths have gone too).
    pub fn end_meeting(&self, meeting: &str) {
        locked(&self.0.taps).remove(meeting);
    }

    /// The meeting's recording task, started when none runs.
    fn control(&self, meeting: &str) -> mpsc::UnboundedSender<Control> {
        let mut tasks = locked(&self.0.tasks);
        if let Some(c) = tasks.get(meeting)
            && !c.is_closed()
        {
            return c.clone();
        }
        let tap = self.tap(meeting);
        let (tx, rx) = mpsc::channel(QUEUE);
        *locked(&tap.0.tx) = Some(tx);
        let (control, control_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_meeting(
            self.clone(),
            meeting.to_owned(),
            tap,
            control_rx,
            rx,
        ));
        tasks.insert(meeting.to_owned(), control.clone());
        control
    }

    /// Starts writing a recording.
    pub fn start(&self, start: Start) {
        let _ = self
            .control(&start.meeting_id)
            .send(Control::Start(Box::new(start)));
    }

    /// Stops a recording and waits for its files (speakers' and the mix) to be complete.
    pub async fn stop(&self, meeting: &str, recording_id: &str) -> io::Result<Finished> {
        let (reply, rx) = oneshot::channel();
        let _ = self.control(meeting).send(Control::Stop {
            recording_id: recording_id.to_owned(),
            reply,
        });
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("the recorder stopped")))
    }

    /// The meeting's routing state changed (mode, mutes).
    pub fn set_route(&self, meeting: &str, route: &RouteState) {
        if let Some(c) = locked(&self.0.tasks).get(meeting) {
            let _ = c.send(Control::Route(route.clone()));
        }
    }

    /// A participant's username, for the files of recordings that run.
    pub fn set_name(&self, meeting: &str, user_id: &str, username: &str) {
        if let Some(c) = locked(&self.0.tasks).get(meeting) {
            let _ = c.send(Control::Name(user_id.to_owned(), username.to_owned()));
        }
    }

    /// A meeting's task ended: forget it, unless a newer one took its place.
    fn task_ended(&self, meeting: &str) {
        let mut tasks = locked(&self.0.tasks);
        if tasks
            .get(meeting)
            .is_some_and(mpsc::UnboundedSender::is_closed)
        {
            tasks.remove(meeting);
        }
    }
}

struct Running {
    start: Box<Start>,
    began: Instant,
    session: Session,
    mixer: MixerThread,
}

/// A recording's mixer on a thread of its own at the lowest priority (nice 19): forwarding
/// always runs first, the mixer takes what is left and catches up. New files to follow go in;
/// closing the channel (after `end` is set) finishes the mix.
struct MixerThread {
    files: std::sync::mpsc::Sender<PathBuf>,
    end: Arc<AtomicU64>,
    done: tokio::sync::oneshot::Receiver<io::Result<()>>,
}

impl MixerThread {
    fn spawn(
        id: String,
        path: PathBuf,
        tags: Tags,
        encoding: Encoding,
        began: Instant,
        stats: Arc<RecorderStats>,
    ) -> io::Result<Self> {
        use std::sync::mpsc::RecvTimeoutError;
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let (files, rx) = std::sync::mpsc::channel::<PathBuf>();
        let (report, done) = tokio::sync::oneshot::channel();
        let end = Arc::new(AtomicU64::new(0));
        let until = Arc::clone(&end);
        let mix = move || -> io::Result<()> {
            let file = std::fs::File::create(&path)?;
            let mut mixer = Mixer::create(file, 0x6d69_7800, &tags, encoding)?;
            loop {
                match rx.recv_timeout(MIX_EVERY) {
                    Ok(p) => mixer.add(&p)?,
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        stats.clear_lag(&id);
                        let file = mixer.finish(until.load(Relaxed))?;
                        return file.sync_all();
                    }
                }
                let clock = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
                mixer.step(clock.saturating_sub(IDLE_MIX_MARGIN_MS) * 48)?;
                let lag = clock.saturating_sub(mixer.mixed() / 48);
                stats.set_lag(&id, lag);
            }
        };
        thread_priority::ThreadBuilder::default()
            .name("meet-mix")
            .policy(ThreadSchedulePolicy::Normal(
                NormalThreadSchedulePolicy::Other,
            ))
            .priority(ThreadPriority::Min)
            .spawn(move |lowered| {
                if let Err(e) = lowered {
                    tracing::warn!(error = ?e, "the mixer runs at normal priority");
                }
                let _ = report.send(mix());
            })?;
        Ok(Self { files, end, done })
    }

    async fn finish(self, end_samples: u64) -> io::Result<()> {
        self.end.store(end_samples, Relaxed);
        drop(self.files);
        self.done
            .await
            .map_err(|_| io::Error::other("mixer: the thread stopped"))?
    }
}

async fn run_meeting(
    recorder: Recorder,
    meeting: String,
    tap: Tap,
    mut control: mpsc::UnboundedReceiver<Control>,
    mut packets: mpsc::Receiver<Tapped>,
) {
    let mut route = RouteState::default();
    let mut names: HashMap<String, String> = HashMap::new();
    let epoch = Instant::now();
    let mut encoders: HashMap<Arc<str>, PcmEncoder> = HashMap::new();
    let mut running: Vec<Running> = Vec::new();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            cmd = control.recv() => match cmd {
                None => break,
                Some(Control::Start(start)) => {
                    route = start.route.clone();
                    names.extend(start.names.clone());
                    match begin(&recorder, start) {
                        Ok(r) => {
                            running.push(r);
                            recorder.stats().running.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            recorder.stats().failures.fetch_add(1, Relaxed);
                            tracing::error!(error = %e, %meeting, "could not start a recording");
                        }
                    }
                }
                Some(Control::Stop { recording_id, reply }) => {
                    let result = match running.iter().position(|r| r.start.recording_id == recording_id) {
                        Some(i) => {
                            let r = running.swap_remove(i);
                            recorder.stats().running.fetch_sub(1, Relaxed);
                            end(&recorder, r).await
                        }
                        None => Err(io::Error::new(io::ErrorKind::NotFound, "no such recording runs")),
                    };
                    let _ = reply.send(result);
                    if running.is_empty() && control.is_empty() {
                        // Nothing records: the task goes; the next start makes a new one.
                        break;
                    }
                }
                Some(Control::Route(r)) => route = r,
                Some(Control::Name(user, name)) => {
                    names.insert(user, name);
                }
            },
            Some(p) = packets.recv() => match p {
                Tapped::Rtp { user, ssrc, seq, timestamp, payload, at } => {
                    let rtp = Rtp { ssrc, seq, timestamp, payload: payload.to_vec(), at: at - epoch };
                    feed(&mut running, &route, &names, &user, None, epoch, rtp);
                }
                Tapped::Pcm { user, rate, samples, to, at } => {
                    let encoding = recorder.0.encoding;
                    let encoder = match encoders.entry(Arc::clone(&user)) {
                        std::collections::hash_map::Entry::Occupied(e) if e.get().rate() == rate => e.into_mut(),
                        entry => match PcmEncoder::new(rate, encoding) {
                            Ok(enc) => match entry {
                                std::collections::hash_map::Entry::Occupied(mut e) => { e.insert(enc); e.into_mut() }
                                std::collections::hash_map::Entry::Vacant(e) => e.insert(enc),
                            },
                            Err(e) => {
                                tracing::warn!(error = %e, rate, "relay audio cannot be recorded");
                                continue;
                            }
                        },
                    };
                    let pcm: Vec<i16> = samples.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
                    match encoder.push(&pcm, at - epoch) {
                        Ok(made) => {
                            for rtp in made {
                                feed(&mut running, &route, &names, &user, to.as_deref(), epoch, rtp);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "relay audio could not be encoded"),
                    }
                }
            },
            _ = tick.tick() => {
                for r in &mut running {
                    if let Err(e) = r.session.tick(r.began.elapsed()) {
                        tracing::error!(error = %e, recording = %r.start.recording_id, "recording write failed");
                    }
                }
            }
        }
        tap.0.on.store(!running.is_empty(), Relaxed);
    }
    tap.0.on.store(false, Relaxed);
    *locked(&tap.0.tx) = None;
    control.close();
    recorder.task_ended(&meeting);
    // Commands that raced with the close go to a new task.
    while let Some(cmd) = control.recv().await {
        match cmd {
            Control::Start(start) => recorder.start(*start),
            Control::Stop {
                recording_id,
                reply,
            } => {
                let _ = reply.send(Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("recording {recording_id} does not run"),
                )));
            }
            Control::Route(_) | Control::Name(..) => {}
        }
    }
}

fn begin(recorder: &Recorder, start: Box<Start>) -> io::Result<Running> {
    let dir = recorder.dir_of(&start.recording_id);
    let session = Session::create(
        &dir,
        Manifest {
            recording_id: start.recording_id.clone(),
            meeting_id: start.meeting_id.clone(),
            topic: start.topic.clone(),
            start: start.start.clone(),
            speakers: Vec::new(),
        },
    )?;
    let tags = Tags {
        title: start.topic.clone(),
        artist: "meet".into(),
        extra: vec![
            ("MEET_RECORDING".into(), start.recording_id.clone()),
            ("MEET_START".into(), start.start.clone()),
        ],
    };
    let began = start.began;
    let mixer = MixerThread::spawn(
        start.recording_id.clone(),
        dir.join("mix.ogg.part"),
        tags,
        recorder.0.encoding,
        began,
        Arc::clone(&recorder.0.stats),
    )?;
    Ok(Running {
        start,
        began,
        session,
        mixer,
    })
}

/// Whether a recording of `scope` may hold `speaker` under `route`.
pub fn records(scope: &Scope, route: &RouteState, speaker: &str) -> bool {
    match (scope, audience(route, speaker)) {
        (Scope::Normal, Audience::Everyone) => true,
        (Scope::Private { student }, Audience::Only(_)) => {
            route.private_with.as_deref() == Some(student.as_str())
        }
        _ => false,
    }
}

/// Whether a recording of `scope` may hold a private stream from `speaker` to `to`: only the
/// private recording of that very pair, while they talk in private.
pub fn records_private_stream(scope: &Scope, route: &RouteState, speaker: &str, to: &str) -> bool {
    let Scope::Private { student } = scope else {
        return false;
    };
    let pair = |a: &str, b: &str| a == route.host_id && b == student;
    route.private_with.as_deref() == Some(student.as_str())
        && !route.muted.contains(speaker)
        && (pair(speaker, to) || pair(to, speaker))
}

/// Hands a packet to the recordings that may hold it. `rtp.at` counts from `epoch`.
fn feed(
    running: &mut [Running],
    route: &RouteState,
    names: &HashMap<String, String>,
    user: &str,
    to: Option<&str>,
    epoch: Instant,
    rtp: Rtp,
) {
    for r in running.iter_mut() {
        let allowed = match to {
            None => records(&r.start.scope, route, user),
            Some(to) => records_private_stream(&r.start.scope, route, user, to),
        };
        if !allowed {
            continue;
        }
        let rtp = Rtp {
            at: (epoch + rtp.at).saturating_duration_since(r.began),
            ..rtp.clone()
        };
        let name = names.get(user).map_or(user, String::as_str);
        match r.session.rtp(user, name, rtp) {
            Ok(Some(path)) => {
                let _ = r.mixer.files.send(path);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, recording = %r.start.recording_id, "recording write failed");
            }
        }
    }
}

async fn end(recorder: &Recorder, r: Running) -> io::Result<Finished> {
    let duration = r.began.elapsed();
    let dir = r.session.dir().to_owned();
    let tracks = r.session.finish(duration)?;
    let end = u64::try_from(duration.as_micros() * 48 / 1_000).unwrap_or(u64::MAX);
    r.mixer.finish(end).await?;
    let part = dir.join("mix.ogg.part");
    let mix = dir.join("mix.ogg");
    std::fs::rename(&part, &mix)?;
    let mix_size = std::fs::metadata(&mix)?.len();
    let written: u64 = mix_size + tracks.iter().map(|t| t.size).sum::<u64>();
    recorder.stats().bytes_written.fetch_add(written, Relaxed);
    Ok(Finished {
        dir,
        mix,
        mix_size,
        duration,
        tracks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(private_with: Option<&str>, muted: &[&str]) -> RouteState {
        RouteState {
            host_id: "h".into(),
            private_with: private_with.map(Into::into),
            muted: muted.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn who_each_recording_holds() {
        let normal = Scope::Normal;
        let with_ana = Scope::Private {
            student: "ana".into(),
        };
        let broadcast = route(None, &["ben"]);
        assert!(records(&normal, &broadcast, "h"));
        assert!(records(&normal, &broadcast, "ana"));
        assert!(!records(&normal, &broadcast, "ben"), "muted");
        assert!(!records(&with_ana, &broadcast, "h"), "no private span now");
        let private = route(Some("ana"), &[]);
        assert!(!records(&normal, &private, "h"), "the normal one is silent");
        assert!(!records(&normal, &private, "cleo"));
        assert!(records(&with_ana, &private, "h"));
        assert!(records(&with_ana, &private, "ana"));
        assert!(!records(&with_ana, &private, "cleo"));
        let with_ben = route(Some("ben"), &[]);
        assert!(!records(&with_ana, &with_ben, "h"), "another pair's span");
        // Private streams (the relay's `private-audio-stream`): the pair's private recording
        // only, while they talk in private.
        assert!(records_private_stream(&with_ana, &private, "h", "ana"));
        assert!(records_private_stream(&with_ana, &private, "ana", "h"));
        assert!(!records_private_stream(&with_ana, &private, "h", "cleo"));
        assert!(!records_private_stream(&normal, &private, "h", "ana"));
        assert!(!records_private_stream(&with_ana, &broadcast, "h", "ana"));
        assert!(!records_private_stream(
            &with_ana,
            &route(Some("ana"), &["ana"]),
            "ana",
            "h"
        ));
    }
}
