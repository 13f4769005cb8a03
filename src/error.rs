//! The service error: what can go wrong with a request, independent of how it is answered.
//! `http::error::ApiError` renders it as the contract's JSON; the control socket sends it as text.

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
