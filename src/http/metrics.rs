//! Counters for `/metrics` and `meet top`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Metrics {
    requests: AtomicU64,
    by_class: [AtomicU64; 5],
    rate_limited: AtomicU64,
    too_large: AtomicU64,
    login_failures: AtomicU64,
}

impl Metrics {
    pub fn response(&self, status: u16) {
        self.requests.fetch_add(1, Relaxed);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Relaxed);
        match status {
            429 => {
                self.rate_limited.fetch_add(1, Relaxed);
            }
            413 => {
                self.too_large.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }

    pub fn login_failed(&self) {
        self.login_failures.fetch_add(1, Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// The Prometheus text exposition of these counters.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP meet_http_requests_total HTTP responses by status class."
        );
        let _ = writeln!(out, "# TYPE meet_http_requests_total counter");
        for (i, c) in self.by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "meet_http_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "meet_http_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "meet_http_payload_too_large_total",
                "Requests refused for their body size.",
                &self.too_large,
            ),
            (
                "meet_login_failures_total",
                "Failed logins.",
                &self.login_failures,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}
