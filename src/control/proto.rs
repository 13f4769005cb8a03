//! The control protocol: one JSON request per line from the client; zero or more progress lines,
//! then one final reply line, from the server.

use serde::{Deserialize, Serialize};

use crate::service::ImportFile;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Ping,
    HostAdd {
        username: String,
        password: String,
    },
    HostList,
    HostSetActive {
        host: String,
        active: bool,
    },
    HostPasswd {
        host: String,
        password: String,
    },
    HostRemove {
        host: String,
    },
    StudentList {
        host: Option<String>,
    },
    MeetingList {
        status: Option<String>,
    },
    MeetingEnd {
        id: String,
    },
    /// `meet top`'s `m`: mute or unmute a participant, server-side.
    ParticipantMute {
        meeting: String,
        user: String,
        muted: bool,
    },
    JobRun {
        name: String,
        #[serde(default)]
        dry_run: bool,
    },
    JobList,
    RecordingList {
        meeting: Option<String>,
    },
    RecordingDelete {
        id: String,
    },
    Stats,
    /// `meet top --once`: one [`crate::realtime::snapshot::Snapshot`].
    Top,
    /// `meet top`: a snapshot now and then every second, each as `Reply::Ok`, until the client
    /// goes away.
    Watch,
    /// `meet admin backup`: the database as SurrealQL, in the reply (the client writes it).
    Backup,
    /// `meet admin restore`: a backup's text, read by the client.
    Restore {
        content: String,
        #[serde(default)]
        replace: bool,
    },
    /// `meet admin import`: the files' contents travel in the request, read by the client with
    /// the operator's permissions (a packaged server, running as `meet`, could not read them).
    Import {
        files: Vec<ImportFile>,
        #[serde(default)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// A job's item count.
    Total(u64),
    /// One more item done.
    Advance,
    Ok(serde_json::Value),
    Error {
        code: String,
        message: String,
    },
}
