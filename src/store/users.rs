//! Users: hosts, students and admins.

use chrono::{DateTime, Utc};
use surrealdb::types::SurrealValue;

use super::{Store, unique_violation};
use crate::error::Result;

const COLS: &str = "record::id(id) AS id, username, username_key, password_hash, role, is_active, host_id, \
                    token_version, created_at, updated_at";

#[derive(Debug, Clone, SurrealValue)]
#[surreal(crate = "surrealdb::types")]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub username_key: String,
    pub password_hash: String,
    pub role: String,
    pub is_active: bool,
    pub host_id: Option<String>,
    pub token_version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewUser {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: &'static str,
    pub host_id: Option<String>,
    pub now: DateTime<Utc>,
}

#[derive(Default)]
pub struct UserUpdate {
    pub username: Option<String>,
    pub password_hash: Option<String>,
    pub is_active: Option<bool>,
    /// Revoke the tokens issued so far.
    pub revoke_tokens: bool,
}

impl Store {
    pub async fn create_user(&self, u: NewUser) -> Result<UserRow> {
        self.room()?;
        let sql = format!(
            "CREATE ONLY type::record('user', $id) SET username = $username, username_key = $key, \
             password_hash = $hash, role = $role, is_active = true, host_id = $host_id, token_version = 0, \
             created_at = $now, updated_at = $now; SELECT {COLS} FROM ONLY type::record('user', $id);"
        );
        let key = crate::domain::users::username_key(&u.username);
        let mut res = self
            .db
            .query(sql)
            .bind(("id", u.id))
            .bind(("username", u.username))
            .bind(("key", key))
            .bind(("hash", u.password_hash))
            .bind(("role", u.role))
            .bind(("host_id", u.host_id))
            .bind(("now", u.now))
            .await?;
        if let Some((_, e)) = res.take_errors().into_iter().next() {
            return Err(unique_violation(
                e,
                "username_taken",
                "That username is already taken",
            ));
        }
        let row: Option<UserRow> = res.take(1)?;
        row.ok_or_else(|| crate::error::Error::Database("created user not found".into()))
    }

    pub async fn user(&self, id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {COLS} FROM ONLY type::record('user', $id)");
        Ok(self
            .db
            .query(sql)
            .bind(("id", id.to_owned()))
            .await?
            .take(0)?)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {COLS} FROM user WHERE username_key = $key LIMIT 1");
        let key = crate::domain::users::username_key(username);
        let rows: Vec<UserRow> = self.db.query(sql).bind(("key", key)).await?.take(0)?;
        Ok(rows.into_iter().next())
    }

    /// Users of a role, optionally only one host's; oldest first.
    pub async fn users(&self, role: &str, host_id: Option<&str>) -> Result<Vec<UserRow>> {
        let filter = if host_id.is_some() {
            "AND host_id = $host"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLS} FROM user WHERE role = $role {filter} ORDER BY created_at, username"
        );
        let rows = self
            .db
            .query(sql)
            .bind(("role", role.to_owned()))
            .bind(("host", host_id.map(str::to_owned)))
            .await?
            .take(0)?;
        Ok(rows)
    }

    pub async fn count_users(&self, role: &str) -> Result<i64> {
        super::count(
            self.db
                .query("SELECT count() AS n FROM user WHERE role = $role GROUP ALL")
                .bind(("role", role.to_owned())),
        )
        .await
    }

    pub async fn update_user(
        &self,
        id: &str,
        update: UserUpdate,
        now: DateTime<Utc>,
    ) -> Result<Option<UserRow>> {
        self.room()?;
        let mut sets = vec!["updated_at = $now"];
        if update.username.is_some() {
            sets.push("username = $username, username_key = $key");
        }
        if update.password_hash.is_some() {
            sets.push("password_hash = $hash");
        }
        if update.is_active.is_some() {
            sets.push("is_active = $active");
        }
        if update.revoke_tokens {
            sets.push("token_version += 1");
        }
        let sql = format!(
            "UPDATE type::record('user', $id) SET {} RETURN NONE; \
             SELECT {COLS} FROM ONLY type::record('user', $id);",
            sets.join(", ")
        );
        let key = update
            .username
            .as_deref()
            .map(crate::domain::users::username_key);
        let mut res = self
            .db
            .query(sql)
            .bind(("id", id.to_owned()))
            .bind(("now", now))
            .bind(("username", update.username))
            .bind(("key", key))
            .bind(("hash", update.password_hash))
            .bind(("active", update.is_active))
            .await?;
        if let Some((_, e)) = res.take_errors().into_iter().next() {
            return Err(unique_violation(
                e,
                "username_taken",
                "That username is already taken",
            ));
        }
        Ok(res.take(1)?)
    }

    /// Replaces the password hash only if it is still `old` (a password changed meanwhile stays).
    /// Returns whether it was replaced.
    pub async fn replace_password_hash(
        &self,
        id: &str,
        old: &str,
        new: String,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.room()?;
        let changed: Vec<String> = self
            .db
            .query(
                "UPDATE type::record('user', $id) SET password_hash = $new, updated_at = $now \
                 WHERE password_hash = $old RETURN VALUE record::id(id)",
            )
            .bind(("id", id.to_owned()))
            .bind(("old", old.to_owned()))
            .bind(("new", new))
            .bind(("now", now))
            .await?
            .check()?
            .take(0)?;
        Ok(!changed.is_empty())
    }

    /// Deletes one user and their participation rows.
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        let _writing = self.writing();

        self.db
            .query("BEGIN; DELETE participant WHERE user_id = $id; DELETE type::record('user', $id); COMMIT;")
            .bind(("id", id.to_owned()))
            .await?
            .check()?;
        Ok(())
    }

    /// Deletes a host with everything that belongs to it: its students, meetings, participation
    /// rows and recording rows (the recording bytes are the caller's to delete first).
    pub async fn delete_host_cascade(&self, host_id: &str) -> Result<()> {
        let _writing = self.writing();

        let sql = "BEGIN;
            LET $meetings = SELECT VALUE record::id(id) FROM meeting WHERE host_id = $id;
            DELETE participant WHERE meeting_id IN $meetings;
            DELETE recording WHERE host_id = $id;
            DELETE meeting WHERE host_id = $id;
            LET $students = SELECT VALUE record::id(id) FROM user WHERE role = 'student' AND host_id = $id;
            DELETE participant WHERE user_id IN $students;
            DELETE user WHERE role = 'student' AND host_id = $id;
            DELETE type::record('user', $id);
            COMMIT;";
        self.db
            .query(sql)
            .bind(("id", host_id.to_owned()))
            .await?
            .check()?;
        Ok(())
    }
}
