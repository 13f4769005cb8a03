//! `meet admin import`: a mongoexport dump of the original backend, written here in its formats
//! (canonical Extended JSON lines, a relaxed `--jsonArray`, relaxed lines) with bcrypt hashes made
//! by the bcrypt crate, imported into a fresh data dir by the real binary, offline and through the
//! control socket of a running server.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::s3::start_moto;
use crate::smoke::{Process, data_dir, json_out, login, meet};

const ADMIN: &str = "65b000000000000000000a01";
const TEACHER: &str = "65b000000000000000000b01";
const RETIRED: &str = "65b000000000000000000b02";
const STUDENT: &str = "65b000000000000000000c01";
/// An id meet cannot keep (not an ObjectId, and `:` is not allowed): it gets a new one.
const LEGACY: &str = "legacy:42";
const ENDED: &str = "65b0000000000000000d0001";
const LIVE: &str = "65b0000000000000000d0002";
const SHARED_REC: &str = "65b0000000000000000e0001";
const PRIVATE_REC: &str = "65b0000000000000000e0002";

fn bcrypt(password: &str, cost: u32, version: bcrypt::Version) -> String {
    bcrypt::hash_with_result(password, cost)
        .expect("bcrypt")
        .format_for_version(version)
}

fn oid(id: &str) -> Value {
    json!({"$oid": id})
}

fn canonical_date(ms: i64) -> Value {
    json!({"$date": {"$numberLong": ms.to_string()}})
}

fn shared_key() -> String {
    format!("recordings/{ENDED}/{STUDENT}-1738404000000.webm")
}

fn private_key() -> String {
    format!("recordings/{ENDED}/legacy-1738404100000.webm")
}

/// Writes `users.json` (lines, canonical, one malformed line), `meetings.json` (a relaxed
/// `--jsonArray`) and `recordings.json` (lines, relaxed) into `dir`.
fn write_export(dir: &Path) -> Vec<PathBuf> {
    use bcrypt::Version::{TwoA, TwoB};
    let user =
        |id: &str, name: &str, hash: String, role: &str, host: Option<&str>, active: bool| {
            let mut u = json!({
                "_id": oid(id),
                "username": name,
                "password": hash,
                "role": role,
                "isActive": active,
                "createdAt": canonical_date(1_738_000_000_000),
                "updatedAt": canonical_date(1_738_000_000_000),
                "__v": {"$numberInt": "0"},
            });
            if let Some(h) = host {
                u["hostId"] = oid(h);
                u["createdBy"] = oid(h);
            }
            if id == LEGACY {
                u["_id"] = json!(LEGACY);
            }
            u.to_string()
        };
    let users = [
        user(
            ADMIN,
            "principal",
            bcrypt("principal-pass", 4, TwoB),
            "admin",
            None,
            true,
        ),
        // bcryptjs's own cost, as the original made them.
        user(
            TEACHER,
            "teacher1",
            bcrypt("teacher-pass", 10, TwoA),
            "host",
            None,
            true,
        ),
        r#"{"_id": {"$oid": "65b000000000000000000c09"}, "username": "broken", "#.to_owned(),
        user(
            RETIRED,
            "retired",
            bcrypt("retired-pass", 4, TwoB),
            "host",
            None,
            false,
        ),
        user(
            STUDENT,
            "stud.one",
            bcrypt("student-pass", 4, TwoA),
            "student",
            Some(TEACHER),
            true,
        ),
        user(
            LEGACY,
            "mapped.kid",
            bcrypt("kid-pass", 4, TwoA),
            "student",
            Some(TEACHER),
            true,
        ),
        user(
            "65b000000000000000000c02",
            "orphan",
            bcrypt("x-pass", 4, TwoA),
            "student",
            Some("65b000000000000000000bff"),
            true,
        ),
        user(
            "65b000000000000000000c03",
            "bad name",
            bcrypt("x-pass", 4, TwoA),
            "host",
            None,
            true,
        ),
    ];
    let meetings = json!([
        {
            "_id": oid(ENDED), "hostId": oid(TEACHER), "topic": "Algebra",
            "participants": [oid(STUDENT), LEGACY], "status": "ended",
            "privateMode": {"isActive": false}, "maxParticipants": 50, "maxDuration": 18000,
            "startTime": {"$date": "2025-02-01T10:00:00.000Z"},
            "endTime": {"$date": "2025-02-01T11:00:00.000Z"},
            "endReason": "host_ended", "createdAt": {"$date": "2025-02-01T09:55:00.000Z"}
        },
        {
            "_id": oid(LIVE), "hostId": oid(TEACHER), "topic": "Geometry", "participants": [],
            "status": "active", "startTime": {"$date": "2025-02-02T10:00:00.000Z"}
        },
        {
            "_id": oid("65b0000000000000000d0003"), "hostId": oid("65b000000000000000000bff"),
            "topic": "Ghost", "status": "ended"
        }
    ]);
    let recordings = [
        json!({
            "_id": oid(SHARED_REC), "meetingId": oid(ENDED), "hostId": oid(TEACHER),
            "streamKey": "s1", "fileUrl": shared_key(), "status": "completed",
            "startTime": {"$date": "2025-02-01T10:00:00.000Z"},
            "endTime": {"$date": "2025-02-01T10:30:00.000Z"}, "duration": 1800,
            "metadata": {"size": 12, "format": "webm", "contentType": "audio/webm"},
            "isPrivateConversation": false, "accessibleTo": [oid(TEACHER), oid(STUDENT)]
        }),
        json!({
            "_id": oid(PRIVATE_REC), "meetingId": oid(ENDED), "hostId": oid(TEACHER),
            "studentId": LEGACY, "streamKey": "s2",
            "fileUrl": format!("https://old-bucket.s3.eu-west-1.amazonaws.com/{}", private_key()),
            "status": "completed", "startTime": {"$date": "2025-02-01T10:40:00.000Z"},
            "duration": 60, "metadata": {"size": 7}, "isPrivateConversation": true
        }),
        json!({
            "_id": oid("65b0000000000000000e0003"), "meetingId": oid(ENDED), "hostId": oid(TEACHER),
            "streamKey": "s3", "fileUrl": "", "status": "recording",
            "startTime": {"$date": "2025-02-01T10:50:00.000Z"}
        }),
    ]
    .map(|r| r.to_string());
    let files = [
        ("users.json", users.join("\n") + "\n"),
        ("meetings.json", meetings.to_string()),
        ("recordings.json", recordings.join("\n") + "\n"),
    ];
    files
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write export");
            path
        })
        .collect()
}

