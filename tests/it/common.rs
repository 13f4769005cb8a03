//! `TestServer`: the whole app in-process on `127.0.0.1:0`, `mem://`, a temp dir and a clock the
//! test moves.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meet::app::AppHandle;
use meet::clock::ManualClock;
use meet::config::Config;
use meet::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestServer {
    pub base: String,
    pub app: Option<AppHandle>,
    pub clock: Arc<ManualClock>,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub admin: String,
    /// The server's own runtime: every task in it is the server's, so its task count
    /// (`meet_runtime_alive_tasks`) counts none of the test's clients.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Within the test's own runtime: no blocking wait for the server's tasks.
            runtime.shutdown_background();
        }
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body.get("code").and_then(Value::as_str).unwrap_or("")
    }

    /// Asserts the status, and for an error the contract's error shape.
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        if status >= 400 {
            assert_error_shape(&self.body);
        }
        &self.body
    }
}

/// The `/metrics` text of the server at `base`.
pub async fn metrics_text(base: &str) -> Option<String> {
    reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// A series' value in a `/metrics` text (`name` with its labels, if any, as the text spells
/// them); panics when there is none.
pub fn metric_in(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

pub fn assert_error_shape(body: &Value) {
    assert_eq!(body["status"], "error", "error body: {body}");
    let code = body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"));
    assert!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "code {code}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
}

pub fn start_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        // TEST_LOG=<filter> (RUST_LOG's syntax): the servers' logs on stderr, to read after a
        // failure (with --nocapture).
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_tests(dir.path());
        config.auth.admin_password = Some(Secret::new(ADMIN_PASSWORD));
        config.jobs.enabled = false;
        tweak(&mut config);
        let clock = Arc::new(ManualClock::new(start_time()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("meet-server")
            .enable_all()
            .build()
            .expect("the server's runtime");
        let app = runtime
            .spawn(meet::app::start_with_clock(config, clock.clone()))
            .await
            .expect("the start task")
            .expect("server starts");
        let base = format!("http://{}", app.addr);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let mut server = Self {
            base,
            app: Some(app),
            clock,
            client,
            dir,
            admin: String::new(),
            runtime: Some(runtime),
        };
        server.admin = server.login("admin", ADMIN_PASSWORD).await;
        server
    }

    /// The token secret the server made for itself in its data dir.
    pub fn jwt_secret(&self) -> Vec<u8> {
        std::fs::read_to_string(self.dir.path().join("jwt_secret"))
            .expect("the server's jwt_secret")
            .trim()
            .as_bytes()
            .to_vec()
    }

    pub fn app(&self) -> &AppHandle {
        self.app.as_ref().expect("running")
    }

    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            match &self.runtime {
                Some(rt) => rt.spawn(app.shutdown()).await.expect("the shutdown task"),
                None => app.shutdown().await,
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        Self::reply(res).await
    }

    pub async fn reply(res: reqwest::Response) -> Reply {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A series of the server's `/metrics` (loopback needs no token), by its name and labels.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_in(&metrics_text(&self.base).await.expect("metrics"), name)
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        r.expect(200)["token"].as_str().expect("token").to_owned()
    }

    /// A host account and its token.
    pub async fn host(&self, name: &str) -> (String, String) {
        let r = self
            .post(
                "/api/admin/hosts",
                &self.admin,
                json!({"username": name, "password": format!("{name}-password")}),
            )
            .await;
        let id = r.expect(201)["data"]["host"]["_id"]
            .as_str()
            .expect("id")
            .to_owned();
        (id, self.login(name, &format!("{name}-password")).await)
    }

    /// A student of the host with `host_token`, and the student's token.
    pub async fn student(&self, host_token: &str, name: &str) -> (String, String) {
        let r = self
            .post(
                "/api/host/students",
                host_token,
                json!({"username": name, "password": format!("{name}-password")}),
            )
            .await;
        let id = r.expect(201)["data"]["student"]["_id"]
            .as_str()
            .expect("id")
            .to_owned();
        (id, self.login(name, &format!("{name}-password")).await)
    }

    pub async fn meeting(&self, host_token: &str, topic: &str) -> String {
        let r = self
            .post("/api/meetings/create", host_token, json!({"topic": topic}))
            .await;
        r.expect(201)["meeting"]["_id"]
            .as_str()
            .expect("id")
            .to_owned()
    }
}

/// A server with a host, students and one meeting of the host.
pub struct Class {
    pub server: TestServer,
    /// (id, token) of the host and of each student.
    pub host: (String, String),
    pub students: Vec<(String, String)>,
    pub meeting: String,
}

impl Class {
    pub async fn start(students: &[&str], tweak: impl FnOnce(&mut Config)) -> Self {
        let server = TestServer::start_with(tweak).await;
        let host = server.host("teacher").await;
        let mut ids = Vec::new();
        for name in students {
            ids.push(server.student(&host.1, name).await);
        }
        let meeting = server.meeting(&host.1, "Live class").await;
        Self {
            server,
            host,
            students: ids,
            meeting,
        }
    }

    /// The host ends the meeting.
    pub async fn end_meeting(&self) {
        self.server
            .post(
                &format!("/api/meetings/{}/end", self.meeting),
                &self.host.1,
                json!({}),
            )
            .await
            .expect(200);
    }
}

/// Tokens made from a valid one (`token`, of a host) that the server must refuse, by name:
/// `alg: none`, another algorithm or key, a payload changed under its signature, and claims the
/// stored user contradicts, signed with the server's own `secret`.
pub fn forged_tokens(token: &str, secret: &[u8]) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).expect("payload base64"))
        .expect("payload JSON");
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let sign = |alg: Algorithm, key: &[u8], claims: &Value| {
        encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).expect("encode")
    };
    let unsigned = |header: Value, claims: &Value| {
        format!(
            "{}.{}.",
            b64.encode(header.to_string()),
            b64.encode(claims.to_string())
        )
    };
    let mut no_ver = claims.clone();
    no_ver.as_object_mut().expect("claims").remove("ver");
    let ver = claims["ver"].as_i64().expect("ver");
    vec![
        (
            "alg none",
            unsigned(json!({"alg": "none", "typ": "JWT"}), &claims),
        ),
        ("alg None", unsigned(json!({"alg": "None"}), &claims)),
        (
            "HS512 with the right key",
            sign(Algorithm::HS512, secret, &claims),
        ),
        (
            "HS256 with another key",
            sign(Algorithm::HS256, b"another-key-0123456789abcdef", &claims),
        ),
        (
            "role changed under the signature",
            format!(
                "{}.{}.{}",
                parts[0],
                b64.encode(with("role", json!("admin")).to_string()),
                parts[2]
            ),
        ),
        (
            "role admin, signed",
            sign(Algorithm::HS256, secret, &with("role", json!("admin"))),
        ),
        (
            "a later token version, signed",
            sign(Algorithm::HS256, secret, &with("ver", json!(ver + 1))),
        ),
        (
            "no token version, signed",
            sign(Algorithm::HS256, secret, &no_ver),
        ),
        (
            "an unknown user, signed",
            sign(Algorithm::HS256, secret, &with("sub", json!("nobody"))),
        ),
    ]
}
