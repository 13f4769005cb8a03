//! Passwords (argon2id), tokens (HS256 JWTs with a per-user version) and the identity behind a
//! token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Services, User};
use crate::domain::access::Identity;
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::store::UserRow;

/// Hashes and verifies passwords off the async runtime.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Hashing is CPU- and memory-bound: no more at once than there are cores, so a burst of
    /// logins queues instead of holding one hashing buffer per waiting request.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// A hash of a random password, verified when the user does not exist so that a wrong
    /// username costs the same time as a wrong password.
    decoy: std::sync::Arc<std::sync::OnceLock<String>>,
}

impl PasswordHasher {
    pub fn new(memory_kib: u32, iterations: u32) -> Self {
        let params = Params::new(
            memory_kib.max(Params::MIN_M_COST),
            iterations.max(1),
            1,
            None,
        )
        .unwrap_or_else(|_| Params::default());
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            params,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(cores)),
            decoy: std::sync::Arc::default(),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let this = self.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || this.hash_now(&password))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
    }

    fn hash_now(&self, password: &str) -> Result<String> {
        use argon2::PasswordHasher as _;
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("hashing: {e}")))
    }

    /// True when `password` matches the argon2 `hash`; `None` as the hash checks against a decoy.
    /// A bcrypt hash never matches here: only [`PasswordHasher::verify_login`] accepts one.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        Ok(self.check(password, hash, false).await? == Checked::Right)
    }

    /// As [`PasswordHasher::verify`], and a bcrypt hash imported from the original backend
    /// (`$2a$`, `$2b$`, `$2y$`) is checked too: a match is [`Checked::RightLegacy`], for the
    /// caller to replace with an argon2id hash.
    pub async fn verify_login(&self, password: &str, hash: Option<&str>) -> Result<Checked> {
        self.check(password, hash, true).await
    }

    async fn check(&self, password: &str, hash: Option<&str>, bcrypt_too: bool) -> Result<Checked> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let this = self.clone();
        let password = password.to_owned();
        let hash = hash.map(str::to_owned);
        tokio::task::spawn_blocking(move || match &hash {
            Some(h) if bcrypt_too && is_bcrypt(h) => {
                if bcrypt::verify(&password, h).unwrap_or(false) {
                    Checked::RightLegacy
                } else {
                    Checked::Wrong
                }
            }
            Some(h) => {
                if this.argon2_matches(&password, h) {
                    Checked::Right
                } else {
                    Checked::Wrong
                }
            }
            None => {
                let decoy = this
                    .decoy
                    .get_or_init(|| this.hash_now(&super::new_id()).unwrap_or_default());
                let _ = this.argon2_matches(&password, decoy);
                Checked::Wrong
            }
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))
    }

    fn argon2_matches(&self, password: &str, hash: &str) -> bool {
        PasswordHash::new(hash).is_ok_and(|parsed| {
            self.argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    }
}

/// What a password check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Wrong,
    Right,
    /// Right, against an imported bcrypt hash.
    RightLegacy,
}

/// The original backend's bcryptjs hashes (`$2a$`), and the other bcrypt prefixes.
pub(super) fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    /// The user's token version when issued; a password change, deactivation or deletion moves it on.
    pub ver: i64,
}

pub struct TokenIssuer {
    /// Tokens whose signature has been checked, so a client's next request skips the HMAC and
    /// the JSON parse. Expiry is still checked every time; revocation is the identity's concern.
    verified: Mutex<HashMap<String, Claims>>,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], lifetime: Duration) -> Self {
        // Another dependency turns on jsonwebtoken's aws-lc backend too; with both present it
        // needs telling which one signs. An error means a provider is installed already.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        // Expiry is checked against the service clock, not the system's.
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims = ["sub", "exp", "iat"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        Self {
            verified: Mutex::default(),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime,
        }
    }

    pub fn issue(&self, user: &UserRow, now: DateTime<Utc>) -> Result<(String, DateTime<Utc>)> {
        let exp =
            now + chrono::Duration::from_std(self.lifetime).unwrap_or(chrono::Duration::hours(24));
        let claims = Claims {
            sub: user.id.clone(),
            role: Role::parse(&user.role).unwrap_or(Role::Student),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            ver: user.token_version,
        };
        let token = jsonwebtoken::encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .map_err(|e| Error::Internal(format!("signing: {e}")))?;
        Ok((token, exp))
    }

    /// Checks the signature and the expiry against `now` (the service clock, not the system's).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims> {
        let known = self.verified_tokens().get(token).cloned();
        let claims = match known {
            Some(c) => c,
            None => {
                let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map_err(|_| Error::Unauthorized)?;
                let mut map = self.verified_tokens();
                if map.len() >= 50_000 {
                    map.clear();
                }
                map.insert(token.to_owned(), data.claims.clone());
                data.claims
            }
        };
        if claims.exp <= now.timestamp() {
            return Err(Error::Unauthorized);
        }
        Ok(claims)
    }

    fn verified_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claims>> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a token's user looked like a moment ago. Entries live a few seconds and every change to