fn import_json(data: &Path, extra: &[&str], files: &[PathBuf]) -> Value {
    let mut args = vec!["admin", "--json", "import"];
    args.extend_from_slice(extra);
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    json_out(&meet(data, &args, None))
}

fn counts(admins: u64, hosts: u64, students: u64, meetings: u64, recordings: u64) -> Value {
    json!({"admins": admins, "hosts": hosts, "students": students, "meetings": meetings, "recordings": recordings})
}

fn none() -> Value {
    counts(0, 0, 0, 0, 0)
}

/// The first import's report: what came in and what was skipped, and why.
fn check_first_report(r: &Value, dry_run: bool) {
    assert_eq!(r["dryRun"], dry_run, "{r:#}");
    assert_eq!(r["files"], 3);
    // 8 user lines, one of them broken; 3 meetings; 3 recordings.
    assert_eq!(r["documents"], 13, "{r:#}");
    assert_eq!(r["imported"], counts(1, 2, 2, 2, 2), "{r:#}");
    assert_eq!(r["alreadyThere"], none());
    let skipped: Vec<(String, String)> = r["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| {
            (
                s["at"]
                    .as_str()
                    .expect("at")
                    .rsplit('/')
                    .next()
                    .expect("name")
                    .to_owned(),
                s["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect();
    let reason = |at: &str| {
        skipped
            .iter()
            .find(|(a, _)| a == at)
            .map(|(_, r)| r.as_str())
            .unwrap_or_else(|| panic!("{at} not skipped: {skipped:?}"))
    };
    assert!(
        reason("users.json:3").starts_with("not valid JSON"),
        "{skipped:?}"
    );
    assert!(reason("users.json:7").contains("host 65b000000000000000000bff is not imported"));
    assert!(reason("users.json:8").contains("`bad name` is not allowed"));
    assert!(reason("meetings.json:1").contains("host 65b000000000000000000bff"));
    assert!(reason("recordings.json:3").contains("still recording"));
    assert_eq!(skipped.len(), 5, "{skipped:?}");
    let mapped = r["mappedIds"].as_array().expect("mapped");
    assert_eq!(mapped.len(), 1, "{mapped:?}");
    assert_eq!(mapped[0]["collection"], "users");
    assert_eq!(mapped[0]["original"], LEGACY);
}

async fn token(http: &reqwest::Client, base: &str, user: &str, pass: &str) -> String {
    let r = login(http, base, user, pass).await;
    assert_eq!(r.status().as_u16(), 200, "{user} logs in");
    let v: Value = r.json().await.expect("json");
    v["token"].as_str().expect("token").to_owned()
}

async fn get(http: &reqwest::Client, url: String, token: &str) -> reqwest::Response {
    http.get(url).bearer_auth(token).send().await.expect("get")
}

async fn put(url: String, body: &'static [u8]) {
    let r = reqwest::Client::new()
        .put(url)
        .body(body)
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn an_export_imports_once_and_its_users_log_in_with_their_old_passwords() {
    let moto = start_moto().await;
    let bucket = format!("{}/meet-rec", moto.endpoint);
    put(bucket.clone(), b"").await;
    // The original's objects, where it left them.
    put(format!("{bucket}/{}", shared_key()), b"webm-shared!").await;
    put(format!("{bucket}/{}", private_key()), b"webm-pv").await;
    let s3_env = [
        ("MEET_STORAGE__S3__BUCKET", "meet-rec"),
        ("MEET_STORAGE__S3__ENDPOINT", moto.endpoint.as_str()),
        ("MEET_STORAGE__S3__ACCESS_KEY_ID", "test"),
        ("MEET_STORAGE__S3__SECRET_ACCESS_KEY", "test"),
    ];

    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    std::fs::create_dir_all(&data).expect("data dir");
    let config = dir.path().join("meet.toml");
    std::fs::write(
        &config,
        format!(
            "[storage.s3]\nbucket = \"meet-rec\"\nendpoint = \"{}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            moto.endpoint
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let files = write_export(dir.path());

    // A dry run says what it would do and writes nothing: the real run then does all of it.
    let dry = import_json(&data, &["--config", &config, "--dry-run"], &files);
    check_first_report(&dry, true);
    let first = import_json(&data, &["--config", &config], &files);
    check_first_report(&first, false);
    let kid_id = first["mappedIds"][0]["meet"]
        .as_str()
        .expect("new id")
        .to_owned();

    // Again: nothing new, everything already there, and it says so.
    let again = meet(
        &data,
        &[
            "admin",
            "--config",
            &config,
            "import",
            &files[0].display().to_string(),
            &files[1].display().to_string(),
            &files[2].display().to_string(),
        ],
        None,
    );
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains(
            "imported: 0 admin(s), 0 host(s), 0 student(s), 0 meeting(s), 0 recording(s)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "already there: 1 admin(s), 2 host(s), 2 student(s), 2 meeting(s), 2 recording(s)"
        ),
        "{text}"
    );
    assert!(text.contains("nothing changed"), "{text}");
    assert!(text.contains("users.json:3: not valid JSON"), "{text}");

    // Nothing readable at all is the one failure.
    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, "not json\n").expect("write");
    let out = meet(
        &data,
        &[
            "admin",
            "--config",
            &config,
            "import",
            &empty.display().to_string(),
        ],
        None,
    );
    assert!(!out.status.success());

    let server = Process::serve_with(&data, &s3_env);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let base = server.addr.clone();
    let admin = token(&http, &base, "principal", "principal-pass").await;
    let teacher = token(&http, &base, "teacher1", "teacher-pass").await;
    let student = token(&http, &base, "stud.one", "student-pass").await;
    let kid = token(&http, &base, "mapped.kid", "kid-pass").await;
    assert_eq!(
        login(&http, &base, "teacher1", "wrong-pass")
            .await
            .status()
            .as_u16(),
        401
    );
    // A disabled account: the right password, but no login.
    assert_eq!(
        login(&http, &base, "retired", "retired-pass")
            .await
            .status()
            .as_u16(),
        403
    );

    // The students belong to their host, the new id included.
    let r: Value = get(&http, format!("{base}/api/host/students"), &teacher)
        .await
        .json()
        .await
        .expect("json");
    let mut ids: Vec<&str> = r["data"]["students"]
        .as_array()
        .expect("students")
        .iter()
        .map(|s| s["_id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut want = vec![STUDENT, kid_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);

    // Meetings are history: the ended one as it was, the live one ended by the import.
    let r: Value = get(&http, format!("{base}/api/admin/meetings"), &admin)
        .await
        .json()
        .await
        .expect("json");
    let meetings = r["meetings"].as_array().expect("meetings");
    let by_id = |id: &str| {
        meetings
            .iter()
            .find(|m| m["_id"] == id)
            .unwrap_or_else(|| panic!("{id} in {meetings:?}"))
    };
    assert_eq!(by_id(ENDED)["status"], "ended");
    assert_eq!(by_id(ENDED)["endReason"], "host_ended");
    assert_eq!(by_id(ENDED)["endTime"], "2025-02-01T11:00:00Z");
    assert_eq!(by_id(LIVE)["status"], "ended");
    assert_eq!(by_id(LIVE)["endReason"], "admin_ended");
    assert_eq!(meetings.len(), 2);

    // Recordings: the student hears the shared one; the private one is the mapped student's.
    let r: Value = get(&http, format!("{base}/api/student/recordings"), &student)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(r["recordings"][0]["_id"], SHARED_REC, "{r}");
    assert_eq!(r["recordings"][0]["duration"], 1800.0);
    assert_eq!(r["recordings"][0]["size"], 12);
    let r: Value = get(
        &http,
        format!("{base}/api/student/recordings/private"),
        &kid,
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(r["recordings"][0]["_id"], PRIVATE_REC, "{r}");
    assert_eq!(r["recordings"][0]["studentId"], kid_id.as_str());
    // Playback presigns the original's key in the configured bucket.
    for (id, who, bytes) in [
        (SHARED_REC, &student, &b"webm-shared!"[..]),
        (PRIVATE_REC, &kid, &b"webm-pv"[..]),
    ] {
        let r = get(&http, format!("{base}/api/recordings/{id}/audio"), who).await;
        assert!(r.status().is_redirection(), "{}", r.status());
        let url = r.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let audio = reqwest::get(url).await.expect("presigned");
        assert!(audio.status().is_success(), "{}", audio.status());
        assert_eq!(&audio.bytes().await.expect("bytes")[..], bytes);
    }

    // An import while the server runs goes through the control socket: still nothing new.
    let live = import_json(&data, &["--config", &config], &files);
    assert_eq!(live["imported"], none(), "{live:#}");
    assert_eq!(live["alreadyThere"], counts(1, 2, 2, 2, 2));
    assert!(server.terminate().success());

    // The logins replaced the bcrypt hashes with argon2id; the disabled account never logged in.
    {
        let store = meet::store::Store::open(&meet::config::DatabaseConfig {
            url: format!("surrealkv://{}", data.join("db").display()),
            namespace: "meet".into(),
            database: "meet".into(),
            credentials: None,
        })
        .await
        .expect("open the stopped server's database");
        for name in ["principal", "teacher1", "stud.one", "mapped.kid"] {
            let row = store.user_by_name(name).await.expect("read").expect("user");
            assert!(
                row.password_hash.starts_with("$argon2id$"),
                "{name}: {}",
                row.password_hash
            );
        }
        let retired = store
            .user_by_name("retired")
            .await
            .expect("read")
            .expect("user");
        assert!(
            retired.password_hash.starts_with("$2b$"),
            "{}",
            retired.password_hash
        );
        assert!(!retired.is_active);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // And the old passwords still work, now against argon2id.
    let server = Process::serve_with(&data, &s3_env);
    token(&http, &server.addr, "teacher1", "teacher-pass").await;
    assert!(server.terminate().success());
}

#[tokio::test]
async fn an_import_reaches_a_running_server_through_its_control_socket() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = data_dir(&dir);
    let files = write_export(dir.path());
    let server = Process::serve(&data);
    let http = reqwest::Client::new();
    // meet's own admin exists first: the original's `principal` comes in beside it.
    token(&http, &server.addr, "admin", crate::smoke::ADMIN_PASSWORD).await;

    let dry = import_json(&data, &["--dry-run"], &files);
    check_first_report(&dry, true);
    assert_eq!(
        login(&http, &server.addr, "teacher1", "teacher-pass")
            .await
            .status()
            .as_u16(),
        401,
        "a dry run imports nothing"
    );
    let first = import_json(&data, &[], &files);
    check_first_report(&first, false);
    let teacher = token(&http, &server.addr, "teacher1", "teacher-pass").await;
    token(&http, &server.addr, "principal", "principal-pass").await;
    let r: Value = get(
        &http,
        format!("{}/api/host/meetings", server.addr),
        &teacher,
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(r["count"], 2, "{r}");

    let again = import_json(&data, &[], &files);
    assert_eq!(again["imported"], none());
    assert_eq!(again["alreadyThere"], counts(1, 2, 2, 2, 2));
    assert!(server.terminate().success());
}
