//! The client side: a running server over its socket, or the database directly.

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::proto::{Reply, Request};
use crate::jobs::Progress;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server (or the service offline) refused the request.
    #[error("{message} ({code})")]
    Refused { code: String, message: String },
    #[error(
        "the database in {0} is locked by a running server, but its control socket did not answer; is it starting or stopping?"
    )]
    Locked(String),
    #[error("the server is not reachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Offline(String),
}

/// Sends a request to the server on `socket`. `Ok(None)`: no server listens there.
pub async fn send(
    socket: &Path,
    request: &Request,
    progress: &dyn Progress,
) -> Result<Option<serde_json::Value>, ClientError> {
    let stream = match UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(ClientError::Unreachable(format!(
                "{}: {e}",
                socket.display()
            )));
        }
    };
    let (read, mut write) = stream.into_split();
    let mut line =
        serde_json::to_string(request).map_err(|e| ClientError::Unreachable(e.to_string()))?;
    line.push('\n');
    write
        .write_all(line.as_bytes())
        .await
        .map_err(|e| ClientError::Unreachable(e.to_string()))?;
    let mut lines = BufReader::new(read).lines();
    while let Some(l) = lines
        .next_line()
        .await
        .map_err(|e| ClientError::Unreachable(e.to_string()))?
    {
        match serde_json::from_str::<Reply>(&l)
            .map_err(|e| ClientError::Unreachable(format!("bad reply: {e}")))?
        {
            Reply::Total(n) => progress.total(n),
            Reply::Advance => progress.advance(),
            Reply::Ok(v) => return Ok(Some(v)),
            Reply::Error { code, message } => return Err(ClientError::Refused { code, message }),
        }
    }
    Err(ClientError::Unreachable(
        "the server closed the connection without a reply".into(),
    ))
}

/// Where requests go: the running server, or the database opened by this process.
pub enum Target {
    Server(std::path::PathBuf),
    Direct(Arc<crate::service::Services>),
}

impl Target {
    pub async fn run(
        &self,
        request: Request,
        progress: &dyn Progress,
    ) -> Result<serde_json::Value, ClientError> {
        match self {
            Self::Server(socket) => send(socket, &request, progress)
                .await?
                .ok_or_else(|| ClientError::Unreachable("the server stopped".into())),
            Self::Direct(services) => super::exec(services, request, progress).await.map_err(|e| {
                let (code, message) = super::refusal(e);
                ClientError::Refused { code, message }
            }),
        }
    }

    /// Releases the database when it was opened here; the engine closes it in the background
    /// once the last handle is gone, so give it a moment before the process exits.
    pub async fn close(self) {
        if let Self::Direct(services) = self {
            drop(services);
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
