//! Running a command verb: the request it makes, the reply and the
//! promotion's standing printed, `--wait` followed.

use std::collections::BTreeMap;
use std::process::ExitCode;

use waybill_commands::pipeline_file::parse_pipeline;
use waybill_proto::v1 as pb;

use waybill_proto::v1::command_service_client::CommandServiceClient;
use waybill_proto::v1::query_service_client::QueryServiceClient;

use super::args::{
    ClientCommand, DecisionArgs, DiscoverArgs, PromoteArgs, ReportArgs, RollbackArgs,
};
use crate::client::queries::rpc::{refused, UNREACHABLE};
use crate::client::queries::with_project_hint;
use crate::client::wait;
use crate::client::{channel, ClientArgs, Output};

/// Exit code of a command the server refused (2 is for usage and connection errors).
const REFUSED: u8 = 1;

fn key(k: &Option<String>) -> String {
    k.clone().unwrap_or_default()
}

fn artifacts(a: &DiscoverArgs) -> anyhow::Result<Vec<pb::Artifact>> {
    use pb::artifact::Kind;
    let mut out = Vec::new();
    for image in &a.image {
        let (rest, digest) = image.split_once('@').unwrap_or((image, ""));
        let (name, tag) = rest
            .rsplit_once(':')
            .filter(|(n, t)| !n.is_empty() && !t.contains('/'))
            .ok_or_else(|| anyhow::anyhow!("--image {image:?}: expected repo:tag[@digest]"))?;
        out.push(pb::Artifact {
            kind: Kind::Image as i32,
            name: name.into(),
            version: tag.into(),
            digest: digest.into(),
        });
    }
    for git in &a.git {
        let (url, commit) = git
            .rsplit_once('@')
            .ok_or_else(|| anyhow::anyhow!("--git {git:?}: expected url@commit"))?;
        out.push(pb::Artifact {
            kind: Kind::Git as i32,
            name: url.into(),
            version: String::new(),
            digest: commit.into(),
        });
    }
    for chart in &a.chart {
        let (name, version) = chart
            .rsplit_once(':')
            .ok_or_else(|| anyhow::anyhow!("--chart {chart:?}: expected name:version"))?;
        out.push(pb::Artifact {
            kind: Kind::Chart as i32,
            name: name.into(),
            version: version.into(),
            digest: String::new(),
        });
    }
    if out.is_empty() {
        anyhow::bail!("give at least one --image, --git or --chart");
    }
    Ok(out)
}

fn metrics(items: &[String]) -> anyhow::Result<BTreeMap<String, f64>> {
    items
        .iter()
        .map(|m| {
            let (k, v) = m
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--metric {m:?}: expected name=value"))?;
            let v: f64 = v
                .parse()
                .map_err(|_| anyhow::anyhow!("--metric {m:?}: not a number"))?;
            Ok((k.to_string(), v))
        })
        .collect()
}

