//! Accounts: the first admin, hosts (managed by admins) and students (managed by their host).

use serde::Deserialize;

use super::{HostRef, MeetingEvent, Services, User, new_id};
use crate::domain::access::Identity;
use crate::domain::users::{Role, validate_password, validate_username};
use crate::error::{Error, FieldError, Result};
use crate::store::{NewUser, UserRow, UserUpdate};

/// A change to an account; absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserPatch {
    pub username: Option<String>,
    pub password: Option<String>,
    pub is_active: Option<bool>,
}

/// What start-up did about the first admin.
#[derive(Debug, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// An admin exists already.
    Present,
    /// Created with the configured password.
    Created { username: String },
    /// Created with a random password, to be shown once.
    Generated { username: String, password: String },
}

impl Services {
    /// Creates the first admin when there is none.
    pub async fn ensure_admin(&self) -> Result<AdminBootstrap> {
        if self.store.count_users(Role::Admin.as_str()).await? > 0 {
            return Ok(AdminBootstrap::Present);
        }
        let username = self.config.auth.admin_username.clone();
        let (password, generated) = match &self.config.auth.admin_password {
            Some(p) => (p.expose().to_owned(), false),
            None => (random_password(), true),
        };
        self.create_user(&username, &password, Role::Admin, None)
            .await?;
        Ok(if generated {
            AdminBootstrap::Generated { username, password }
        } else {
            AdminBootstrap::Created { username }
        })
    }

    async fn create_user(
        &self,
        username: &str,
        password: &str,
        role: Role,
        host_id: Option<String>,
    ) -> Result<UserRow> {
        let mut errors = Vec::new();
        errors.extend(validate_username(username).err());
        errors.extend(
            validate_password("password", password, self.config.auth.password_min_length).err(),
        );
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        if self.store.user_by_name(username).await?.is_some() {
            return Err(Error::conflict(
                "username_taken",
                "That username is already taken",
            ));
        }
        let hash = self.hasher.hash(password).await?;
        let row = self
            .store
            .create_user(NewUser {
                id: new_id(),
                username: username.to_owned(),
                password_hash: hash,
                role: role.as_str(),
                host_id,
                now: self.now(),
            })
            .await?;
        self.identities.clear();
        Ok(row)
    }

