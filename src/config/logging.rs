//! `[logging]`: the log filter and format.

use serde::Deserialize;

use super::ConfigError;
use super::values::{Text, key_err, text_or};

/// The default log filter: meet at info, the embedded database's chatter at warn.
pub const DEFAULT_LOG_LEVEL: &str = "info,surrealdb=warn,surrealkv=warn,tokio_cron_scheduler=warn";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogging {
    pub level: Option<Text>,
    pub format: Option<Text>,
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

pub(super) fn validate(raw: RawLogging) -> Result<LoggingConfig, ConfigError> {
    let format = match raw.format.as_ref().map(|t| t.0.as_str()) {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(_) => return Err(key_err("logging.format", "expected \"text\" or \"json\"")),
    };
    let level = text_or(raw.level, DEFAULT_LOG_LEVEL);
    // tracing-subscriber's directive parser slices its input by byte offsets and panics inside
    // a multi-byte character (` 𖭽=`: found by the fuzz tests); a filter is module paths,
    // levels and field values, ASCII in practice, so anything else is refused before it.
    if !level.is_ascii() {
        return Err(key_err(
            "logging.level",
            "must be ASCII: a level or filter (e.g. \"info\", \"meet=debug\")",
        ));
    }
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        return Err(key_err(
            "logging.level",
            "not a valid level or filter (e.g. \"info\", \"meet=debug\")",
        ));
    }
    Ok(LoggingConfig { level, format })
}
