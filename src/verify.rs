//! `waybill verify`: walk the log, report the first broken link.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use waybill_ledger::{verify_log, ProjectName};

use crate::cli::VerifyArgs;
use crate::config::FileConfig;
use crate::open::open_existing;

/// Exit code when a chain is broken (2 is reserved for errors).
const BROKEN: u8 = 1;

pub async fn run(args: VerifyArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let project = args.project.map(ProjectName::log_project).transpose()?;
    let log = open_existing(&args.log, file, None).await?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let report = verify_log(&*log.log(), project.as_ref(), |checked| {
        if last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!("verified {checked} events...");
        }
    })
    .await?;
    log.close().await;
    if let Some(p) = project.as_ref().filter(|_| report.events == 0) {
        // Nothing verified is not a clean chain: most likely a mistyped name.
        anyhow::bail!("project {p} has no events in this log: nothing to verify");
    }
    match report.first_break {
        None => {
            // One line per project: written, not printed, so that a reader
            // that goes away (`| head`) ends it quietly instead of a panic.
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            writeln!(
                out,
                "ok: {} events in {} project(s) verified in {:.1?}",
                report.events,
                report.heads.len(),
                started.elapsed()
            )?;
            for (project, head) in &report.heads {
                writeln!(
                    out,
                    "  {project}: {} events, head at position {} hash {}",
                    head.seq, head.position, head.hash
                )?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Some(broken) => {
            println!("BROKEN: {broken}");
            println!("  {} events verified before the break", report.events);
            Ok(ExitCode::from(BROKEN))
        }
    }
}
