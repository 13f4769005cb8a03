//! Backups: the whole database as SurrealQL (SurrealDB's own export), and a restore that
//! replaces every row with a backup's. Recordings' audio is not in a backup: it lives in the
//! storage.

use futures_util::StreamExt;

use super::{Store, schema};
use crate::error::{Error, Result};

/// The tables meet keeps (a restore empties them before reading the backup).
const TABLES: [&str; 6] = [
    "user",
    "meeting",
    "participant",
    "recording",
    "import",
    "meta",
];

impl Store {
    /// The database as SurrealQL text.
    pub async fn export(&self) -> Result<String> {
        let mut stream = self.db.export(()).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk?);
        }
        String::from_utf8(out).map_err(|e| Error::Database(format!("export: {e}")))
    }

    /// Whether the database holds nothing but administrators (a fresh data dir: its first
    /// start made the admin account).
    pub async fn holds_only_admins(&self) -> Result<bool> {
        let mut res = self
            .db
            .query(
                "RETURN count(SELECT 1 FROM user WHERE role != 'admin') \
                 + count(SELECT 1 FROM meeting) + count(SELECT 1 FROM recording)",
            )
            .await?;
        let n: Option<i64> = res.take(0)?;
        Ok(n.unwrap_or(0) == 0)
    }

    /// Replaces every row with the backup's (`text`, written to `scratch` for SurrealDB's
    /// import, which reads a file), then brings the schema up to this version.
    pub async fn restore(&self, text: &str, scratch: &std::path::Path) -> Result<()> {
        self.room()?;
        let _writing = self.writing();
        tokio::fs::write(scratch, text)
            .await
            .map_err(|e| Error::Internal(format!("restore: {e}")))?;
        let mut wipe = String::new();
        for t in TABLES {
            wipe.push_str(&format!("REMOVE TABLE IF EXISTS {t};"));
        }
        let result = async {
            self.db.query(wipe).await?.check()?;
            self.db.import(scratch).await?;
            schema::apply(&self.db).await
        }
        .await;
        let _ = tokio::fs::remove_file(scratch).await;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::users::NewUser;
    use super::*;

    #[tokio::test]
    async fn a_backup_restores_into_another_database() {
        let a = Store::memory().await.expect("store");
        for (id, name, role) in [("u1", "root", "admin"), ("u2", "teacher", "host")] {
            a.create_user(NewUser {
                id: id.into(),
                username: name.into(),
                password_hash: "h".into(),
                role,
                host_id: None,
                now: chrono::Utc::now(),
            })
            .await
            .expect("user");
        }
        assert!(!a.holds_only_admins().await.expect("count"));
        let text = a.export().await.expect("export");
        let b = Store::memory().await.expect("store");
        assert!(b.holds_only_admins().await.expect("count"));
        let dir = tempfile::tempdir().expect("tmp");
        b.restore(&text, &dir.path().join("restore.surql"))
            .await
            .expect("restore");
        let names: Vec<String> = b
            .users("host", None)
            .await
            .expect("users")
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["teacher"]);
        assert_eq!(b.count_users("admin").await.expect("count"), 1);
        assert_eq!(
            b.schema_version().await.expect("v"),
            a.schema_version().await.expect("v")
        );
        // Restoring again replaces, never adds.
        b.restore(&text, &dir.path().join("restore.surql"))
            .await
            .expect("restore");
        assert_eq!(b.count_users("host").await.expect("count"), 1);
    }
}
