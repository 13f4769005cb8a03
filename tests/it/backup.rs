//! `meet admin backup` and `restore` with the real binary: a backup taken through the running
//! server, restored into an empty data dir, gives back the same hosts, students, meetings and
//! recording rows; a restore over data needs `--replace`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::smoke::{Process, data_dir, json_out, meet, signed_in};

async fn token(client: &reqwest::Client, base: &str, user: &str, pass: &str) -> String {
    signed_in(client, base, user, pass).await.1
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let r = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.expect("json")
}

/// Everything a backup must bring back, as `meet admin ... --json` lists it.
fn contents(data: &std::path::Path) -> Vec<Value> {
    [
        &["admin", "host", "list", "--json"][..],
        &["admin", "student", "list", "--json"],
        &["admin", "meeting", "list", "--json"],
        &["admin", "recording", "list", "--json"],
    ]
    .iter()
    .map(|args| json_out(&meet(data, args, None)))
    .collect()
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_data_dir() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let server = Process::serve(&data);
    let base = server.addr.clone();
    let client = reqwest::Client::new();
    let out = meet(
        &data,
        &["admin", "host", "add", "teacher", "--password-stdin"],
        Some("teacher-pass\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = token(&client, &base, "teacher", "teacher-pass").await;
    post(
        &client,
        format!("{base}/api/host/students"),
        &host,
        json!({"username": "ana", "password": "ana-password"}),
    )
    .await;
    let m = post(
        &client,
        format!("{base}/api/meetings/create"),
        &host,
        json!({"topic": "Kept"}),
    )
    .await;
    let m = m["meeting"]["_id"].as_str().expect("id").to_owned();
    post(
        &client,
        format!("{base}/api/meetings/{m}/join"),
        &host,
        json!({}),
    )
    .await;
    let rec = post(
        &client,
        format!("{base}/api/meetings/{m}/recording/start"),
        &host,
        json!({}),
    )
    .await;
    let rec = rec["recording"]["_id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    post(
        &client,
        format!("{base}/api/meetings/{m}/recording/stop"),
        &host,
        json!({}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: Value = client
            .get(format!("{base}/api/recordings/{rec}"))
            .bearer_auth(&host)
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if r["recording"]["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    post(
        &client,
        format!("{base}/api/meetings/{m}/end"),
        &host,
        json!({}),
    )
    .await;
    let before = contents(&data);

    // Through the running server.
    let file = dir.path().join("meet.backup.surql");
    let out = meet(
        &data,
        &["admin", "backup", file.to_str().expect("path")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("audio stays in the storage"));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&file).expect("file").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "a backup holds password hashes");
    assert!(server.terminate().success());

    // Into a data dir that has never run: directly, no server.
    let empty = dir.path().join("restored");
    let out = meet(
        &empty,
        &["admin", "restore", file.to_str().expect("path")],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 host(s), 1 student(s), 1 meeting(s), 1 recording record(s)"),
        "{said}"
    );
    assert_eq!(contents(&empty), before, "the same rows");

    // The restored server: the old passwords work; a second restore needs --replace.
    let server = Process::serve(&empty);
    token(&client, &server.addr, "teacher", "teacher-pass").await;
    token(&client, &server.addr, "ana", "ana-password").await;
    let out = meet(
        &empty,
        &["admin", "restore", file.to_str().expect("path")],
        None,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--replace"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = meet(
        &empty,
        &[
            "admin",
            "restore",
            "--replace",
            file.to_str().expect("path"),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(contents(&empty), before, "replaced, not added to");
    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "not a backup").expect("write");
    let out = meet(
        &empty,
        &[
            "admin",
            "restore",
            "--replace",
            junk.to_str().expect("path"),
        ],
        None,
    );
    assert!(!out.status.success(), "a file that is no backup is refused");
    assert_eq!(contents(&empty), before, "and changes nothing");
    assert!(server.terminate().success());
}
