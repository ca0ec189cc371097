//! `--wait`: follow a promotion just requested until it ends, so that a CI
//! job can promote and learn the outcome in one step.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use tonic::{Code, Status};
use waybill_proto::v1 as pb;

use super::queries::rpc::Queries;
use super::Output;

/// Exit code when `--wait` gave up before the promotion ended.
pub const TIMED_OUT: u8 = 3;

/// Statuses a promotion ends in.
const ENDED: [&str; 4] = ["Succeeded", "Failed", "Aborted", "Rejected"];

/// How long a watch that broke off waits before it is opened again.
const RECONNECT: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Wait until the promotion ends; the exit code is 0 only if it
    /// succeeded (1 if it failed, was aborted or rejected, 3 on --timeout).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits (e.g. 90s, 10m, 1h).
    #[arg(
        long,
        value_parser = humantime::parse_duration,
        default_value = "30m",
        requires = "wait"
    )]
    pub timeout: Duration,
}

/// Follows promotion `id` of `project`, requested at `position`, until it
/// ends or `timeout` passes (`None`). Reads the query service: the promotion's
/// state once the read models reflect `position`, then again after each
/// event about it that `Watch` delivers.
pub async fn until_ended(
    queries: &mut Queries,
    project: &str,
    id: &str,
    position: u64,
    timeout: Duration,
) -> Result<Option<pb::Promotion>, Status> {
    match tokio::time::timeout(timeout, follow(queries, project, id, position)).await {
        Ok(result) => result.map(Some),
        Err(_) => Ok(None),
    }
}

async fn follow(
    queries: &mut Queries,
    project: &str,
    id: &str,
    position: u64,
) -> Result<pb::Promotion, Status> {
    let mut seen = position;
    let mut promotion = get(queries, project, id, seen).await?;
    while !ENDED.contains(&promotion.status.as_str()) {
        let watched = queries
            .watch(pb::WatchRequest {
                project: project.to_string(),
                from_position: seen + 1,
                ..Default::default()
            })
            .await;
        let mut watch = match watched {
            Ok(watch) => watch.into_inner(),
            // A server restarting: ask again (`--timeout` bounds it).
            Err(status) if status.code() == Code::Unavailable => {
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
            Err(status) => return Err(status),
        };
        loop {
            match watch.message().await {
                Ok(Some(entry)) => {
                    seen = entry.position;
                    if entry.promotion == id {
                        promotion = get(queries, project, id, seen).await?;
                        if ENDED.contains(&promotion.status.as_str()) {
                            return Ok(promotion);
                        }
                    }
                }
                // The server stopped or the connection broke: watch again
                // from the last entry seen (it misses nothing, repeats nothing).
                Ok(None) => break,
                Err(status) if matches!(status.code(), Code::Unavailable | Code::Unknown) => break,
                Err(status) => return Err(status),
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
    Ok(promotion)
}

/// The promotion as of `min_position` at least. Asked again while the read
/// models are behind (UNAVAILABLE: a server catching up); `--timeout` bounds it.
async fn get(
    queries: &mut Queries,
    project: &str,
    id: &str,
    min_position: u64,
) -> Result<pb::Promotion, Status> {
    let mut said = false;
    loop {
        let reply = queries
            .get_promotion(pb::GetPromotionRequest {
                project: project.to_string(),
                promotion_id: id.to_string(),
                min_position,
            })
            .await;
        match reply {
            Ok(reply) => {
                return reply
                    .into_inner()
                    .promotion
                    .ok_or_else(|| Status::internal("the server sent no promotion"))
            }
            Err(status) if status.code() == Code::Unavailable => {
                if !std::mem::replace(&mut said, true) {
                    eprintln!("waiting for the server: {}", status.message());
                }
                tokio::time::sleep(RECONNECT).await;
            }
            Err(status) => return Err(status),
        }
    }
}

/// Prints how the promotion ended and returns the exit code: 0 if it
/// succeeded, 1 if not, [`TIMED_OUT`] if it had not ended.
pub fn report(output: Output, id: &str, ended: Option<&pb::Promotion>, timeout: Duration) -> u8 {
    let code = match ended {
        Some(p) if p.status == "Succeeded" => 0,
        Some(_) => 1,
        None => TIMED_OUT,
    };
    match (output, ended) {
        (Output::Json, Some(p)) => outln!(
            "{}",
            json!({
                "promotion_id": p.id, "stage": p.stage, "freight": p.freight,
                "status": p.status, "details": p.details, "ended": true,
            })
        ),
        (Output::Json, None) => outln!(
            "{}",
            json!({ "promotion_id": id, "ended": false, "timeout_seconds": timeout.as_secs() })
        ),
        (Output::Text, Some(p)) => {
            let details = match p.details.as_str() {
                "" => String::new(),
                d => format!(": {d}"),
            };
            outln!("promotion {} into {}: {}{details}", p.id, p.stage, p.status);
        }
        (Output::Text, None) => eprintln!(
            "promotion {id} had not ended after {} (--timeout); it goes on without us",
            humantime::format_duration(timeout)
        ),
    }
    code
}
