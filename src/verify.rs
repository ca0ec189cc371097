//! `waybill verify`: walk the log, report the first broken link.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;
use waybill_ledger::verify::foreign_text;
use waybill_ledger::{verify_log, ProjectName};

use crate::cli::VerifyArgs;
use crate::client::Output;
use crate::config::FileConfig;
use crate::open::open_existing;

/// Exit code when a chain is broken (2 is reserved for errors).
const BROKEN: u8 = 1;

/// `output`: a report for people, or one JSON object (`--output json`).
pub async fn run(args: VerifyArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let output = args.output;
    let project = args.project.map(ProjectName::log_project).transpose()?;
    let log = open_existing(&args.log, file, None).await?;
    let started = Instant::now();
    // How far the walk got: a bar on a terminal, else a line every few
    // seconds (a job's log).
    let head = log.log().head().await?;
    let bar = crate::progress::terminal_bar(
        head.0,
        "verifying {bar:40} position {pos}/{len} ({per_sec}, eta {eta})",
    );
    let lines = bar.is_hidden();
    let mut last_line = Instant::now();
    let report = verify_log(&*log.log(), project.as_ref(), |position| {
        bar.set_position(position.0);
        if lines && last_line.elapsed().as_secs() >= 2 {
            last_line = Instant::now();
            eprintln!("verified up to position {} of {}...", position.0, head.0);
        }
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    log.close().await;
    if let Some(p) = project.as_ref().filter(|_| report.events == 0) {
        // Nothing verified is not a clean chain: most likely a mistyped name.
        anyhow::bail!("project {p} has no events in this log: nothing to verify");
    }
    let elapsed = started.elapsed();
    let code = match report.is_clean() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(BROKEN),
    };
    // Written, not printed, so that a reader that goes away (`| head`)
    // ends it quietly instead of a panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        Output::Json => {
            let projects: Vec<_> = report
                .heads
                .iter()
                .map(|(project, head)| {
                    json!({
                        "project": project,
                        "events": head.seq,
                        "head_position": head.position.0,
                        "head_hash": head.hash.to_string(),
                    })
                })
                .collect();
            let first_break = report.first_break.as_ref().map(|b| {
                json!({
                    "position": b.position.0,
                    "project": b.project,
                    "message": b.to_string(),
                })
            });
            let foreign: Vec<_> = report
                .foreign
                .iter()
                .map(|f| {
                    json!({
                        "position": f.position.0,
                        "subject": f.subject,
                        "message": foreign_text(f),
                    })
                })
                .collect();
            let line = json!({
                "ok": report.is_clean(),
                "events": report.events,
                "seconds": elapsed.as_secs_f64(),
                "projects": projects,
                "first_break": first_break,
                "foreign": foreign,
                "foreign_count": report.foreign_count,
            });
            writeln!(out, "{line}")?;
        }
        Output::Text => match &report.first_break {
            None => {
                let verdict = if report.is_clean() {
                    "ok"
                } else {
                    "chains intact"
                };
                writeln!(
                    out,
                    "{verdict}: {} events in {} project(s) verified in {elapsed:.1?}",
                    report.events,
                    report.heads.len(),
                )?;
                for (project, head) in &report.heads {
                    writeln!(
                        out,
                        "  {project}: {} events, head at position {} hash {}",
                        head.seq, head.position, head.hash
                    )?;
                }
            }
            Some(broken) => {
                writeln!(out, "BROKEN: {broken}")?;
                writeln!(out, "  {} events verified before the break", report.events)?;
            }
        },
    }
    if output == Output::Text && report.foreign_count > 0 {
        for f in &report.foreign {
            writeln!(out, "FOREIGN: {}", foreign_text(f))?;
        }
        let unnamed = report.foreign_count - report.foreign.len() as u64;
        if unnamed > 0 {
            writeln!(out, "  and {unnamed} more such messages")?;
        }
        writeln!(
            out,
            "  {} message(s) on the log were published by something other than Waybill. \
             They are in no chain and Waybill skips them, but whatever published them \
             may publish to Waybill's subjects: allow only Waybill's NATS user to publish \
             to them (docs/operations.md, \"Who may publish to the stream\").",
            report.foreign_count
        )?;
    }
    out.flush()?;
    Ok(code)
}
