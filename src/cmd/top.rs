//! `meet top`: the terminal and the connection around `crate::top` (the state and screens).
//! It watches the running server through its control socket (one `watch` request: a snapshot
//! a second) and reconnects when the server goes away; `--once` prints one snapshot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::cli::TopArgs;
use crate::control::client;
use crate::control::proto::{Reply, Request};
use crate::jobs::Silent;
use crate::realtime::snapshot::Snapshot;
use crate::top::{Action, App, Command, ui};

pub async fn run(args: &TopArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(&args.common)?;
    let socket = config.control_socket();
    let reachable = client::send(&socket, &Request::Ping, &Silent).await;
    if !matches!(reachable, Ok(Some(_))) {
        eprintln!(
            "meet top: no meet server answers on {} (start `meet serve`, or pass the server's --data-dir or --config)",
            socket.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.once {
        return once(&socket, args.json).await;
    }
    interactive(socket).await
}

async fn snapshot(socket: &Path) -> anyhow::Result<Snapshot> {
    let v = client::send(socket, &Request::Top, &Silent)
        .await?
        .context("the server closed the connection")?;
    Ok(serde_json::from_value(v)?)
}

/// Two snapshots a second apart, so that the rates are real.
async fn once(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let before = snapshot(socket).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut now = snapshot(socket).await?;
    now.rates_since(&before);
    if json {
        super::print_json(&now)?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = &now.server;
    let mut out = String::new();
    writeln!(
        out,
        "meet {}: CPU {:.1}%, {} sockets, {} WebRTC peers, {:.0} packets/s forwarded, {} recordings",
        s.version,
        s.cpu_percent,
        s.sockets,
        s.webrtc_peers,
        s.forwarded_per_second,
        s.recordings_running
    )?;
    for m in &now.meetings {
        writeln!(
            out,
            "{}  {:<32} {:<16} {:<10} {}/{}",
            m.id, m.topic, m.host, m.mode, m.online, m.seats
        )?;
    }
    super::print_out(out)?;
    Ok(ExitCode::SUCCESS)
}

enum Input {
    Snapshot(Box<Snapshot>),
    Lost(String),
    Key(event::KeyEvent),
    Redraw,
}

/// Watches the server: snapshots while connected, `Lost` and a retry a second later when not.
async fn watch(socket: PathBuf, tx: mpsc::Sender<Input>) {
    loop {
        let why = match stream_snapshots(&socket, &tx).await {
            Ok(()) => "the server closed the connection".to_owned(),
            Err(e) => e.to_string(),
        };
        if tx.send(Input::Lost(why)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn stream_snapshots(socket: &Path, tx: &mpsc::Sender<Input>) -> anyhow::Result<()> {
    let stream = UnixStream::connect(socket).await?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(&Request::Watch)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str::<Reply>(&line)? {
            Reply::Ok(v) => {
                let s: Snapshot = serde_json::from_value(v)?;
                if tx.send(Input::Snapshot(Box::new(s))).await.is_err() {
                    return Ok(());
                }
            }
            Reply::Error { message, .. } => anyhow::bail!(message),
            Reply::Total(_) | Reply::Advance => {}
        }
    }
    Ok(())
}

/// Keys and resizes, read on a thread of their own (crossterm's reads block).
fn read_keys(tx: mpsc::Sender<Input>) {
    while !tx.is_closed() {
        match event::poll(Duration::from_millis(200)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(_) => return,
        }
        let input = match event::read() {
            Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => Input::Key(k),
            Ok(Event::Resize(..)) => Input::Redraw,
            Ok(_) => continue,
            Err(_) => return,
        };
        if tx.blocking_send(input).is_err() {
            return;
        }
    }
}

async fn perform(socket: &Path, action: Action) -> String {
    let request = match &action {
        Action::Mute {
            meeting,
            user,
            muted,
            ..
        } => Request::ParticipantMute {
            meeting: meeting.clone(),
            user: user.clone(),
            muted: *muted,
        },
        Action::End { meeting, .. } => Request::MeetingEnd {
            id: meeting.clone(),
        },
    };
    match client::send(socket, &request, &Silent).await {
        Ok(Some(_)) => match action {
            Action::Mute {
                username, muted, ..
            } => format!("{username} is {}", if muted { "muted" } else { "unmuted" }),
            Action::End { topic, .. } => format!("\"{topic}\" has ended"),
        },
        Ok(None) => "the server stopped before answering".into(),
        Err(e) => format!("refused: {e}"),
    }
}

async fn interactive(socket: PathBuf) -> anyhow::Result<ExitCode> {
    let (tx, mut rx) = mpsc::channel::<Input>(16);
    let watcher = tokio::spawn(watch(socket.clone(), tx.clone()));
    let keys_tx = tx.clone();
    drop(tx);
    let mut terminal = ratatui::try_init().context("opening the terminal")?;
    std::thread::spawn(move || read_keys(keys_tx));
    let mut app = App::default();
    let mut previous: Option<Snapshot> = None;
    let result: anyhow::Result<()> = async {
        loop {
            terminal.draw(|f| ui::draw(f, &app, chrono::Utc::now()))?;
            let Some(input) = rx.recv().await else {
                return Ok(());
            };
            match input {
                Input::Snapshot(mut s) => {
                    if let Some(before) = &previous {
                        s.rates_since(before);
                    }
                    previous = Some((*s).clone());
                    app.update(*s);
                }
                Input::Lost(why) => {
                    previous = None;
                    app.reconnecting = Some(why);
                }
                Input::Redraw => {}
                Input::Key(k) => match app.on_key(k) {
                    Some(Command::Quit) => return Ok(()),
                    Some(Command::Run(action)) => {
                        app.message = Some(perform(&socket, action).await)
                    }
                    None => {}
                },
            }
        }
    }
    .await;
    watcher.abort();
    ratatui::try_restore().context("restoring the terminal")?;
    result.map(|()| ExitCode::SUCCESS)
}
