//! `meet admin`: hosts, students and meetings, as tables or JSON.

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::cli::{
    AdminArgs, AdminCommand, HostCommand, MeetingCommand, RecordingCommand, StudentCommand,
};
use crate::control::proto::Request;
use crate::jobs::Silent;

pub async fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    crate::telemetry::init_minimal();
    let config = super::load_config(&args.common)?;
    let mut generated = None;
    let request = match args.what {
        AdminCommand::Host(HostCommand::Add {
            name,
            password_stdin,
        }) => {
            let password = password(password_stdin, &mut generated)?;
            Request::HostAdd {
                username: name,
                password,
            }
        }
        AdminCommand::Host(HostCommand::List) => Request::HostList,
        AdminCommand::Host(HostCommand::Disable { name }) => Request::HostSetActive {
            host: name,
            active: false,
        },
        AdminCommand::Host(HostCommand::Enable { name }) => Request::HostSetActive {
            host: name,
            active: true,
        },
        AdminCommand::Host(HostCommand::Passwd {
            name,
            password_stdin,
        }) => {
            let password = password(password_stdin, &mut generated)?;
            Request::HostPasswd {
                host: name,
                password,
            }
        }
        AdminCommand::Host(HostCommand::Remove { name }) => Request::HostRemove { host: name },
        AdminCommand::Student(StudentCommand::List { host }) => Request::StudentList { host },
        AdminCommand::Meeting(MeetingCommand::List { status }) => Request::MeetingList { status },
        AdminCommand::Meeting(MeetingCommand::End { id }) => Request::MeetingEnd { id },
        AdminCommand::Recording(RecordingCommand::List { meeting }) => {
            Request::RecordingList { meeting }
        }
        AdminCommand::Recording(RecordingCommand::Delete { id }) => Request::RecordingDelete { id },
        AdminCommand::Backup { file } => return backup(&config, &file, args.json).await,
        AdminCommand::Restore { file, replace } => {
            let content = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            Request::Restore { content, replace }
        }
        AdminCommand::Import { files, dry_run } => {
            return super::import::run(&config, &files, dry_run, args.json).await;
        }
    };
    let target = if matches!(request, Request::Restore { .. }) {
        super::target(&config, true).await
    } else {
        super::target(&config, false).await
    };
    let result = match target {
        Ok(target) => {
            let r = target.run(request.clone(), &Silent).await;
            target.close().await;
            r
        }
        Err(e) => Err(e),
    };
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("meet admin: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        let mut value = value;
        if let (Some(p), Value::Object(map)) = (&generated, &mut value) {
            map.insert("generatedPassword".into(), Value::String(p.clone()));
        }
        super::print_json(&value)?;
    } else {
        let mut out = String::new();
        human(&mut out, &request, &value)?;
        if let Some(p) = generated {
            writeln!(out, "password: {p}\n(shown only this once)")?;
        }
        super::print_out(out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `meet admin backup FILE`: the database from the server (or the data dir), written to FILE
/// readable by its owner only (it holds the password hashes).
async fn backup(
    config: &crate::config::Config,
    file: &std::path::Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let result = match super::target(config, false).await {
        Ok(target) => {
            let r = target.run(Request::Backup, &Silent).await;
            target.close().await;
            r
        }
        Err(e) => Err(e),
    };
    let value = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("meet admin: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let content = value["content"].as_str().unwrap_or_default();
    let mut file_out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("writing {}", file.display()))?;
    file_out.write_all(content.as_bytes())?;
    file_out.sync_all()?;
    let mut out = String::new();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"file": file, "bytes": content.len()})
        )?;
    } else {
        writeln!(
            out,
            "wrote {} bytes to {} (accounts, meetings and recording records; the recordings' audio stays in the storage)",
            content.len(),
            file.display()
        )?;
    }
    super::print_out(out)?;
    Ok(ExitCode::SUCCESS)
}

