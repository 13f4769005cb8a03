//! `meet admin import`: a `mongoexport` dump of the original backend's `users`, `meetings` and
//! `recordings` collections into meet's tables.
//!
//! - Collections are told apart by their fields ([`source::collection_of`]), so files may come in
//!   any order and mix; users are imported first (admins and hosts, then students), then meetings,
//!   then recordings, so that references resolve whatever the order of the files.
//! - Ids: an ObjectId (24 hex digits) is a valid meet id and is kept. An id meet cannot take (or
//!   one already used by another row) gets a new id; the mapping is in the report and, for every
//!   document, in the `import` table (`collection/original id` → meet id), through which
//!   `hostId`, `meetingId` and `studentId` are resolved, in this run and in later ones.
//! - Idempotent: a document whose mark is in `import` is "already there" and is not written
//!   again; each row is written in one transaction with its mark.
//! - Users keep their bcrypt hash (accepted once, at login, and replaced by argon2id there).
//! - Every meeting becomes history: `ended`/`cancelled` ones with their times; `created`,
//!   `active` and `paused` ones (no one is in them now) end at the import time, `admin_ended`.
//! - Completed recordings become rows whose object key is the original's S3 key relative to
//!   meet's storage prefix: the object stays where it is and playback presigns that key.

mod ejson;
mod report;
mod source;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use self::report::What;
pub use self::report::{Counts, ImportFile, ImportReport, MappedId, Skipped};
use self::source::{Collection, Source};
use super::{Services, check_id, new_id};
use crate::domain::meetings::EndReason;
use crate::domain::users::{Role, username_key, validate_username};
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::store::{ImportedMeeting, ImportedParticipant, ImportedRecording, ImportedUser, Origin};

enum Outcome {
    Imported(What),
    Already(What),
    Skipped(String),
}

/// A user known to this run: imported now, or before.
#[derive(Clone)]
struct KnownUser {
    id: String,
    username: String,
    role: Role,
}

#[derive(Clone)]
struct KnownMeeting {
    id: String,
    topic: String,
    host_id: String,
    host_name: String,
    /// Meet ids of the students who were in it.
    participants: Vec<String>,
}

struct Item {
    /// (file, line), for the report's order.
    pos: (usize, usize),
    at: String,
    source: Source,
}

