//! Configuration: built-in defaults → `meet.toml` → the original's environment variables →
//! `MEET_*` environment variables (`__` for nesting) → command-line flags.
//!
//! The file and the environment are merged into one TOML table, parsed into [`RawConfig`]
//! (unknown keys are errors that name the key), then validated into [`Config`], where every
//! required value is present.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The default log filter: meet at info, the embedded database's chatter at warn.
pub const DEFAULT_LOG_LEVEL: &str = "info,surrealdb=warn,surrealkv=warn,tokio_cron_scheduler=warn";

/// Where `meet.toml` is looked for when neither `--config` nor `MEET_CONFIG` names one.
/// The mix encoder's default complexity: the cost and quality of each are in bench/README.md.
pub const DEFAULT_MIX_COMPLEXITY: u8 = 0;
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = ["meet.toml", "/etc/meet/meet.toml"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration: {0}")]
    Invalid(String),
    #[error("setting `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A string setting that also accepts a number or boolean, so that `MEET_AUTH__ADMIN_PASSWORD=12345678`
/// stays a string.
#[derive(Clone, Debug)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Text(match Any::deserialize(d)? {
            Any::S(s) => s,
            Any::I(i) => i.to_string(),
            Any::F(f) => f.to_string(),
            Any::B(b) => b.to_string(),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw, as written

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub database: RawDatabase,
    pub auth: RawAuth,
    pub http: RawHttp,
    pub meetings: RawMeetings,
    pub recordings: RawRecordings,
    pub jobs: RawJobs,
    pub storage: RawStorage,
    pub logging: RawLogging,
    pub realtime: RawRealtime,
    pub media: RawMedia,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: Option<Text>,
    pub data_dir: Option<PathBuf>,
    pub socketio_path: Option<Text>,
    pub shutdown_grace_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDatabase {
    pub url: Option<Text>,
    pub namespace: Option<Text>,
    pub database: Option<Text>,
    pub username: Option<Text>,
    pub password: Option<Text>,
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub jwt_secret: Option<Text>,
    pub jwt_secret_file: Option<PathBuf>,
    pub token_lifetime_seconds: Option<u64>,
    pub password_min_length: Option<usize>,
    pub admin_username: Option<Text>,
    pub admin_password: Option<Text>,
    pub admin_password_file: Option<PathBuf>,
    pub argon2_memory_kib: Option<u32>,
    pub argon2_iterations: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    pub body_limit_bytes: Option<usize>,
    pub cors_origins: Option<Vec<String>>,
    pub frontend_url: Option<Text>,
    pub client_url: Option<Text>,
    pub hsts_max_age_seconds: Option<u64>,
    pub trust_forwarded_for: Option<bool>,
    pub rate_limit: RawRateLimit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimit {
    pub requests_per_window: Option<u32>,
    pub window_seconds: Option<u64>,
    pub login_failures: Option<u32>,
    pub login_window_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMeetings {
    pub max_participants: Option<u32>,
    pub max_duration_seconds: Option<u64>,
    pub daily_limit: Option<u32>,
    pub time_zone: Option<Text>,
    pub archive_after_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRecordings {
    pub retention_days: Option<u64>,
    pub auto_start: Option<bool>,
    pub mix_bitrate: Option<u32>,
    pub mix_complexity: Option<u8>,
    pub spool_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJobs {
    pub enabled: Option<bool>,
    pub cleanup_schedule: Option<Text>,
    pub retention_schedule: Option<Text>,
    pub archive_schedule: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub backend: Option<Text>,
    pub local_dir: Option<PathBuf>,
    pub s3: RawS3,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawS3 {
    pub bucket: Option<Text>,
    pub region: Option<Text>,
    pub endpoint: Option<Text>,
    pub access_key_id: Option<Text>,
    pub secret_access_key: Option<Text>,
    pub secret_access_key_file: Option<PathBuf>,
    pub path_style: Option<bool>,
    pub prefix: Option<Text>,
    pub presign_seconds: Option<u32>,
    pub multipart_threshold_mib: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMedia {
    pub ice_servers: Vec<RawIceServer>,
    pub bind: Option<Vec<String>>,
    pub public_ip: Option<String>,
    pub udp_port_min: Option<u16>,
    pub udp_port_max: Option<u16>,
    pub ice_disconnected_timeout_ms: Option<u64>,
    pub ice_failed_timeout_ms: Option<u64>,
    pub ice_keepalive_interval_ms: Option<u64>,
    pub answer_timeout_ms: Option<u64>,
    pub stats_interval_ms: Option<u64>,
}

/// One STUN/TURN server for the clients, as `[[media.ice_servers]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIceServer {
    pub urls: Vec<String>,
    pub username: Option<Text>,
    pub credential: Option<Text>,
    pub credential_file: Option<PathBuf>,
    /// TURN REST API (coturn `use-auth-secret`): the shared secret.
    pub secret: Option<Text>,
    pub secret_file: Option<PathBuf>,
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRealtime {
    pub ping_interval_seconds: Option<u64>,
    pub ping_timeout_seconds: Option<u64>,
    pub app_ping_interval_seconds: Option<u64>,
    pub reconnect_grace_seconds: Option<u64>,
    pub seat_hold_seconds: Option<u64>,
    pub queue_packets: Option<usize>,
    pub max_audio_bytes: Option<usize>,
    pub audio_messages_per_second: Option<u32>,
    pub audio_burst: Option<u32>,
    pub flood_disconnect_after: Option<u32>,
    pub active_speaker_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogging {
    pub level: Option<Text>,
    pub format: Option<Text>,
}

// ---------------------------------------------------------------------------------------------
// Validated

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub socketio_path: String,
    pub shutdown_grace: Duration,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub http: HttpConfig,
    pub limits: MeetingLimits,
    pub archive_after: chrono::Duration,
    pub retention: chrono::Duration,
    pub jobs: JobsConfig,
    pub storage: StorageConfig,
    pub logging: LoggingConfig,
    pub realtime: RealtimeConfig,
    /// STUN/TURN servers handed to clients in the join answer.
    pub ice_servers: Vec<IceServer>,
    pub media: MediaConfig,
    pub recordings: RecordingsConfig,
}

/// The recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingsConfig {
    /// Start recording when a meeting becomes active (its first join).
    pub auto_start: bool,
    /// Bits per second of the mixed file's Opus.
    pub mix_bitrate: u32,
    /// The Opus encoder's effort (0–10) for the mix and the relay speakers' files.
    pub mix_complexity: u8,
    /// Where recordings are written while they run and until they are stored.
    pub spool_dir: PathBuf,
}

/// The SFU's network and timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Addresses the peer connections' UDP sockets bind to (`0.0.0.0` = every interface).
    pub bind: Vec<std::net::IpAddr>,
    /// Announced instead of the bound address in host candidates (1:1 NAT).
    pub public_ip: Option<std::net::IpAddr>,
    /// The UDP ports peer connections take, one per connection (and bound address).
    pub udp_ports: std::ops::RangeInclusive<u16>,
    /// ICE: no packet for this long → disconnected; then this long more → failed (and closed).
    pub ice_disconnected_timeout: Duration,
    pub ice_failed_timeout: Duration,
    pub ice_keepalive_interval: Duration,
    /// A server offer not answered within this long closes the peer.
    pub answer_timeout: Duration,
    /// How often loss, jitter and RTT are sampled from each peer.
    pub stats_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub auth: IceAuth,
}

#[derive(Debug, Clone)]
pub enum IceAuth {
    None,
    /// Fixed TURN credentials.
    Static {
        username: String,
        credential: Secret,
    },
    /// Time-limited credentials from a secret shared with the TURN server (TURN REST API).
    Rest {
        secret: Secret,
        ttl: Duration,
    },
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub namespace: String,
    pub database: String,
    pub credentials: Option<(String, Secret)>,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub jwt_secret: Option<Secret>,
    pub token_lifetime: Duration,
    pub password_min_length: usize,
    pub admin_username: String,
    pub admin_password: Option<Secret>,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub body_limit: usize,
    pub cors_origins: Vec<String>,
    pub hsts_max_age: Option<u64>,
    pub trust_forwarded_for: bool,
    pub requests_per_window: u32,
    pub window: Duration,
    pub login_failures: u32,
    pub login_window: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct MeetingLimits {
    pub max_participants: u32,
    pub max_duration_seconds: u64,
    pub daily_limit: u32,
    pub time_zone: chrono_tz::Tz,
}

impl Default for MeetingLimits {
    fn default() -> Self {
        Self {
            max_participants: 50,
            max_duration_seconds: 18_000,
            daily_limit: 25,
            time_zone: chrono_tz::UTC,
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobsConfig {
    pub enabled: bool,
    pub cleanup_schedule: String,
    pub retention_schedule: String,
    pub archive_schedule: String,
}

#[derive(Debug, Clone)]
pub enum StorageConfig {
    Local { dir: PathBuf },
    S3(S3Config),
}

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub path_style: bool,
    pub prefix: String,
    pub presign_seconds: u32,
    /// Files larger than this go up in parts of this size (S3's minimum part is 5 MiB).
    pub multipart_bytes: usize,
}

/// The live side: Socket.IO keepalives, presence and the audio relay's limits.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Engine.IO heartbeat: how often the server pings, and how long it waits for the pong.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// The application-level `ping {timestamp}` event.
    pub app_ping_interval: Duration,
    /// A user whose last socket dropped is announced as gone only after this long.
    pub reconnect_grace: Duration,
    /// A seat taken by a REST join is released if no socket arrives within this long.
    pub seat_hold: Duration,
    /// Outgoing packets queued per socket; beyond it, audio frames to that socket are dropped.
    pub queue_packets: usize,
    pub max_audio_bytes: usize,
    /// Audio messages a socket may send: a sustained rate and a burst.
    pub audio_messages_per_second: u32,
    pub audio_burst: u32,
    /// Refused (over-rate) audio messages within 10 s after which the socket is disconnected.
    pub flood_disconnect_after: u32,
    /// At most one `active-speaker` per meeting this often.
    pub active_speaker_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LoggingConfig {
    pub level: String,
    pub format: LogFormat,
}

/// What the command line adds on top of the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: Option<String>,
}

impl Config {
    /// Loads the configuration the way `meet serve` does, from the process environment.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_from(overrides, &env)
    }

    /// Loads from an explicit environment (tests).
    pub fn load_from(
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut table = match config_path(overrides, env)? {
            Some(path) => read_table(&path)?,
            None => toml::Table::new(),
        };
        apply_legacy_env(&mut table, env);
        apply_meet_env(&mut table, env)?;
        let raw: RawConfig = parse_table(table, Path::new("<merged configuration>"))?;
        Self::validate(raw, overrides)
    }

    /// Parses TOML text only (used to check the shipped `meet.toml`).
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: "<text>".into(),
                message: e.to_string(),
            })?;
        let raw = parse_table(table, Path::new("<text>"))?;
        Self::validate(raw, &Overrides::default())
    }

    /// Defaults only, with the database in memory: the base for tests.
    pub fn for_tests(data_dir: &Path) -> Self {
        let mut table = toml::Table::new();
        let mut db = toml::Table::new();
        db.insert("url".into(), "mem://".into());
        table.insert("database".into(), db.into());
        let raw = parse_table(table, Path::new("<tests>")).unwrap_or_default();
        let mut config = Self::validate(
            raw,
            &Overrides {
                data_dir: Some(data_dir.to_path_buf()),
                listen: Some("127.0.0.1:0".into()),
                config: None,
            },
        )
        .unwrap_or_else(|e| panic!("test defaults are valid: {e}"));
        // Fast hashing for tests; production keeps argon2's recommended cost.
        config.auth.argon2_memory_kib = 1024;
        config.auth.argon2_iterations = 1;
        // Peer connections on loopback, in a range of their own (tests run in parallel; a
        // port another test holds is skipped anyway).
        config.media.bind = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        let base = 20_000 + 200 * rand::random_range(0u16..150);
        config.media.udp_ports = base..=base + 199;
        config
    }

    #[allow(clippy::too_many_lines)]
    pub fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Self, ConfigError> {
        let data_dir = overrides
            .data_dir
            .clone()
            .or(raw.server.data_dir)
            .unwrap_or_else(|| PathBuf::from("data"));
        let listen_text = overrides
            .listen
            .clone()
            .or(raw.server.listen.map(|t| t.0))
            .unwrap_or_else(|| "0.0.0.0:5000".into());
        let listen = parse_listen(&listen_text).map_err(|m| key_err("server.listen", m))?;
        let socketio_path = raw
            .server
            .socketio_path
            .map_or_else(|| "/ws".to_owned(), |t| t.0);
        if !socketio_path.starts_with('/')
            || socketio_path.len() < 2
            || socketio_path.starts_with("/api")
        {
            return Err(key_err(
                "server.socketio_path",
                "must start with `/` and not be under /api",
            ));
        }

        let db_url = raw.database.url.map_or_else(
            || format!("surrealkv://{}", data_dir.join("db").display()),
            |t| t.0,
        );
        let scheme = db_url.split("://").next().unwrap_or_default();
        if !matches!(scheme, "mem" | "surrealkv" | "ws" | "wss") || !db_url.contains("://") {
            return Err(key_err(
                "database.url",
                "expected mem://, surrealkv://DIR, ws://HOST:PORT or wss://HOST:PORT",
            ));
        }
        let db_password = secret_or_file(
            raw.database.password,
            raw.database.password_file.as_deref(),
            "database.password",
        )?;
        let credentials = match (raw.database.username, db_password) {
            (Some(u), Some(p)) => Some((u.0, p)),
            (None, None) => None,
            _ => {
                return Err(key_err(
                    "database.username",
                    "username and password go together",
                ));
            }
        };
        if matches!(scheme, "ws" | "wss") && credentials.is_none() {
            return Err(key_err(
                "database.username",
                "a remote database needs a username and password",
            ));
        }

        let jwt_secret = secret_or_file(
            raw.auth.jwt_secret,
            raw.auth.jwt_secret_file.as_deref(),
            "auth.jwt_secret",
        )?;
        if jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 16) {
            return Err(key_err("auth.jwt_secret", "must be at least 16 characters"));
        }
        let token_lifetime = raw.auth.token_lifetime_seconds.unwrap_or(86_400);
        if !(60..=31 * 86_400).contains(&token_lifetime) {
            return Err(key_err(
                "auth.token_lifetime_seconds",
                "must be between 60 and 2678400",
            ));
        }
        let password_min_length = raw.auth.password_min_length.unwrap_or(8);
        if !(1..=128).contains(&password_min_length) {
            return Err(key_err(
                "auth.password_min_length",
                "must be between 1 and 128",
            ));
        }
        let admin_username = raw
            .auth
            .admin_username
            .map_or_else(|| "admin".to_owned(), |t| t.0);
        if crate::domain::users::validate_username(&admin_username).is_err() {
            return Err(key_err("auth.admin_username", "3–32 of A-Z a-z 0-9 . _ -"));
        }
        let admin_password = secret_or_file(
            raw.auth.admin_password,
            raw.auth.admin_password_file.as_deref(),
            "auth.admin_password",
        )?;
        if admin_password
            .as_ref()
            .is_some_and(|p| p.expose().chars().count() < password_min_length)
        {
            return Err(key_err(
                "auth.admin_password",
                format!("must be at least {password_min_length} characters"),
            ));
        }
        let auth = AuthConfig {
            jwt_secret,
            token_lifetime: Duration::from_secs(token_lifetime),
            password_min_length,
            admin_username,
            admin_password,
            argon2_memory_kib: positive(
                raw.auth.argon2_memory_kib,
                19_456,
                "auth.argon2_memory_kib",
            )?,
            argon2_iterations: positive(raw.auth.argon2_iterations, 2, "auth.argon2_iterations")?,
        };

        let mut cors_origins = raw.http.cors_origins.unwrap_or_default();
        for origin in [raw.http.frontend_url, raw.http.client_url]
            .into_iter()
            .flatten()
        {
            cors_origins.push(origin.0);
        }
        for origin in &mut cors_origins {
            let trimmed = origin.trim_end_matches('/').to_owned();
            if !(trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                || trimmed.contains(char::is_whitespace)
            {
                return Err(key_err(
                    "http.cors_origins",
                    format!("`{origin}` is not an http(s) origin"),
                ));
            }
            *origin = trimmed;
        }
        cors_origins.sort();
        cors_origins.dedup();
        let rl = raw.http.rate_limit;
        let http = HttpConfig {
            body_limit: positive(
                raw.http.body_limit_bytes,
                16 * 1024,
                "http.body_limit_bytes",
            )?,
            cors_origins,
            hsts_max_age: raw.http.hsts_max_age_seconds.filter(|s| *s > 0),
            trust_forwarded_for: raw.http.trust_forwarded_for.unwrap_or(false),
            requests_per_window: positive(
                rl.requests_per_window,
                5_000,
                "http.rate_limit.requests_per_window",
            )?,
            window: Duration::from_secs(positive(
                rl.window_seconds,
                900,
                "http.rate_limit.window_seconds",
            )?),
            login_failures: positive(rl.login_failures, 10, "http.rate_limit.login_failures")?,
            login_window: Duration::from_secs(positive(
                rl.login_window_seconds,
                900,
                "http.rate_limit.login_window_seconds",
            )?),
        };

        let time_zone = match raw.meetings.time_zone {
            Some(t) => chrono_tz::Tz::from_str(&t.0)
                .map_err(|_| key_err("meetings.time_zone", "unknown IANA time zone"))?,
            None => chrono_tz::UTC,
        };
        let limits = MeetingLimits {
            max_participants: positive(
                raw.meetings.max_participants,
                50,
                "meetings.max_participants",
            )?,
            max_duration_seconds: positive(
                raw.meetings.max_duration_seconds,
                18_000,
                "meetings.max_duration_seconds",
            )?,
            daily_limit: positive(raw.meetings.daily_limit, 25, "meetings.daily_limit")?,
            time_zone,
        };
        let archive_hours = positive(
            raw.meetings.archive_after_hours,
            24,
            "meetings.archive_after_hours",
        )?;
        let retention_days = positive(
            raw.recordings.retention_days,
            3,
            "recordings.retention_days",
        )?;

        let jobs = JobsConfig {
            enabled: raw.jobs.enabled.unwrap_or(true),
            cleanup_schedule: cron(
                raw.jobs.cleanup_schedule,
                "0 */5 * * * *",
                "jobs.cleanup_schedule",
            )?,
            retention_schedule: cron(
                raw.jobs.retention_schedule,
                "0 0 2 * * *",
                "jobs.retention_schedule",
            )?,
            archive_schedule: cron(
                raw.jobs.archive_schedule,
                "0 0 1 * * *",
                "jobs.archive_schedule",
            )?,
        };

        let storage = validate_storage(raw.storage, &data_dir)?;

        let format = match raw.logging.format.as_ref().map(|t| t.0.as_str()) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(key_err("logging.format", "expected \"text\" or \"json\"")),
        };
        let level = raw
            .logging
            .level
            .map_or_else(|| DEFAULT_LOG_LEVEL.to_owned(), |t| t.0);
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(key_err(
                "logging.level",
                "not a valid level or filter (e.g. \"info\", \"meet=debug\")",
            ));
        }

        let spool_dir = raw
            .recordings
            .spool_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("spool"));
        Ok(Self {
            listen,
            data_dir,
            socketio_path,
            shutdown_grace: Duration::from_secs(raw.server.shutdown_grace_seconds.unwrap_or(10)),
            database: DatabaseConfig {
                url: db_url,
                namespace: raw
                    .database
                    .namespace
                    .map_or_else(|| "meet".to_owned(), |t| t.0),
                database: raw
                    .database
                    .database
                    .map_or_else(|| "meet".to_owned(), |t| t.0),
                credentials,
            },
            auth,
            http,
            limits,
            archive_after: chrono::Duration::hours(
                i64::try_from(archive_hours).unwrap_or(i64::MAX / 7_200_000),
            ),
            retention: chrono::Duration::days(
                i64::try_from(retention_days.min(36_500)).unwrap_or(3),
            ),
            jobs,
            storage,
            logging: LoggingConfig { level, format },
            realtime: validate_realtime(&raw.realtime)?,
            media: validate_media(&raw.media)?,
            recordings: RecordingsConfig {
                auto_start: raw.recordings.auto_start.unwrap_or(false),
                mix_bitrate: within(
                    raw.recordings.mix_bitrate,
                    32_000,
                    6_000..=256_000,
                    "recordings.mix_bitrate",
                )?,
                mix_complexity: within(
                    raw.recordings.mix_complexity,
                    DEFAULT_MIX_COMPLEXITY,
                    0..=10,
                    "recordings.mix_complexity",
                )?,
                spool_dir,
            },
            ice_servers: raw
                .media
                .ice_servers
                .into_iter()
                .enumerate()
                .map(|(i, s)| validate_ice_server(i, s))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The control socket of a server using this data dir.
    pub fn control_socket(&self) -> PathBuf {
        control_socket_path(&self.data_dir)
    }
}

pub fn control_socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("meet.sock")
}

fn validate_storage(raw: RawStorage, data_dir: &Path) -> Result<StorageConfig, ConfigError> {
    let s3_bucket = raw.s3.bucket.clone();
    let backend = raw.storage_backend(s3_bucket.is_some());
    match backend.as_str() {
        "local" => Ok(StorageConfig::Local {
            dir: raw.local_dir.unwrap_or_else(|| data_dir.join("recordings")),
        }),
        "s3" => {
            let s3 = raw.s3;
            let bucket = s3
                .bucket
                .ok_or_else(|| {
                    key_err(
                        "storage.s3.bucket",
                        "required when storage.backend = \"s3\"",
                    )
                })?
                .0;
            if bucket.is_empty() {
                return Err(key_err("storage.s3.bucket", "must not be empty"));
            }
            let secret_access_key = secret_or_file(
                s3.secret_access_key,
                s3.secret_access_key_file.as_deref(),
                "storage.s3.secret_access_key",
            )?;
            let endpoint = s3.endpoint.map(|t| t.0.trim_end_matches('/').to_owned());
            if endpoint
                .as_ref()
                .is_some_and(|e| !(e.starts_with("http://") || e.starts_with("https://")))
            {
                return Err(key_err("storage.s3.endpoint", "must be an http(s) URL"));
            }
            let presign_seconds = s3.presign_seconds.unwrap_or(3600);
            if !(1..=604_800).contains(&presign_seconds) {
                return Err(key_err(
                    "storage.s3.presign_seconds",
                    "must be between 1 and 604800",
                ));
            }
            Ok(StorageConfig::S3(S3Config {
                bucket,
                region: s3.region.map_or_else(|| "us-east-1".to_owned(), |t| t.0),
                path_style: s3.path_style.unwrap_or(endpoint.is_some()),
                endpoint,
                access_key_id: s3.access_key_id.map(|t| t.0),
                secret_access_key,
                prefix: s3.prefix.map_or_else(|| "recordings/".to_owned(), |t| t.0),
                presign_seconds,
                multipart_bytes: within(
                    s3.multipart_threshold_mib,
                    16,
                    5..=4096,
                    "storage.s3.multipart_threshold_mib",
                )? as usize
                    * 1024
                    * 1024,
            }))
        }
        other => Err(key_err(
            "storage.backend",
            format!("`{other}`: expected \"local\" or \"s3\""),
        )),
    }
}

impl RawStorage {
    fn storage_backend(&self, has_bucket: bool) -> String {
        match &self.backend {
            Some(t) => t.0.clone(),
            None if has_bucket => "s3".into(),
            None => "local".into(),
        }
    }
}

fn validate_ice_server(i: usize, raw: RawIceServer) -> Result<IceServer, ConfigError> {
    let key = |k: &str| format!("media.ice_servers[{i}].{k}");
    if raw.urls.is_empty() {
        return Err(key_err(
            &key("urls"),
            "at least one stun:, stuns:, turn: or turns: URL",
        ));
    }
    let mut turn = false;
    for url in &raw.urls {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "stun" | "stuns" => {}
            "turn" | "turns" => turn = true,
            _ => {
                return Err(key_err(
                    &key("urls"),
                    format!("`{url}`: expected stun:, stuns:, turn: or turns:"),
                ));
            }
        }
        if url.len() <= scheme.len() + 1 || url.chars().any(char::is_whitespace) {
            return Err(key_err(&key("urls"), format!("`{url}` names no host")));
        }
    }
    let credential = secret_or_file(
        raw.credential,
        raw.credential_file.as_deref(),
        &key("credential"),
    )?;
    let secret = secret_or_file(raw.secret, raw.secret_file.as_deref(), &key("secret"))?;
    let auth = match (raw.username, credential, secret) {
        (None, None, None) => IceAuth::None,
        (Some(u), Some(c), None) => IceAuth::Static {
            username: u.0,
            credential: c,
        },
        (None, None, Some(secret)) => {
            let ttl = raw.ttl_seconds.unwrap_or(86_400);
            if !(60..=7 * 86_400).contains(&ttl) {
                return Err(key_err(
                    &key("ttl_seconds"),
                    "must be between 60 and 604800",
                ));
            }
            IceAuth::Rest {
                secret,
                ttl: Duration::from_secs(ttl),
            }
        }
        _ => {
            return Err(key_err(
                &key("username"),
                "give `username` with `credential`, or `secret` alone (TURN REST API)",
            ));
        }
    };
    if turn && matches!(auth, IceAuth::None) {
        return Err(key_err(
            &key("credential"),
            "a TURN server needs `username` and `credential`, or `secret`",
        ));
    }
    Ok(IceServer {
        urls: raw.urls,
        auth,
    })
}

fn validate_media(raw: &RawMedia) -> Result<MediaConfig, ConfigError> {
    let ip = |key: &str, v: &str| {
        v.trim()
            .parse::<std::net::IpAddr>()
            .map_err(|_| key_err(key, format!("`{v}` is not an IP address")))
    };
    let bind = match &raw.bind {
        None => vec![std::net::IpAddr::from([0, 0, 0, 0])],
        Some(list) if list.is_empty() => {
            return Err(key_err("media.bind", "needs at least one address"));
        }
        Some(list) => list
            .iter()
            .map(|v| ip("media.bind", v))
            .collect::<Result<_, _>>()?,
    };
    let public_ip = match raw.public_ip.as_deref() {
        None | Some("") => None,
        Some(v) => {
            let addr = ip("media.public_ip", v)?;
            if addr.is_unspecified() {
                return Err(key_err("media.public_ip", "must be a concrete address"));
            }
            Some(addr)
        }
    };
    let min = raw.udp_port_min.unwrap_or(40_000);
    let max = raw.udp_port_max.unwrap_or(40_999);
    if min == 0 || min > max {
        return Err(key_err(
            "media.udp_port_min",
            format!("the range {min}..={max} is empty (1 <= udp_port_min <= udp_port_max)"),
        ));
    }
    let ms = |v: Option<u64>, default: u64, key: &str, lo: u64, hi: u64| {
        let v = v.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            Ok(Duration::from_millis(v))
        } else {
            Err(key_err(key, format!("must be between {lo} and {hi}")))
        }
    };
    Ok(MediaConfig {
        bind,
        public_ip,
        udp_ports: min..=max,
        ice_disconnected_timeout: ms(
            raw.ice_disconnected_timeout_ms,
            5_000,
            "media.ice_disconnected_timeout_ms",
            200,
            120_000,
        )?,
        ice_failed_timeout: ms(
            raw.ice_failed_timeout_ms,
            10_000,
            "media.ice_failed_timeout_ms",
            200,
            600_000,
        )?,
        ice_keepalive_interval: ms(
            raw.ice_keepalive_interval_ms,
            2_000,
            "media.ice_keepalive_interval_ms",
            100,
            60_000,
        )?,
        answer_timeout: ms(
            raw.answer_timeout_ms,
            15_000,
            "media.answer_timeout_ms",
            500,
            120_000,
        )?,
        stats_interval: ms(
            raw.stats_interval_ms,
            10_000,
            "media.stats_interval_ms",
            200,
            600_000,
        )?,
    })
}

