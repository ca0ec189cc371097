//! The timeline against the definition of the state at a moment: fold the
//! project's events up to the position (or up to the first event stamped
//! after the time) and render the stages. Checked at every position and
//! around every event time, across a restart of the runner, with event
//! times that go backwards and a pipeline that changes its stages.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt;
use waybill_ledger::domain::ProjectState;
use waybill_ledger::event::{PipelineConfigured, PromotionRequested, VerificationRecorded};
use waybill_ledger::{Actor, EventLog, EventPayload, NewEvent, Position, ProjectName, SledLog};
use waybill_proto::v1 as pb;

use common::{discovered, run_until};
use waybill_projections::timeline::{render, state_at, At};
use waybill_projections::Projections;

fn pipeline(project: &str, stages: &[&str]) -> EventPayload {
    let defs: Vec<String> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let sources = if i == 0 {
                r#"{"direct":true}"#.to_string()
            } else {
                format!(r#"{{"stages":["{}"]}}"#, stages[i - 1])
            };
            format!(
                r#"{{"name":"{s}","record_only":true,"requested_freight":[{{"origin":"images","sources":{sources}}}],
                  "verification":["tests"],"policy":{{"mode":"auto"}}}}"#
            )
        })
        .collect();
    EventPayload::PipelineConfigured(PipelineConfigured {
        definition_json: format!(
            r#"{{"project":"{project}","warehouses":[{{"name":"images"}}],"stages":[{}]}}"#,
            defs.join(",")
        ),
        source_uri: "test".into(),
        source_revision: String::new(),
        source_digest: String::new(),
    })
}

struct Writer {
    log: Arc<dyn EventLog>,
    n: u64,
    /// Event times: forwards a second each, backwards a minute every fifth.
    clock: DateTime<Utc>,
}

impl Writer {
    async fn append(&mut self, project: &str, payload: EventPayload) {
        let name = ProjectName::project(project).expect("name");
        let head = self.log.last_position(&name).await.expect("head");
        self.n += 1;
        self.clock += if self.n.is_multiple_of(5) {
            TimeDelta::minutes(-1)
        } else {
            TimeDelta::seconds(1)
        };
        let actor = Actor {
            principal: "ci".into(),
            auth_method: "token".into(),
        };
        let mut ev = NewEvent::new(payload, actor, format!("cmd-{}", self.n));
        ev.time = Some(self.clock);
        self.log.append(&name, head, ev).await.expect("append");
    }

    /// A freight discovered, promoted into `stage` and checked there.
    async fn freight(&mut self, project: &str, stage: &str, i: u64, passed: bool) {
        let id = format!("f{i:04}");
        let discovered = discovered(i, &format!("v{i}"));
        self.append(project, discovered).await;
        let requested = EventPayload::PromotionRequested(PromotionRequested {
            promotion_id: format!("prm-{project}-{i}"),
            stage: stage.into(),
            freight_id: id.clone(),
            ticket: String::new(),
            reason: "test".into(),
        });
        self.append(project, requested).await;
        let checked = EventPayload::VerificationRecorded(VerificationRecorded {
            freight_id: id,
            stage: stage.into(),
            check: "tests".into(),
            passed,
            metrics: Default::default(),
            evidence_url: format!("https://ci.example/{i}"),
            details: String::new(),
        });
        self.append(project, checked).await;
    }
}