impl Services {
    /// Imports the files (or, with `dry_run`, only says what it would import). Documents that
    /// cannot be imported are reported and skipped; a database failure stops the import, which
    /// can then be run again.
    pub async fn import(
        &self,
        files: Vec<ImportFile>,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<ImportReport> {
        let mut run = Run::new(self, dry_run);
        run.report.files = files.len();
        let mut items = Vec::new();
        let mut unreadable = Vec::new();
        for (n, file) in files.iter().enumerate() {
            let parsed = ejson::read(&file.content);
            for bad in parsed.malformed {
                let at = format!("{}:{}", file.name, bad.line);
                run.skip((n, bad.line), at, None, bad.reason);
            }
            for doc in parsed.docs {
                run.report.documents += 1;
                let (pos, at) = ((n, doc.line), format!("{}:{}", file.name, doc.line));
                match source::parse(&doc.doc) {
                    Ok(source) => items.push(Item { pos, at, source }),
                    Err(reason) => unreadable.push((pos, at, reason)),
                }
            }
        }
        progress.total(run.report.documents as u64);
        for (pos, at, reason) in unreadable {
            run.skip(pos, at, None, reason);
            progress.advance();
        }
        items.sort_by_key(|item| match &item.source {
            Source::User(u) if u.role != Role::Student => 0,
            Source::User(_) => 1,
            Source::Meeting(_) => 2,
            Source::Recording(_) => 3,
        });
        for item in items {
            let outcome = match &item.source {
                Source::User(u) => run.user(u).await?,
                Source::Meeting(m) => run.meeting(m).await?,
                Source::Recording(r) => run.recording(r).await?,
            };
            match outcome {
                Outcome::Imported(what) => run.report.imported.add(what),
                Outcome::Already(what) => run.report.already_there.add(what),
                Outcome::Skipped(reason) => {
                    let doc = describe(&item.source);
                    run.skip(item.pos, item.at, Some(doc), reason);
                }
            }
            progress.advance();
        }
        run.skipped.sort_by_key(|(pos, _)| *pos);
        run.report.skipped = run.skipped.into_iter().map(|(_, s)| s).collect();
        Ok(run.report)
    }
}

/// A validation error as a sentence.
fn reason(e: Error) -> String {
    match e {
        Error::Validation(fields) => fields
            .iter()
            .map(|f| format!("{} {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn describe(source: &Source) -> String {
    match source {
        Source::User(u) => format!("{} {} ({})", u.role, u.id, u.username),
        Source::Meeting(m) => format!("meeting {} ({})", m.id, m.topic),
        Source::Recording(r) => format!("recording {}", r.id),
    }
}

/// The state of one import.
struct Run<'a> {
    services: &'a Services,
    dry_run: bool,
    now: DateTime<Utc>,
    /// The storage prefix the original's S3 keys are taken relative to.
    prefix: String,
    report: ImportReport,
    /// In the order of the files.
    skipped: Vec<((usize, usize), Skipped)>,
    /// By original id.
    users: HashMap<String, KnownUser>,
    meetings: HashMap<String, KnownMeeting>,
    /// Username keys and meet ids taken in this run (a dry run writes nothing to find them by).
    names: HashSet<String>,
    ids: HashSet<String>,
}

impl<'a> Run<'a> {
    fn new(services: &'a Services, dry_run: bool) -> Self {
        let prefix = match &services.config.storage {
            crate::config::StorageConfig::S3(c) => c.prefix.clone(),
            // The local storage stands for the bucket's `recordings/` folder.
            crate::config::StorageConfig::Local { .. } => "recordings/".to_owned(),
        };
        Self {
            services,
            dry_run,
            now: services.now(),
            prefix,
            report: ImportReport {
                dry_run,
                ..ImportReport::default()
            },
            skipped: Vec::new(),
            users: HashMap::new(),
            meetings: HashMap::new(),
            names: HashSet::new(),
            ids: HashSet::new(),
        }
    }

    fn skip(&mut self, pos: (usize, usize), at: String, document: Option<String>, reason: String) {
        let skipped = Skipped {
            at,
            document,
            reason,
        };
        self.skipped.push((pos, skipped));
    }

    /// The original id if meet can take it, else a new one (reported).
    fn meet_id(&mut self, collection: Collection, original: &str, taken: bool) -> String {
        let id = if check_id(original, "").is_ok() && !taken && !self.ids.contains(original) {
            original.to_owned()
        } else {
            let id = new_id();
            self.report.mapped_ids.push(MappedId {
                collection: collection.as_str().to_owned(),
                original: original.to_owned(),
                meet: id.clone(),
            });
            id
        };
        self.ids.insert(id.clone());
        id
    }

    fn origin(collection: Collection, original: &str) -> Origin {
        Origin {
            collection: collection.as_str(),
            source_id: original.to_owned(),
        }
    }

    async fn imported_as(&self, collection: Collection, original: &str) -> Result<Option<String>> {
        self.services
            .store
            .imported_as(collection.as_str(), original)
            .await
    }

    /// A user of the export by its original id, imported in this run or an earlier one.
    async fn known_user(&mut self, original: &str) -> Result<Option<KnownUser>> {
        if let Some(u) = self.users.get(original) {
            return Ok(Some(u.clone()));
        }
        let Some(id) = self.imported_as(Collection::Users, original).await? else {
            return Ok(None);
        };
        let Some(row) = self.services.store.user(&id).await? else {
            return Ok(None);
        };
        let known = KnownUser {
            id: row.id,
            username: row.username,
            role: Role::parse(&row.role).unwrap_or(Role::Student),
        };
        self.users.insert(original.to_owned(), known.clone());
        Ok(Some(known))
    }

    async fn known_meeting(&mut self, original: &str) -> Result<Option<KnownMeeting>> {
        if let Some(m) = self.meetings.get(original) {
            return Ok(Some(m.clone()));
        }
        let Some(id) = self.imported_as(Collection::Meetings, original).await? else {
            return Ok(None);
        };
        let Some(row) = self.services.store.meeting(&id).await? else {
            return Ok(None);
        };
        let participants = self.services.store.participants(&id).await?;
        let known = KnownMeeting {
            id: row.id,
            topic: row.topic,
            host_id: row.host_id,
            host_name: row.host_name,
            participants: participants.into_iter().map(|p| p.user_id).collect(),
        };
        self.meetings.insert(original.to_owned(), known.clone());
        Ok(Some(known))
    }

    async fn user(&mut self, u: &source::User) -> Result<Outcome> {
        let what = What::User(u.role);
        if self.imported_as(Collection::Users, &u.id).await?.is_some() {
            return Ok(match self.known_user(&u.id).await? {
                Some(_) => Outcome::Already(what),
                None => Outcome::Skipped("imported before, and deleted in meet since".into()),
            });
        }
        if let Err(e) = validate_username(&u.username) {
            return Ok(Outcome::Skipped(format!(
                "username `{}` is not allowed in meet: it {}",
                u.username, e.message
            )));
        }
        if !(super::auth::is_bcrypt(&u.password) && u.password.len() == 60) {
            return Ok(Outcome::Skipped(
                "the password is not a bcrypt hash ($2a$/$2b$/$2y$)".into(),
            ));
        }
        let host_id = if u.role == Role::Student {
            let Some(host) = &u.host_id else {
                return Ok(Outcome::Skipped("a student without a hostId".into()));
            };
            match self.known_user(host).await? {
                Some(h) if h.role == Role::Host => Some(h.id),
                Some(_) => return Ok(Outcome::Skipped(format!("its hostId {host} is not a host"))),
                None => {
                    return Ok(Outcome::Skipped(format!(
                        "its host {host} is not imported (not in the export, or skipped)"
                    )));
                }
            }
        } else {
            None
        };
        let key = username_key(&u.username);
        if self.names.contains(&key) {
            return Ok(Outcome::Skipped(format!(
                "username `{}` is taken by another user of this export (meet ignores case)",
                u.username
            )));
        }
        if let Some(other) = self.services.store.user_by_name(&u.username).await? {
            return Ok(Outcome::Skipped(format!(
                "username `{}` belongs to an existing meet account ({}), which is left as it is",
                u.username, other.id
            )));
        }
        let taken = self.services.store.user(&u.id).await?.is_some();
        let id = self.meet_id(Collection::Users, &u.id, taken);
        let created_at = u.created_at.unwrap_or(self.now);
        if !self.dry_run {
            let row = ImportedUser {
                origin: Self::origin(Collection::Users, &u.id),
                id: id.clone(),
                username: u.username.clone(),
                password_hash: u.password.clone(),
                role: u.role.as_str(),
                host_id,
                is_active: u.active,
                created_at,
                updated_at: u.updated_at.unwrap_or(created_at),
            };
            match self.services.store.import_user(row, self.now).await {
                Ok(()) => {}
                Err(Error::Conflict { message, .. }) => return Ok(Outcome::Skipped(message)),
                Err(e) => return Err(e),
            }
        }
        self.names.insert(key);
        self.users.insert(
            u.id.clone(),
            KnownUser {
                id,
                username: u.username.clone(),
                role: u.role,
            },
        );
        Ok(Outcome::Imported(what))
    }

    async fn meeting(&mut self, m: &source::Meeting) -> Result<Outcome> {
        if self
            .imported_as(Collection::Meetings, &m.id)
            .await?
            .is_some()
        {
            return Ok(match self.known_meeting(&m.id).await? {
                Some(_) => Outcome::Already(What::Meeting),
                None => Outcome::Skipped("imported before, and deleted in meet since".into()),
            });
        }
        let host = match self.known_user(&m.host_id).await? {
            Some(h) if h.role == Role::Host => h,
            Some(_) => {
                return Ok(Outcome::Skipped(format!(
                    "its hostId {} is not a host",
                    m.host_id
                )));
            }
            None => {
                return Ok(Outcome::Skipped(format!(
                    "its host {} is not imported (not in the export, or skipped)",
                    m.host_id
                )));
            }
        };
        let topic = match crate::domain::meetings::validate_topic(&m.topic) {
            Ok(t) => t,
            Err(e) => return Ok(Outcome::Skipped(reason(e))),
        };
        let (start_time, end_time, end_reason) = match m.status.as_str() {
            "ended" | "cancelled" => (
                m.start_time,
                m.end_time
                    .or(m.updated_at)
                    .or(m.start_time)
                    .unwrap_or(self.now),
                m.end_reason
                    .as_deref()
                    .and_then(EndReason::parse)
                    .map(|r| r.as_str().to_owned()),
            ),
            // Nobody is in it now: it ends at the import, as an admin would end it.
            "created" | "active" | "paused" => (
                m.start_time,
                self.now,
                Some(EndReason::AdminEnded.as_str().to_owned()),
            ),
            other => {
                return Ok(Outcome::Skipped(format!(
                    "status `{other}` is not created, active, paused, ended or cancelled"
                )));
            }
        };
        let created_at = m.created_at.or(m.start_time).unwrap_or(self.now);
        let mut participants = Vec::new();
        let mut seen = HashSet::new();
        for original in &m.participants {
            if let Some(p) = self.known_user(original).await?
                && p.role == Role::Student
                && seen.insert(p.id.clone())
            {
                participants.push(ImportedParticipant {
                    user_id: p.id,
                    username: p.username,
                    role: Role::Student.as_str().to_owned(),
                    joined_at: start_time.unwrap_or(created_at),
                    left_at: end_time,
                });
            }
        }
        let taken = self.services.store.meeting(&m.id).await?.is_some();
        let id = self.meet_id(Collection::Meetings, &m.id, taken);
        let limits = &self.services.config.limits;
        let known = KnownMeeting {
            id: id.clone(),
            topic: topic.clone(),
            host_id: host.id.clone(),
            host_name: host.username.clone(),
            participants: participants.iter().map(|p| p.user_id.clone()).collect(),
        };
        if !self.dry_run {
            let row = ImportedMeeting {
                origin: Self::origin(Collection::Meetings, &m.id),
                id,
                topic,
                host_id: host.id,
                host_name: host.username,
                max_participants: i64::from(m.max_participants.unwrap_or(limits.max_participants)),
                max_duration_seconds: i64::try_from(
                    m.max_duration_seconds
                        .unwrap_or(limits.max_duration_seconds),
                )
                .unwrap_or(i64::MAX),
                created_at,
                start_time,
                end_time,
                end_reason,
                participants,
            };
            self.services.store.import_meeting(row, self.now).await?;
        }
        self.meetings.insert(m.id.clone(), known);
        Ok(Outcome::Imported(What::Meeting))
    }

    async fn recording(&mut self, r: &source::Recording) -> Result<Outcome> {
        if self
            .imported_as(Collection::Recordings, &r.id)
            .await?
            .is_some()
        {
            return Ok(Outcome::Already(What::Recording));
        }
        match r.status.as_str() {
            "completed" => {}
            "recording" => {
                return Ok(Outcome::Skipped(
                    "still recording when exported: there is no finished file".into(),
                ));
            }
            other => {
                return Ok(Outcome::Skipped(format!(
                    "status `{other}`: only completed recordings have audio to import"
                )));
            }
        }
        let Some(meeting) = self.known_meeting(&r.meeting_id).await? else {
            return Ok(Outcome::Skipped(format!(
                "its meeting {} is not imported (not in the export, or skipped)",
                r.meeting_id
            )));
        };
        let object_key = match source::object_key(&r.file_url, &self.prefix) {
            Ok(k) => k,
            Err(reason) => return Ok(Outcome::Skipped(reason)),
        };
        let student = match &r.student_id {
            Some(s) => self
                .known_user(s)
                .await?
                .filter(|u| u.role == Role::Student),
            None => None,
        };
        let participant_ids = if r.is_private {
            let Some(student) = &student else {
                return Ok(Outcome::Skipped(format!(
                    "a private recording whose student {} is not imported",
                    r.student_id.as_deref().unwrap_or("(none)")
                )));
            };
            vec![student.id.clone()]
        } else {
            let mut ids = meeting.participants.clone();
            for original in &r.accessible_to {
                if let Some(u) = self.known_user(original).await?
                    && u.role == Role::Student
                    && !ids.contains(&u.id)
                {
                    ids.push(u.id);
                }
            }
            ids
        };
        let start_time = r.start_time.or(r.created_at).unwrap_or(self.now);
        #[allow(clippy::cast_possible_truncation)]
        let end_time = r.end_time.unwrap_or_else(|| {
            start_time + chrono::Duration::milliseconds((r.duration * 1000.0) as i64)
        });
        #[allow(clippy::cast_precision_loss)]
        let duration = if r.duration > 0.0 {
            r.duration
        } else {
            (end_time - start_time).num_milliseconds().max(0) as f64 / 1000.0
        };
        let taken = self.services.store.recording(&r.id).await?.is_some();
        let id = self.meet_id(Collection::Recordings, &r.id, taken);
        if !self.dry_run {
            let row = ImportedRecording {
                origin: Self::origin(Collection::Recordings, &r.id),
                id,
                meeting_id: meeting.id,
                meeting_topic: meeting.topic,
                host_id: meeting.host_id,
                host_name: meeting.host_name,
                is_private: r.is_private,
                student_id: student.map(|s| s.id),
                start_time,
                end_time,
                duration,
                size: r.size,
                // Kept as long as a recording made now: the original never deleted any.
                expires_at: self.now + self.services.config.retention,
                object_key,
                content_type: r
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "audio/webm".to_owned()),
                participant_ids,
            };
            self.services.store.import_recording(row, self.now).await?;
        }
        Ok(Outcome::Imported(What::Recording))
    }
}
