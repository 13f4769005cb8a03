//! `meet admin import FILE...`: reads the export files here (with the operator's permissions),
//! sends them to the running server or the database, shows a progress bar and the summary.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::config::Config;
use crate::control::proto::Request;
use crate::jobs::Progress;
use crate::service::{Counts, ImportFile, ImportReport};

struct Bar(ProgressBar);

impl Progress for Bar {
    fn total(&self, n: u64) {
        self.0.set_length(n);
    }
    fn advance(&self) {
        self.0.inc(1);
    }
}

pub async fn run(
    config: &Config,
    paths: &[PathBuf],
    dry_run: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read(path).map(String::from_utf8) {
            Ok(Ok(content)) => files.push(ImportFile { name, content }),
            Ok(Err(_)) => unreadable.push((name, "not UTF-8 text".to_owned())),
            Err(e) => unreadable.push((name, e.to_string())),
        }
    }
    for (name, reason) in &unreadable {
        eprintln!("meet admin import: cannot read {name}: {reason}");
    }
    if files.is_empty() {
        eprintln!("meet admin import: no file could be read; nothing imported");
        return Ok(ExitCode::FAILURE);
    }
    let target = match super::target(config, false).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("meet admin import: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bar = ProgressBar::new(0).with_style(style).with_prefix("import");
    if json {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    let result = target
        .run(Request::Import { files, dry_run }, &Bar(bar.clone()))
        .await;
    target.close().await;
    let report: ImportReport = match result {
        Ok(v) => {
            bar.finish_and_clear();
            serde_json::from_value(v)?
        }
        Err(e) => {
            bar.abandon_with_message(format!("error: {e}"));
            eprintln!("meet admin import: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if json {
        let mut out = serde_json::to_value(&report)?;
        if let Value::Object(map) = &mut out {
            let files: Vec<Value> = unreadable
                .iter()
                .map(|(file, reason)| json!({"file": file, "reason": reason}))
                .collect();
            map.insert("unreadableFiles".into(), Value::Array(files));
        }
        super::print_json(&out)?;
    } else {
        let mut out = String::new();
        summary(&mut out, &report)?;
        super::print_out(out)?;
    }
    // Skipped documents are reported, not failures; reading nothing at all is.
    Ok(if report.documents == 0 {
        eprintln!("meet admin import: no document could be read");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn counts(c: &Counts) -> String {
    format!(
        "{} admin(s), {} host(s), {} student(s), {} meeting(s), {} recording(s)",
        c.admins, c.hosts, c.students, c.meetings, c.recordings
    )
}

fn summary(out: &mut String, r: &ImportReport) -> std::fmt::Result {
    let verb = if r.dry_run {
        "would import"
    } else {
        "imported"
    };
    writeln!(
        out,
        "read {} document(s) from {} file(s)",
        r.documents, r.files
    )?;
    writeln!(out, "{verb}: {}", counts(&r.imported))?;
    if r.already_there.total() > 0 {
        writeln!(out, "already there: {}", counts(&r.already_there))?;
    }
    if !r.mapped_ids.is_empty() {
        writeln!(out, "ids meet could not keep ({}):", r.mapped_ids.len())?;
        for m in &r.mapped_ids {
            writeln!(out, "  {} {} -> {}", m.collection, m.original, m.meet)?;
        }
    }
    if !r.skipped.is_empty() {
        writeln!(out, "skipped {} document(s):", r.skipped.len())?;
        for s in &r.skipped {
            match &s.document {
                Some(doc) => writeln!(out, "  {}: {doc}: {}", s.at, s.reason)?,
                None => writeln!(out, "  {}: {}", s.at, s.reason)?,
            }
        }
    }
    if r.imported.total() == 0 && r.already_there.total() > 0 {
        let skipped = if r.skipped.is_empty() {
            ""
        } else {
            " (the documents above are skipped again)"
        };
        writeln!(
            out,
            "nothing changed: everything that can be imported was already there{skipped}"
        )?;
    } else if r.dry_run {
        writeln!(out, "dry run: nothing was changed")?;
    }
    Ok(())
}