/// The definition: fold the project's events while `keep` says so.
async fn folded(
    log: &dyn EventLog,
    project: &str,
    keep: impl Fn(&waybill_ledger::StoredEvent) -> bool,
) -> Option<pb::ListStagesReply> {
    let name = ProjectName::project(project).expect("name");
    let mut events = log.read_project(&name, Position(1)).await.expect("read");
    let mut state = ProjectState::new(project);
    while let Some(ev) = events.next().await {
        let ev = ev.expect("event");
        if !keep(&ev) {
            break;
        }
        state.apply(&ev);
    }
    state.definition()?;
    Some(render(&state))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_at_every_position_and_time_equals_the_fold_of_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(SledLog::open(&dir.path().join("log")).expect("log"));
    let mut w = Writer {
        log: log.clone(),
        n: 0,
        clock: "2026-06-01T03:00:00Z".parse().expect("time"),
    };
    // An event of another project first: `shop` has no pipeline at 1.
    w.append("blog", pipeline("blog", &["live"])).await;
    w.append("shop", pipeline("shop", &["dev", "staging"]))
        .await;
    for i in 0..4 {
        w.freight("shop", "dev", i, i % 3 != 1).await;
        w.freight("blog", "live", i, true).await;
    }
    let views = dir.path().join("views");
    let p = Projections::open(&views).expect("open");
    run_until(&p, log.clone(), log.head().await.expect("head")).await;
    drop(p);

    // While the runner is down: a stage is added, another dropped.
    w.append("shop", pipeline("shop", &["dev", "qa", "staging"]))
        .await;
    w.freight("shop", "qa", 10, true).await;
    w.append("shop", pipeline("shop", &["dev", "qa"])).await;
    w.freight("shop", "dev", 11, false).await;
    w.freight("blog", "live", 11, true).await;
    let head = log.head().await.expect("head");
    let p = Projections::open(&views).expect("reopen");
    run_until(&p, log.clone(), head).await;

    let mut times = Vec::new();
    for project in ["shop", "blog"] {
        for pos in 0..=head.0 + 2 {
            let want = folded(&*log, project, |ev| ev.position.0 <= pos).await;
            let got = state_at(p.store(), project, At::Position(Position(pos))).expect("state");
            assert_eq!(got, want, "{project} at position {pos}");
        }
        let name = ProjectName::project(project).expect("name");
        let mut events = log.read_project(&name, Position(1)).await.expect("read");
        while let Some(ev) = events.next().await {
            times.push(ev.expect("event").event.time);
        }
    }
    let nano = TimeDelta::nanoseconds(1);
    let mut moments: Vec<DateTime<Utc>> = times
        .iter()
        .flat_map(|t| [*t - nano, *t, *t + nano])
        .collect();
    moments.push(DateTime::<Utc>::MIN_UTC);
    moments.push(DateTime::<Utc>::MAX_UTC);
    for project in ["shop", "blog"] {
        for t in &moments {
            let want = folded(&*log, project, |ev| ev.event.time <= *t).await;
            let got = state_at(p.store(), project, At::Time(*t)).expect("state");
            assert_eq!(got, want, "{project} at {t}");
        }
    }
    // Some answers are not trivial: a dropped stage, a failed check.
    let at_qa = state_at(p.store(), "shop", At::Position(Position(head.0 - 6)))
        .expect("state")
        .expect("pipeline");
    let names: Vec<&str> = at_qa.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["dev", "qa"]);
    let now = state_at(p.store(), "shop", At::Position(head))
        .expect("state")
        .expect("pipeline");
    let current = |r: &pb::ListStagesReply, i: usize| {
        let s = &r.stages[i];
        let freight = s.current.as_ref().map(|c| c.freight.clone());
        (freight, s.checks[0].result.clone())
    };
    assert_eq!(current(&at_qa, 0), (Some("f0003".into()), "passed".into()));
    assert_eq!(current(&at_qa, 1), (Some("f0010".into()), "passed".into()));
    assert_eq!(current(&now, 0), (Some("f0011".into()), "failed".into()));
    assert_eq!(
        state_at(p.store(), "nobody", At::Position(head)).expect("state"),
        None
    );

    // The resumed runner wrote the same views as a clean rebuild does.
    let fresh = Projections::open(&dir.path().join("fresh")).expect("fresh");
    run_until(&fresh, log.clone(), head).await;
    let views = |p: &Projections| -> Vec<(sled::IVec, sled::IVec)> {
        p.store().views().iter().filter_map(Result::ok).collect()
    };
    let resumed = views(&p);
    let versions = resumed
        .iter()
        .filter(|(k, _)| matches!(k.first(), Some(b'g' | b'w')))
        .count();
    assert!(versions > 20, "{versions} stage versions");
    assert_eq!(resumed, views(&fresh));
}
