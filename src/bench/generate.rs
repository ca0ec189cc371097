//! The generated ledger of `bench queries` and `bench export`: per project a
//! pipeline, then per freight a discovery, a promotion into dev, a passing
//! check and a promotion into staging, appended through `EventLog` as the
//! command service would.

use std::sync::Arc;

use anyhow::ensure;
use waybill_ledger::domain::freight_id;
use waybill_ledger::event::{
    Artifact, ArtifactKind, FreightDiscovered, PipelineConfigured, PromotionRequested,
    VerificationRecorded,
};
use waybill_ledger::{Actor, EventLog, EventPayload, NewEvent, Position, ProjectName};

const PIPELINE: &str = r#"{"project":"PROJECT","warehouses":[{"name":"images"}],"stages":[
 {"name":"dev","record_only":true,"requested_freight":[{"origin":"images","sources":{"direct":true}}],
  "verification":["integration-tests"],"policy":{"mode":"auto"}},
 {"name":"staging","record_only":true,"requested_freight":[{"origin":"images","sources":{"stages":["dev"]}}],
  "policy":{"mode":"auto"}}]}"#;

fn actor(name: &str) -> Actor {
    Actor {
        principal: name.into(),
        auth_method: "service".into(),
    }
}

/// One project's events: the pipeline, then per freight a discovery, a
/// promotion into dev, a passing check and a promotion into staging.
pub(super) async fn generate_project(
    log: Arc<dyn EventLog>,
    project: String,
    events: u64,
) -> anyhow::Result<()> {
    let name = ProjectName::project(project.clone())?;
    let mut head = Position::ZERO;
    let mut n = 0u64;
    let mut append = |payload: EventPayload, who: &str| {
        n += 1;
        let mut ev = NewEvent::new(payload, actor(who), format!("{project}-{n}"));
        ev.subject = "bench".into();
        ev
    };
    let first = append(
        EventPayload::PipelineConfigured(PipelineConfigured {
            definition_json: PIPELINE.replace("PROJECT", &project),
            source_uri: "bench".into(),
            source_revision: String::new(),
            source_digest: String::new(),
        }),
        "admin",
    );
    head = log.append(&name, head, first).await?.position;
    let mut i = 0u64;
    let mut written = 1;
    while written < events {
        let artifacts = vec![Artifact {
            kind: ArtifactKind::Image,
            name: "ghcr.io/acme/app".into(),
            version: format!("1.{i}"),
            digest: format!("sha256:{i:064x}"),
        }];
        let id = freight_id("images", &artifacts);
        let steps = [
            EventPayload::FreightDiscovered(FreightDiscovered {
                freight_id: id.clone(),
                warehouse: "images".into(),
                artifacts,
                alias: format!("v1-{i}"),
            }),
            EventPayload::PromotionRequested(PromotionRequested {
                promotion_id: format!("prm-d{i}"),
                stage: "dev".into(),
                freight_id: id.clone(),
                ticket: String::new(),
                reason: "auto-promotion".into(),
            }),
            EventPayload::VerificationRecorded(VerificationRecorded {
                freight_id: id.clone(),
                stage: "dev".into(),
                check: "integration-tests".into(),
                passed: true,
                metrics: Default::default(),
                evidence_url: format!("https://ci.example/{i}"),
                details: String::new(),
            }),
            EventPayload::PromotionRequested(PromotionRequested {
                promotion_id: format!("prm-s{i}"),
                stage: "staging".into(),
                freight_id: id,
                ticket: String::new(),
                reason: "auto-promotion".into(),
            }),
        ];
        for payload in steps {
            if written >= events {
                break;
            }
            let ev = append(payload, "auto-promoter");
            head = log.append(&name, head, ev).await?.position;
            written += 1;
        }
        i += 1;
    }
    Ok(())
}

/// Generates `per_project` events in each of `projects` projects, at once.
pub(super) async fn generate(
    log: &Arc<dyn EventLog>,
    projects: usize,
    per_project: u64,
) -> anyhow::Result<()> {
    let tasks: Vec<_> = (0..projects)
        .map(|p| {
            tokio::spawn(generate_project(
                log.clone(),
                format!("proj-{p:03}"),
                per_project,
            ))
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let total = per_project * projects as u64;
    let head = log.head().await?.0;
    ensure!(
        head == total,
        "the generated ledger has {head} events, not {total}"
    );
    Ok(())
}
