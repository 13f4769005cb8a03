//! The OpenAPI description (docs/openapi.json, served at `/api/openapi.json`): it names every
//! route the server has and no other, and schemathesis, fuzzing the live server from it as
//! every kind of caller, finds no 5xx, no answer outside it and no crash.

use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::Value;

use crate::common::TestServer;

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|part| {
            if part.starts_with('{') {
                "x0000000000000000001"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the concrete `path` is one of `template`'s.
fn matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// docs/openapi.json.
pub fn description() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json")).expect("json")
}

/// The documented operations, as (method, path template, whether it takes a token).
pub fn operations() -> Vec<(Method, String, bool)> {
    let spec = description();
    let open = |op: &Value| op["security"].as_array().is_some_and(Vec::is_empty);
    let mut ops = Vec::new();
    for (template, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                ops.push((m, template.clone(), !open(op)));
            }
        }
    }
    ops
}

/// The documented template that `method path` is one of, if any.
pub fn documented(method: &Method, path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or(path);
    let ops = operations();
    // A literal segment wins over a parameter (`/api/meetings/create` before `{meetingId}`).
    let mut found: Vec<&String> = ops
        .iter()
        .filter(|(m, t, _)| m == method && matches(t, path))
        .map(|(_, t, _)| t)
        .collect();
    found.sort_by_key(|t| t.matches('{').count());
    found.first().map(|t| (*t).clone())
}

/// The description as the server serves it.
async fn served(t: &TestServer) -> Value {
    let r = t.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.body["openapi"], "3.1.0", "{}", r.body);
    r.body
}

#[tokio::test]
async fn the_description_names_every_route_and_method_and_no_other() {
    let t = TestServer::start_with(|c| c.http.requests_per_window = 100_000).await;
    let spec = served(&t).await;
    assert_eq!(spec, description(), "the server serves docs/openapi.json");
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() > 40, "{} paths", paths.len());
    let mut operations = 0;
    for (template, item) in paths {
        let path = concrete(template);
        if item.get("get").is_some() {
            // RFC 9110: every GET route answers HEAD with the GET's status and headers, no body.
            let get = t.call(Method::GET, &path, None, None).await;
            let head = t.call(Method::HEAD, &path, None, None).await;
            assert_eq!(head.status, get.status, "HEAD {template}");
            assert_eq!(head.body, Value::Null, "HEAD {template}: a body");
            assert_eq!(
                head.headers.get("content-type"),
                get.headers.get("content-type"),
                "HEAD {template}"
            );
        }
        for method in METHODS {
            let documented = item.get(method).is_some();
            let r = t
                .call(
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("method"),
                    &path,
                    None,
                    None,
                )
                .await;
            let status = r.status.as_u16();
            let unknown = status == 404 && r.body["message"] == "No such resource";
            if documented {
                operations += 1;
                assert!(
                    !unknown && status != 405,
                    "{method} {template} is documented, the server answers {status} {}",
                    r.body
                );
                let op = &item[method];
                assert!(op["operationId"].is_string(), "{method} {template}");
                let responses = op["responses"].as_object().expect("responses");
                assert!(
                    responses.contains_key(&status.to_string()),
                    "{method} {template}: {status} is not among its documented answers {:?}",
                    responses.keys().collect::<Vec<_>>()
                );
            } else if !paths
                .iter()
                .any(|(other, item)| item.get(method).is_some() && matches(other, &path))
            {
                // (`GET /api/meetings/create` is `GET /api/meetings/{meetingId}`.)
                assert!(
                    unknown || status == 405,
                    "{method} {template} is not documented, the server answers {status} {}",
                    r.body
                );
                if status == 405 {
                    // HEAD wherever GET is.
                    let want: Vec<String> = METHODS
                        .iter()
                        .filter(|m| item.get(**m).is_some())
                        .map(|m| match *m {
                            "get" => "GET, HEAD".to_owned(),
                            m => m.to_uppercase(),
                        })
                        .collect();
                    assert_eq!(
                        r.headers.get("allow").and_then(|v| v.to_str().ok()),
                        Some(want.join(", ").as_str()),
                        "{method} {template}: the 405's Allow"
                    );
                }
            }
        }
    }
    eprintln!("openapi: {} paths, {operations} operations", paths.len());
}

/// Runs schemathesis against the live server as `who` (`None`: anonymous); its JUnit report's
/// counts (test cases, failures, errors).
fn schemathesis(t: &TestServer, who: &str, token: Option<&str>, out: &Path) -> (u64, u64, u64) {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv/bin/schemathesis");
    let report = out.join(format!("{who}.xml"));
    let examples = std::env::var("MEET_FUZZ_EXAMPLES").unwrap_or_else(|_| "20".into());
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/schemathesis.toml");
    let mut cmd = Command::new(&venv);
    // Run where its files (replay cases, caches) go away with the test.
    cmd.current_dir(out)
        .arg("--config-file")
        .arg(config)
        .arg("run")
        .arg(t.url("/api/openapi.json"))
        .args(["--checks", "all"])
        .args(["--max-examples", &examples])
        .args(["--seed", "1"])
        .args(["--workers", "1"])
        .args(["--generation-database", "none"])
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(&report)
        .args(["--no-color", "--output-truncate", "true"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = cmd
        .output()
        .expect("schemathesis runs (tests/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis as {who}:\n{text}");
    let xml = std::fs::read_to_string(&report).expect("junit report");
    let attr = |name: &str| {
        xml.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|v| v.split('"').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let counts = (attr("tests"), attr("failures"), attr("errors"));
    let requests = text
        .lines()
        .find(|l| l.contains("test cases generated") || l.contains("API probes"))
        .unwrap_or("")
        .trim()
        .to_owned();
    eprintln!("schemathesis as {who}: {counts:?} (tests, failures, errors); {requests}");
    counts
}

/// The server's count of the requests it answered, every status class.
async fn requests(t: &TestServer) -> f64 {
    let text = crate::common::metrics_text(&t.base).await.expect("metrics");
    ["1xx", "2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|class| {
            crate::common::metric_in(
                &text,
                &format!("meet_http_requests_total{{class=\"{class}\"}}"),
            )
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_error_outside_the_description_for_any_caller() {
    let t = TestServer::start_with(|c| {
        c.http.requests_per_window = 1_000_000;
        c.http.login_failures = 1_000_000;
    })
    .await;
    let (_, host) = t.host("hosta").await;
    let (_, student) = t.student(&host, "studa").await;
    t.meeting(&host, "Algebra").await;
    let admin = t.admin.clone();
    let out = tempfile::tempdir().expect("tempdir");
    for (who, token) in [
        ("anonymous", None),
        ("admin", Some(admin.as_str())),
        ("host", Some(host.as_str())),
        ("student", Some(student.as_str())),
    ] {
        let before = requests(&t).await;
        let (tests, failures, errors) = schemathesis(&t, who, token, out.path());
        assert!(tests > 0, "schemathesis ran nothing as {who}");
        assert_eq!((failures, errors), (0, 0), "as {who}");
        let answered = requests(&t).await;
        let fivexx = t.metric("meet_http_requests_total{class=\"5xx\"}").await;
        eprintln!(
            "schemathesis as {who}: {} requests answered by the server, {fivexx} 5xx in all",
            answered - before
        );
        assert_eq!(fivexx, 0.0, "as {who}");
    }
}
