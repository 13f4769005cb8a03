//! The original's documents, typed: which collection a document comes from (told by its fields)
//! and the fields meet reads. Pure; the rules that need the database are in `super`.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::domain::users::Role;

/// The original's collections, as the import names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Users,
    Meetings,
    Recordings,
}

impl Collection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Meetings => "meetings",
            Self::Recordings => "recordings",
        }
    }
}

/// A `users` document.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password: String,
    pub role: Role,
    pub host_id: Option<String>,
    pub active: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A `meetings` document.
#[derive(Debug, Clone, PartialEq)]
pub struct Meeting {
    pub id: String,
    pub host_id: String,
    pub topic: String,
    /// `created`, `active`, `paused`, `ended` or `cancelled`.
    pub status: String,
    pub participants: Vec<String>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub max_participants: Option<u32>,
    pub max_duration_seconds: Option<u64>,
    pub end_reason: Option<String>,
}

/// A `recordings` document.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub id: String,
    pub meeting_id: String,
    pub student_id: Option<String>,
    /// The S3 key (or a URL naming it); empty while the original was still recording.
    pub file_url: String,
    /// `recording`, `completed` or `failed`.
    pub status: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    /// Seconds.
    pub duration: f64,
    pub size: i64,
    pub content_type: Option<String>,
    pub is_private: bool,
    pub accessible_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    User(User),
    Meeting(Meeting),
    Recording(Recording),
}

/// The collection a document belongs to, by its fields: a user has `username`, `password` and
/// `role`; a recording `meetingId` and `fileUrl` or `status`; a meeting `topic` and `hostId`.
pub fn collection_of(doc: &Map<String, Value>) -> Option<Collection> {
    let has = |k: &str| doc.contains_key(k);
    if has("username") && has("password") && has("role") {
        Some(Collection::Users)
    } else if has("meetingId") && (has("fileUrl") || has("status")) {
        Some(Collection::Recordings)
    } else if has("topic") && has("hostId") {
        Some(Collection::Meetings)
    } else {
        None
    }
}

/// Reads a plain document (see `ejson::plain`). The error says what is wrong with it.
pub fn parse(doc: &Map<String, Value>) -> Result<Source, String> {
    let collection = collection_of(doc).ok_or_else(|| {
        "not a user (username, password, role), meeting (topic, hostId) or recording \
         (meetingId, fileUrl/status)"
            .to_owned()
    })?;
    let d = Fields(doc);
    let id = d.id("_id")?.ok_or("no _id")?;
    Ok(match collection {
        Collection::Users => {
            let role = d.string("role")?.unwrap_or_default();
            Source::User(User {
                username: d.string("username")?.unwrap_or_default().trim().to_owned(),
                password: d.string("password")?.unwrap_or_default(),
                role: Role::parse(&role)
                    .ok_or_else(|| format!("role `{role}` is not admin, host or student"))?,
                host_id: d.id("hostId")?,
                active: d.bool("isActive")?.unwrap_or(true),
                created_at: d.time("createdAt")?.or_else(|| oid_time(&id)),
                updated_at: d.time("updatedAt")?,
                id,
            })
        }
        Collection::Meetings => Source::Meeting(Meeting {
            host_id: d.id("hostId")?.ok_or("no hostId")?,
            topic: d.string("topic")?.unwrap_or_default(),
            status: d.string("status")?.unwrap_or_else(|| "created".into()),
            participants: d.ids("participants")?,
            start_time: d.time("startTime")?,
            end_time: d.time("endTime")?,
            created_at: d.time("createdAt")?.or_else(|| oid_time(&id)),
            updated_at: d.time("updatedAt")?,
            max_participants: d.whole("maxParticipants")?,
            max_duration_seconds: d.whole("maxDuration")?,
            end_reason: d.string("endReason")?,
            id,
        }),
        Collection::Recordings => {
            let metadata = match doc.get("metadata") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            let meta = Fields(&metadata);
            Source::Recording(Recording {
                meeting_id: d.id("meetingId")?.ok_or("no meetingId")?,
                student_id: d.id("studentId")?,
                file_url: d.string("fileUrl")?.unwrap_or_default(),
                status: d.string("status")?.unwrap_or_else(|| "completed".into()),
                start_time: d.time("startTime")?,
                end_time: d.time("endTime")?,
                created_at: d.time("createdAt")?.or_else(|| oid_time(&id)),
                duration: d
                    .number("duration")?
                    .filter(|s| *s > 0.0)
                    .or(meta.number("duration")?)
                    .unwrap_or(0.0),
                #[allow(clippy::cast_possible_truncation)]
                size: meta.number("size")?.map_or(0, |s| s.max(0.0) as i64),
                content_type: meta.string("contentType")?,
                is_private: d.bool("isPrivateConversation")?.unwrap_or(false),
                accessible_to: d.ids("accessibleTo")?,
                id,
            })
        }
    })
}

