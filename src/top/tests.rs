//! Every screen of `meet top` drawn with fixed data on ratatui's `TestBackend`.

use chrono::{Duration, TimeZone, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{Action, App, Command, Sort, ui};
use crate::realtime::snapshot::{LiveMeeting, LiveParticipant, Server, Snapshot};

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0)
        .single()
        .expect("time")
}

fn person(id: &str, name: &str, role: &str, level: f32, muted: bool) -> LiveParticipant {
    LiveParticipant {
        id: id.into(),
        username: name.into(),
        role: role.into(),
        transport: "webrtc".into(),
        online: true,
        muted,
        level,
        packets_in: 500,
        packets_out: 1000,
        jitter_ms: 2.5,
        rtt_ms: 1.2,
        packets_in_per_second: 50.0,
        packets_out_per_second: 100.0,
        loss_percent: 0.5,
        ..LiveParticipant::default()
    }
}

fn snapshot() -> Snapshot {
    let algebra = LiveMeeting {
        id: "m1".into(),
        topic: "Algebra".into(),
        host: "mr-smith".into(),
        mode: "private".into(),
        private_with: Some("ana".into()),
        online: 3,
        seats: 50,
        speaking: 1,
        recording: true,
        started_at: Some(now() - Duration::minutes(30)),
        ends_at: Some(now() + Duration::minutes(270)),
        participants: vec![
            person("h", "mr-smith", "host", 0.8, false),
            person("a", "ana", "student", 0.0, false),
            person("b", "ben", "student", 0.3, true),
        ],
    };
    let poetry = LiveMeeting {
        id: "m2".into(),
        topic: "Poetry".into(),
        host: "ms-jones".into(),
        mode: "broadcast".into(),
        online: 1,
        seats: 50,
        started_at: Some(now() - Duration::minutes(5)),
        ends_at: Some(now() + Duration::minutes(295)),
        participants: vec![person("j", "ms-jones", "host", 0.0, false)],
        ..LiveMeeting::default()
    };
    Snapshot {
        at: now(),
        server: Server {
            version: "0.1.0".into(),
            uptime_seconds: 3_723,
            cpu_seconds: 12.0,
            rss_bytes: 80 << 20,
            sockets: 4,
            webrtc_peers: 4,
            forwarded_packets: 10_000,
            relay_frames: 0,
            recordings_running: 1,
            storage: "local".into(),
            upload_backlog: 0,
            next_job: Some(("cleanup".into(), now() + Duration::seconds(90))),
            cpu_percent: 3.5,
            forwarded_per_second: 450.0,
            relay_frames_per_second: 0.0,
        },
        meetings: vec![poetry, algebra],
    }
}

