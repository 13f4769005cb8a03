//! Recording storage against a real S3-compatible server (moto), started by the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meet::config::{S3Config, StorageConfig};
use meet::secret::Secret;
use meet::storage::{Location, Storage};
use serde_json::{Value, json};

use crate::common::Class;
use crate::crash::speak;
use crate::recorder::{judge, opusinfo};
use crate::recording::{completed, start_recording};
use crate::sio::{AuthForm, Client, Kind};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/.venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

pub async fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    start_moto_on(port).await
}

/// moto on a given port (to bring one back where it was), with an empty bucket `name`.
async fn start_moto_on(port: u16) -> Moto {
    let child = Command::new(moto_binary())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "moto_server is needed for the S3 tests (run `tests/run`, which installs it): {e}"
            )
        });
    // Owned from here on: dropping it (even in a panic) stops and reaps the server.
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{}/", moto.endpoint)).await.is_ok() {
            return moto;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("moto_server did not start");
}

fn s3_config(endpoint: &str, bucket: &str) -> StorageConfig {
    StorageConfig::S3(S3Config {
        bucket: bucket.into(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some(Secret::new("test")),
        path_style: true,
        prefix: "recordings/".into(),
        presign_seconds: 3600,
        multipart_bytes: 5 * 1024 * 1024,
        timeout: Duration::from_secs(60),
    })
}

#[tokio::test]
async fn s3_storage_puts_presigns_and_deletes() {
    let moto = start_moto().await;
    // The bucket exists already (as it would in production).
    let r = reqwest::Client::new()
        .put(format!("{}/meet-rec", moto.endpoint))
        .send()
        .await
        .expect("create bucket");
    assert!(r.status().is_success(), "{}", r.status());
    let storage = Storage::open(&s3_config(&moto.endpoint, "meet-rec"))
        .await
        .expect("open");
    storage.check().await.expect("ready");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("a.ogg");
    std::fs::write(&file, b"OggS fake audio").expect("write");
    let key = "m1/r1.ogg";
    assert!(!storage.exists(key).await.expect("head"));
    assert_eq!(
        storage
            .put_file(key, &file, "audio/ogg")
            .await
            .expect("put"),
        15
    );
    assert!(storage.exists(key).await.expect("head"));
    let Location::Url(url) = storage.location(key).await.expect("presign") else {
        panic!("expected a URL")
    };
    assert!(
        url.starts_with(&moto.endpoint) && url.contains("X-Amz-Signature"),
        "{url}"
    );
    let body = reqwest::get(&url)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&body[..], b"OggS fake audio");
    storage.delete(key).await.expect("delete");
    assert!(!storage.exists(key).await.expect("head"));
    storage.delete(key).await.expect("deleting twice is fine");
    assert!(storage.delete("../escape").await.is_err());
}

#[tokio::test]
async fn readiness_reports_an_unreachable_s3() {
    let moto = start_moto().await;
    let endpoint = moto.endpoint.clone();
    reqwest::Client::new()
        .put(format!("{endpoint}/gone"))
        .send()
        .await
        .expect("create bucket");
    let storage = Storage::open(&s3_config(&endpoint, "gone"))
        .await
        .expect("open");
    storage.check().await.expect("ready while up");
    // Killed and reaped: its port is closed once the drop returns.
    drop(moto);
    assert!(
        storage.check().await.is_err(),
        "down after the server stops"
    );
}

#[tokio::test]
async fn large_files_go_up_in_parts() {
    let moto = start_moto().await;
    reqwest::Client::new()
        .put(format!("{}/parts", moto.endpoint))
        .send()
        .await
        .expect("create bucket");
    let storage = Storage::open(&s3_config(&moto.endpoint, "parts"))
        .await
        .expect("open");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("big.ogg");
    // 11 MiB with parts of 5 MiB: three parts, the last one short.
    let bytes: Vec<u8> = (0..11 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &bytes).expect("write");
    let n = storage
        .put_file("m/r/mix.ogg", &file, "audio/ogg")
        .await
        .expect("multipart put");
    assert_eq!(n, bytes.len() as u64);
    let Location::Url(url) = storage.location("m/r/mix.ogg").await.expect("url") else {
        panic!("not a URL");
    };
    let got = reqwest::get(url)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert!(got.as_ref() == bytes.as_slice(), "the object is the file");
}

/// A short recording without audio (a mix of silence), started and stopped.
async fn record(c: &Class, m: &str) -> String {
    let id = start_recording(c).await;
    // A recording of 300 ms (its length, not a wait for anything).
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.server
        .post(
            &format!("/api/meetings/{m}/recording/stop"),
            &c.host.1,
            json!({}),
        )
        .await
        .expect(200);
    id
}

