//! The real `meet` binary on `surrealkv://` in a temp dir: start, create data, SIGTERM, restart,
//! data still there; `meet admin` against the running server and against the stopped one.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_meet");
pub const ADMIN_PASSWORD: &str = "smoke-admin-pass";

pub struct Process {
    child: Child,
    pub addr: String,
    logs: mpsc::Receiver<String>,
}

fn base_command(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MEET_CONFIG", "/dev/null")
        .env("MEET_AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("MEET_AUTH__ARGON2_MEMORY_KIB", "1024")
        .env("MEET_AUTH__ARGON2_ITERATIONS", "1")
        .env("MEET_LOGGING__FORMAT", "json")
        .env(
            "MEET_LOGGING__LEVEL",
            "info,surrealdb=warn,surrealkv=warn,tokio_cron_scheduler=warn",
        )
        .env("MEET_SERVER__DATA_DIR", data)
        // The audio port: any free one (tests run in parallel).
        .env("MEET_MEDIA__UDP_PORT", "0");
    c
}

impl Process {
    pub fn serve(data: &Path) -> Self {
        Self::serve_with(data, &[])
    }

    /// `meet serve` with extra environment (settings as `MEET_*` variables).
    pub fn serve_with(data: &Path, env: &[(&str, &str)]) -> Self {
        let mut cmd = base_command(data);
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("meet serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Owned from here on: dropping it (even in a panic) kills and reaps the server.
        let mut process = Self {
            child,
            addr: String::new(),
            logs: rx,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let line = process.logs.recv_timeout(wait).expect("listening line");
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "meet is listening"
            {
                process.addr = format!("http://{}", v["addr"].as_str().expect("addr"));
                return process;
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log lines, waited for up to the access log line of an answer to `path`
    /// (the request's last line: routing and the handler log before it).
    pub fn logs_until_answered(&self, path: &str) -> Vec<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self.logs.recv_timeout(wait).expect("the access log line");
            let v = serde_json::from_str::<Value>(&line).unwrap_or(Value::String(line));
            let answered = v["target"] == "meet::access" && v["path"] == path;
            lines.push(v);
            if answered {
                return lines;
            }
        }
    }

    /// kill -9: no shutdown of any kind, as a crash or a power cut.
    pub fn kill_9(self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        // Dropped: reaped.
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let status = self.child.wait().expect("exit");
        let logs: Vec<String> = self.logs.try_iter().collect();
        assert!(!logs.iter().any(|l| l.contains("panicked")), "{logs:?}");
        status
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `meet admin ...` (or any subcommand) on the data dir, with optional stdin.
pub fn meet(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = base_command(data);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("meet runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("output")
}

pub fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// Logs in: (user id, token).
pub async fn signed_in(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    pass: &str,
) -> (String, String) {
    let v: Value = login(client, base, user, pass)
        .await
        .json()
        .await
        .expect("json");
    (
        v["_id"].as_str().expect("id").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

pub async fn login(
    client: &reqwest::Client,
    base: &str,
    user: &str,
    pass: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": user, "password": pass}))
        .send()
        .await
        .expect("login")
}

/// GET `url` with `token`: the JSON body, whatever the status.
pub async fn get_json(client: &reqwest::Client, url: String, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

pub fn data_dir(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data")
}

/// `/api/meetings/private/end` is also the path of `/api/meetings/{id}/end`: when the first
/// route refuses the body, the second reads it too, and answers without an error in the log
/// (warp's own body filter hands a body out once: "request body already taken").
#[tokio::test]
async fn a_body_refused_by_one_route_is_read_by_the_next_one_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Process::serve(&data_dir(&dir));
    let client = reqwest::Client::new();
    let (_, token) = signed_in(&client, &server.addr, "admin", ADMIN_PASSWORD).await;
    let path = "/api/meetings/private/end";
    for (body, code) in [
        ("{\"meetingId\": ", "bad_request"),
        ("{\"meetingId\": 7}", "validation_failed"),
    ] {
        let r = client
            .post(format!("{}{path}", server.addr))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status().as_u16(), 400, "{body}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], code, "{body}: {v}");
        let logs = server.logs_until_answered(path);
        let errors: Vec<&Value> = logs.iter().filter(|l| l["level"] == "ERROR").collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
    }
}

#[tokio::test]
async fn data_survives_a_sigterm_and_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let server = Process::serve(&data);
    let client = reqwest::Client::new();
    let admin: Value = login(&client, &server.addr, "admin", ADMIN_PASSWORD)
        .await
        .json()
        .await
        .expect("json");
    let token = admin["token"].as_str().expect("token");
    let r = client
        .post(format!("{}/api/admin/hosts", server.addr))
        .bearer_auth(token)
        .json(&json!({"username": "persist", "password": "persist-pass"}))
        .send()
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);
    let host: Value = login(&client, &server.addr, "persist", "persist-pass")
        .await
        .json()
        .await
        .expect("json");
    let host_token = host["token"].as_str().expect("token");
    let r = client
        .post(format!("{}/api/meetings/create", server.addr))
        .bearer_auth(host_token)
        .json(&json!({"topic": "kept"}))
        .send()
        .await
        .expect("meeting");
    assert_eq!(r.status().as_u16(), 201);
    let status = server.terminate();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    assert!(
        !data.join("meet.sock").exists(),
        "the control socket is removed on shutdown"
    );

    let server = Process::serve(&data);
    let r = login(&client, &server.addr, "persist", "persist-pass").await;
    assert_eq!(r.status().as_u16(), 200, "the host survived");
    // The JWT secret survived too: the old token still works.
    let r = client
        .get(format!("{}/api/host/meetings", server.addr))
        .bearer_auth(host_token)
        .send()
        .await
        .expect("list");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["count"], 1);
    assert_eq!(body["meetings"][0]["topic"], "kept");
    assert!(server.terminate().success());
    let secret = std::fs::metadata(data.join("jwt_secret")).expect("secret");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&secret.permissions()) & 0o777,
        0o600
    );
}

#[tokio::test]
async fn meet_admin_against_a_running_and_a_stopped_server() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let d = data.to_str().expect("path");
    let server = Process::serve(&data);
    let sock = std::fs::metadata(data.join("meet.sock")).expect("socket");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&sock.permissions()) & 0o777,
        0o600
    );

    // Running: through the control socket.
    let out = meet(
        &data,
        &[
            "admin",
            "host",
            "add",
            "alice",
            "--password-stdin",
            "--json",
        ],
        Some("alice-password\n"),
    );
    assert_eq!(json_out(&out)["username"], "alice");
    let out = meet(
        &data,
        &["admin", "host", "add", "ALICE", "--password-stdin"],
        Some("alice-password\n"),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("username_taken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = meet(&data, &["admin", "host", "disable", "nobody"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    let client = reqwest::Client::new();
    assert_eq!(
        login(&client, &server.addr, "alice", "alice-password")
            .await
            .status()
            .as_u16(),
        200
    );
    let out = meet(
        &data,
        &["admin", "host", "disable", "alice", "--data-dir", d],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        login(&client, &server.addr, "alice", "alice-password")
            .await
            .status()
            .as_u16(),
        403
    );
    let hosts = json_out(&meet(&data, &["admin", "host", "list", "--json"], None));
    assert_eq!(hosts[0]["isActive"], false);
    // A generated password is printed once.
    let out = meet(&data, &["admin", "host", "add", "bob"], None);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("generated password")
        .to_owned();
    assert_eq!(
        login(&client, &server.addr, "bob", &password)
            .await
            .status()
            .as_u16(),
        200
    );

    // The database is locked by the server: without its socket, admin says so.
    std::fs::rename(data.join("meet.sock"), data.join("moved.sock")).expect("move");
    let out = meet(&data, &["admin", "host", "list"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("locked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(data.join("moved.sock"), data.join("meet.sock")).expect("move back");
    assert!(server.terminate().success());

    // Stopped: straight to the database.
    let out = meet(&data, &["admin", "host", "enable", "alice"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = meet(
        &data,
        &["admin", "host", "passwd", "bob", "--password-stdin"],
        Some("bob-new-password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts = json_out(&meet(&data, &["admin", "host", "list", "--json"], None));
    assert_eq!(hosts.as_array().map(Vec::len), Some(2));
    let students = json_out(&meet(
        &data,
        &["admin", "student", "list", "--host", "alice", "--json"],
        None,
    ));
    assert_eq!(students, json!([]));
    let meetings = json_out(&meet(&data, &["admin", "meeting", "list", "--json"], None));
    assert_eq!(meetings, json!([]));
    let out = meet(&data, &["jobs", "run", "--json"], None);
    let reports = json_out(&out);
    assert_eq!(reports.as_array().map(Vec::len), Some(3));
    let recordings = json_out(&meet(
        &data,
        &["admin", "recording", "list", "--json"],
        None,
    ));
    assert_eq!(recordings, json!([]));
    let out = meet(
        &data,
        &["admin", "recording", "delete", "nosuchrecording"],
        None,
    );
    assert!(!out.status.success(), "deleting an unknown recording fails");
    let out = meet(&data, &["admin", "host", "remove", "bob"], None);
    assert!(out.status.success());

    let server = Process::serve(&data);
    assert_eq!(
        login(&client, &server.addr, "alice", "alice-password")
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        login(&client, &server.addr, "bob", "bob-new-password")
            .await
            .status()
            .as_u16(),
        401
    );
    // Jobs through the running server.
    let reports = json_out(&meet(&data, &["jobs", "run", "cleanup", "--json"], None));
    assert_eq!(reports[0]["job"], "cleanup");
    let jobs = json_out(&meet(&data, &["jobs", "list", "--json"], None));
    let cleanup = &jobs.as_array().expect("jobs")[0];
    assert_eq!(cleanup["name"], "cleanup");
    assert_eq!(cleanup["schedule"], "0 */5 * * * *");
    assert_eq!(cleanup["lastRun"]["outcome"], "ok", "{jobs}");
    assert!(cleanup["nextRun"].is_string(), "{jobs}");
    assert!(
        jobs[2]["lastRun"].is_null(),
        "retention has not run: {jobs}"
    );
    let table = meet(&data, &["jobs", "list"], None);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("NEXT RUN") && text.contains("retention"),
        "{text}"
    );
    // An object no recording refers to: a dry run counts it and keeps it, a run deletes it.
    let orphan = data.join("recordings/m9/r9/mix.ogg");
    std::fs::create_dir_all(orphan.parent().expect("dir")).expect("dir");
    std::fs::write(&orphan, b"OggS").expect("orphan");
    // The original server's files are not meet's layout: never taken for orphans.
    let foreign = data.join("recordings/m9/1700000000000.webm");
    std::fs::write(&foreign, b"webm").expect("foreign");
    let dry = json_out(&meet(
        &data,
        &["jobs", "run", "retention", "--dry-run", "--json"],
        None,
    ));
    assert_eq!(
        (dry[0]["changed"].as_u64(), dry[0]["dryRun"].as_bool()),
        (Some(1), Some(true)),
        "{dry}"
    );
    assert!(orphan.exists(), "a dry run changes nothing");
    let jobs = json_out(&meet(&data, &["jobs", "list", "--json"], None));
    assert!(
        jobs[2]["lastRun"].is_null(),
        "a dry run is not a run: {jobs}"
    );
    let real = json_out(&meet(&data, &["jobs", "run", "retention", "--json"], None));
    assert_eq!(real[0]["changed"], 1, "{real}");
    assert!(!orphan.exists(), "the orphan is gone");
    assert!(
        foreign.exists(),
        "an object not laid out as meet writes them stays"
    );
    assert!(server.terminate().success());
}

#[test]
fn the_manual_page_and_the_completions() {
    let man = Command::new(BIN).arg("man").output().expect("run");
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success() && page.contains(".TH meet 1"),
        "{page}"
    );
    for (shell, mark) in [
        ("bash", "complete -F _meet"),
        ("zsh", "#compdef meet"),
        ("fish", "complete -c meet"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(mark),
            "{shell}: {text}"
        );
        assert!(
            text.contains("import"),
            "{shell}: the subcommands are in it"
        );
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn version_check_config_and_unknown_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("meet "));
    let out = meet(&data, &["serve", "--check-config"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[meetings]\nmax_people = 3\n").expect("write");
    let out = Command::new(BIN)
        .args(["serve", "--check-config", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_people"));
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--check-config")
        .env("MEET_CONFIG", "/dev/null")
        .env("MEET_HTTP__BOGUS", "1")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
    let out = Command::new(BIN).arg("top").output().expect("run");
    assert!(!out.status.success());
}

/// A reader that goes away (`meet admin host list | grep -q alice`) is no failure: every
/// command that reports on stdout exits 0 without a panic when nobody reads it any more.
#[test]
fn a_closed_stdout_is_no_failure() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let server = Process::serve(&data);
    let out = meet(
        &data,
        &["admin", "host", "add", "alice", "--password-stdin"],
        Some("alice-password\n"),
    );
    assert!(out.status.success(), "{out:?}");
    for args in [
        &["admin", "host", "list"][..],
        &["admin", "host", "list", "--json"],
        &["admin", "meeting", "list"],
        &["jobs", "list"],
        &["jobs", "run", "cleanup", "--json"],
        &["serve", "--check-config"],
        &["completions", "bash"],
        &["man"],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let mut cmd = base_command(&data);
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("meet runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("panicked"),
            "meet {}: {:?}\n{stderr}",
            args.join(" "),
            out.status
        );
    }
    assert!(server.terminate().success());
}

#[test]
fn admin_without_a_server_or_data_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("nothing-here");
    let out = meet(&data, &["admin", "host", "list"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no meet server answers"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.exists(), "an offline command creates nothing");
}

/// The control socket is 0600, and even when its mode is opened up, a peer that is neither root
/// nor the server's user is refused by its credentials (SO_PEERCRED).
#[test]
fn the_control_socket_refuses_other_users() {
    use std::os::unix::fs::PermissionsExt;
    if !Path::new("/usr/bin/setpriv").exists() || not_root() {
        eprintln!("skipped: needs root and setpriv to act as another user");
        return;
    }
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let server = Process::serve(&data);
    for p in [dir.path(), data.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    std::fs::set_permissions(
        data.join("meet.sock"),
        std::fs::Permissions::from_mode(0o666),
    )
    .expect("chmod socket");
    let mut cmd = base_command(&data);
    let out = cmd
        .env_remove("MEET_AUTH__ADMIN_PASSWORD")
        .args(["admin", "host", "list"])
        .stdin(Stdio::null())
        .output_as("65534");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("only root or the server's user"),
        "the server refused the foreign uid: {stderr}"
    );
    // Root (the socket's owner here) still gets in.
    let out = meet(&data, &["admin", "host", "list", "--json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);
}

fn not_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        .unwrap_or(true)
}

trait OutputAs {
    /// Runs the command as another user (uid and gid), through `setpriv`.
    fn output_as(&mut self, id: &str) -> Output;
}

impl OutputAs for Command {
    fn output_as(&mut self, id: &str) -> Output {
        let mut wrapped = Command::new("/usr/bin/setpriv");
        wrapped
            .args([
                &format!("--reuid={id}"),
                &format!("--regid={id}"),
                "--clear-groups",
                "--",
            ])
            .arg(self.get_program())
            .args(self.get_args())
            .env_clear()
            .envs(self.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::null())
            .output()
            .expect("setpriv runs")
    }
}
