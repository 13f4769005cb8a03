//! Rate limits: requests per client address (fixed windows), and failed logins per
//! username and address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Window {
    started: Instant,
    count: u32,
}

struct Counter<K> {
    limit: u32,
    window: Duration,
    entries: Mutex<HashMap<K, Window>>,
}

impl<K: std::hash::Hash + Eq + Clone> Counter<K> {
    fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Window>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Time left in the window when the key is over its limit.
    #[cfg(test)]
    fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let map = self.lock();
        let w = map.get(key)?;
        let elapsed = now.duration_since(w.started);
        (elapsed < self.window && w.count >= self.limit).then(|| self.window - elapsed)
    }

    /// Counts one event; returns the time left when this event is over the limit.
    fn hit(&self, key: &K, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        if map.len() > 50_000 {
            let window = self.window;
            map.retain(|_, w| now.duration_since(w.started) < window);
        }
        let w = map.entry(key.clone()).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= self.window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        (w.count > self.limit).then(|| self.window - now.duration_since(w.started))
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

pub struct RateLimiter {
    requests: Counter<IpAddr>,
    logins: Counter<String>,
}

impl RateLimiter {
    pub fn new(
        requests: u32,
        window: Duration,
        login_failures: u32,
        login_window: Duration,
    ) -> Self {
        Self {
            requests: Counter::new(requests, window),
            logins: Counter::new(login_failures, login_window),
        }
    }

    /// Counts a request from `ip`; `Some(retry_after)` when it must be refused.
    pub fn request(&self, ip: IpAddr) -> Option<Duration> {
        self.requests.hit(&ip, Instant::now()).map(round_up)
    }

    /// Counts a password attempt for `key` (username and address) before the password is
    /// checked, so parallel guesses count too; `Some(retry_after)` when it must be refused.
    /// A success clears the count with [`Self::login_succeeded`].
    pub fn login_attempt(&self, key: &str) -> Option<Duration> {
        self.logins
            .hit(&key.to_owned(), Instant::now())
            .map(round_up)
    }

    pub fn login_succeeded(&self, key: &str) {
        self.logins.clear(&key.to_owned());
    }
}

fn round_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_at_the_boundary() {
        let c = Counter::new(3, Duration::from_secs(60));
        let (a, b) = ("a".to_owned(), "b".to_owned());
        let t = Instant::now();
        assert!(c.hit(&a, t).is_none());
        assert!(c.hit(&a, t).is_none());
        assert!(c.hit(&a, t).is_none());
        assert!(c.blocked(&a, t).is_some());
        assert!(c.hit(&a, t).is_some(), "the 4th is over");
        assert!(c.hit(&b, t).is_none(), "keys are separate");
        assert!(
            c.hit(&a, t + Duration::from_secs(60)).is_none(),
            "a new window"
        );
    }
}
