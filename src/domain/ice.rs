//! The STUN/TURN servers a client gets in the join answer. TURN credentials are either fixed or
//! made per user and time-limited from a secret shared with the TURN server (the "TURN REST API"
//! that coturn's `use-auth-secret` implements): username `<expiry unix time>:<user id>`,
//! credential base64(HMAC-SHA1(secret, username)).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;

use crate::secret::Secret;

/// A STUN/TURN server from `[[media.ice_servers]]`.
#[derive(Debug, Clone)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub auth: IceAuth,
}

#[derive(Debug, Clone)]
pub enum IceAuth {
    None,
    /// Fixed TURN credentials.
    Static {
        username: String,
        credential: Secret,
    },
    /// Time-limited credentials from a secret shared with the TURN server (TURN REST API).
    Rest {
        secret: Secret,
        ttl: std::time::Duration,
    },
}

/// One entry of `iceServers`, in the shape of the browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServerView {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The servers for `user_id` at `now`.
pub fn for_user(servers: &[IceServer], user_id: &str, now: DateTime<Utc>) -> Vec<IceServerView> {
    servers
        .iter()
        .map(|s| {
            let (username, credential) = match &s.auth {
                IceAuth::None => (None, None),
                IceAuth::Static {
                    username,
                    credential,
                } => (Some(username.clone()), Some(credential.expose().to_owned())),
                IceAuth::Rest { secret, ttl } => {
                    let expiry =
                        now.timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
                    let username = format!("{expiry}:{user_id}");
                    let credential = rest_credential(secret.expose().as_bytes(), &username);
                    (Some(username), Some(credential))
                }
            };
            IceServerView {
                urls: s.urls.clone(),
                username,
                credential,
            }
        })
        .collect()
}

/// base64(HMAC-SHA1(secret, username)).
pub fn rest_credential(secret: &[u8], username: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn turn_rest_credentials_match_coturn() {
        // Computed independently: python3 hmac.new(b"north-secret", b"1772528400:u1", sha1).
        assert_eq!(
            rest_credential(b"north-secret", "1772528400:u1"),
            "5kgZDs0U9U0lUWr4/WUYziusLsM="
        );
        let now = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let servers = [
            IceServer {
                urls: vec!["stun:stun.example.org:3478".into()],
                auth: IceAuth::None,
            },
            IceServer {
                urls: vec!["turn:turn.example.org:3478".into()],
                auth: IceAuth::Rest {
                    secret: Secret::new("north-secret"),
                    ttl: Duration::from_secs(86_400),
                },
            },
            IceServer {
                urls: vec!["turns:turn.example.org:5349".into()],
                auth: IceAuth::Static {
                    username: "meet".into(),
                    credential: Secret::new("fixed"),
                },
            },
        ];
        let views = for_user(&servers, "u1", now);
        assert_eq!(views[0].username, None);
        assert_eq!(views[1].username.as_deref(), Some("1772528400:u1"));
        assert_eq!(
            views[1].credential.as_deref(),
            Some("5kgZDs0U9U0lUWr4/WUYziusLsM=")
        );
        assert_eq!(views[2].credential.as_deref(), Some("fixed"));
    }
}
