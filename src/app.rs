//! Starting and stopping the whole server: store, storage, services, HTTP, control socket, jobs.

use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::HttpState;
use crate::service::{AdminBootstrap, Services};
use crate::storage::Storage;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data dir {path}: {cause}")]
    DataDir { path: String, cause: std::io::Error },
    #[error("JWT secret: {0}")]
    Secret(std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::OpenError),
    #[error("recording storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Control(#[from] crate::control::server::ControlError),
    #[error(transparent)]
    Jobs(#[from] crate::jobs::scheduler::SchedulerError),
    #[error("first admin: {0}")]
    Admin(crate::error::Error),
    #[error("web client files in {path}: {cause}")]
    Assets { path: String, cause: std::io::Error },
    #[error("The audio engine could not start: {0} (media.bind, media.udp_port / media.udp_ports)")]
    Media(std::io::Error),
}

/// Opens what the services stand on (used by `meet serve` and by offline `meet admin`).
pub async fn open_services(config: &Config) -> Result<Services, StartError> {
    open_services_with(config, Arc::new(SystemClock)).await
}

async fn open_services_with(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> Result<Services, StartError> {
    ensure_data_dir(&config.data_dir)?;
    let secret = jwt_secret(config)?;
    let store = Store::open(&config.database).await?;
    let storage = Storage::open(&config.storage).await?;
    Ok(Services::new(
        Arc::new(config.clone()),
        store,
        storage,
        clock,
        &secret,
    ))
}

fn ensure_data_dir(dir: &Path) -> Result<(), StartError> {
    let err = |cause| StartError::DataDir {
        path: dir.display().to_string(),
        cause,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    Ok(())
}

/// The configured secret, else the one kept in the data dir, else a new one written there (0600).
fn jwt_secret(config: &Config) -> Result<Vec<u8>, StartError> {
    if let Some(s) = &config.auth.jwt_secret {
        return Ok(s.expose().as_bytes().to_vec());
    }
    let path = config.data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().len() >= 32 => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(StartError::Secret(std::io::Error::other(format!(
                "{} is too short",
                path.display()
            ))));
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(StartError::Secret(e)),
        Err(_) => {}
    }
    use base64::Engine as _;
    use rand::RngCore as _;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(StartError::Secret)?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(StartError::Secret)?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(secret.into_bytes())
}

/// A running server.
pub struct AppHandle {
    pub addr: SocketAddr,
    pub services: Arc<Services>,
    pub http: Arc<HttpState>,
    pub admin: AdminBootstrap,
    stop: watch::Sender<bool>,
    http_task: JoinHandle<()>,
    control_task: JoinHandle<()>,
    scheduler: Option<tokio_cron_scheduler::JobScheduler>,
}

impl AppHandle {
    /// Stops accepting, lets open requests finish, stops the jobs and the control socket, and
    /// releases the database.
    pub async fn shutdown(mut self) {
        // Recordings first, while clients can still hear `recording-ended`: their files are
        // finished and stored within the shutdown grace (what is not stored by then stays in
        // the spool and is stored at the next start).
        match self.services.stop_all_recordings().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(recordings = n, "stopped the recordings"),
            Err(e) => tracing::error!(error = %e, "could not stop the recordings"),
        }
        if !self
            .services
            .recordings_settled(self.services.config.shutdown_grace)
            .await
        {
            tracing::warn!(
                pending = self.services.recordings_pending(),
                "recordings not stored before the shutdown grace ran out; they stay in the spool"
            );
        }
        let _ = self.stop.send(true);
        let _ = (&mut self.http_task).await;
        if let Some(mut s) = self.scheduler.take() {
            let _ = s.shutdown().await;
        }
        self.control_task.abort();
        let _ = (&mut self.control_task).await;
        let _ = std::fs::remove_file(self.services.config.control_socket());
        tracing::info!("stopped");
    }
}

/// Starts everything on the wall clock.
pub async fn start(config: Config) -> Result<AppHandle, StartError> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn Clock>,
) -> Result<AppHandle, StartError> {
    let services = Arc::new(open_services_with(&config, clock).await?);
    // Bind first: a port in use must not cost the one showing of a generated password.
    let control_path = config.control_socket();
    let control = crate::control::server::bind(&control_path).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|cause| StartError::Bind {
            addr: config.listen,
            cause,
        })?;
    let addr = listener.local_addr().map_err(|cause| StartError::Bind {
        addr: config.listen,
        cause,
    })?;

    let admin = services.ensure_admin().await.map_err(StartError::Admin)?;
    match &admin {
        AdminBootstrap::Generated { username, password } => {
            eprintln!(
                "\n  First start: created the administrator account.\n    username: {username}\n    password: {password}\n  \
                 This password is shown only this once. Change it with PUT /api/auth/change-password.\n"
            );
        }
        AdminBootstrap::Created { username } => {
            tracing::info!(%username, "created the administrator account")
        }
        AdminBootstrap::Present => {}
    }

    // No socket survives a restart: seats still marked present are stale.
    match services.release_stale_seats().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(seats = n, "released seats left from the previous run"),
        Err(e) => tracing::warn!(error = %e, "could not release stale seats"),
    }
    // A meeting whose time ran out while the server was down ends now (`duration_exceeded`),
    // not at the next cleanup job.
    match services.end_overdue_meetings().await {
        Ok(ended) if ended.is_empty() => {}
        Ok(ended) => tracing::info!(
            meetings = ended.len(),
            "ended meetings whose time ran out while the server was down"
        ),
        Err(e) => tracing::warn!(error = %e, "could not end the meetings past their time"),
    }
    if let Some(queue) = services.take_storer_queue() {
        tokio::spawn(Arc::clone(&services).run_storer(queue));
    }
    // Before anything can start a recording: what a previous run left is made whole and stored.
    match services.recover_recordings().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            recordings = n,
            "recovering recordings left by the previous run"
        ),
        Err(e) => tracing::warn!(error = %e, "could not look for recordings to recover"),
    }
    let realtime =
        crate::realtime::Realtime::start(Arc::clone(&services)).map_err(StartError::Media)?;
    let hub = Arc::clone(&realtime.hub);
    let assets = match &config.web.assets_dir {
        Some(dir) => {
            crate::http::web::Assets::from_dir(dir).map_err(|cause| StartError::Assets {
                path: dir.display().to_string(),
                cause,
            })?
        }
        None => crate::http::web::Assets::embedded(),
    };
    let http = Arc::new(HttpState::new(
        Arc::clone(&services),
        Arc::clone(&hub),
        assets,
    ));
    let (stop, mut stopped) = watch::channel(false);
    let grace = config.shutdown_grace;
    let http_task = tokio::spawn(crate::http::server::serve(
        listener,
        Arc::clone(&http),
        realtime.layer(),
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
        realtime.close(),
        grace,
    ));
    let control_task = tokio::spawn(crate::control::server::serve(
        control,
        control_path,
        Arc::clone(&services),
        hub,
    ));
    let scheduler = if config.jobs.enabled {
        Some(crate::jobs::scheduler::start(Arc::clone(&services)).await?)
    } else {
        None
    };
    tracing::info!(%addr, data_dir = %config.data_dir.display(), storage = services.storage.kind(), "meet is listening");
    Ok(AppHandle {
        addr,
        services,
        http,
        admin,
        stop,
        http_task,
        control_task,
        scheduler,
    })
}
