//! Who hears whom in a live meeting: the one routing rule shared by the Socket.IO audio relay
//! and the SFU. Private mode and server-side mutes are decided here and nowhere else.

use std::collections::HashSet;

use super::meetings::{Meeting, Mode};

/// What routing needs to know about a meeting: its host, its mode and who is muted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteState {
    pub host_id: String,
    /// The student the host talks with in private mode; `None` in broadcast mode.
    pub private_with: Option<String>,
    /// Participants muted by the host.
    pub muted: HashSet<String>,
}

impl RouteState {
    pub fn of(meeting: &Meeting) -> Self {
        Self {
            host_id: meeting.host_id.clone(),
            private_with: match meeting.mode {
                Mode::Private => meeting.private_participant_id.clone(),
                Mode::Broadcast => None,
            },
            muted: HashSet::new(),
        }
    }

    /// Takes the mode of `meeting`, keeping the mutes.
    pub fn set_mode(&mut self, meeting: &Meeting) {
        let muted = std::mem::take(&mut self.muted);
        *self = Self {
            muted,
            ..Self::of(meeting)
        };
    }
}

/// Who a speaker's audio goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Nobody: the speaker is muted, or left out of a private conversation.
    Nobody,
    /// Everyone in the meeting except the speaker.
    Everyone,
    /// One participant only (the other side of a private conversation).
    Only(&'a str),
}

/// The audience of `speaker` under the meeting's current mode and mutes.
pub fn audience<'a>(state: &'a RouteState, speaker: &str) -> Audience<'a> {
    if state.muted.contains(speaker) {
        return Audience::Nobody;
    }
    match &state.private_with {
        None => Audience::Everyone,
        Some(student) if speaker == state.host_id => Audience::Only(student),
        Some(student) if speaker == student => Audience::Only(&state.host_id),
        Some(_) => Audience::Nobody,
    }
}

/// Whether `listener` hears `speaker`. Nobody hears themselves.
pub fn may_hear(state: &RouteState, speaker: &str, listener: &str) -> bool {
    if speaker == listener {
        return false;
    }
    match audience(state, speaker) {
        Audience::Nobody => false,
        Audience::Everyone => true,
        Audience::Only(id) => id == listener,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(private_with: Option<&str>, muted: &[&str]) -> RouteState {
        RouteState {
            host_id: "h".into(),
            private_with: private_with.map(str::to_owned),
            muted: muted.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    #[test]
    fn broadcast_everyone_hears_everyone_else() {
        let s = state(None, &[]);
        for (a, b) in [("h", "s1"), ("s1", "h"), ("s1", "s2")] {
            assert!(may_hear(&s, a, b), "{a} -> {b}");
        }
        assert!(!may_hear(&s, "s1", "s1"), "no echo");
        assert_eq!(audience(&s, "s2"), Audience::Everyone);
    }

    #[test]
    fn private_mode_isolates_the_pair_both_ways() {
        let s = state(Some("s1"), &[]);
        assert!(may_hear(&s, "h", "s1"));
        assert!(may_hear(&s, "s1", "h"));
        assert!(!may_hear(&s, "h", "s2"), "others do not hear the host");
        assert!(!may_hear(&s, "s1", "s2"), "nor the private student");
        assert!(!may_hear(&s, "s2", "h"), "nor are they heard by the host");
        assert!(!may_hear(&s, "s2", "s3"), "nor by each other");
        assert_eq!(audience(&s, "h"), Audience::Only("s1"));
        assert_eq!(audience(&s, "s1"), Audience::Only("h"));
        assert_eq!(audience(&s, "s2"), Audience::Nobody);
    }

    #[test]
    fn a_muted_speaker_is_heard_by_no_one_in_any_mode() {
        for private in [None, Some("s1")] {
            let s = state(private, &["s1"]);
            assert_eq!(audience(&s, "s1"), Audience::Nobody);
            assert!(!may_hear(&s, "s1", "h"));
            assert!(
                may_hear(&s, "h", "s1"),
                "a muted student still hears the host"
            );
        }
        let s = state(None, &["h"]);
        assert!(!may_hear(&s, "h", "s2"), "a muted host is silent too");
    }

    #[test]
    fn switching_mode_keeps_the_mutes() {
        let mut s = state(Some("s1"), &["s2"]);
        let mut m = crate::domain::meetings::tests::meeting_for_tests();
        m.host_id = "h".into();
        s.set_mode(&m);
        assert_eq!(s.private_with, None);
        assert!(s.muted.contains("s2"));
    }
}
