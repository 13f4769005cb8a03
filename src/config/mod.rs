//! Configuration: built-in defaults → `meet.toml` → the original's environment variables →
//! `MEET_*` environment variables (`__` for nesting) → command-line flags (the layering is in
//! [`sources`]).
//!
//! The file and the environment are merged into one TOML table, parsed into [`RawConfig`]
//! (unknown keys are errors that name the key), then validated into [`Config`], where every
//! required value is present. Each section has its own file: its raw struct as written, its
//! validated struct, and the validator between them.

mod auth;
mod database;
mod http;
mod jobs;
mod logging;
mod media;
mod meetings;
mod realtime;
mod recordings;
mod server;
mod sources;
mod storage;
mod values;
mod web;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use auth::{AuthConfig, RawAuth};
pub use database::{DatabaseConfig, RawDatabase};
pub use http::{HttpConfig, RawHttp, RawRateLimit};
pub use jobs::{JobsConfig, RawJobs};
pub use logging::{DEFAULT_LOG_LEVEL, LogFormat, LoggingConfig, RawLogging};
pub use media::{MediaConfig, RawIceServer, RawMedia};
pub use meetings::RawMeetings;
pub use realtime::{RawRealtime, RealtimeConfig};
pub use recordings::{DEFAULT_MIX_COMPLEXITY, RawRecordings, RecordingsConfig};
pub use server::{RawServer, parse_listen};
pub use sources::DEFAULT_CONFIG_PATHS;
pub use storage::{RawS3, RawStorage, S3Config, StorageConfig};
pub use values::Text;
pub use web::{RawWeb, WebConfig};

use crate::domain::ice::IceServer;
use crate::domain::meetings::MeetingLimits;

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

/// The whole configuration as written: one field per section of meet.toml.
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
    pub web: RawWeb,
}

/// The validated configuration.
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
    pub web: WebConfig,
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
        let mut table = match sources::config_path(overrides, env)? {
            Some(path) => sources::read_table(&path)?,
            None => toml::Table::new(),
        };
        sources::apply_legacy_env(&mut table, env);
        sources::apply_meet_env(&mut table, env)?;
        let raw = sources::parse_table(table, Path::new("<merged configuration>"))?;
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
        let raw = sources::parse_table(table, Path::new("<text>"))?;
        Self::validate(raw, &Overrides::default())
    }

    /// Defaults only, with the database in memory: the base for tests.
    pub fn for_tests(data_dir: &Path) -> Self {
        let mut table = toml::Table::new();
        let mut db = toml::Table::new();
        db.insert("url".into(), "mem://".into());
        table.insert("database".into(), db.into());
        let raw = sources::parse_table(table, Path::new("<tests>")).unwrap_or_default();
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
        // Peer connections on loopback, on any free port (tests run in parallel).
        config.media.bind = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        config.media.shard_ports = vec![0];
        config
    }

    /// Every section through its validator; the first error names its key.
    pub fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Self, ConfigError> {
        let server = server::validate(raw.server, overrides)?;
        let database = database::validate(raw.database, &server.data_dir)?;
        let auth = auth::validate(raw.auth)?;
        let http = http::validate(raw.http)?;
        let (limits, archive_after) = meetings::validate(raw.meetings)?;
        let jobs = jobs::validate(raw.jobs)?;
        let storage = storage::validate(raw.storage, &server.data_dir)?;
        let logging = logging::validate(raw.logging)?;
        let realtime = realtime::validate(&raw.realtime)?;
        let media = media::validate(&raw.media)?;
        let (recordings, retention) = recordings::validate(raw.recordings, &server.data_dir)?;
        let web = web::validate(raw.web)?;
        let ice_servers = raw
            .media
            .ice_servers
            .into_iter()
            .enumerate()
            .map(|(i, s)| media::ice_server(i, s))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            listen: server.listen,
            data_dir: server.data_dir,
            socketio_path: server.socketio_path,
            shutdown_grace: server.shutdown_grace,
            database,
            auth,
            http,
            limits,
            archive_after,
            retention,
            jobs,
            storage,
            logging,
            realtime,
            ice_servers,
            media,
            recordings,
            web,
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
