//! The service error: what can go wrong with a request; and the contract's rendering of it
//! (`ApiError`: the status, the `code` of each error and its `message`), shared by the HTTP API
//! (which writes it as JSON), the Socket.IO acknowledgements and the control socket.

use std::time::Duration;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("Validation failed")]
    Validation(Vec<FieldError>),
    #[error("Authentication required")]
    Unauthorized,
    #[error("Invalid username or password")]
    InvalidCredentials,
    #[error("This account is disabled")]
    AccountDisabled,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409 with a specific code (`username_taken`, `meeting_ended`, `meeting_full`, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 410: something the original server did that meet does another way (the message says
    /// which).
    #[error("{message}")]
    Gone {
        code: &'static str,
        message: &'static str,
    },
    /// A message (not a request body: those are checked by the HTTP layer) over its size limit.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("Daily meeting limit ({0}) reached")]
    DailyLimit(u32),
    #[error("Too many requests; try again later")]
    RateLimited { retry_after: Duration },
    #[error("storage: {0}")]
    Storage(String),
    #[error("database: {0}")]
    Database(String),
    #[error("internal: {0}")]
    Internal(String),
    /// 503: a resource of this server is exhausted for now (e.g. the SFU's UDP ports).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }
}

impl From<surrealdb::Error> for Error {
    fn from(e: surrealdb::Error) -> Self {
        Self::Database(e.to_string())
    }
}

/// What `disk_full` says.
pub const DISK_FULL: &str = "The server's disk is full: nothing can be saved until space is freed";

/// Whether a failure's text (an I/O error, as the database or the storage passes it on) is
/// the file system's `ENOSPC` or `EDQUOT`.
pub fn disk_full(error: &str) -> bool {
    error.contains("No space left on device")
        || error.contains("os error 28")
        || error.contains("Disk quota exceeded")
        || error.contains("os error 122")
}

/// An error as the contract answers it: `{"status":"error","code","message"}` with this HTTP
/// status (and `errors` for validation, `Retry-After` for rate limits).
#[derive(Debug)]
pub struct ApiError {
    pub status: http::StatusCode,
    pub code: &'static str,
    pub message: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: http::StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(http::StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "Validation failed".to_owned(),
        };
        Self {
            errors,
            ..Self::new(http::StatusCode::BAD_REQUEST, "validation_failed", message)
        }
    }

    pub fn not_found() -> Self {
        Self::new(http::StatusCode::NOT_FOUND, "not_found", "No such resource")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body is larger than {limit} bytes"),
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests; try again later",
            )
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use http::StatusCode as S;
        match e {
            Error::BadRequest(m) => Self::bad_request(m),
            Error::Validation(errors) => Self::validation(errors),
            Error::Unauthorized => {
                Self::new(S::UNAUTHORIZED, "unauthorized", "Authentication required")
            }
            Error::InvalidCredentials => Self::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid username or password",
            ),
            Error::AccountDisabled => {
                Self::new(S::FORBIDDEN, "account_disabled", "This account is disabled")
            }
            Error::Forbidden(m) => Self::new(S::FORBIDDEN, "forbidden", m),
            Error::NotFound(what) => {
                Self::new(S::NOT_FOUND, "not_found", format!("{what} not found"))
            }
            Error::Conflict { code, message } => Self::new(S::CONFLICT, code, message),
            Error::Gone { code, message } => Self::new(S::GONE, code, message),
            Error::Unavailable { code, message } => {
                Self::new(S::SERVICE_UNAVAILABLE, code, message)
            }
            Error::DailyLimit(n) => Self::new(
                S::TOO_MANY_REQUESTS,
                "daily_meeting_limit",
                format!("Daily meeting limit ({n}) reached"),
            ),
            Error::RateLimited { retry_after } => Self::rate_limited(retry_after.as_secs()),
            e @ Error::TooLarge { .. } => {
                Self::new(S::PAYLOAD_TOO_LARGE, "payload_too_large", e.to_string())
            }
            e @ (Error::Storage(_) | Error::Database(_) | Error::Internal(_)) => {
                // Logged in full here, answered generically: but a full disk is said, as it
                // lasts until an operator frees space.
                tracing::error!(error = %e, "request failed");
                if disk_full(&e.to_string()) {
                    return Self::new(S::SERVICE_UNAVAILABLE, "disk_full", DISK_FULL);
                }
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The service is temporarily unavailable; try again",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_said_other_failures_are_not() {
        let full = std::io::Error::from_raw_os_error(28).to_string();
        for e in [
            Error::Database(format!("IO error: {full}")),
            Error::Storage(full.clone()),
            Error::Internal("write manifest: Disk quota exceeded (os error 122)".into()),
        ] {
            let api = ApiError::from(e);
            assert_eq!((api.status.as_u16(), api.code), (503, "disk_full"));
        }
        let api = ApiError::from(Error::Database("connection refused".into()));
        assert_eq!((api.status.as_u16(), api.code), (503, "unavailable"));
    }
}
