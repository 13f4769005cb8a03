//! The service layer: the product's operations, shared by the HTTP API, the control socket
//! (`meet admin`) and the jobs. It applies the rules of `domain`, reads and writes through
//! `store` and `storage`, and announces what happened on an event channel.

mod auth;
mod backup;
mod compat;
mod import;
mod links;
mod meetings;
mod private;
mod record;
mod recordings;
mod users;
mod views;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

pub use auth::{Checked, Login, PasswordHasher, TokenIssuer};
pub use backup::Restored;
pub use compat::{HostStats, Link};
pub use import::{Counts, ImportFile, ImportReport, MappedId, Skipped};
pub use links::{LINK_SECONDS, LinkSigner};
pub use meetings::{JoinOutcome, MeetingDetail};
pub use private::{PrivateRequest, PrivateRequests};
pub use record::Done;
pub use recordings::{MeetingCounts, Stats};
pub use users::{AdminBootstrap, UserPatch, require};
pub use views::{HostRef, Participant, Playback, Recording, User};

use crate::clock::Clock;
use crate::config::Config;
use crate::domain::meetings::Meeting;
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::media::record::recorder::Recorder;
use crate::storage::Storage;
use crate::store::Store;

/// Something that happened to a meeting, for the realtime layer and the SFU.
#[derive(Debug, Clone)]
pub enum MeetingEvent {
    Joined {
        meeting_id: String,
        user_id: String,
        username: String,
        role: Role,
    },
    Left {
        meeting_id: String,
        user_id: String,
    },
    ModeChanged {
        meeting: Box<Meeting>,
    },
    Ended {
        meeting: Box<Meeting>,
    },
    Muted {
        meeting_id: String,
        user_id: String,
        muted: bool,
    },
    RecordingStarted {
        meeting_id: String,
        recording_id: String,
        is_private: bool,
        student_id: Option<String>,
        start_time: chrono::DateTime<chrono::Utc>,
    },
    /// A student asks the host for a private talk.
    PrivateRequested {
        host_id: String,
        request: PrivateRequest,
    },
    /// The host declined a student's request.
    PrivateDeclined {
        meeting_id: String,
        student_id: String,
    },
    RecordingEnded {
        meeting_id: String,
        recording_id: String,
        is_private: bool,
        student_id: Option<String>,
        /// Seconds.
        duration: f64,
    },
    /// These accounts' tokens stopped working (a new password, a deactivation, a deletion, or
    /// their host's): every socket they hold closes, in a meeting or not.
    Revoked {
        user_ids: Vec<String>,
    },
}

/// Everything a request handler, a job or the control socket needs.
pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub storage: Storage,
    pub clock: Arc<dyn Clock>,
    pub tokens: TokenIssuer,
    pub hasher: PasswordHasher,
    /// Writes the recordings' files; shared with the SFU and the relay, which feed it.
    pub recorder: Recorder,
    events: broadcast::Sender<MeetingEvent>,
    /// Recordings the recorder finished, for the storer ([`Services::run_storer`]).
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: Mutex<Option<mpsc::UnboundedReceiver<Done>>>,
    /// Recordings stopped and not stored yet.
    pending: AtomicU64,
    /// When each running recording began, on the monotonic clock: its duration is measured
    /// there (the settable clock gives the wall-clock start and end).
    began: Mutex<HashMap<String, std::time::Instant>>,
    /// Each job's last run in this process.
    job_runs: Mutex<HashMap<String, crate::jobs::LastRun>>,
    locks: KeyedLocks,
    /// Signs the links of `GET /api/recordings/url/:id` on local storage.
    pub links: LinkSigner,
    /// Students' waiting requests for a private talk.
    pub private_requests: PrivateRequests,
    identities: auth::IdentityCache,
    started: std::time::Instant,
}

impl Services {
    pub fn new(
        config: Arc<Config>,
        store: Store,
        storage: Storage,
        clock: Arc<dyn Clock>,
        jwt_secret: &[u8],
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Self {
            recorder: Recorder::new(
                config.recordings.spool_dir.clone(),
                (&config.recordings).into(),
            ),
            done_tx,
            done_rx: Mutex::new(Some(done_rx)),
            pending: AtomicU64::new(0),
            began: Mutex::new(HashMap::new()),
            job_runs: Mutex::new(HashMap::new()),
            tokens: TokenIssuer::new(jwt_secret, config.auth.token_lifetime),
            links: LinkSigner::new(jwt_secret),
            hasher: PasswordHasher::new(
                config.auth.argon2_memory_kib,
                config.auth.argon2_iterations,
            ),
            config,
            store,
            storage,
            clock,
            events,
            locks: KeyedLocks::default(),
            private_requests: PrivateRequests::default(),
            identities: auth::IdentityCache::default(),
            started: std::time::Instant::now(),
        }
    }

    /// The storer's queue, taken once by whoever runs [`Services::run_storer`].
    pub fn take_storer_queue(&self) -> Option<mpsc::UnboundedReceiver<Done>> {
        self.done_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    pub fn record_job_run(&self, job: &str, run: crate::jobs::LastRun) {
        self.job_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(job.to_owned(), run);
    }

    pub fn last_job_run(&self, job: &str) -> Option<crate::jobs::LastRun> {
        self.job_runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(job)
            .cloned()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<MeetingEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: MeetingEvent) {
        // No subscriber is fine: nobody is listening live.
        let _ = self.events.send(event);
    }

    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
}

/// Ids: 20 characters of `a-z0-9`, URL-safe, about 103 bits of randomness.
pub fn new_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Path ids are at most 40 URL-safe characters; anything else cannot name a record.
pub fn check_id(id: &str, what: &'static str) -> Result<()> {
    if id.is_empty()
        || id.len() > 40
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::NotFound(what));
    }
    Ok(())
}

/// One async mutex per key (a meeting, a host), so that check-then-write sequences such as the
/// participant limit and the daily limit cannot race.
#[derive(Default)]
struct KeyedLocks(Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl KeyedLocks {
    async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if map.len() > 10_000 {
                // Drop the locks nobody holds or waits for.
                map.retain(|_, l| Arc::strong_count(l) > 1);
            }
            Arc::clone(map.entry(key.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}