fn screen(app: &App, width: u16, height: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    t.draw(|f| ui::draw(f, app, now())).expect("draw");
    let buf = t.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn key(app: &mut App, code: KeyCode) -> Option<Command> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn app() -> App {
    let mut app = App::default();
    app.update(snapshot());
    app
}

#[test]
fn the_header_and_the_meetings() {
    let s = screen(&app(), 120, 30);
    assert!(
        s.contains("meet 0.1.0  up 1:02:03  CPU 3.5%  RSS 80 MiB  sockets 4  WebRTC peers 4"),
        "{s}"
    );
    assert!(s.contains("forwarded 450 pkt/s  relay 0 frames/s  recordings 1  storage local (backlog 0)  next job cleanup in 0:01:30"), "{s}");
    assert!(s.contains("live meetings: 2 (sorted by people)"), "{s}");
    let lines: Vec<&str> = s.lines().collect();
    let algebra = lines
        .iter()
        .position(|l| l.contains("Algebra"))
        .expect("algebra");
    let poetry = lines
        .iter()
        .position(|l| l.contains("Poetry"))
        .expect("poetry");
    assert!(algebra < poetry, "the fuller meeting first");
    let row = lines[algebra];
    for part in [
        "mr-smith",
        "private: ana",
        "3/50",
        "● rec",
        "0:30:00",
        "4:30:00",
    ] {
        assert!(row.contains(part), "{part} in {row}");
    }
    assert!(s.contains("? help  q quit"), "the help line");
}

#[test]
fn the_open_meetings_people() {
    let mut a = app();
    assert_eq!(key(&mut a, KeyCode::Enter), None);
    let s = screen(&a, 120, 30);
    assert!(
        s.contains("Algebra — 3 of 3 online, private with ana"),
        "{s}"
    );
    let ben = s.lines().find(|l| l.contains("ben")).expect("ben");
    for part in [
        "student", "webrtc", "yes", "muted", "██", "50", "100", "0.5", "2.5", "1.2",
    ] {
        assert!(ben.contains(part), "{part} in {ben}");
    }
    key(&mut a, KeyCode::Esc);
    assert!(screen(&a, 120, 30).contains("live meetings"));
}

#[test]
fn help_filter_sort_and_reconnecting() {
    let mut a = app();
    key(&mut a, KeyCode::Char('?'));
    let s = screen(&a, 100, 30);
    assert!(
        s.contains(" help ") && s.contains("mute or unmute the selected person"),
        "{s}"
    );
    key(&mut a, KeyCode::Char('x'));
    assert!(!a.help, "any key closes the help");

    key(&mut a, KeyCode::Char('/'));
    for c in "poe".chars() {
        key(&mut a, KeyCode::Char(c));
    }
    let s = screen(&a, 100, 30);
    assert!(s.contains("filter: poe"), "{s}");
    assert!(
        s.contains("live meetings: 1") && !s.contains("Algebra"),
        "{s}"
    );
    key(&mut a, KeyCode::Enter);
    assert!(screen(&a, 100, 30).contains("filter \"poe\""));
    key(&mut a, KeyCode::Char('/'));
    key(&mut a, KeyCode::Esc);
    assert!(a.filter.is_empty());

    key(&mut a, KeyCode::Char('s'));
    assert_eq!(a.sort, Sort::Topic);
    let s = screen(&a, 100, 30);
    let algebra = s.find("Algebra").expect("a");
    assert!(algebra < s.find("Poetry").expect("p"), "by topic");

    a.reconnecting = Some("connection refused".into());
    let s = screen(&a, 100, 30);
    assert!(
        s.contains("reconnecting…") && s.contains("connection refused"),
        "{s}"
    );
    a.update(snapshot());
    assert!(!screen(&a, 100, 30).contains("reconnecting"));
}

#[test]
fn mute_and_end_ask_first() {
    let mut a = app();
    key(&mut a, KeyCode::Enter);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Char('j'));
    key(&mut a, KeyCode::Char('m'));
    let s = screen(&a, 100, 30);
    assert!(s.contains("Unmute ben? y/n"), "ben is muted: {s}");
    assert_eq!(key(&mut a, KeyCode::Char('n')), None, "no: nothing");
    key(&mut a, KeyCode::Up);
    key(&mut a, KeyCode::Char('m'));
    assert_eq!(
        key(&mut a, KeyCode::Char('y')),
        Some(Command::Run(Action::Mute {
            meeting: "m1".into(),
            user: "a".into(),
            username: "ana".into(),
            muted: true,
        }))
    );
    key(&mut a, KeyCode::Esc);
    key(&mut a, KeyCode::Down);
    key(&mut a, KeyCode::Char('e'));
    assert!(screen(&a, 100, 30).contains("End the meeting \"Poetry\"? y/n"));
    assert!(matches!(
        key(&mut a, KeyCode::Char('y')),
        Some(Command::Run(Action::End { .. }))
    ));
    assert_eq!(key(&mut a, KeyCode::Char('q')), Some(Command::Quit));
}

#[test]
fn small_and_large_terminals_and_no_data() {
    for (w, h) in [(100, 30), (200, 60), (40, 8), (1, 1)] {
        let s = screen(&app(), w, h);
        assert!(!s.is_empty() || w * h < 4);
    }
    let empty = screen(&App::default(), 100, 30);
    assert!(empty.contains("waiting for the server"), "{empty}");
    let mut a = App::default();
    assert_eq!(key(&mut a, KeyCode::Enter), None, "nothing to open");
    assert_eq!(key(&mut a, KeyCode::Char('m')), None);
    assert!(a.confirm.is_none());
}

#[test]
fn rates_come_from_two_snapshots() {
    let before = snapshot();
    let mut after = snapshot();
    after.at = before.at + Duration::seconds(2);
    after.server.cpu_seconds += 0.1;
    after.server.forwarded_packets += 900;
    after.meetings[1].participants[0].packets_in += 100;
    after.meetings[1].participants[0].lost += 5;
    after.rates_since(&before);
    assert!((after.server.cpu_percent - 5.0).abs() < 1e-9);
    assert!((after.server.forwarded_per_second - 450.0).abs() < 1e-9);
    let p = &after.meetings[1].participants[0];
    assert!((p.packets_in_per_second - 50.0).abs() < 1e-9);
    assert!((p.loss_percent - 5.0 / 105.0 * 100.0).abs() < 1e-9);
}
