//! `[media]`: the SFU's network and timers, and the STUN/TURN servers handed to clients.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, secret_or_file};
use crate::domain::ice::{IceAuth, IceServer};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMedia {
    pub ice_servers: Vec<RawIceServer>,
    pub bind: Option<Vec<String>>,
    pub public_ip: Option<String>,
    pub udp_port_min: Option<u16>,
    pub udp_port_max: Option<u16>,
    pub engine: Option<String>,
    pub udp_port: Option<u16>,
    pub udp_ports: Option<Vec<u16>>,
    pub shards: Option<usize>,
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

/// The SFU's network and timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Addresses the peer connections' UDP sockets bind to (`0.0.0.0` = every interface).
    pub bind: Vec<std::net::IpAddr>,
    /// Announced instead of the bound address in host candidates (1:1 NAT).
    pub public_ip: Option<std::net::IpAddr>,
    /// The UDP ports: `media.udp_port` (one, shared by every shard), or `media.udp_ports` (one
    /// per shard). Every peer connection of a shard's meetings is on its port.
    pub shard_ports: Vec<u16>,
    /// How many shards (media threads): with one port they all share it (`SO_REUSEPORT`; a
    /// datagram the kernel hands to the wrong shard is passed on to the right one), with
    /// several ports there is one shard per port.
    pub shards: usize,
    /// ICE: no packet for this long → disconnected; then this long more → failed (and closed).
    pub ice_disconnected_timeout: Duration,
    pub ice_failed_timeout: Duration,
    pub ice_keepalive_interval: Duration,
    /// A server offer not answered within this long closes the peer.
    pub answer_timeout: Duration,
    /// How often loss, jitter and RTT are sampled from each peer.
    pub stats_interval: Duration,
}

/// The ports: `media.udp_ports` (one per shard), else `media.udp_port`.
fn shard_ports(raw: &RawMedia) -> Result<Vec<u16>, ConfigError> {
    match &raw.udp_ports {
        Some(ports) => {
            if ports.is_empty() || ports.len() > 64 {
                return Err(key_err(
                    "media.udp_ports",
                    "needs one to 64 ports (one per shard)",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for p in ports {
                if *p == 0 && ports.len() > 1 {
                    return Err(key_err(
                        "media.udp_ports",
                        "port 0 (any free port) only works with a single shard",
                    ));
                }
                if !seen.insert(*p) {
                    return Err(key_err(
                        "media.udp_ports",
                        format!("port {p} is listed twice"),
                    ));
                }
            }
            if raw.udp_port.is_some() {
                return Err(key_err(
                    "media.udp_port",
                    "set either media.udp_port (one shard) or media.udp_ports (one per shard)",
                ));
            }
            Ok(ports.clone())
        }
        None => Ok(vec![raw.udp_port.unwrap_or(40_000)]),
    }
}

/// Most shards: one per core, and this many cores at most.
const MAX_SHARDS: usize = 64;

/// The shard count: `media.shards`, else one per core (with several ports: one per port).
fn shards(raw: &RawMedia, ports: &[u16]) -> Result<usize, ConfigError> {
    match raw.shards {
        Some(n) if ports.len() > 1 => Err(key_err(
            "media.shards",
            format!(
                "media.udp_ports already makes one shard per port ({}): remove media.shards, \
                 or list one port in media.udp_port for {n} shards sharing it",
                ports.len()
            ),
        )),
        Some(n) if !(1..=MAX_SHARDS).contains(&n) => Err(key_err(
            "media.shards",
            format!("must be between 1 and {MAX_SHARDS}"),
        )),
        Some(n) => Ok(n),
        None if ports.len() > 1 => Ok(ports.len()),
        None => Ok(std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(MAX_SHARDS)),
    }
}

/// The settings of the retired `webrtc` engine: a port range (a port per connection) and the
/// choice of engine. Each says what replaced it.
fn retired(raw: &RawMedia) -> Result<(), ConfigError> {
    for (key, set) in [
        ("media.udp_port_min", raw.udp_port_min.is_some()),
        ("media.udp_port_max", raw.udp_port_max.is_some()),
    ] {
        if set {
            return Err(key_err(
                key,
                "the UDP port range is gone: every peer connection now shares one port; set \
                 media.udp_port (default 40000) or media.udp_ports (one per shard) instead, and \
                 open that one UDP port",
            ));
        }
    }
    match raw.engine.as_deref().map(str::trim) {
        None | Some("rtc") => Ok(()),
        Some(other) => Err(key_err(
            "media.engine",
            format!(
                "`{other}`: meet has one media engine now (the `webrtc` one was retired); \
                 remove media.engine"
            ),
        )),
    }
}

pub(super) fn validate(raw: &RawMedia) -> Result<MediaConfig, ConfigError> {
    retired(raw)?;
    let shard_ports = shard_ports(raw)?;
    let shards = shards(raw, &shard_ports)?;
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
        shard_ports,
        shards,
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

pub(super) fn ice_server(i: usize, raw: RawIceServer) -> Result<IceServer, ConfigError> {
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
