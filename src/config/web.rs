//! `[web]`: where the web client's files come from.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::values::key_err;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWeb {
    pub assets_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct WebConfig {
    /// Serve the web client from this folder instead of the copy built into the binary.
    pub assets_dir: Option<PathBuf>,
}

pub(super) fn validate(raw: RawWeb) -> Result<WebConfig, ConfigError> {
    let assets_dir = raw.assets_dir.filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = &assets_dir
        && !dir.join("index.html").is_file()
    {
        return Err(key_err(
            "web.assets_dir",
            format!("{} has no index.html", dir.display()),
        ));
    }
    Ok(WebConfig { assets_dir })
}
