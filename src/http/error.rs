//! Every error on every route has the body
//! `{"status":"error","code":"snake_case_code","message":"A sentence for a person"}`.

use std::convert::Infallible;

use http::StatusCode;
use serde::Serialize;
use warp::Reply;
use warp::reject::Rejection;

pub use crate::error::ApiError;
use crate::error::FieldError;

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
