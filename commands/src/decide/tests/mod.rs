//! Given events / when command / then event or rejection. No I/O: events are
//! applied to the state directly, the clock is explicit.

mod approvals;
mod availability;
mod bypass;
mod discovery;
mod execution;
mod hostile;
mod in_flight;
mod origins;
mod pipeline;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use waybill_ledger::domain::{PipelineDefinition, ProjectState};
use waybill_ledger::event::{Artifact, ArtifactKind};
use waybill_ledger::{Actor, ChainHash, Event, EventPayload, Position, StoredEvent};

use crate::command::{Command, Context, FreightSelector, PromotionResult};
use crate::decide::{decide, Decision};
use crate::rejection::{Reason, Rejection};

/// The example pipeline: images → dev (auto) → staging (gated) → prod (manual).
pub const PIPELINE: &str = r#"{
  "project": "shop",
  "warehouses": [{"name": "images", "kind": "image", "source": "ghcr.io/acme/shop"}],
  "stages": [
    {"name": "dev", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
     "policy": {"mode": "auto"}},
    {"name": "staging",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]}}],
     "verification": ["integration-tests"],
     "policy": {"mode": "gated", "gates": [{"check": "smoke"}]}},
    {"name": "prod",
     "requested_freight": [{"origin": "images", "sources": {"stages": ["staging"]},
                            "required_soak": "1h"}],
     "policy": {"mode": "manual", "required_approvals": 2, "ticket_pattern": "CHG-\\d+",
                "timezone": "UTC", "freezes": [{"days": ["Sat", "Sun"], "reason": "weekend"}]}}
  ]
}"#;

/// A project's state, a clock and a position counter.
pub struct Scenario {
    pub state: ProjectState,
    pub now: DateTime<Utc>,
    next: u64,
    commands: u64,
}

pub fn alice() -> Actor {
    Actor {
        principal: "alice".into(),
        auth_method: "token".into(),
    }
}
pub fn bob() -> Actor {
    Actor {
        principal: "bob".into(),
        auth_method: "jwt".into(),
    }
}
pub fn carol() -> Actor {
    Actor {
        principal: "carol".into(),
        auth_method: "jwt".into(),
    }
}
pub fn robot() -> Actor {
    Actor::service("auto-promoter")
}

pub fn image(tag: &str) -> Vec<Artifact> {
    vec![Artifact {
        kind: ArtifactKind::Image,
        name: "ghcr.io/acme/shop".into(),
        version: tag.into(),
        digest: format!("sha256:{tag}"),
    }]
}

impl Scenario {
    /// The example pipeline applied on a Wednesday morning.
    pub fn shop() -> Scenario {
        let mut s = Scenario::empty();
        let def: PipelineDefinition = serde_json::from_str(PIPELINE).expect("pipeline json");
        s.ok(alice(), apply(def));
        s
    }