/// Runs one command verb.
pub async fn run(client: &ClientArgs, mut command: ClientCommand) -> anyhow::Result<ExitCode> {
    // Validate a pipeline file locally first: errors name file and line, and
    // nothing reaches the server.
    let mut pipeline_text = None;
    // With --dry-run, the definition, to say what it changes.
    let mut planned = None;
    // Without it, say what the pipeline applied changed.
    let applying = matches!(&command, ClientCommand::Apply(a) if !a.dry_run);
    if let ClientCommand::Apply(a) = &command {
        let text = std::fs::read_to_string(&a.file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.file.display()))?;
        match parse_pipeline(&a.file.display().to_string(), &text) {
            Err(errors) => {
                eprintln!("{errors}");
                return Ok(ExitCode::from(REFUSED));
            }
            Ok(definition) => planned = a.dry_run.then_some(definition),
        }
        pipeline_text = Some(text);
    }
    // Without --idempotency-key the CLI makes one up, so that a command
    // whose outcome it never learns (the log or the connection failed under
    // it: it may have been recorded all the same) can be sent again safely.
    // Not for a report: without a key the server makes one of the
    // promotion and the outcome, so that the same report sent again (a job
    // retried) is answered with the first.
    let made_up_key = match &mut command {
        ClientCommand::Report(_) => None,
        command => {
            let key = command.idempotency_key_mut();
            match key {
                Some(_) => None,
                None => {
                    let made = uuid::Uuid::now_v7().to_string();
                    *key = Some(made.clone());
                    Some(made)
                }
            }
        }
    };
    let waiting = match &command {
        ClientCommand::Promote(PromoteArgs {
            common, request, ..
        })
        | ClientCommand::Rollback(RollbackArgs {
            common, request, ..
        }) => request
            .wait
            .wait
            .then(|| (common.project.clone(), request.wait.timeout)),
        _ => None,
    };
    let project = command.project().map(str::to_string);
    let (channel, bearer) = channel(client).await?;
    let mut svc = CommandServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let mut queries = match &client.query_server {
        Some(server) => {
            let reads = ClientArgs {
                server: server.clone(),
                ..client.clone()
            };
            let (channel, bearer) = crate::client::lazy_channel(&reads)?;
            QueryServiceClient::with_interceptor(channel, bearer)
        }
        None => QueryServiceClient::with_interceptor(channel, bearer),
    };
    // A report or a decision may name the freight and the stage instead of
    // the promotion.
    let named = match &mut command {
        ClientCommand::Report(a) => Some((&a.common.project, &mut a.named, true)),
        ClientCommand::Approve(a) | ClientCommand::Reject(a) | ClientCommand::Abort(a) => {
            Some((&a.common.project, &mut a.named, false))
        }
        _ => None,
    };
    if let Some((project, named, reported)) = named {
        if let (None, Some(stage), Some(freight)) = (&named.promotion, &named.stage, &named.freight)
        {
            use crate::client::outcome::aside;
            let found = if reported {
                aside(super::report::reported(
                    &mut queries,
                    project,
                    stage,
                    freight,
                ))
                .await
            } else {
                aside(super::report::open(&mut queries, project, stage, freight)).await
            };
            match found {
                Ok(id) => named.promotion = Some(id),
                Err(status) => return Ok(refused(client.output, &status)),
            }
        }
    }
    // The result a verification recorded: the CLI then says where the
    // stage's verification stands.
    let verified = match &command {
        ClientCommand::RecordVerification(a) => {
            Some((a.stage.clone(), a.freight.clone(), a.check.clone()))
        }
        _ => None,
    };
    // The promotion a decision is about (the reply names it for the others).
    let decided = match &command {
        ClientCommand::Approve(a) | ClientCommand::Reject(a) | ClientCommand::Abort(a) => {
            a.named.promotion.clone()
        }
        ClientCommand::Report(a) => a.named.promotion.clone(),
        _ => None,
    };
    let (what, result) = match command {
        ClientCommand::Apply(a) => {
            let req = pb::ApplyPipelineRequest {
                // The text validated above, not the file read again.
                yaml: pipeline_text.take().unwrap_or_default(),
                source_uri: a.file.display().to_string(),
                source_revision: a.revision.clone().unwrap_or_else(|| {
                    let found = super::git::revision_of(&a.file).unwrap_or_default();
                    if found.ends_with("-dirty") && client.output == Output::Text {
                        eprintln!(
                            "note: {} differs from its last commit; recording revision {found}",
                            a.file.display()
                        );
                    }
                    found
                }),
                validate_only: a.dry_run,
                idempotency_key: key(&a.idempotency_key),
            };
            (
                "pipeline applied".to_string(),
                svc.apply_pipeline(req).await,
            )
        }
        ClientCommand::Discover(a) => {
            let req = pb::RecordDiscoveryRequest {
                project: a.common.project.clone(),
                warehouse: a.warehouse.clone(),
                artifacts: artifacts(&a)?,
                alias: a.alias.clone(),
                idempotency_key: key(&a.common.idempotency_key),
            };
            let what = if req.alias.is_empty() {
                "freight recorded".to_string()
            } else {
                format!("freight {} recorded", req.alias)
            };
            (what, svc.record_discovery(req).await)
        }
        ClientCommand::RecordVerification(a) => {
            let req = pb::RecordVerificationRequest {
                project: a.common.project.clone(),
                freight: a.freight.clone(),
                stage: a.stage.clone(),
                check: a.check.clone(),
                passed: a.pass && !a.fail,
                metrics: metrics(&a.metric)?,
                evidence_url: a.evidence.clone(),
                details: a.details.clone(),
                idempotency_key: key(&a.common.idempotency_key),
            };
            let what = format!(
                "verification recorded ({} {} in {})",
                req.check,
                if req.passed { "passed" } else { "failed" },
                req.stage
            );
            (what, svc.record_verification(req).await)
        }
        ClientCommand::Promote(a) => {
            use pb::request_promotion_request::FreightSelector as S;
            let selector = match &a.freight {
                Some(f) => S::Freight(f.clone()),
                None => S::NewestAvailable(true),
            };
            let req = pb::RequestPromotionRequest {
                project: a.common.project.clone(),
                stage: a.stage.clone(),
                freight_selector: Some(selector),
                ticket: a.request.ticket.clone(),
                reason: a.request.reason.clone(),
                validate_only: a.request.dry_run,
                idempotency_key: key(&a.common.idempotency_key),
                warehouse: a.warehouse.clone().unwrap_or_default(),
            };
            (
                "promotion requested".to_string(),
                svc.request_promotion(req).await,
            )
        }
        ClientCommand::Approve(a) => (
            "promotion approved".to_string(),
            svc.approve_promotion(decision(&a)).await,
        ),
        ClientCommand::Reject(a) => (
            "promotion rejected".to_string(),
            svc.reject_promotion(decision(&a)).await,
        ),
        ClientCommand::Abort(a) => (
            "promotion aborted".to_string(),
            svc.abort_promotion(decision(&a)).await,
        ),
        ClientCommand::ApproveFreight(a) => {
            let req = pb::ApproveFreightRequest {
                project: a.common.project.clone(),
                freight: a.freight.clone(),
                stage: a.stage.clone(),
                reason: a.reason.clone(),
                ticket: a.ticket.clone(),
                idempotency_key: key(&a.common.idempotency_key),
            };
            (
                format!("freight approved for {} (EMERGENCY BYPASS)", req.stage),
                svc.approve_freight(req).await,
            )
        }
        ClientCommand::Rollback(a) => {
            let req = pb::RollbackRequest {
                project: a.common.project.clone(),
                stage: a.stage.clone(),
                ticket: a.request.ticket.clone(),
                reason: a.request.reason.clone(),
                validate_only: a.request.dry_run,
                idempotency_key: key(&a.common.idempotency_key),
                warehouse: a.warehouse.clone(),
            };
            ("rollback requested".to_string(), svc.rollback(req).await)
        }
        ClientCommand::Report(a) => {
            let (what, req) = report(&a);
            (what, svc.report_promotion_result(req).await)
        }
    };
    match result {
        Ok(reply) => {
            let reply = reply.into_inner();
            if let Some((stage, freight, check)) = &verified {
                crate::client::outcome::verification(
                    &mut queries,
                    client.output,
                    &what,
                    &reply,
                    stage,
                    freight,
                    check,
                )
                .await;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(definition) = &planned {
                return match crate::client::outcome::plan(
                    &mut queries,
                    client.output,
                    &reply,
                    definition,
                )
                .await
                {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(status) => {
                        eprintln!(
                            "error: the server would accept the pipeline, but what it changes \
                             cannot be shown: the query service answered {:?}: {}",
                            status.code(),
                            status.message()
                        );
                        Ok(ExitCode::from(UNREACHABLE))
                    }
                };
            }
            if applying && !reply.already_done {
                // What the pipeline applied changed, as its history entry
                // says (none when the read side cannot say).
                let changed = crate::client::queries::pipeline::changes_made(
                    &mut queries,
                    &reply.project,
                    reply.position,
                )
                .await;
                match client.output {
                    Output::Json => {
                        let mut v = crate::client::outcome::reply_json(&reply);
                        v["changes"] = serde_json::json!(changed);
                        outln!("{v}");
                    }
                    Output::Text => {
                        crate::client::outcome::print_reply(client.output, &what, &reply);
                        if let Some(lines) = changed {
                            outln!("changes:");
                            for line in lines {
                                outln!("  {line}");
                            }
                        }
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            crate::client::outcome::print_reply(client.output, &what, &reply);
            let Some((project, timeout)) = waiting else {
                // The reply's whole id, where the promotion was named by
                // the start of its id.
                let id = match reply.promotion_id.as_str() {
                    "" => decided.unwrap_or_default(),
                    whole => whole.to_string(),
                };
                if client.output != Output::Text || id.is_empty() {
                    // Nothing to say about a promotion: still wait (bounded)
                    // until the read models show the command, so that the
                    // next query (`waybill status` after `discover`, in a
                    // script) sees its effect. Quiet when they cannot say:
                    // the command itself succeeded.
                    crate::client::outcome::settle(&mut queries, &reply.project, reply.position)
                        .await;
                } else {
                    let project = &reply.project;
                    match crate::client::outcome::describe(
                        &mut queries,
                        project,
                        &id,
                        reply.position,
                    )
                    .await
                    {
                        Ok(Some(line)) => outln!("{line}"),
                        // Asked for by name, and down or hung: say why the
                        // line is missing.
                        Err(status)
                            if matches!(
                                status.code(),
                                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                            ) && client.query_server.is_some() =>
                        {
                            eprintln!(
                                "note: the queries process at {} cannot be reached ({}): \
                                 where the promotion stands is not shown",
                                client.query_server.as_deref().unwrap_or_default(),
                                status.message()
                            );
                        }
                        _ => {}
                    }
                }
                return Ok(ExitCode::SUCCESS);
            };
            let id = &reply.promotion_id;
            match wait::until_ended(&mut queries, &project, id, reply.position, timeout).await {
                Ok(ended) => Ok(ExitCode::from(wait::report(
                    client.output,
                    id,
                    ended.as_ref(),
                    timeout,
                ))),
                Err(status) => Ok(refused(client.output, &status)),
            }
        }
        Err(status) => {
            // A project without a pipeline: most likely a misspelled one.
            let status = match &project {
                Some(p)
                    if status
                        .message()
                        .contains(&format!("project {p:?} has no pipeline")) =>
                {
                    with_project_hint(&mut queries, status, p).await
                }
                _ => status,
            };
            let code = refused(client.output, &status);
            if let (Some(key), Output::Text) = (&made_up_key, client.output) {
                if outcome_unknown(&status) {
                    eprintln!(
                        "to try again safely, run the same command with --idempotency-key \
                         {key}: if this one was recorded after all, that returns it and records \
                         nothing"
                    );
                }
            }
            Ok(code)
        }
    }
}

/// Whether a command that failed with `status` may have been recorded all
/// the same: the log did not acknowledge it, or the call broke off.
fn outcome_unknown(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled
    ) && !status.message().contains("nothing was written")
}

fn decision(a: &DecisionArgs) -> pb::PromotionDecisionRequest {
    pb::PromotionDecisionRequest {
        project: a.common.project.clone(),
        promotion_id: a.named.promotion.clone().unwrap_or_default(),
        comment: a.comment.clone(),
        idempotency_key: key(&a.common.idempotency_key),
    }
}

/// What `report` says it recorded, and its request.
fn report(a: &ReportArgs) -> (String, pb::ReportPromotionResultRequest) {
    use pb::report_promotion_result_request::Result as R;
    let (result, what) = if a.succeeded {
        (R::Succeeded, "succeeded")
    } else if a.failed {
        (R::Failed, "failed")
    } else {
        (R::Started, "started")
    };
    (
        format!("promotion {what}"),
        pb::ReportPromotionResultRequest {
            project: a.common.project.clone(),
            promotion_id: a.named.promotion.clone().unwrap_or_default(),
            result: result as i32,
            details: a.details.clone(),
            idempotency_key: key(&a.common.idempotency_key),
        },
    )
}