fn validate_realtime(raw: &RawRealtime) -> Result<RealtimeConfig, ConfigError> {
    let secs = |v: Option<u64>, default: u64, key: &str, max: u64| {
        let v = v.unwrap_or(default);
        if (1..=max).contains(&v) {
            Ok(Duration::from_secs(v))
        } else {
            Err(key_err(key, format!("must be between 1 and {max}")))
        }
    };
    let max_audio_bytes = raw.max_audio_bytes.unwrap_or(64 * 1024);
    if !(1024..=1024 * 1024).contains(&max_audio_bytes) {
        return Err(key_err(
            "realtime.max_audio_bytes",
            "must be between 1024 and 1048576",
        ));
    }
    let queue_packets = raw.queue_packets.unwrap_or(64);
    if !(8..=4096).contains(&queue_packets) {
        return Err(key_err(
            "realtime.queue_packets",
            "must be between 8 and 4096",
        ));
    }
    let speaker_ms = raw.active_speaker_interval_ms.unwrap_or(300);
    if !(50..=10_000).contains(&speaker_ms) {
        return Err(key_err(
            "realtime.active_speaker_interval_ms",
            "must be between 50 and 10000",
        ));
    }
    Ok(RealtimeConfig {
        ping_interval: secs(
            raw.ping_interval_seconds,
            25,
            "realtime.ping_interval_seconds",
            300,
        )?,
        ping_timeout: secs(
            raw.ping_timeout_seconds,
            20,
            "realtime.ping_timeout_seconds",
            300,
        )?,
        app_ping_interval: secs(
            raw.app_ping_interval_seconds,
            25,
            "realtime.app_ping_interval_seconds",
            3600,
        )?,
        reconnect_grace: secs(
            raw.reconnect_grace_seconds,
            10,
            "realtime.reconnect_grace_seconds",
            600,
        )?,
        seat_hold: secs(
            raw.seat_hold_seconds,
            60,
            "realtime.seat_hold_seconds",
            3600,
        )?,
        queue_packets,
        max_audio_bytes,
        audio_messages_per_second: positive(
            raw.audio_messages_per_second,
            100,
            "realtime.audio_messages_per_second",
        )?,
        audio_burst: positive(raw.audio_burst, 100, "realtime.audio_burst")?,
        flood_disconnect_after: positive(
            raw.flood_disconnect_after,
            500,
            "realtime.flood_disconnect_after",
        )?,
        active_speaker_interval: Duration::from_millis(speaker_ms),
    })
}

