//! `[auth]`: tokens, passwords and the first administrator.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, positive, secret_or_file, text_or};
use crate::secret::Secret;

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

pub(super) fn validate(raw: RawAuth) -> Result<AuthConfig, ConfigError> {
    let jwt_secret = secret_or_file(
        raw.jwt_secret,
        raw.jwt_secret_file.as_deref(),
        "auth.jwt_secret",
    )?;
    if jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 16) {
        return Err(key_err("auth.jwt_secret", "must be at least 16 characters"));
    }
    let token_lifetime = raw.token_lifetime_seconds.unwrap_or(86_400);
    if !(60..=31 * 86_400).contains(&token_lifetime) {
        return Err(key_err(
            "auth.token_lifetime_seconds",
            "must be between 60 and 2678400",
        ));
    }
    let password_min_length = raw.password_min_length.unwrap_or(8);
    if !(1..=128).contains(&password_min_length) {
        return Err(key_err(
            "auth.password_min_length",
            "must be between 1 and 128",
        ));
    }
    let admin_username = text_or(raw.admin_username, "admin");
    if crate::domain::users::validate_username(&admin_username).is_err() {
        return Err(key_err("auth.admin_username", "3–32 of A-Z a-z 0-9 . _ -"));
    }
    let admin_password = secret_or_file(
        raw.admin_password,
        raw.admin_password_file.as_deref(),
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
    Ok(AuthConfig {
        jwt_secret,
        token_lifetime: Duration::from_secs(token_lifetime),
        password_min_length,
        admin_username,
        admin_password,
        argon2_memory_kib: positive(raw.argon2_memory_kib, 19_456, "auth.argon2_memory_kib")?,
        argon2_iterations: positive(raw.argon2_iterations, 2, "auth.argon2_iterations")?,
    })
}
