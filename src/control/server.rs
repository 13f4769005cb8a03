//! The server side of the control socket.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::proto::{Reply, Request};
use crate::jobs::Progress;
use crate::service::Services;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("another meet server is already running on {0}")]
    InUse(PathBuf),
    #[error("control socket {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Binds the socket (mode 0600), replacing a stale one left by a crash.
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let io = |cause| ControlError::Io {
        path: path.to_owned(),
        cause,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Accepts control connections until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    services: Arc<Services>,
    hub: Arc<crate::realtime::Hub>,
) {
    let owner = std::fs::metadata(&path).map(|m| m.uid()).ok();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: back off instead of spinning.
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let allowed = stream
            .peer_cred()
            .ok()
            .is_some_and(|c| c.uid() == 0 || Some(c.uid()) == owner);
        let services = Arc::clone(&services);
        let hub = Arc::clone(&hub);
        tokio::spawn(async move {
            if let Err(e) = handle(stream, allowed, &services, &hub).await {
                tracing::debug!(error = %e, "control connection failed");
            }
        });
    }
}

struct Channel(mpsc::UnboundedSender<Reply>);

impl Progress for Channel {
    fn total(&self, n: u64) {
        let _ = self.0.send(Reply::Total(n));
    }
    fn advance(&self) {
        let _ = self.0.send(Reply::Advance);
    }
}

/// The longest request line: an import carries the export files (the original's three
/// collections are a few megabytes for a school's worth of accounts and meetings).
const MAX_REQUEST: u64 = 256 * 1024 * 1024;

async fn handle(
    stream: UnixStream,
    allowed: bool,
    services: &Services,
    hub: &crate::realtime::Hub,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let limit = if allowed { MAX_REQUEST } else { 64 * 1024 };
    BufReader::new(read.take(limit))
        .read_line(&mut line)
        .await?;
    let final_reply = if !allowed {
        Reply::Error {
            code: "forbidden".into(),
            message: "only root or the server's user may use the control socket".into(),
        }
    } else if line.len() as u64 >= MAX_REQUEST && !line.ends_with('\n') {
        Reply::Error {
            code: "too_large".into(),
            message: format!("a control request is at most {MAX_REQUEST} bytes"),
        }
    } else {
        match serde_json::from_str::<Request>(&line) {
            Err(e) => Reply::Error {
                code: "bad_request".into(),
                message: e.to_string(),
            },
            Ok(Request::Top) => match hub.snapshot().await {
                Ok(s) => Reply::Ok(serde_json::to_value(s).unwrap_or_default()),
                Err(e) => {
                    let (code, message) = super::refusal(e);
                    Reply::Error { code, message }
                }
            },
            Ok(Request::Watch) => return watch(&mut write, hub).await,
            Ok(request) => {
                tracing::info!(target: "meet::control", op = ?std::mem::discriminant(&request), "control request");
                let (tx, mut rx) = mpsc::unbounded_channel();
                let progress = Channel(tx);
                let run = super::exec(services, request, &progress);
                tokio::pin!(run);
                let result = loop {
                    tokio::select! {
                        r = &mut run => break r,
                        Some(p) = rx.recv() => write_reply(&mut write, &p).await?,
                    }
                };
                while let Ok(p) = rx.try_recv() {
                    write_reply(&mut write, &p).await?;
                }
                match result {
                    Ok(v) => Reply::Ok(v),
                    Err(e) => {
                        let (code, message) = super::refusal(e);
                        Reply::Error { code, message }
                    }
                }
            }
        }
    };
    write_reply(&mut write, &final_reply).await?;
    write.shutdown().await
}

/// A snapshot every second until the watcher goes (its end of the socket closes: the write
/// fails). Nothing is held between two snapshots.
async fn watch(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    hub: &crate::realtime::Hub,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let reply = match hub.snapshot().await {
            Ok(s) => Reply::Ok(serde_json::to_value(s).unwrap_or_default()),
            Err(e) => {
                let (code, message) = super::refusal(e);
                Reply::Error { code, message }
            }
        };
        write_reply(write, &reply).await?;
    }
}

async fn write_reply(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut text = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    text.push('\n');
    w.write_all(text.as_bytes()).await
}