/// The recording's object key in meet's storage: the S3 key `fileUrl` names (the key itself, as
/// the original stored it, or a URL whose path holds it), relative to meet's storage prefix.
pub fn object_key(file_url: &str, prefix: &str) -> Result<String, String> {
    let url = file_url.trim();
    if url.is_empty() {
        return Err("no file: fileUrl is empty".into());
    }
    let key = match url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        // `https://bucket.s3.region.amazonaws.com/recordings/…` or `https://host/bucket/recordings/…`
        Some(rest) => {
            let path = rest.split_once('/').map_or("", |(_, p)| p);
            let path = path.split(['?', '#']).next().unwrap_or_default();
            match path.find("recordings/") {
                Some(0) => path,
                Some(i) if path.as_bytes()[i - 1] == b'/' => &path[i..],
                _ => path,
            }
        }
        None => url.trim_start_matches('/'),
    };
    let Some(relative) = key.strip_prefix(prefix) else {
        return Err(format!(
            "its object `{key}` is outside meet's storage prefix `{prefix}` (storage.s3.prefix)"
        ));
    };
    let valid = !relative.is_empty()
        && relative.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if valid {
        Ok(relative.to_owned())
    } else {
        Err(format!(
            "its object key `{key}` has characters meet's storage does not accept"
        ))
    }
}

/// When an ObjectId was made: its first four bytes are the seconds since 1970.
pub fn oid_time(id: &str) -> Option<DateTime<Utc>> {
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let secs = u32::from_str_radix(&id[..8], 16).ok()?;
    DateTime::from_timestamp(i64::from(secs), 0)
}

