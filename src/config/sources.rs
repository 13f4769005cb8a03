//! The layers, lowest first: built-in defaults, `meet.toml`, the original backend's environment
//! variables, `MEET_*` variables (`__` for nesting), then the command line ([`super::Overrides`]).
//! The file and the environment are merged into one TOML table before it is parsed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::server::parse_listen;
use super::values::key_err;
use super::{ConfigError, Overrides, RawConfig};

/// Where `meet.toml` is looked for when neither `--config` nor `MEET_CONFIG` names one.
pub const DEFAULT_CONFIG_PATHS: [&str; 2] = ["meet.toml", "/etc/meet/meet.toml"];

pub(super) fn config_path(
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

pub(super) fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

pub(super) fn parse_table(table: toml::Table, path: &Path) -> Result<RawConfig, ConfigError> {
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
pub(super) fn apply_legacy_env(table: &mut toml::Table, env: &BTreeMap<String, String>) {
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
pub(super) fn apply_meet_env(
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
