//! Every error on every route has the body
//! `{"status":"error","code":"snake_case_code","message":"A sentence for a person"}`.

use std::convert::Infallible;

use http::StatusCode;
use serde::Serialize;
use warp::Reply;
use warp::reject::Rejection;

use crate::error::{Error, FieldError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

impl warp::reject::Reject for ApiError {}

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => "Validation failed".to_owned(),
        };
        Self {
            errors,
            ..Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
        }
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body is larger than {limit} bytes"),
        )
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests; try again later",
            )
        }
    }

    pub fn into_rejection(self) -> Rejection {
        warp::reject::custom(self)
    }
}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        let body = Body {
            status: "error",
            code: self.code,
            message: &self.message,
            errors: &self.errors,
        };
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
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
                // Logged in full here, answered generically.
                tracing::error!(error = %e, "request failed");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The service is temporarily unavailable; try again",
                )
            }
        }
    }
}

/// Turns any rejection, ours or warp's, into the contract's JSON.
#[allow(clippy::unused_async)]
pub async fn recover(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    let api = if let Some(e) = rejection.find::<ApiError>() {
        ApiError {
            errors: e.errors.clone(),
            ..ApiError::new(e.status, e.code, e.message.clone())
        }
        .with_retry(e.retry_after)
    } else if rejection.is_not_found() {
        ApiError::not_found()
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "This method is not allowed on this route",
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Request body is too large",
        )
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::bad_request("Invalid query string")
    } else if let Some(h) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(format!("Invalid header `{}`", h.name()))
    } else {
        tracing::debug!(?rejection, "unhandled rejection");
        ApiError::bad_request("Malformed request")
    };
    Ok(api.into_response())
}

impl ApiError {
    fn with_retry(mut self, retry_after: Option<u64>) -> Self {
        self.retry_after = retry_after;
        self
    }
}
