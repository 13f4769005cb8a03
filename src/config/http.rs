//! `[http]`: body size, CORS, HSTS and the rate limits.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, positive};

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

pub(super) fn validate(raw: RawHttp) -> Result<HttpConfig, ConfigError> {
    let mut cors_origins = raw.cors_origins.unwrap_or_default();
    for origin in [raw.frontend_url, raw.client_url].into_iter().flatten() {
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
    let rl = raw.rate_limit;
    let seconds = |v: Option<u64>, default: u64, key: &str| {
        positive(v, default, key).map(Duration::from_secs)
    };
    Ok(HttpConfig {
        body_limit: positive(raw.body_limit_bytes, 16 * 1024, "http.body_limit_bytes")?,
        cors_origins,
        hsts_max_age: raw.hsts_max_age_seconds.filter(|s| *s > 0),
        trust_forwarded_for: raw.trust_forwarded_for.unwrap_or(false),
        requests_per_window: positive(
            rl.requests_per_window,
            5_000,
            "http.rate_limit.requests_per_window",
        )?,
        window: seconds(rl.window_seconds, 900, "http.rate_limit.window_seconds")?,
        login_failures: positive(rl.login_failures, 10, "http.rate_limit.login_failures")?,
        login_window: seconds(
            rl.login_window_seconds,
            900,
            "http.rate_limit.login_window_seconds",
        )?,
    })
}
