//! Logging with tracing: text or JSON, level from the configuration or `RUST_LOG`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LoggingConfig};

/// Installs the global subscriber. Logs go to stderr; tokens and passwords are never logged.
pub fn init(config: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_media(&config.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The WebRTC crates warn once per packet about conditions the SFU expects (a packet for a
/// connection still in its DTLS handshake, or closing): unless the level names them, only
/// their errors are logged.
fn with_quiet_media(level: &str) -> String {
    if level.contains("rtc") {
        level.to_owned()
    } else {
        format!("{level},rtc=error,webrtc=error")
    }
}

/// Before the configuration is read: warnings only.
pub fn init_minimal() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_crates_log_errors_only_unless_named() {
        assert_eq!(with_quiet_media("info"), "info,rtc=error,webrtc=error");
        assert_eq!(with_quiet_media("info,rtc=debug"), "info,rtc=debug");
    }
}