    pub fn empty() -> Scenario {
        Scenario {
            state: ProjectState::new("shop"),
            now: "2026-12-02T10:00:00Z".parse().expect("time"),
            next: 0,
            commands: 0,
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    fn ctx(&mut self, actor: Actor) -> Context {
        self.commands += 1;
        Context {
            actor,
            groups: vec![],
            now: self.now,
            command_id: format!("cmd-{}", self.commands),
        }
    }

    /// When `actor` issues `cmd`: the decision (no state change).
    pub fn decide(&mut self, actor: Actor, cmd: Command) -> Result<Decision, Rejection> {
        let ctx = self.ctx(actor);
        decide(&self.state, &ctx, &cmd)
    }

    /// Then it is allowed: the event is applied and returned.
    pub fn ok(&mut self, actor: Actor, cmd: Command) -> EventPayload {
        let ctx = self.ctx(actor.clone());
        match decide(&self.state, &ctx, &cmd) {
            Ok(Decision::Append { payload, .. }) => {
                self.record(actor, &ctx.command_id, payload.clone());
                payload
            }
            other => panic!("expected an event for {cmd:?}, got {other:?}"),
        }
    }

    /// Then it is refused for `reason`.
    pub fn refused(&mut self, actor: Actor, cmd: Command, reason: Reason) -> Rejection {
        match self.decide(actor, cmd.clone()) {
            Err(r) if r.reason() == Some(reason) => r,
            other => panic!("expected {reason} for {cmd:?}, got {other:?}"),
        }
    }

    /// Then it is malformed (`INVALID_ARGUMENT`).
    pub fn invalid(&mut self, actor: Actor, cmd: Command) -> Rejection {
        match self.decide(actor, cmd.clone()) {
            Err(r @ Rejection::Invalid { .. }) => r,
            other => panic!("expected Invalid for {cmd:?}, got {other:?}"),
        }
    }

    /// Applies an event as if appended by `actor` now.
    pub fn record(&mut self, actor: Actor, command_id: &str, payload: EventPayload) {
        self.next += 1;
        let event = Event {
            id: uuid::Uuid::now_v7(),
            project: "shop".into(),
            project_seq: self.next,
            prev_hash: ChainHash::GENESIS,
            time: self.now,
            source: "test".into(),
            subject: String::new(),
            actor,
            command_id: command_id.to_string(),
            correlation_id: String::new(),
            causation_id: String::new(),
            schema_version: 1,
            payload,
        };
        self.state.apply(&StoredEvent {
            position: Position(self.next),
            hash: ChainHash::GENESIS,
            stored_hash: None,
            bytes: Bytes::new(),
            event,
        });
    }

    /// Discovers an image tag and returns the freight id.
    pub fn discover(&mut self, tag: &str) -> String {
        match self.ok(robot(), discover(tag)) {
            EventPayload::FreightDiscovered(d) => d.freight_id,
            other => panic!("{other:?}"),
        }
    }

    /// Requests a promotion and returns its id.
    pub fn request(&mut self, actor: Actor, stage: &str, freight: &str, ticket: &str) -> String {
        match self.ok(actor, promote(stage, freight, ticket)) {
            EventPayload::PromotionRequested(r) => r.promotion_id,
            other => panic!("{other:?}"),
        }
    }

    /// Runs an authorized promotion to success.
    pub fn succeed(&mut self, promotion: &str) {
        // Record-only stages complete at authorization.
        if self.state.promotions[promotion].status
            != waybill_ledger::domain::PromotionStatus::Succeeded
        {
            self.ok(robot(), report(promotion, PromotionResult::Succeeded));
        }
    }

    /// Puts `freight` into `stage` (auto path) and passes every listed check.
    pub fn deploy(&mut self, stage: &str, freight: &str, checks: &[&str]) {
        let p = self.request(robot(), stage, freight, "");
        self.succeed(&p);
        for check in checks {
            self.ok(robot(), verification(freight, stage, check, true));
        }
    }

    /// The freight promoted into `stage` last.
    pub fn current(&self, stage: &str) -> Option<String> {
        self.state
            .stages
            .get(stage)?
            .latest()
            .map(|c| c.freight.clone())
    }

    /// What `stage` runs, by warehouse.
    pub fn runs(&self, stage: &str) -> Vec<(String, String)> {
        self.state.stages.get(stage).map_or_else(Vec::new, |s| {
            s.current
                .iter()
                .map(|c| (c.warehouse.clone(), c.freight.clone()))
                .collect()
        })
    }

    /// The freight a manual promotion holds `stage` at (the first).
    pub fn hold(&self, stage: &str) -> Option<String> {
        self.state
            .stages
            .get(stage)?
            .held()
            .next()
            .map(|c| c.freight.clone())
    }
}

pub fn apply(definition: PipelineDefinition) -> Command {
    Command::ApplyPipeline {
        definition,
        source_uri: "file://pipeline.yaml".into(),
        source_revision: String::new(),
        source_digest: String::new(),
    }
}

pub fn discover(tag: &str) -> Command {
    Command::RecordDiscovery {
        warehouse: "images".into(),
        artifacts: image(tag),
        alias: format!("v{}", tag.replace('.', "-")),
    }
}

pub fn verification(freight: &str, stage: &str, check: &str, passed: bool) -> Command {
    Command::RecordVerification {
        freight: freight.into(),
        stage: stage.into(),
        check: check.into(),
        passed,
        metrics: Default::default(),
        evidence_url: "https://ci.example/run/1".into(),
        details: String::new(),
    }
}

pub fn promote(stage: &str, freight: &str, ticket: &str) -> Command {
    Command::RequestPromotion {
        stage: stage.into(),
        freight: FreightSelector::Named(freight.into()),
        ticket: ticket.into(),
        reason: String::new(),
    }
}

pub fn approve(promotion: &str) -> Command {
    Command::ApprovePromotion {
        promotion: promotion.into(),
        comment: "lgtm".into(),
    }
}

pub fn report(promotion: &str, result: PromotionResult) -> Command {
    Command::ReportPromotionResult {
        promotion: promotion.into(),
        result,
        details: "executor".into(),
    }
}

/// Freight verified in dev and staging and soaked long enough for prod.
pub fn ready_for_prod(s: &mut Scenario, tag: &str) -> String {
    let f = s.discover(tag);
    s.deploy("dev", &f, &[]);
    s.ok(robot(), verification(&f, "dev", "smoke", true));
    s.deploy("staging", &f, &["integration-tests"]);
    s.advance(Duration::hours(1));
    f
}
