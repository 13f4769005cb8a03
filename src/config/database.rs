//! `[database]`: the embedded SurrealDB (or a remote one).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, secret_or_file, text_or};
use crate::secret::Secret;

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

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub namespace: String,
    pub database: String,
    pub credentials: Option<(String, Secret)>,
}

pub(super) fn validate(raw: RawDatabase, data_dir: &Path) -> Result<DatabaseConfig, ConfigError> {
    let url = raw.url.map_or_else(
        || format!("surrealkv://{}", data_dir.join("db").display()),
        |t| t.0,
    );
    let scheme = url.split("://").next().unwrap_or_default();
    if !matches!(scheme, "mem" | "surrealkv" | "ws" | "wss") || !url.contains("://") {
        return Err(key_err(
            "database.url",
            "expected mem://, surrealkv://DIR, ws://HOST:PORT or wss://HOST:PORT",
        ));
    }
    let password = secret_or_file(
        raw.password,
        raw.password_file.as_deref(),
        "database.password",
    )?;
    let credentials = match (raw.username, password) {
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
    Ok(DatabaseConfig {
        url,
        namespace: text_or(raw.namespace, "meet"),
        database: text_or(raw.database, "meet"),
        credentials,
    })
}
