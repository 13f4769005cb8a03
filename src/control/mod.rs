//! The local control plane: `meet admin` and `meet jobs` reach a running server over a Unix
//! socket in the data dir (mode 0600, peers checked: root or the server's own user). When no
//! server runs they open the database themselves; either way [`exec`] runs the request against
//! the same service layer.

pub mod client;
pub mod proto;
pub mod server;

use serde_json::{Value, json};

use self::proto::Request;
use crate::domain::access::Identity;
use crate::domain::meetings::Status;
use crate::domain::users::Role;
use crate::error::{Error, Result};
use crate::jobs::Progress;
use crate::service::{Services, UserPatch};

/// The identity of the machine's operator.
fn operator() -> Identity {
    Identity {
        id: "control".into(),
        username: "meet-admin".into(),
        role: Role::Admin,
        host_id: None,
    }
}

/// Runs one control request.
pub async fn exec(services: &Services, request: Request, progress: &dyn Progress) -> Result<Value> {
    let op = operator();
    let v = |x: &dyn erased::Ser| x.to_value();
    Ok(match request {
        Request::Ping => json!({"version": env!("CARGO_PKG_VERSION")}),
        Request::HostAdd { username, password } => {
            v(&services.create_host(&op, &username, &password).await?)
        }
        Request::HostList => v(&services.hosts(&op).await?),
        Request::HostSetActive { host, active } => v(&services
            .update_host(
                &op,
                &host,
                UserPatch {
                    is_active: Some(active),
                    ..UserPatch::default()
                },
            )
            .await?),
        Request::HostPasswd { host, password } => v(&services
            .update_host(
                &op,
                &host,
                UserPatch {
                    password: Some(password),
                    ..UserPatch::default()
                },
            )
            .await?),
        Request::HostRemove { host } => {
            services.delete_host(&op, &host).await?;
            json!({"removed": host})
        }
        Request::StudentList { host } => v(&services.all_students(&op, host.as_deref()).await?),
        Request::MeetingList { status } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(Status::parse(s).ok_or_else(|| {
                    Error::invalid("status", "must be created, active, ended or archived")
                })?),
            };
            v(&services.admin_meetings(&op, status).await?)
        }
        Request::MeetingEnd { id } => v(&services.end_meeting(&op, &id).await?),
        Request::JobRun { name, dry_run } => {
            let job =
                crate::jobs::by_name(&name).ok_or_else(|| Error::invalid("job", "unknown job"))?;
            v(&crate::jobs::run_and_record(job.as_ref(), services, progress, dry_run).await?)
        }
        Request::JobList => v(&crate::jobs::list(services)),
        Request::RecordingList { meeting } => {
            let all = services.admin_recordings(&op).await?;
            v(&all
                .into_iter()
                .filter(|r| meeting.as_ref().is_none_or(|m| &r.meeting_id == m))
                .collect::<Vec<_>>())
        }
        Request::RecordingDelete { id } => {
            services.delete_recording(&op, &id).await?;
            json!({"deleted": id})
        }
        Request::Stats => v(&services.stats().await?),
        Request::ParticipantMute {
            meeting,
            user,
            muted,
        } => {
            services.set_muted(&op, &meeting, &user, muted).await?;
            json!({"meeting": meeting, "user": user, "muted": muted})
        }
        // Served by the control server itself, from the live server's state.
        Request::Top | Request::Watch => {
            return Err(Error::Unavailable {
                code: "no_server",
                message: "meet top shows a running server: none answers on the control socket"
                    .into(),
            });
        }
        Request::Backup => json!({"content": services.backup().await?}),
        Request::Restore { content, replace } => v(&services.restore(&content, replace).await?),
        Request::Import { files, dry_run } => v(&services.import(files, dry_run, progress).await?),
    })
}

/// A refused request as `(code, message)`, with field errors spelled out.
pub(crate) fn refusal(e: Error) -> (String, String) {
    let api = crate::error::ApiError::from(e);
    let detail = api
        .errors
        .iter()
        .map(|f| format!("{} {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ");
    (
        api.code.to_owned(),
        if detail.is_empty() {
            api.message
        } else {
            detail
        },
    )
}

/// Serialising a reply without naming its type at each call.
mod erased {
    pub trait Ser {
        fn to_value(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_value(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}