fn within<T: PartialOrd + Copy + std::fmt::Display>(
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    key: &str,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(key_err(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

fn positive<T: Default + PartialOrd + Copy>(
    value: Option<T>,
    default: T,
    key: &str,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v > T::default() {
        Ok(v)
    } else {
        Err(key_err(key, "must be greater than zero"))
    }
}

fn cron(value: Option<Text>, default: &str, key: &str) -> Result<String, ConfigError> {
    let expr = value.map_or_else(|| default.to_owned(), |t| t.0);
    if expr.split_whitespace().count() != 6 {
        return Err(key_err(
            key,
            "expected six cron fields: sec min hour day-of-month month day-of-week",
        ));
    }
    if tokio_cron_scheduler::Job::new_async(expr.as_str(), |_, _| Box::pin(async {})).is_err() {
        return Err(key_err(
            key,
            format!("`{expr}` is not a valid cron expression"),
        ));
    }
    Ok(expr)
}

/// `key` or `key_file`; a secret file must not be readable by group or others.
fn secret_or_file(
    value: Option<Text>,
    file: Option<&Path>,
    key: &str,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(key_err(
            key,
            format!("set either `{key}` or `{key}_file`, not both"),
        )),
        (Some(v), None) => Ok(Some(Secret(v.0))),
        (None, Some(path)) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| key_err(&format!("{key}_file"), format!("{}: {e}", path.display())))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(key_err(
                    &format!("{key}_file"),
                    format!(
                        "{} is readable by group or others; chmod 600 it",
                        path.display()
                    ),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| key_err(&format!("{key}_file"), e.to_string()))?;
            Ok(Some(Secret(text.trim_end_matches(['\r', '\n']).to_owned())))
        }
        (None, None) => Ok(None),
    }
}

/// `ADDR:PORT`, `[V6]:PORT` or a bare `PORT` (on every interface).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not ADDR:PORT or PORT"))
}

