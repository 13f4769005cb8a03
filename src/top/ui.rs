//! The screens of `meet top`: a header of server figures, the live meetings (or the open
//! meeting's people), and a help line; the help, filter, confirmation and reconnecting states
//! drawn over them.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Wrap};

use super::App;
use crate::realtime::snapshot::{LiveMeeting, Server};

const KEYS: &str =
    "↑↓/jk move  Enter open  Esc back  m mute  e end  / filter  s sort  ? help  q quit";

fn hms(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.0} MiB", n as f64 / f64::from(1u32 << 20)),
        n => format!("{} KiB", n >> 10),
    }
}

fn header(s: &Server, now: DateTime<Utc>) -> Vec<Line<'static>> {
    let next = s.next_job.as_ref().map_or_else(
        || "none".to_owned(),
        |(name, at)| format!("{name} in {}", hms((*at - now).num_seconds())),
    );
    vec![
        Line::from(vec![
            Span::styled(format!("meet {}", s.version), Style::new().bold()),
            Span::raw(format!(
                "  up {}  CPU {:.1}%  RSS {}  sockets {}  WebRTC peers {}",
                hms(i64::try_from(s.uptime_seconds).unwrap_or(i64::MAX)),
                s.cpu_percent,
                bytes(s.rss_bytes),
                s.sockets,
                s.webrtc_peers
            )),
        ]),
        Line::raw(format!(
            "forwarded {:.0} pkt/s  relay {:.0} frames/s  recordings {}  storage {} (backlog {})  next job {next}",
            s.forwarded_per_second,
            s.relay_frames_per_second,
            s.recordings_running,
            s.storage,
            s.upload_backlog
        )),
    ]
}

fn meeting_row(m: &LiveMeeting, now: DateTime<Utc>) -> Row<'static> {
    let mode = match &m.private_with {
        Some(who) => format!("private: {who}"),
        None => m.mode.clone(),
    };
    let age = m
        .started_at
        .map_or_else(String::new, |t| hms((now - t).num_seconds()));
    let left = m
        .ends_at
        .map_or_else(String::new, |t| hms((t - now).num_seconds()));
    Row::new(vec![
        m.topic.clone(),
        m.host.clone(),
        mode,
        format!("{}/{}", m.online, m.seats),
        m.speaking.to_string(),
        if m.recording {
            "● rec".into()
        } else {
            String::new()
        },
        age,
        left,
    ])
}

/// A level 0–1 as a bar of eight cells.
fn level_bar(level: f32) -> String {
    let cells = (level.clamp(0.0, 1.0) * 8.0).round() as usize;
    format!("{}{}", "█".repeat(cells), "·".repeat(8 - cells))
}

fn meetings_table(f: &mut Frame, app: &App, area: Rect, now: DateTime<Utc>) {
    let meetings = app.meetings();
    let title = format!(
        " live meetings: {} (sorted by {}{}) ",
        meetings.len(),
        app.sort.label(),
        if app.filter.is_empty() {
            String::new()
        } else {
            format!(", filter \"{}\"", app.filter)
        }
    );
    let rows: Vec<Row> = meetings.iter().map(|m| meeting_row(m, now)).collect();
    let table = Table::new(
        rows,
        [
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Fill(2),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(
        Row::new([
            "TOPIC", "HOST", "MODE", "PEOPLE", "SPEAKING", "REC", "AGE", "LEFT",
        ])
        .add_modifier(Modifier::BOLD),
    )
    .row_highlight_style(Style::new().reversed())
    .block(Block::new().borders(Borders::TOP).title(title));
    let mut state =
        TableState::default().with_selected((!meetings.is_empty()).then_some(app.selected));
    f.render_stateful_widget(table, area, &mut state);
}

fn people_table(f: &mut Frame, app: &App, m: &LiveMeeting, area: Rect) {
    let rows: Vec<Row> = m
        .participants
        .iter()
        .map(|p| {
            Row::new(vec![
                p.username.clone(),
                p.role.clone(),
                p.transport.clone(),
                if p.online { "yes".into() } else { "no".into() },
                if p.muted {
                    "muted".into()
                } else {
                    String::new()
                },
                level_bar(p.level),
                format!("{:.0}", p.packets_in_per_second),
                format!("{:.0}", p.packets_out_per_second),
                format!("{:.1}", p.loss_percent),
                format!("{:.1}", p.jitter_ms),
                format!("{:.1}", p.rtt_ms),
            ])
        })
        .collect();
    let title = format!(
        " {} — {} of {} online, {} ",
        m.topic,
        m.online,
        m.participants.len(),
        m.private_with
            .as_ref()
            .map_or_else(|| m.mode.clone(), |w| format!("private with {w}"))
    );
    let table = Table::new(
        rows,
        [
            Constraint::Fill(2),
            Constraint::Length(8),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(7),
        ],
    )
    .header(
        Row::new([
            "NAME",
            "ROLE",
            "TRANSPORT",
            "ONLINE",
            "MUTED",
            "LEVEL",
            "IN/s",
            "OUT/s",
            "LOSS%",
            "JITTER ms",
            "RTT ms",
        ])
        .add_modifier(Modifier::BOLD),
    )
    .row_highlight_style(Style::new().reversed())
    .block(Block::new().borders(Borders::TOP).title(title));
    let mut state = TableState::default()
        .with_selected((!m.participants.is_empty()).then_some(app.selected_person));
    f.render_stateful_widget(table, area, &mut state);
}

/// A box in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn popup(f: &mut Frame, title: &str, lines: Vec<Line<'static>>, width: u16) {
    let area = centered(
        f.area(),
        width,
        u16::try_from(lines.len()).unwrap_or(20) + 2,
    );
    f.render_widget(Clear, area);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title.to_owned())),
        area,
    );
}

pub fn draw(f: &mut Frame, app: &App, now: DateTime<Utc>) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    match &app.snapshot {
        Some(s) => f.render_widget(Paragraph::new(header(&s.server, now)), top),
        None => f.render_widget(Paragraph::new("meet top: waiting for the server…"), top),
    }
    match app.open_meeting() {
        Some(m) => people_table(f, app, m, body),
        None => meetings_table(f, app, body, now),
    }
    let status = if app.editing_filter {
        format!("filter: {}▏ (Enter keeps, Esc clears)", app.filter)
    } else if let Some(m) = &app.message {
        m.clone()
    } else {
        KEYS.to_owned()
    };
    f.render_widget(Paragraph::new(status).reversed(), bottom);
    if let Some(why) = &app.reconnecting {
        popup(
            f,
            " reconnecting… ",
            vec![
                Line::raw("The server does not answer; trying again every second."),
                Line::raw(why.clone()),
            ],
            60,
        );
    }
    if let Some(action) = &app.confirm {
        popup(f, " confirm ", vec![Line::raw(action.question())], 50);
    }
    if app.help {
        let lines = [
            "↑/↓ or j/k   move the selection",
            "Enter        show the selected meeting's people",
            "Esc          back to the meetings",
            "m            mute or unmute the selected person (asks y/n)",
            "e            end the selected or open meeting (asks y/n)",
            "/            filter meetings by topic or host",
            "s            sort by people, topic or age",
            "q            quit (any other key closes this help)",
        ];
        popup(
            f,
            " help ",
            lines.iter().map(|l| Line::raw(*l)).collect(),
            66,
        );
    }
}
