//! `/api/auth/*` and `/api/student/login`.

use std::net::IpAddr;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;
use warp::Filter;
use warp::filters::BoxedFilter;

use super::extract::{caller, client_ip, json, state};
use super::{HttpState, Response, answer};
use crate::domain::access::Identity;
use crate::domain::users::{Role, username_key};
use crate::error::Error;

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes the caller's password; a wrong current password is throttled like a login.
pub(super) async fn change_password(
    s: Arc<HttpState>,
    who: Arc<Identity>,
    ip: IpAddr,
    body: ChangePasswordBody,
) -> Result<Response, std::convert::Infallible> {
    let key = format!("{}|{ip}", username_key(&who.username));
    let result = match s.limiter.login_attempt(&key) {
        Some(retry_after) => Err(Error::RateLimited { retry_after }),
        None => {
            s.services
                .change_password(&who, &body.current_password, &body.new_password)
                .await
        }
    };
    if result.is_ok() {
        s.limiter.login_succeeded(&key);
    }
    answer(result, |(token, expires_at)| {
        super::json(
            StatusCode::OK,
            &serde_json::json!({"status": "success", "message": "Password changed", "token": token, "expiresAt": expires_at}),
        )
    })
}

pub fn routes(s: &Arc<HttpState>) -> BoxedFilter<(Response,)> {
    let login = warp::path!("api" / "auth" / "login")
        .and(warp::post())
        .and(state(Arc::clone(s)))
        .and(client_ip())
        .and(json::<LoginBody>())
        .and_then(
            |s: Arc<HttpState>, ip: IpAddr, body: LoginBody| async move {
                let result = throttled_login(&s, ip, body, None).await;
                answer(result, |l| super::json(StatusCode::OK, &l))
            },
        );
    let student_login = warp::path!("api" / "student" / "login")
        .and(warp::post())
        .and(state(Arc::clone(s)))
        .and(client_ip())
        .and(json::<LoginBody>())
        .and_then(
            |s: Arc<HttpState>, ip: IpAddr, body: LoginBody| async move {
                let result = throttled_login(&s, ip, body, Some(Role::Student)).await;
                answer(result, |l| {
                    super::json(
                        StatusCode::OK,
                        &serde_json::json!({"status": "success", "data": l}),
                    )
                })
            },
        );
    let profile = warp::path!("api" / "auth" / "profile")
        .and(warp::get())
        .and(state(Arc::clone(s)))
        .and(caller(Arc::clone(s)))
        .and_then(|s: Arc<HttpState>, who: Arc<Identity>| async move {
            answer(s.services.profile(&who).await, |u| {
                super::json(StatusCode::OK, &u)
            })
        });
    let change_password = warp::path!("api" / "auth" / "change-password")
        .and(warp::put())
        .and(state(Arc::clone(s)))
        .and(caller(Arc::clone(s)))
        .and(client_ip())
        .and(json::<ChangePasswordBody>())
        .and_then(change_password);
    login
        .or(student_login)
        .unify()
        .or(profile)
        .unify()
        .or(change_password)
        .unify()
        .boxed()
}

/// A login, throttled per username and client address after repeated failures.
async fn throttled_login(
    s: &HttpState,
    ip: IpAddr,
    body: LoginBody,
    only: Option<Role>,
) -> crate::error::Result<crate::service::Login> {
    let mut missing = Vec::new();
    if body.username.is_empty() {
        missing.push(crate::error::FieldError::new("username", "is required"));
    }
    if body.password.is_empty() {
        missing.push(crate::error::FieldError::new("password", "is required"));
    }
    if !missing.is_empty() {
        return Err(Error::Validation(missing));
    }
    if body.username.len() > 64 || body.password.len() > 1024 {
        return Err(Error::InvalidCredentials);
    }
    let key = format!("{}|{ip}", username_key(&body.username));
    if let Some(retry_after) = s.limiter.login_attempt(&key) {
        return Err(Error::RateLimited { retry_after });
    }
    let result = s.services.login(&body.username, &body.password, only).await;
    match &result {
        Err(Error::InvalidCredentials) => s.metrics.login_failed(),
        Ok(_) => s.limiter.login_succeeded(&key),
        Err(_) => {}
    }
    result
}