    async fn patch_user(&self, row: &UserRow, patch: UserPatch) -> Result<User> {
        let mut errors: Vec<FieldError> = Vec::new();
        if let Some(name) = &patch.username {
            errors.extend(validate_username(name).err());
        }
        if let Some(p) = &patch.password {
            errors.extend(
                validate_password("password", p, self.config.auth.password_min_length).err(),
            );
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        if let Some(name) = &patch.username
            && let Some(other) = self.store.user_by_name(name).await?
            && other.id != row.id
        {
            return Err(Error::conflict(
                "username_taken",
                "That username is already taken",
            ));
        }
        let password_hash = match &patch.password {
            Some(p) => Some(self.hasher.hash(p).await?),
            None => None,
        };
        let deactivating = patch.is_active == Some(false) && row.is_active;
        let update_revokes = password_hash.is_some() || deactivating;
        let update = UserUpdate {
            revoke_tokens: update_revokes,
            username: patch.username,
            password_hash,
            is_active: patch.is_active,
        };
        let updated = self
            .store
            .update_user(&row.id, update, self.now())
            .await?
            .ok_or(Error::NotFound("User"))?;
        self.identities.clear();
        if update_revokes {
            let mut user_ids = vec![row.id.clone()];
            // A disabled host's students are shut out with it (`account_usable`).
            if deactivating && row.role == Role::Host.as_str() {
                let students = self.store.users(Role::Student.as_str(), Some(&row.id));
                user_ids.extend(students.await?.into_iter().map(|u| u.id));
            }
            self.emit(MeetingEvent::Revoked { user_ids });
        }
        if deactivating {
            self.leave_all_meetings(&row.id).await?;
            // A disabled host's students cannot log in either: its open meetings end.
            if row.role == Role::Host.as_str() {
                for meeting in self
                    .store
                    .meetings(Some(&row.id), Some(&["created", "active"]))
                    .await?
                {
                    self.end_meeting_as(
                        &meeting.id,
                        crate::domain::meetings::EndReason::AdminEnded,
                    )
                    .await?;
                }
            }
        }
        Ok(updated.into())
    }

    // ---- students, managed by their host -------------------------------------------------

    pub async fn create_student(
        &self,
        host: &Identity,
        username: &str,
        password: &str,
    ) -> Result<User> {
        require(host, Role::Host)?;
        Ok(self
            .create_user(username, password, Role::Student, Some(host.id.clone()))
            .await?
            .into())
    }

    pub async fn students(&self, host: &Identity) -> Result<Vec<User>> {
        require(host, Role::Host)?;
        Ok(self
            .store
            .users(Role::Student.as_str(), Some(&host.id))
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// One of this host's students; another host's student is "not found".
    async fn own_student(&self, host: &Identity, id: &str) -> Result<UserRow> {
        require(host, Role::Host)?;
        super::check_id(id, "Student")?;
        self.store
            .user(id)
            .await?
            .filter(|u| u.role == "student" && u.host_id.as_deref() == Some(host.id.as_str()))
            .ok_or(Error::NotFound("Student"))
    }

    pub async fn update_student(
        &self,
        host: &Identity,
        id: &str,
        patch: UserPatch,
    ) -> Result<User> {
        let row = self.own_student(host, id).await?;
        self.patch_user(&row, patch).await
    }

    pub async fn delete_student(&self, host: &Identity, id: &str) -> Result<()> {
        let row = self.own_student(host, id).await?;
        // Revoke first, so the student cannot rejoin between leaving and disappearing.
        let revoke = UserUpdate {
            is_active: Some(false),
            revoke_tokens: true,
            ..UserUpdate::default()
        };
        self.store.update_user(&row.id, revoke, self.now()).await?;
        self.identities.clear();
        self.emit(MeetingEvent::Revoked {
            user_ids: vec![row.id.clone()],
        });
        self.leave_all_meetings(&row.id).await?;
        self.store.delete_user(&row.id).await?;
        self.identities.clear();
        Ok(())
    }

    pub async fn student_info(&self, student: &Identity) -> Result<(User, HostRef)> {
        require(student, Role::Student)?;
        let row = self
            .store
            .user(&student.id)
            .await?
            .ok_or(Error::Unauthorized)?;
        let host_id = row
            .host_id
            .clone()
            .ok_or(Error::Internal("student without a host".into()))?;
        let host = self
            .store
            .user(&host_id)
            .await?
            .ok_or(Error::NotFound("Host"))?;
        Ok((
            row.into(),
            HostRef {
                id: host.id,
                username: host.username,
            },
        ))
    }

    // ---- hosts, managed by admins ---------------------------------------------------------

    pub async fn hosts(&self, admin: &Identity) -> Result<Vec<User>> {
        require(admin, Role::Admin)?;
        Ok(self
            .store
            .users(Role::Host.as_str(), None)
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    /// Students of one host, or all of them (admin).
    pub async fn all_students(&self, admin: &Identity, host: Option<&str>) -> Result<Vec<User>> {
        require(admin, Role::Admin)?;
        let host_id = match host {
            Some(h) => Some(self.host_row(h).await?.id),
            None => None,
        };
        Ok(self
            .store
            .users(Role::Student.as_str(), host_id.as_deref())
            .await?
            .into_iter()
            .map(User::from)
            .collect())
    }

    pub async fn create_host(
        &self,
        admin: &Identity,
        username: &str,
        password: &str,
    ) -> Result<User> {
        require(admin, Role::Admin)?;
        Ok(self
            .create_user(username, password, Role::Host, None)
            .await?
            .into())
    }

    /// A host by id or, for the command line, by username.
    pub async fn host_row(&self, id_or_name: &str) -> Result<UserRow> {
        let by_id = if super::check_id(id_or_name, "Host").is_ok() {
            self.store.user(id_or_name).await?
        } else {
            None
        };
        let row = match by_id {
            Some(r) => Some(r),
            None => self.store.user_by_name(id_or_name).await?,
        };
        row.filter(|u| u.role == "host")
            .ok_or(Error::NotFound("Host"))
    }

    pub async fn update_host(&self, admin: &Identity, id: &str, patch: UserPatch) -> Result<User> {
        require(admin, Role::Admin)?;
        let row = self.host_row(id).await?;
        self.patch_user(&row, patch).await
    }

    /// Deletes a host with its students, meetings and recordings (bytes first, then rows).
    pub async fn delete_host(&self, admin: &Identity, id: &str) -> Result<()> {
        require(admin, Role::Admin)?;
        let row = self.host_row(id).await?;
        for meeting in self
            .store
            .meetings(Some(&row.id), Some(&["created", "active"]))
            .await?
        {
            self.end_meeting_as(&meeting.id, crate::domain::meetings::EndReason::AdminEnded)
                .await?;
        }
        for rec in self.store.recordings(Some(&row.id)).await? {
            self.storage
                .delete(&rec.object_key)
                .await
                .map_err(|e| Error::Storage(e.to_string()))?;
        }
        let mut user_ids = vec![row.id.clone()];
        user_ids.extend(
            self.store
                .users(Role::Student.as_str(), Some(&row.id))
                .await?
                .into_iter()
                .map(|u| u.id),
        );
        self.store.delete_host_cascade(&row.id).await?;
        self.identities.clear();
        self.emit(MeetingEvent::Revoked { user_ids });
        Ok(())
    }
}

/// The caller must have this role.
pub fn require(who: &Identity, role: Role) -> Result<()> {
    if who.role == role {
        Ok(())
    } else {
        Err(Error::Forbidden("You are not allowed to do this"))
    }
}

/// 20 characters from an alphabet without look-alikes.
fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}
