//! `[server]`: where the server listens, keeps its data and serves Socket.IO.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::values::{Text, key_err, text_or};
use super::{ConfigError, Overrides};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: Option<Text>,
    pub data_dir: Option<PathBuf>,
    pub socketio_path: Option<Text>,
    pub shutdown_grace_seconds: Option<u64>,
}

/// The validated `[server]` (its fields sit at the top of [`super::Config`]).
pub(super) struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub socketio_path: String,
    pub shutdown_grace: Duration,
}

pub(super) fn validate(raw: RawServer, overrides: &Overrides) -> Result<ServerConfig, ConfigError> {
    let data_dir = overrides
        .data_dir
        .clone()
        .or(raw.data_dir)
        .unwrap_or_else(|| PathBuf::from("data"));
    let listen_text = overrides
        .listen
        .clone()
        .or(raw.listen.map(|t| t.0))
        .unwrap_or_else(|| "0.0.0.0:5000".into());
    let listen = parse_listen(&listen_text).map_err(|m| key_err("server.listen", m))?;
    let socketio_path = text_or(raw.socketio_path, "/ws");
    if !socketio_path.starts_with('/')
        || socketio_path.len() < 2
        || socketio_path.starts_with("/api")
    {
        return Err(key_err(
            "server.socketio_path",
            "must start with `/` and not be under /api",
        ));
    }
    Ok(ServerConfig {
        listen,
        data_dir,
        socketio_path,
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_seconds.unwrap_or(10)),
    })
}

/// `ADDR:PORT`, `[V6]:PORT` or a bare `PORT` (on every interface).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    text.parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not ADDR:PORT or PORT"))
}