/// The recording's current JSON.
async fn recording(c: &Class, id: &str) -> Value {
    c.server
        .get(&format!("/api/recordings/{id}"), &c.host.1)
        .await
        .expect(200)["recording"]
        .clone()
}

/// A 302 to a presigned URL, fetched: the object's bytes.
async fn presigned(c: &Class, path: &str, token: &str) -> Vec<u8> {
    let r = c
        .server
        .client
        .get(c.server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 302, "{path}");
    let to = r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    assert!(to.contains("X-Amz-Signature"), "{to}");
    let got = reqwest::get(to).await.expect("fetch");
    assert_eq!(got.status().as_u16(), 200);
    got.bytes().await.expect("body").to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_outlives_an_s3_outage_then_plays_deletes_and_expires_there() {
    let moto = start_moto().await;
    let endpoint = moto.endpoint.clone();
    let port: u16 = endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let http = reqwest::Client::new();
    http.put(format!("{endpoint}/lessons"))
        .send()
        .await
        .expect("create bucket");
    let storage_config = s3_config(&endpoint, "lessons");
    let c = Class::start(&["ana"], {
        let sc = storage_config.clone();
        move |config| config.storage = sc
    })
    .await;
    let ana_id = c.students[0].0.clone();
    let mut ana = Client::spawn(Kind::Node).await;
    ana.connect(
        &c.server.base,
        AuthForm::Object,
        &c.students[0].1,
        Some(&c.meeting),
    )
    .await
    .expect("connects");
    let m = c.meeting.clone();
    let id = start_recording(&c).await;
    speak(&mut ana, 2.0).await;

    // S3 goes away before the recording ends: it stays `processing`, its files in the spool.
    drop(moto);
    c.server
        .post(
            &format!("/api/meetings/{m}/recording/stop"),
            &c.host.1,
            json!({}),
        )
        .await
        .expect(200);
    // The upload was tried and failed (it is retried later): still `processing`.
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.server.metric("meet_recording_failures_total").await < 1.0 {
        assert!(Instant::now() < deadline, "no upload was tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recording(&c, &id).await["status"], "processing");
    let ready = c.server.get("/readyz", "").await;
    assert_eq!(ready.status.as_u16(), 503);
    assert_eq!(ready.body["recordingBacklog"], 1, "{}", ready.body);
    let spool = c.server.dir.path().join("spool").join(&id);
    assert!(
        spool.join("mix.ogg").exists(),
        "nothing lost: the mix waits in the spool"
    );

    // S3 is back (an empty server: the operator creates the bucket again): stored, completed.
    let _moto = start_moto_on(port).await;
    http.put(format!("{endpoint}/lessons"))
        .send()
        .await
        .expect("create bucket");
    let rec = completed(&c, &id).await;
    // The row is completed once the files are stored; the spool is cleared, and the backlog
    // counted down, just after.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ready = c.server.get("/readyz", "").await;
        if !spool.exists() && ready.status.as_u16() == 200 {
            assert_eq!(ready.body["recordingBacklog"], 0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stored, but the spool is still there ({}) or not ready: {}",
            spool.exists(),
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Playback: a presigned redirect, the object a valid Ogg Opus file of the right length.
    let dir = tempfile::tempdir().expect("tmp");
    let mix = dir.path().join("mix.ogg");
    std::fs::write(
        &mix,
        presigned(&c, &format!("/api/recordings/{id}/audio"), &c.host.1).await,
    )
    .expect("write");
    let length = opusinfo(&mix);
    let duration = rec["duration"].as_f64().expect("duration");
    assert!((length - duration).abs() < 0.05, "{length} vs {duration}");
    let j = judge(&mix, &[660.0]);
    assert!(j["decoded"].as_f64().expect("decoded") >= 2.0);
    let own = dir.path().join("ana.ogg");
    let path = format!("/api/recordings/{id}/audio?track={ana_id}");
    std::fs::write(&own, presigned(&c, &path, &c.students[0].1).await).expect("write");
    opusinfo(&own);

    // Deleting removes every object of it.
    let storage = Storage::open(&storage_config).await.expect("open");
    let keys = [
        format!("{m}/{id}/mix.ogg"),
        format!("{m}/{id}/{ana_id}.ogg"),
    ];
    for k in &keys {
        assert!(storage.exists(k).await.expect("head"), "{k}");
    }
    c.server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/recordings/{id}"),
            Some(&c.host.1),
            None,
        )
        .await
        .expect(200);
    for k in &keys {
        assert!(!storage.exists(k).await.expect("head"), "{k} is gone");
    }

    // Retention on the settable clock: 3 days + 1 minute old goes, 2 days 23 hours stays.
    let old = record(&c, &m).await;
    c.server.clock.advance(chrono::Duration::minutes(61));
    let young = record(&c, &m).await;
    for r in [&old, &young] {
        completed(&c, r).await;
    }
    let key = |r: &str| format!("{m}/{r}/mix.ogg");
    assert!(storage.exists(&key(&old)).await.expect("head"));
    c.server
        .clock
        .advance(chrono::Duration::days(3) - chrono::Duration::minutes(60));
    let job = meet::jobs::by_name("retention").expect("job");
    let report = job
        .run(&c.server.app().services, &meet::jobs::Silent, false)
        .await
        .expect("run");
    assert_eq!((report.examined, report.changed), (1, 1));
    assert!(
        !storage.exists(&key(&old)).await.expect("head"),
        "expired: gone from S3"
    );
    assert!(
        storage.exists(&key(&young)).await.expect("head"),
        "2 days 23 hours: kept"
    );
    // Tokens last a day: the admin signs in again on the later day.
    let admin = c.server.login("admin", crate::common::ADMIN_PASSWORD).await;
    let listed = c.server.get("/api/admin/recordings", &admin).await;
    let ids: Vec<&str> = listed.body["recordings"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["_id"].as_str())
        .collect();
    assert_eq!(ids, [young.as_str()], "and gone from the database");
    ana.disconnect().await;
}

/// An S3 endpoint that accepts connections and never answers (a stalled server, a network that
/// drops the answers), until it is dropped.
struct Stalled {
    endpoint: String,
    port: u16,
    accepting: tokio::task::JoinHandle<()>,
}

impl Stalled {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            accepting,
        }
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        // The listener and every connection it holds close with the task.
        self.accepting.abort();
    }
}

/// S3 that stalls: readiness says so at once instead of hanging, every upload fails after
/// `storage.s3.timeout_seconds` and is retried without piling up tasks, nothing is lost, and
/// once S3 answers again the recording is stored and completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_s3_costs_its_timeout_and_the_recording_waits_for_it() {
    let stalled = Stalled::start().await;
    let mut storage_config = s3_config(&stalled.endpoint, "stalled");
    if let StorageConfig::S3(s3) = &mut storage_config {
        s3.timeout = Duration::from_secs(1);
    }
    // (Its start checks the bucket: that too fails after the timeout, and the server starts.)
    let c = Class::start(&["ana"], {
        let sc = storage_config.clone();
        move |config| config.storage = sc
    })
    .await;
    // A client that gives up where a hanging check would keep it waiting.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client");
    let ready = impatient
        .get(c.server.url("/readyz"))
        .send()
        .await
        .expect("/readyz answers");
    assert_eq!(ready.status().as_u16(), 503);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert_ne!(body["checks"]["storage"], "ok", "{body}");

    let m = c.meeting.clone();
    let id = record(&c, &m).await;
    // Each failed upload is counted; between two of them the server's tasks do not grow.
    let failures = |n: f64| {
        let server = &c.server;
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while server.metric("meet_recording_failures_total").await < n {
                assert!(Instant::now() < deadline, "{n} failed uploads");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    failures(1.0).await;
    let tasks = c.server.metric("meet_runtime_alive_tasks").await;
    failures(3.0).await;
    let later = c.server.metric("meet_runtime_alive_tasks").await;
    // (Slack of 2: the connections of the test's own `/metrics` requests end as they may.)
    assert!(
        later <= tasks + 2.0,
        "tasks {tasks} after the first failure, {later} after the third"
    );
    assert_eq!(recording(&c, &id).await["status"], "processing");
    let spool = c.server.dir.path().join("spool").join(&id);
    assert!(spool.join("mix.ogg").exists(), "the mix waits in the spool");

    // S3 answers again, on the same address: stored and completed, the spool cleared.
    let port = stalled.port;
    drop(stalled);
    let moto = start_moto_on(port).await;
    reqwest::Client::new()
        .put(format!("{}/stalled", moto.endpoint))
        .send()
        .await
        .expect("create bucket");
    let rec = completed(&c, &id).await;
    assert!(rec["size"].as_u64() > Some(0), "{rec}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while spool.exists() {
        assert!(
            Instant::now() < deadline,
            "stored, but the spool is still there"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready = c.server.get("/readyz", "").await;
    assert_eq!(ready.status.as_u16(), 200, "{}", ready.body);
}
