//! The versioned schema, applied at start-up. Each migration runs once, in order; the applied
//! version is kept in `meta:schema`.

use surrealdb::Surreal;
use surrealdb::engine::any::Any;

use crate::error::Result;

/// Migrations by version. Never edit a released one: append a new one.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r"
    DEFINE TABLE IF NOT EXISTS user SCHEMALESS;
    DEFINE INDEX IF NOT EXISTS user_username ON user FIELDS username_key UNIQUE;
    DEFINE INDEX IF NOT EXISTS user_role_host ON user FIELDS role, host_id;

    DEFINE TABLE IF NOT EXISTS meeting SCHEMALESS;
    DEFINE INDEX IF NOT EXISTS meeting_host_created ON meeting FIELDS host_id, created_at;
    DEFINE INDEX IF NOT EXISTS meeting_status ON meeting FIELDS status;

    DEFINE TABLE IF NOT EXISTS participant SCHEMALESS;
    DEFINE INDEX IF NOT EXISTS participant_meeting ON participant FIELDS meeting_id;
    DEFINE INDEX IF NOT EXISTS participant_user ON participant FIELDS user_id;

    DEFINE TABLE IF NOT EXISTS recording SCHEMALESS;
    DEFINE INDEX IF NOT EXISTS recording_host ON recording FIELDS host_id;
    DEFINE INDEX IF NOT EXISTS recording_meeting ON recording FIELDS meeting_id;
    DEFINE INDEX IF NOT EXISTS recording_expires ON recording FIELDS expires_at;
    ",
    ),
    (
        2,
        // `meet admin import`: one mark per imported document, keyed `collection/original id`.
        r"
    DEFINE TABLE IF NOT EXISTS import SCHEMALESS;
    ",
    ),
];

pub async fn version(db: &Surreal<Any>) -> Result<i64> {
    let mut res = db
        .query("DEFINE TABLE IF NOT EXISTS meta SCHEMALESS; RETURN (SELECT VALUE version FROM meta:schema)[0] ?? 0;")
        .await?
        .check()?;
    let v: Option<i64> = res.take(1)?;
    Ok(v.unwrap_or(0))
}

pub async fn apply(db: &Surreal<Any>) -> Result<()> {
    let current = version(db).await?;
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        let text = format!(
            "BEGIN TRANSACTION;\n{sql}\nUPSERT meta:schema SET version = $v;\nCOMMIT TRANSACTION;"
        );
        db.query(text).bind(("v", *v)).await?.check()?;
        tracing::info!(version = v, "database schema migrated");
    }
    Ok(())
}