/// Typed reads of a document's fields; a field of the wrong type is an error naming it, a
/// missing or `null` one is `None`.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key} is not a string")),
        }
    }

    /// An ObjectId (made plain: a string), or a number used as an id.
    fn id(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{key} is not an id")),
        }
    }

    fn ids(&self, key: &str) -> Result<Vec<String>, String> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    _ => Err(format!("{key} holds something that is not an id")),
                })
                .collect(),
            Some(_) => Err(format!("{key} is not a list")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(format!("{key} is not true or false")),
        }
    }

    fn number(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(format!("{key} is not a number")),
        }
    }

    fn whole<T: TryFrom<u64>>(&self, key: &str) -> Result<Option<T>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("{key} is not a positive whole number")),
            Some(_) => Err(format!("{key} is not a number")),
        }
    }

    /// A date made plain (an RFC 3339 string), or milliseconds since 1970.
    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => super::ejson::parse_time(s)
                .map(Some)
                .ok_or_else(|| format!("{key} is not a date: {s}")),
            Some(Value::Number(n)) => Ok(n.as_i64().and_then(DateTime::from_timestamp_millis)),
            Some(_) => Err(format!("{key} is not a date")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::ejson::plain;
    use super::*;

    fn doc(v: Value) -> Map<String, Value> {
        match plain(v) {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn collections_by_their_fields() {
        let user = doc(json!({"username": "a", "password": "x", "role": "host"}));
        let meeting = doc(json!({"topic": "t", "hostId": "h", "status": "ended"}));
        let recording = doc(json!({"meetingId": "m", "hostId": "h", "status": "completed"}));
        assert_eq!(collection_of(&user), Some(Collection::Users));
        assert_eq!(collection_of(&meeting), Some(Collection::Meetings));
        assert_eq!(collection_of(&recording), Some(Collection::Recordings));
        assert_eq!(collection_of(&doc(json!({"name": "x"}))), None);
        assert!(parse(&doc(json!({"name": "x"}))).is_err());
    }

    #[test]
    fn a_student_in_canonical_form() {
        let d = doc(json!({
            "_id": {"$oid": "67a1f0c2a1b2c3d4e5f60718"},
            "username": " alice ",
            "password": "$2a$10$abcdefghijklmnopqrstuu",
            "role": "student",
            "hostId": {"$oid": "67a1f0c2a1b2c3d4e5f60700"},
            "createdBy": {"$oid": "67a1f0c2a1b2c3d4e5f60700"},
            "isActive": false,
            "updatedAt": {"$date": {"$numberLong": "1738404000000"}},
            "__v": {"$numberInt": "0"}
        }));
        let Ok(Source::User(u)) = parse(&d) else {
            panic!("{:?}", parse(&d))
        };
        assert_eq!(u.username, "alice");
        assert_eq!(u.role, Role::Student);
        assert_eq!(u.host_id.as_deref(), Some("67a1f0c2a1b2c3d4e5f60700"));
        assert!(!u.active);
        // No createdAt: the ObjectId's own time.
        assert_eq!(
            u.created_at.map(|t| t.timestamp()),
            Some(i64::from(0x67a1_f0c2_u32))
        );
        assert_eq!(
            u.updated_at.map(|t| t.timestamp_millis()),
            Some(1_738_404_000_000)
        );
    }

    #[test]
    fn meetings_and_recordings_in_relaxed_form() {
        let m = doc(json!({
            "_id": {"$oid": "67a1f0c2a1b2c3d4e5f60801"},
            "hostId": {"$oid": "67a1f0c2a1b2c3d4e5f60700"},
            "topic": "Algebra",
            "participants": [{"$oid": "67a1f0c2a1b2c3d4e5f60718"}],
            "status": "ended",
            "privateMode": {"isActive": false},
            "maxParticipants": 50,
            "maxDuration": 18000,
            "startTime": {"$date": "2025-02-01T10:00:00.000Z"},
            "endTime": {"$date": "2025-02-01T11:00:00.000Z"},
            "endReason": "host_ended"
        }));
        let Ok(Source::Meeting(m)) = parse(&m) else {
            panic!()
        };
        assert_eq!(m.participants, vec!["67a1f0c2a1b2c3d4e5f60718"]);
        assert_eq!(
            (m.max_participants, m.max_duration_seconds),
            (Some(50), Some(18_000))
        );
        assert_eq!(m.end_reason.as_deref(), Some("host_ended"));
        let r = doc(json!({
            "_id": {"$oid": "67a1f0c2a1b2c3d4e5f60901"},
            "meetingId": {"$oid": "67a1f0c2a1b2c3d4e5f60801"},
            "hostId": {"$oid": "67a1f0c2a1b2c3d4e5f60700"},
            "fileUrl": "recordings/67a1f0c2a1b2c3d4e5f60801/u-1738404000000.webm",
            "status": "completed",
            "startTime": {"$date": "2025-02-01T10:00:00.000Z"},
            "duration": 0,
            "metadata": {"size": {"$numberLong": "12345"}, "duration": {"$numberDouble": "61.5"}, "contentType": "audio/webm"},
            "isPrivateConversation": false
        }));
        let Ok(Source::Recording(r)) = parse(&r) else {
            panic!()
        };
        assert_eq!((r.duration, r.size), (61.5, 12_345));
        assert_eq!(r.content_type.as_deref(), Some("audio/webm"));
    }

    #[test]
    fn wrong_fields_are_named() {
        let bad_role = doc(json!({"_id": "1", "username": "a", "password": "x", "role": "owner"}));
        assert_eq!(
            parse(&bad_role),
            Err("role `owner` is not admin, host or student".into())
        );
        let bad_date = doc(json!({"_id": "1", "topic": "t", "hostId": "h", "startTime": "soon"}));
        assert_eq!(
            parse(&bad_date),
            Err("startTime is not a date: soon".into())
        );
        let no_id = doc(json!({"topic": "t", "hostId": "h"}));
        assert_eq!(parse(&no_id), Err("no _id".into()));
    }

    #[test]
    fn object_keys_from_file_urls() {
        let p = "recordings/";
        let m = "67a1f0c2a1b2c3d4e5f60801";
        let want = Ok(format!("{m}/u1-1738404000000.webm"));
        assert_eq!(
            object_key(&format!("recordings/{m}/u1-1738404000000.webm"), p),
            want
        );
        assert_eq!(
            object_key(
                &format!(
                    "https://b.s3.eu-west-1.amazonaws.com/recordings/{m}/u1-1738404000000.webm?x=1"
                ),
                p
            ),
            want
        );
        assert_eq!(
            object_key(
                &format!("http://minio:9000/b/recordings/{m}/u1-1738404000000.webm"),
                p
            ),
            want
        );
        assert_eq!(
            object_key(&format!("recordings/{m}/u1-1738404000000.webm"), ""),
            Ok(format!("recordings/{m}/u1-1738404000000.webm"))
        );
        assert!(object_key("", p).is_err());
        assert!(object_key(&format!("recordings/{m}/a b.webm"), p).is_err());
        assert!(
            object_key("other/x.webm", p)
                .expect_err("outside")
                .contains("outside")
        );
        assert!(object_key("recordings/../x", p).is_err());
    }
}
