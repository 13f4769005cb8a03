//! `meet top`: the dashboard's state and keys (`App`) and its screens (`ui`), apart from the
//! terminal and the connection (`cmd::top`), so that both are tested with fixed snapshots.

pub mod ui;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::realtime::snapshot::{LiveMeeting, LiveParticipant, Snapshot};

/// How the meetings table is ordered (`s` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// The most people online first.
    #[default]
    People,
    Topic,
    /// The oldest first.
    Age,
}

impl Sort {
    fn next(self) -> Self {
        match self {
            Sort::People => Sort::Topic,
            Sort::Topic => Sort::Age,
            Sort::Age => Sort::People,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Sort::People => "people",
            Sort::Topic => "topic",
            Sort::Age => "age",
        }
    }
}

/// Something the operator asked for and confirmed: done through the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Mute {
        meeting: String,
        user: String,
        username: String,
        muted: bool,
    },
    End {
        meeting: String,
        topic: String,
    },
}

impl Action {
    pub fn question(&self) -> String {
        match self {
            Action::Mute {
                username, muted, ..
            } => format!("{} {username}? y/n", if *muted { "Mute" } else { "Unmute" }),
            Action::End { topic, .. } => format!("End the meeting \"{topic}\"? y/n"),
        }
    }
}

/// What a key asks of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Quit,
    Run(Action),
}

#[derive(Debug, Default)]
pub struct App {
    pub snapshot: Option<Snapshot>,
    /// Set while the server does not answer: why, shown as "reconnecting…".
    pub reconnecting: Option<String>,
    /// The meeting whose people are shown (Enter), by id.
    pub open: Option<String>,
    pub selected: usize,
    pub selected_person: usize,
    pub sort: Sort,
    pub filter: String,
    pub editing_filter: bool,
    pub help: bool,
    pub confirm: Option<Action>,
    /// The outcome of the last action, until the next key.
    pub message: Option<String>,
}

impl App {
    /// The meetings as the table shows them: filtered, then sorted.
    pub fn meetings(&self) -> Vec<&LiveMeeting> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut v: Vec<&LiveMeeting> = s
            .meetings
            .iter()
            .filter(|m| {
                needle.is_empty()
                    || m.topic.to_lowercase().contains(&needle)
                    || m.host.to_lowercase().contains(&needle)
            })
            .collect();
        match self.sort {
            Sort::People => v.sort_by(|a, b| b.online.cmp(&a.online).then(a.topic.cmp(&b.topic))),
            Sort::Topic => v.sort_by_key(|m| m.topic.to_lowercase()),
            Sort::Age => v.sort_by_key(|m| m.started_at),
        }
        v
    }

    /// The open meeting, if it is still live.
    pub fn open_meeting(&self) -> Option<&LiveMeeting> {
        let id = self.open.as_deref()?;
        self.snapshot.as_ref()?.meetings.iter().find(|m| m.id == id)
    }

    fn people(&self) -> &[LiveParticipant] {
        self.open_meeting()
            .map_or(&[], |m| m.participants.as_slice())
    }

    /// A new snapshot: the selection stays in range; a meeting that ended closes.
    pub fn update(&mut self, snapshot: Snapshot) {
        self.snapshot = Some(snapshot);
        self.reconnecting = None;
        if self.open.is_some() && self.open_meeting().is_none() {
            self.open = None;
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        let n = self.meetings().len();
        self.selected = self.selected.min(n.saturating_sub(1));
        let p = self.people().len();
        self.selected_person = self.selected_person.min(p.saturating_sub(1));
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Some(Command::Quit);
        }
        self.message = None;
        if let Some(action) = self.confirm.take() {
            return matches!(key.code, KeyCode::Char('y' | 'Y')).then_some(Command::Run(action));
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if !c.is_control() && self.filter.len() < 40 => {
                    self.filter.push(c);
                }
                _ => {}
            }
            self.clamp();
            return None;
        }
        if self.help {
            self.help = false;
            return (key.code == KeyCode::Char('q')).then_some(Command::Quit);
        }
        match key.code {
            KeyCode::Char('q') => return Some(Command::Quit),
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('/') => self.editing_filter = true,
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Down | KeyCode::Char('j') => self.step(1),
            KeyCode::Up | KeyCode::Char('k') => self.step(-1),
            KeyCode::Enter if self.open.is_none() => {
                self.open = self.meetings().get(self.selected).map(|m| m.id.clone());
                self.selected_person = 0;
            }
            KeyCode::Esc => self.open = None,
            KeyCode::Char('m') => {
                let person = self.people().get(self.selected_person);
                self.confirm = match (self.open_meeting(), person) {
                    (Some(m), Some(p)) => Some(Action::Mute {
                        meeting: m.id.clone(),
                        user: p.id.clone(),
                        username: p.username.clone(),
                        muted: !p.muted,
                    }),
                    _ => None,
                };
            }
            KeyCode::Char('e') => {
                let m = match self.open_meeting() {
                    Some(m) => Some(m),
                    None => self.meetings().get(self.selected).copied(),
                };
                self.confirm = m.map(|m| Action::End {
                    meeting: m.id.clone(),
                    topic: m.topic.clone(),
                });
            }
            _ => {}
        }
        self.clamp();
        None
    }

    fn step(&mut self, by: isize) {
        let n = if self.open.is_some() {
            self.people().len()
        } else {
            self.meetings().len()
        };
        let at = if self.open.is_some() {
            &mut self.selected_person
        } else {
            &mut self.selected
        };
        *at = if n == 0 {
            0
        } else {
            (*at as isize + by).clamp(0, n as isize - 1) as usize
        };
    }
}

#[cfg(test)]
mod tests;
