//! The auto-promotion reactor: when freight becomes available to a stage in
//! `auto` or `gated` mode, it requests the promotion as the service principal
//! `svc:auto-promoter`, through the ordinary command path.
//!
//! It evaluates a project after each of its events, and every project with
//! auto stages once a second (soak completes with time, not with an event).
//! Skips: a hold on the stage, the candidate already current or in flight,
//! the candidate's latest promotion into the stage failed, gates not passed.
//! Safe with several replicas: command ids derive from the stage, freight and
//! triggering position, and the log's optimistic concurrency makes a second
//! replica re-decide and find the promotion already in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use waybill_ledger::domain::{auto_candidate, gates_pass, PolicyMode, ProjectState};
use waybill_ledger::{Position, ProjectName};

use crate::auth::Principal;
use crate::command::{Command, FreightSelector};
use crate::handler::{CommandError, CommandHandler};

/// How often projects are re-evaluated without a new event.
pub const TICK: Duration = Duration::from_secs(1);

/// The auto-promotion reactor.
#[derive(Debug, Clone)]
pub struct AutoPromoter {
    handler: CommandHandler,
    principal: Principal,
}

/// One promotion the reactor wants to request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub stage: String,
    pub freight: String,
}

impl AutoPromoter {
    pub fn new(handler: CommandHandler) -> AutoPromoter {
        AutoPromoter {
            handler,
            principal: Principal::service("auto-promoter"),
        }
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut projects = BTreeSet::new();
        let mut tick = tokio::time::interval(TICK);
        let mut tail = loop {
            match self.handler.log().tail(Position(1)).await {
                Ok(t) => break t,
                Err(e) => {
                    tracing::warn!(error = %e, "auto-promoter: cannot tail the log; retrying");
                    tokio::select! {
                        () = &mut shutdown => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                item = tail.next() => match item {
                    Some(Ok(ev)) => {
                        let project = ev.event.project.clone();
                        projects.insert(project.clone());
                        self.evaluate(&project, ev.position).await;
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "auto-promoter: tail error"),
                    None => break,
                },
                _ = tick.tick() => {
                    for project in &projects {
                        self.evaluate(project, Position::ZERO).await;
                    }
                }
            }
        }
        tracing::info!("auto-promoter stopped");
    }

    /// Requests every promotion due in `project`.
    pub async fn evaluate(&self, project: &str, trigger: Position) {
        let Ok(name) = ProjectName::project(project) else {
            return;
        };
        let state = match self.handler.state(&name).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(project, error = %e, "auto-promoter: cannot load project");
                return;
            }
        };
        for intent in due(&state, self.handler.clock().now()) {
            // Time-driven evaluations use the state's position as their trigger.
            let trigger = if trigger == Position::ZERO {
                state.position
            } else {
                trigger
            };
            let key = format!("auto:{}:{}:{}", intent.stage, intent.freight, trigger.0);
            let command = Command::RequestPromotion {
                stage: intent.stage.clone(),
                freight: FreightSelector::Named(intent.freight.clone()),
                ticket: String::new(),
                reason: "auto-promotion".to_string(),
            };
            let result = self
                .handler
                .execute(&name, &self.principal, command, Some(key))
                .await;
            let action = match &result {
                Ok(o) if !o.already_done => "requested",
                Ok(_) => "duplicate",
                Err(CommandError::Rejected(_)) => "not_allowed",
                Err(_) => "failed",
            };
            ::metrics::counter!(
                "waybill_reactor_actions_total",
                "reactor" => "auto-promoter",
                "action" => action
            )
            .increment(1);
            match result {
                Ok(o) if !o.already_done => tracing::info!(
                    project, stage = %intent.stage, freight = %intent.freight,
                    position = o.position.0, "auto-promotion requested"
                ),
                Ok(_) => {}
                Err(CommandError::Rejected(r)) => tracing::debug!(
                    project, stage = %intent.stage, freight = %intent.freight,
                    rejection = %r, "auto-promotion not allowed"
                ),
                Err(e) => tracing::warn!(project, error = %e, "auto-promotion failed"),
            }
        }
    }
}

/// The promotions auto-promotion wants in `state` at `now`.
pub fn due(state: &ProjectState, now: DateTime<Utc>) -> Vec<Intent> {
    let Some(def) = state.definition() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for stage in &def.stages {
        if stage.policy.mode == PolicyMode::Manual {
            continue;
        }
        let Some(st) = state.stages.get(&stage.name) else {
            continue;
        };
        if st.hold.is_some() {
            continue;
        }
        let Some(candidate) = auto_candidate(state, stage, now) else {
            continue;
        };
        let current = st.current.as_ref().map(|c| c.freight.as_str());
        if current == Some(candidate.id.as_str())
            || state.in_flight(&stage.name, &candidate.id).is_some()
            || st.failed.contains(&candidate.id)
        {
            continue;
        }
        if stage.policy.mode == PolicyMode::Gated
            && gates_pass(candidate, &stage.policy.gates).is_err()
        {
            continue;
        }
        out.push(Intent {
            stage: stage.name.clone(),
            freight: candidate.id.clone(),
        });
    }
    out
}