/// any user clears them all, so revocation takes effect at once in this process.
#[derive(Default)]
pub(super) struct IdentityCache {
    entries: Mutex<HashMap<String, (CachedUser, Instant)>>,
    /// Moved on by every clear: a lookup that started before a change is not kept.
    generation: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
struct CachedUser {
    identity: std::sync::Arc<Identity>,
    token_version: i64,
    active: bool,
}

const CACHE_TTL: Duration = Duration::from_secs(5);

impl IdentityCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (CachedUser, Instant)>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get(&self, id: &str) -> Option<CachedUser> {
        let map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(u, _)| u.clone())
    }

    /// Keeps a user read at `generation`, unless an account changed since.
    fn put(&self, id: String, user: CachedUser, generation: u64) {
        let mut map = self.lock();
        if generation != self.generation() {
            return;
        }
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(id, (user, Instant::now()));
    }

    pub(super) fn clear(&self) {
        let mut map = self.lock();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        map.clear();
    }
}

/// A successful login.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Login {
    #[serde(rename = "_id")]
    pub id: String,
    pub username: String,
    pub role: Role,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl Services {
    /// Checks a username and password; `only` restricts the role (student login).
    pub async fn login(&self, username: &str, password: &str, only: Option<Role>) -> Result<Login> {
        let row = self.store.user_by_name(username).await?;
        let checked = self
            .hasher
            .verify_login(password, row.as_ref().map(|r| r.password_hash.as_str()))
            .await?;
        let Some(row) = row.filter(|_| checked != Checked::Wrong) else {
            return Err(Error::InvalidCredentials);
        };
        if only.is_some_and(|role| role.as_str() != row.role) {
            return Err(Error::InvalidCredentials);
        }
        if !self.account_usable(&row).await? {
            return Err(Error::AccountDisabled);
        }
        if checked == Checked::RightLegacy {
            self.upgrade_hash(&row, password).await;
        }
        let (token, expires_at) = self.tokens.issue(&row, self.now())?;
        Ok(Login {
            role: Role::parse(&row.role).unwrap_or(Role::Student),
            id: row.id,
            username: row.username,
            token,
            expires_at,
        })
    }

    /// Replaces an imported bcrypt hash with an argon2id one. A failure is logged and the login
    /// goes on: the bcrypt hash stays, and the next login tries again.
    async fn upgrade_hash(&self, row: &UserRow, password: &str) {
        let result = async {
            let hash = self.hasher.hash(password).await?;
            self.store
                .replace_password_hash(&row.id, &row.password_hash, hash, self.now())
                .await
        }
        .await;
        match result {
            Ok(true) => {
                tracing::info!(user = %row.id, "imported bcrypt password hash upgraded to argon2id")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(user = %row.id, error = %e, "could not upgrade an imported password hash")
            }
        }
    }

    /// Active, and for a student, their host active too.
    async fn account_usable(&self, row: &UserRow) -> Result<bool> {
        if !row.is_active {
            return Ok(false);
        }
        match (&row.host_id, row.role.as_str()) {
            (Some(host), "student") => {
                Ok(self.store.user(host).await?.is_some_and(|h| h.is_active))
            }
            _ => Ok(true),
        }
    }

    /// The identity behind a bearer token: signature, expiry, then the user as stored now
    /// (exists, active, same token version).
    pub async fn authenticate(&self, token: &str) -> Result<std::sync::Arc<Identity>> {
        let claims = self.tokens.verify(token, self.now())?;
        let user = match self.identities.get(&claims.sub) {
            Some(u) => u,
            None => {
                let generation = self.identities.generation();
                let row = self
                    .store
                    .user(&claims.sub)
                    .await?
                    .ok_or(Error::Unauthorized)?;
                let user = CachedUser {
                    active: self.account_usable(&row).await?,
                    token_version: row.token_version,
                    identity: std::sync::Arc::new(Identity {
                        role: Role::parse(&row.role).ok_or(Error::Unauthorized)?,
                        id: row.id,
                        username: row.username,
                        host_id: row.host_id,
                    }),
                };
                self.identities
                    .put(claims.sub.clone(), user.clone(), generation);
                user
            }
        };
        if user.token_version != claims.ver || user.identity.role != claims.role || !user.active {
            return Err(Error::Unauthorized);
        }
        Ok(user.identity)
    }

    pub async fn profile(&self, who: &Identity) -> Result<User> {
        let row = self.store.user(&who.id).await?.ok_or(Error::Unauthorized)?;
        Ok(row.into())
    }

    /// Changes the caller's password; older tokens stop working. Returns a fresh token.
    pub async fn change_password(
        &self,
        who: &Identity,
        current: &str,
        new: &str,
    ) -> Result<(String, DateTime<Utc>)> {
        let row = self.store.user(&who.id).await?.ok_or(Error::Unauthorized)?;
        crate::domain::users::validate_password(
            "newPassword",
            new,
            self.config.auth.password_min_length,
        )
        .map_err(|e| Error::Validation(vec![e]))?;
        if !self
            .hasher
            .verify(current, Some(&row.password_hash))
            .await?
        {
            return Err(Error::InvalidCredentials);
        }
        let hash = self.hasher.hash(new).await?;
        let update = crate::store::UserUpdate {
            password_hash: Some(hash),
            revoke_tokens: true,
            ..Default::default()
        };
        let row = self
            .store
            .update_user(&who.id, update, self.now())
            .await?
            .ok_or(Error::Unauthorized)?;
        self.identities.clear();
        // The caller's other tabs and devices hold the old token: their sockets close too.
        self.emit(super::MeetingEvent::Revoked {
            user_ids: vec![row.id.clone()],
        });
        self.tokens.issue(&row, self.now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> UserRow {
        UserRow {
            id: "u1".into(),
            username: "alice".into(),
            username_key: "alice".into(),
            password_hash: String::new(),
            role: "host".into(),
            is_active: true,
            host_id: None,
            token_version: 3,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn tokens_expire_by_the_given_clock() {
        let issuer = TokenIssuer::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(60));
        let now = Utc::now();
        let (token, exp) = issuer.issue(&row(), now).expect("issue");
        let claims = issuer.verify(&token, now).expect("valid");
        assert_eq!(
            (claims.sub.as_str(), claims.ver, claims.role),
            ("u1", 3, Role::Host)
        );
        assert!(issuer.verify(&token, exp).is_err());
        let other = TokenIssuer::new(b"another secret, quite different", Duration::from_secs(60));
        assert!(other.verify(&token, now).is_err(), "forged signature");
    }

    #[tokio::test]
    async fn passwords_verify_and_decoys_never_match() {
        let h = PasswordHasher::new(1024, 1);
        let hash = h.hash("correct horse").await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            h.verify("correct horse", Some(&hash))
                .await
                .expect("verify")
        );
        assert!(!h.verify("wrong horse", Some(&hash)).await.expect("verify"));
        assert!(!h.verify("correct horse", None).await.expect("verify"));
    }

    #[tokio::test]
    async fn bcrypt_hashes_pass_only_at_login() {
        let h = PasswordHasher::new(1024, 1);
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let hash = bcrypt::hash_with_result("old secret", 4)
                .expect("bcrypt")
                .format_for_version(version);
            assert_eq!(
                h.verify_login("old secret", Some(&hash))
                    .await
                    .expect("check"),
                Checked::RightLegacy,
                "{hash}"
            );
            assert_eq!(
                h.verify_login("other", Some(&hash)).await.expect("check"),
                Checked::Wrong
            );
            assert!(!h.verify("old secret", Some(&hash)).await.expect("check"));
        }
        let argon = h.hash("new secret").await.expect("hash");
        assert_eq!(
            h.verify_login("new secret", Some(&argon))
                .await
                .expect("check"),
            Checked::Right
        );
        assert_eq!(
            h.verify_login("new secret", None).await.expect("check"),
            Checked::Wrong
        );
    }
}
