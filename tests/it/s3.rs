//! Recording storage against a real S3-compatible server (moto), started by the test.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meet::config::{S3Config, Secret, StorageConfig};
use meet::storage::{Location, Storage};

struct Moto {
    child: Child,
    endpoint: String,
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

async fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
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
    drop(moto);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        storage.check().await.is_err(),
        "down after the server stops"
    );
}