fn config_path(
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(p) = overrides
        .config
        .clone()
        .or_else(|| env.get("MEET_CONFIG").map(PathBuf::from))
    {
        if !p.exists() {
            return Err(ConfigError::Read {
                path: p,
                cause: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        return Ok(Some(p));
    }
    Ok(DEFAULT_CONFIG_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file()))
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn parse_table(table: toml::Table, path: &Path) -> Result<RawConfig, ConfigError> {
    RawConfig::deserialize(toml::Value::Table(table)).map_err(|e| {
        let message = e.to_string();
        ConfigError::Parse {
            path: path.to_owned(),
            message: message.trim().to_owned(),
        }
    })
}

/// Sets `a.b.c` in a nested table.
fn set_path(table: &mut toml::Table, path: &[&str], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut cur = table;
    for part in parents {
        let entry = cur
            .entry((*part).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{part}` is not a section"))?;
    }
    cur.insert((*last).to_owned(), value);
    Ok(())
}

/// An environment value as TOML when it reads as a number, boolean or array, else as a string.
fn env_value(raw: &str) -> toml::Value {
    let looks_typed = raw.parse::<i64>().is_ok()
        || raw.parse::<f64>().is_ok()
        || matches!(raw, "true" | "false")
        || (raw.starts_with('[') && raw.ends_with(']'));
    if looks_typed
        && let Ok(mut t) = format!("v = {raw}").parse::<toml::Table>()
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    toml::Value::String(raw.to_owned())
}

/// The original backend's variables, below `MEET_*`.
fn apply_legacy_env(table: &mut toml::Table, env: &BTreeMap<String, String>) {
    let map: [(&str, &[&str]); 10] = [
        ("JWT_SECRET", &["auth", "jwt_secret"]),
        ("FRONTEND_URL", &["http", "frontend_url"]),
        ("CLIENT_URL", &["http", "client_url"]),
        ("AWS_ACCESS_KEY_ID", &["storage", "s3", "access_key_id"]),
        (
            "AWS_SECRET_ACCESS_KEY",
            &["storage", "s3", "secret_access_key"],
        ),
        ("AWS_REGION", &["storage", "s3", "region"]),
        ("AWS_S3_BUCKET", &["storage", "s3", "bucket"]),
        ("AWS_ENDPOINT_URL", &["storage", "s3", "endpoint"]),
        ("ADMIN_USERNAME", &["auth", "admin_username"]),
        ("ADMIN_PASSWORD", &["auth", "admin_password"]),
    ];
    for (var, path) in map {
        if let Some(v) = env.get(var).filter(|v| !v.is_empty()) {
            // Only a string setting is mapped here, and a section cannot be a string: this cannot fail.
            let _ = set_path(table, path, toml::Value::String(v.clone()));
        }
    }
    if let Some(port) = env.get("PORT").filter(|v| !v.is_empty()) {
        let host = table
            .get("server")
            .and_then(|s| s.get("listen"))
            .and_then(toml::Value::as_str)
            .and_then(|l| parse_listen(l).ok())
            .map_or_else(|| "0.0.0.0".to_owned(), |a| a.ip().to_string());
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let _ = set_path(
            table,
            &["server", "listen"],
            toml::Value::String(format!("{host}:{port}")),
        );
    }
}

/// `MEET_SECTION__KEY=value` (any depth); `MEET_CONFIG` names the file and is not a setting.
fn apply_meet_env(
    table: &mut toml::Table,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("MEET_") else {
            continue;
        };
        if rest == "CONFIG" || rest.is_empty() {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let parts: Vec<&str> = lower.split("__").collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(key_err(name, "malformed variable name"));
        }
        set_path(table, &parts, env_value(value)).map_err(|m| key_err(name, m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn no_file() -> Overrides {
        Overrides {
            config: Some(PathBuf::from("/dev/null")),
            ..Overrides::default()
        }
    }

    #[test]
    fn defaults_are_the_originals() {
        let c = Config::load_from(&no_file(), &env(&[])).expect("defaults");
        assert_eq!(c.listen.port(), 5000);
        assert_eq!(c.limits.max_participants, 50);
        assert_eq!(c.limits.max_duration_seconds, 18_000);
        assert_eq!(c.limits.daily_limit, 25);
        assert_eq!(c.retention, chrono::Duration::days(3));
        assert_eq!(c.http.body_limit, 16 * 1024);
        assert!(c.database.url.starts_with("surrealkv://"));
        assert!(matches!(c.storage, StorageConfig::Local { .. }));
    }

    #[test]
    fn environment_layers_and_legacy_names() {
        let c = Config::load_from(
            &no_file(),
            &env(&[
                ("PORT", "7000"),
                ("JWT_SECRET", "0123456789abcdef0123"),
                ("AWS_S3_BUCKET", "rec"),
                ("MEET_MEETINGS__MAX_PARTICIPANTS", "7"),
                ("MEET_AUTH__ADMIN_PASSWORD", "12345678"),
                ("FRONTEND_URL", "http://localhost:5173/"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.limits.max_participants, 7);
        assert_eq!(
            c.auth.admin_password.as_ref().map(Secret::expose),
            Some("12345678")
        );
        assert_eq!(
            c.http.cors_origins,
            vec!["http://localhost:5173".to_owned()]
        );
        assert!(matches!(c.storage, StorageConfig::S3(ref s) if s.bucket == "rec"));
        assert_eq!(format!("{:?}", c.auth.jwt_secret), "Some(***)");
    }

    #[test]
    fn ice_servers_are_checked() {
        let ok = Config::from_toml_str(
            r#"
            [[media.ice_servers]]
            urls = ["stun:stun.example.org:3478"]
            [[media.ice_servers]]
            urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
            secret = "shared-with-coturn"
            ttl_seconds = 3600
            [[media.ice_servers]]
            urls = ["turn:other.example.org"]
            username = "meet"
            credential = "pw"
            "#,
        )
        .expect("valid");
        assert_eq!(ok.ice_servers.len(), 3);
        assert!(
            matches!(ok.ice_servers[1].auth, IceAuth::Rest { ttl, .. } if ttl.as_secs() == 3600)
        );
        for (toml, key) in [
            ("urls = []", "media.ice_servers[0].urls"),
            (r#"urls = ["http://x"]"#, "media.ice_servers[0].urls"),
            (r#"urls = ["stun:"]"#, "media.ice_servers[0].urls"),
            (
                r#"urls = ["turn:t.example.org"]"#,
                "media.ice_servers[0].credential",
            ),
            (
                r#"urls = ["turn:t"]
                username = "u""#,
                "media.ice_servers[0].username",
            ),
            (
                r#"urls = ["turn:t"]
                username = "u"
                credential = "c"
                secret = "s""#,
                "media.ice_servers[0].username",
            ),
            (
                r#"urls = ["turn:t"]
                secret = "s"
                ttl_seconds = 10"#,
                "media.ice_servers[0].ttl_seconds",
            ),
        ] {
            let err = Config::from_toml_str(&format!("[[media.ice_servers]]\n{toml}"))
                .expect_err(toml)
                .to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::load_from(&no_file(), &env(&[("MEET_MEETINGS__MAX_PEOPLE", "3")]))
            .expect_err("unknown");
        assert!(err.to_string().contains("max_people"), "{err}");
        let err = Config::from_toml_str("[server]\nlisten = \"1.2.3.4:5\"\nbogus = 1\n")
            .expect_err("unknown");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::from_toml_str("[meetings]\nmax_participants = 0\n").expect_err("zero");
        assert!(
            err.to_string().contains("meetings.max_participants"),
            "{err}"
        );
        let err =
            Config::from_toml_str("[meetings]\ntime_zone = \"Mars/Olympus\"\n").expect_err("tz");
        assert!(err.to_string().contains("meetings.time_zone"), "{err}");
        let err = Config::from_toml_str("[jobs]\ncleanup_schedule = \"every now and then\"\n")
            .expect_err("cron");
        assert!(err.to_string().contains("jobs.cleanup_schedule"), "{err}");
    }

    #[test]
    fn recording_settings_are_bounded() {
        let at = |toml: &str| Config::from_toml_str(toml).map(|c| c.recordings);
        for (ok, bad) in [("6000", "5999"), ("256000", "256001")] {
            let c = at(&format!("[recordings]\nmix_bitrate = {ok}\n")).expect("in range");
            assert_eq!(c.mix_bitrate.to_string(), ok);
            let err = at(&format!("[recordings]\nmix_bitrate = {bad}\n")).expect_err(bad);
            assert!(err.to_string().contains("recordings.mix_bitrate"), "{err}");
        }
        for ok in [0u8, 10] {
            let c = at(&format!("[recordings]\nmix_complexity = {ok}\n")).expect("in range");
            assert_eq!(c.mix_complexity, ok);
        }
        let err = at("[recordings]\nmix_complexity = 11\n").expect_err("11");
        assert!(
            err.to_string().contains("recordings.mix_complexity"),
            "{err}"
        );
        assert_eq!(
            at("").expect("defaults").mix_complexity,
            DEFAULT_MIX_COMPLEXITY
        );
        let s3 = |mib: u32| {
            Config::from_toml_str(&format!(
                "[storage]\nbackend = \"s3\"\n[storage.s3]\nbucket = \"b\"\nregion = \"r\"\nmultipart_threshold_mib = {mib}\n"
            ))
        };
        assert!(s3(5).is_ok() && s3(4096).is_ok(), "the bounds are allowed");
        for bad in [4, 4097] {
            let err = s3(bad).expect_err("out of range");
            assert!(
                err.to_string()
                    .contains("storage.s3.multipart_threshold_mib"),
                "{err}"
            );
        }
    }

    #[test]
    fn listen_accepts_a_bare_port() {
        assert_eq!(parse_listen("8080").expect("port").port(), 8080);
        assert_eq!(
            parse_listen("0.0.0.0:1").expect("addr").to_string(),
            "0.0.0.0:1"
        );
        assert!(parse_listen("nope").is_err());
    }

    #[test]
    fn shipped_meet_toml_parses() {
        let text = include_str!("../meet.toml");
        Config::from_toml_str(text).expect("the shipped meet.toml is valid");
    }
}
