//! Who is speaking in a meeting: levels per participant, smoothed, and an announcement when the
//! loudest voice changes — at most once per interval, so a lively room does not flood clients.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Below this smoothed level (0–1 scale, about -51 dBFS) a participant counts as silent.
pub const SPEAKING: f32 = 0.15;

/// Loudness on the 0–1 scale every level in meet uses: −60 dBFS and below is 0, full scale 1.
pub fn level_from_dbfs(dbfs: f64) -> f32 {
    #[allow(clippy::cast_possible_truncation)]
    let level = ((dbfs + 60.0) / 60.0).clamp(0.0, 1.0) as f32;
    level
}
/// A level older than this no longer counts.
const FRESH: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct SpeakerTracker {
    interval: Duration,
    last_announced: Option<Instant>,
    current: Option<String>,
    levels: HashMap<String, (f32, Instant)>,
}

impl SpeakerTracker {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_announced: None,
            current: None,
            levels: HashMap::new(),
        }
    }

    /// Records `level` for `user` at `now`; returns the new active speaker and their level
    /// when it changed and the interval since the last announcement has passed.
    pub fn observe(&mut self, user: &str, level: f32, now: Instant) -> Option<(String, f32)> {
        match self.levels.get_mut(user) {
            Some((prev, at)) => {
                let base = if now.duration_since(*at) > FRESH {
                    0.0
                } else {
                    *prev
                };
                *prev = 0.6 * base + 0.4 * level;
                *at = now;
            }
            None => {
                self.levels.insert(user.to_owned(), (level, now));
            }
        }
        if self
            .last_announced
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return None;
        }
        let (loudest, level) = self
            .levels
            .iter()
            .filter(|(_, (l, at))| *l >= SPEAKING && now.duration_since(*at) <= FRESH)
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .map(|(id, (l, _))| (id.clone(), *l))?;
        if self.current.as_deref() == Some(loudest.as_str()) {
            return None;
        }
        self.current = Some(loudest.clone());
        self.last_announced = Some(now);
        Some((loudest, (level * 100.0).round() / 100.0))
    }

    /// Drops a participant who left or was muted.
    pub fn forget(&mut self, user: &str) {
        self.levels.remove(user);
        if self.current.as_deref() == Some(user) {
            self.current = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_the_loudest_once_and_at_most_every_interval() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut t = SpeakerTracker::new(Duration::from_millis(300));
        assert_eq!(t.observe("a", 0.05, t0), None, "silence is not speech");
        let (who, level) = t.observe("a", 0.8, ms(20)).expect("a speaks");
        assert_eq!(who, "a");
        assert!(level > SPEAKING);
        assert_eq!(t.observe("a", 0.8, ms(40)), None, "announced once");
        // b gets louder, but within the interval nothing is announced.
        for n in 0..10 {
            assert_eq!(t.observe("b", 0.95, ms(60 + n * 20)), None);
        }
        // Once the interval has passed, the louder b is announced, whoever's frame triggers it.
        assert_eq!(t.observe("a", 0.0, ms(300)), None, "299 ms after the last");
        assert_eq!(t.observe("a", 0.0, ms(320)).map(|x| x.0), Some("b".into()));
        assert_eq!(t.observe("b", 0.95, ms(340)), None);
    }

    #[test]
    fn stale_levels_and_forgotten_speakers_do_not_count() {
        let t0 = Instant::now();
        let mut t = SpeakerTracker::new(Duration::from_millis(50));
        t.observe("a", 0.9, t0);
        t.forget("a");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(t.observe("b", 0.3, later).map(|x| x.0), Some("b".into()));
    }
}
