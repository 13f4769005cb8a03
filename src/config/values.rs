//! The value types and checks every section shares: strings that may be written as numbers,
//! secrets given inline or in a file, and ranges.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::ConfigError;
use crate::secret::Secret;

pub(super) fn key_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// A string setting that also accepts a number or boolean, so that `MEET_AUTH__ADMIN_PASSWORD=12345678`
/// stays a string.
#[derive(Clone, Debug)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Any {
            S(String),
            I(i64),
            F(f64),
            B(bool),
        }
        Ok(Text(match Any::deserialize(d)? {
            Any::S(s) => s,
            Any::I(i) => i.to_string(),
            Any::F(f) => f.to_string(),
            Any::B(b) => b.to_string(),
        }))
    }
}

/// The text of a setting, or its default.
pub(super) fn text_or(value: Option<Text>, default: &str) -> String {
    value.map_or_else(|| default.to_owned(), |t| t.0)
}

pub(super) fn within<T: PartialOrd + Copy + std::fmt::Display>(
    value: Option<T>,
    default: T,
    range: std::ops::RangeInclusive<T>,
    key: &str,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(key_err(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

pub(super) fn positive<T: Default + PartialOrd + Copy>(
    value: Option<T>,
    default: T,
    key: &str,
) -> Result<T, ConfigError> {
    let v = value.unwrap_or(default);
    if v > T::default() {
        Ok(v)
    } else {
        Err(key_err(key, "must be greater than zero"))
    }
}

/// `key` or `key_file`; a secret file must not be readable by group or others.
pub(super) fn secret_or_file(
    value: Option<Text>,
    file: Option<&Path>,
    key: &str,
) -> Result<Option<Secret>, ConfigError> {
    match (value, file) {
        (Some(_), Some(_)) => Err(key_err(
            key,
            format!("set either `{key}` or `{key}_file`, not both"),
        )),
        (Some(v), None) => Ok(Some(Secret::new(v.0))),
        (None, Some(path)) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| key_err(&format!("{key}_file"), format!("{}: {e}", path.display())))?;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(key_err(
                    &format!("{key}_file"),
                    format!(
                        "{} is readable by group or others; chmod 600 it",
                        path.display()
                    ),
                ));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| key_err(&format!("{key}_file"), e.to_string()))?;
            Ok(Some(Secret::new(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )))
        }
        (None, None) => Ok(None),
    }
}