/// From the first line of stdin, or generated.
fn password(from_stdin: bool, generated: &mut Option<String>) -> anyhow::Result<String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let p = line.trim_end_matches(['\r', '\n']).to_owned();
        if p.is_empty() {
            bail!("no password on standard input");
        }
        Ok(p)
    } else {
        let p = crate::service::new_id();
        *generated = Some(p.clone());
        Ok(p)
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// The answer as a table or a sentence.
fn human(out: &mut String, request: &Request, v: &Value) -> std::fmt::Result {
    match request {
        Request::HostList | Request::StudentList { .. } => {
            let rows = v.as_array().cloned().unwrap_or_default();
            writeln!(
                out,
                "{:<22} {:<32} {:<8} {:<22} CREATED",
                "ID", "USERNAME", "ACTIVE", "HOST"
            )?;
            for u in &rows {
                let active = u.get("isActive").and_then(Value::as_bool).unwrap_or(false);
                writeln!(
                    out,
                    "{:<22} {:<32} {:<8} {:<22} {}",
                    s(u, "_id"),
                    s(u, "username"),
                    active,
                    s(u, "hostId"),
                    s(u, "createdAt")
                )?;
            }
            writeln!(out, "{} account(s)", rows.len())?;
        }
        Request::MeetingList { .. } => {
            let rows = v.as_array().cloned().unwrap_or_default();
            writeln!(
                out,
                "{:<22} {:<10} {:<10} {:<6} {:<16} TOPIC",
                "ID", "STATUS", "MODE", "PEOPLE", "HOST"
            )?;
            for m in &rows {
                let n = m
                    .get("participantCount")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                writeln!(
                    out,
                    "{:<22} {:<10} {:<10} {:<6} {:<16} {}",
                    s(m, "_id"),
                    s(m, "status"),
                    s(m, "mode"),
                    n,
                    s(m, "hostName"),
                    s(m, "topic")
                )?;
            }
            writeln!(out, "{} meeting(s)", rows.len())?;
        }
        Request::RecordingList { .. } => {
            let rows = v.as_array().cloned().unwrap_or_default();
            writeln!(
                out,
                "{:<22} {:<10} {:<8} {:>9} {:>10} {:<22} {:<24} TOPIC",
                "ID", "STATUS", "PRIVATE", "SECONDS", "BYTES", "MEETING", "START"
            )?;
            for r in &rows {
                let private = r.get("isPrivate").and_then(Value::as_bool).unwrap_or(false);
                let secs = r.get("duration").and_then(Value::as_f64).unwrap_or(0.0);
                let size = r.get("size").and_then(Value::as_i64).unwrap_or(0);
                writeln!(
                    out,
                    "{:<22} {:<10} {:<8} {:>9.1} {:>10} {:<22} {:<24} {}",
                    s(r, "_id"),
                    s(r, "status"),
                    private,
                    secs,
                    size,
                    s(r, "meetingId"),
                    s(r, "startTime"),
                    s(r, "meetingTopic")
                )?;
            }
            writeln!(out, "{} recording(s)", rows.len())?;
        }
        Request::RecordingDelete { id } => writeln!(out, "deleted recording {id} and its files")?,
        Request::Restore { .. } => {
            let st = &v["stats"];
            writeln!(
                out,
                "restored {} bytes: {} host(s), {} student(s), {} meeting(s), {} recording record(s)",
                v["bytes"], st["hosts"], st["students"], st["meetings"]["total"], st["recordings"]
            )?;
            writeln!(
                out,
                "(the recordings' audio is not in a backup: it stays in the storage)"
            )?;
        }
        Request::MeetingEnd { .. } => writeln!(
            out,
            "meeting {} is {} ({})",
            s(v, "_id"),
            s(v, "status"),
            s(v, "endReason")
        )?,
        Request::HostRemove { host } => writeln!(
            out,
            "removed host {host} with its students, meetings and recordings"
        )?,
        Request::HostAdd { .. } | Request::HostSetActive { .. } | Request::HostPasswd { .. } => {
            let active = v.get("isActive").and_then(Value::as_bool).unwrap_or(false);
            writeln!(
                out,
                "host {} ({}) active: {active}",
                s(v, "username"),
                s(v, "_id")
            )?;
        }
        _ => writeln!(out, "{v}")?,
    }
    Ok(())
}
