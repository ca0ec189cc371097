//! Which promotion `waybill report -s STAGE --freight F` is about: a
//! deployment job that knows what it deployed where, not the promotion; and
//! which one `waybill approve | reject | abort -s STAGE --freight F` decide.

use chrono::DateTime;
use waybill_ledger::domain::PromotionStatus;
use waybill_proto::v1 as pb;

use crate::client::queries::rpc::Queries;

/// The promotion of `freight` into `stage` that waits for its executor
/// (authorized or running). When none does, the one whose outcome the
/// stage took last, if it is of `freight`: a retried job's report then goes
/// to the promotion its first attempt reported on, and the server answers
/// it as it answered the first (or says the promotion has ended otherwise).
/// NOT_FOUND if neither is.
pub(super) async fn reported(
    queries: &mut Queries,
    project: &str,
    stage: &str,
    freight: &str,
) -> Result<String, tonic::Status> {
    let (waiting, newest) = find(queries, project, stage, freight, |s| {
        matches!(s, PromotionStatus::Authorized | PromotionStatus::Running)
    })
    .await?;
    if let Some(p) = waiting {
        return Ok(p.id);
    }
    if let Some(p) = newest {
        let stage_now = queries
            .get_stage(pb::GetStageRequest {
                project: project.to_string(),
                stage: stage.to_string(),
                min_position: 0,
            })
            .await?
            .into_inner()
            .stage;
        let current = match stage_now {
            // A stage that runs freight of several warehouses: the outcome
            // that counts is the one of the freight's warehouse.
            Some(s) if s.runs.len() > 1 => {
                let warehouse = queries
                    .get_freight(pb::GetFreightRequest {
                        project: project.to_string(),
                        freight: p.freight.clone(),
                        min_position: 0,
                    })
                    .await?
                    .into_inner()
                    .freight
                    .map(|f| f.warehouse)
                    .unwrap_or_default();
                s.runs
                    .into_iter()
                    .find(|r| r.warehouse == warehouse)
                    .and_then(|r| r.current)
            }
            s => s.and_then(|s| s.current),
        };
        if last_outcome(&p, current.as_ref()) {
            return Ok(p.id);
        }
    }
    Err(tonic::Status::not_found(format!(
        "no promotion of {freight} into {stage} waits for a report (none is authorized or \
         running, and the stage's last outcome is another freight's): see `waybill promotions \
         -p {project} --stage {stage} --freight {freight}`"
    )))
}

/// The promotion of `freight` into `stage` that has not ended (requested,
/// authorized or running: a stage has at most one of each freight), for a
/// decision; NOT_FOUND naming where to look if none has.
pub(super) async fn open(
    queries: &mut Queries,
    project: &str,
    stage: &str,
    freight: &str,
) -> Result<String, tonic::Status> {
    if let (Some(p), _) = find(queries, project, stage, freight, PromotionStatus::is_active).await?
    {
        return Ok(p.id);
    }
    Err(tonic::Status::not_found(format!(
        "no promotion of {freight} into {stage} is open (requested, authorized or running): \
         see `waybill promotions -p {project} --stage {stage} --freight {freight}`"
    )))
}

/// The newest promotion of `freight` into `stage` whose status is `wanted`;
/// when none is, the newest of any status.
async fn find(
    queries: &mut Queries,
    project: &str,
    stage: &str,
    freight: &str,
    wanted: impl Fn(PromotionStatus) -> bool,
) -> Result<(Option<pb::Promotion>, Option<pb::Promotion>), tonic::Status> {
    let mut request = pb::ListPromotionsRequest {
        project: project.to_string(),
        stage: stage.to_string(),
        freight: freight.to_string(),
        newest_first: true,
        ..Default::default()
    };
    let mut newest = None;
    loop {
        let reply = queries.list_promotions(request.clone()).await?.into_inner();
        if let Some(p) = reply
            .promotions
            .iter()
            .find(|p| PromotionStatus::parse(&p.status).is_some_and(&wanted))
        {
            return Ok((Some(p.clone()), None));
        }
        if newest.is_none() {
            newest = reply.promotions.into_iter().next();
        }
        if reply.next_page_token.is_empty() {
            return Ok((None, newest));
        }
        request.page_token = reply.next_page_token;
    }
}

/// Whether `p` gave its stage, which runs `current`, the last outcome: the
/// stage runs what `p` promoted, or `p` failed (or was aborted) after the
/// stage's current freight arrived.
fn last_outcome(p: &pb::Promotion, current: Option<&pb::CurrentFreight>) -> bool {
    let Some(current) = current else {
        return is_unsuccessful(p);
    };
    if current.promotion == p.id {
        return true;
    }
    let time = |t: &str| DateTime::parse_from_rfc3339(t).ok();
    is_unsuccessful(p)
        && matches!(
            (time(&p.updated_at), time(&current.since)),
            (Some(ended), Some(since)) if ended >= since
        )
}

fn is_unsuccessful(p: &pb::Promotion) -> bool {
    matches!(
        PromotionStatus::parse(&p.status),
        Some(PromotionStatus::Failed | PromotionStatus::Aborted)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn promotion(id: &str, status: &str, updated_at: &str) -> pb::Promotion {
        pb::Promotion {
            id: id.into(),
            status: status.into(),
            updated_at: updated_at.into(),
            ..Default::default()
        }
    }

    fn current(promotion: &str, since: &str) -> pb::CurrentFreight {
        pb::CurrentFreight {
            promotion: promotion.into(),
            since: since.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_stage_s_last_outcome_is_the_one_retried() {
        let t1 = "2026-12-01T10:00:00Z";
        let t2 = "2026-12-01T11:00:00Z";
        // Succeeded: only while the stage still runs what it promoted.
        let ok = promotion("prm-a", "Succeeded", t1);
        assert!(last_outcome(&ok, Some(&current("prm-a", t1))));
        assert!(!last_outcome(&ok, Some(&current("prm-b", t2))));
        // Failed: only if nothing arrived in the stage after it.
        let failed = promotion("prm-c", "Failed", t2);
        assert!(last_outcome(&failed, Some(&current("prm-a", t1))));
        assert!(last_outcome(&failed, None));
        let early = promotion("prm-c", "Failed", t1);
        assert!(!last_outcome(&early, Some(&current("prm-b", t2))));
        // A rejected promotion never ran: no report is about it.
        let rejected = promotion("prm-d", "Rejected", t2);
        assert!(!last_outcome(&rejected, Some(&current("prm-a", t1))));
        assert!(!last_outcome(&rejected, None));
    }
}
