//! The auto-promotion reactor: when freight becomes available to a stage in
//! `auto` or `gated` mode, it requests the promotion as the service principal
//! `svc:auto-promoter`, through the ordinary command path.
//!
//! It evaluates a project after each of its events, and every project with
//! auto stages once a second (soak completes with time, not with an event).
//! A project whose pipeline has no `auto` or `gated` stage is never
//! evaluated, so its state is never loaded into the command handler's cache.
//! Skips: a hold on the stage, the candidate already current or in flight,
//! the candidate's latest promotion into the stage failed, gates not passed.
//! Safe with several replicas: command ids derive from the stage, freight and
//! triggering position, and the log's optimistic concurrency makes a second
//! replica re-decide and find the promotion already in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use waybill_ledger::domain::{
    auto_standing, AutoStanding, PipelineDefinition, PolicyMode, ProjectState,
};
use waybill_ledger::{EventPayload, Position, ProjectName};

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
    ///
    /// The log is read from the start, but only to learn which projects
    /// exist: up to the head found at start, events are not evaluated one by
    /// one (each evaluation sees the project as it is now, so once per project
    /// is enough). After that, events that arrive together are evaluated once
    /// per project, with the project's last of them as the trigger.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Every project seen on the tail whose pipeline has a stage to
        // promote into, and its last position there.
        let mut projects: BTreeMap<String, Position> = BTreeMap::new();
        // The projects whose latest pipeline has such a stage.
        let mut automated: BTreeSet<String> = BTreeSet::new();
        let mut tick = tokio::time::interval(TICK);
        let (mut tail, start_head) = loop {
            let opened = async {
                let head = self.handler.log().head().await?;
                let tail = self.handler.log().tail(Position(1)).await?;
                Ok::<_, waybill_ledger::LedgerError>((tail, head))
            };
            match opened.await {
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
        let mut caught_up = start_head == Position::ZERO;
        let mut swept = false;
        tracing::info!(
            head = start_head.0,
            "auto-promoter started: reading the log up to its head to learn its projects"
        );
        loop {
            let first = tokio::select! {
                () = &mut shutdown => break,
                item = tail.next() => item,
                _ = tick.tick(), if caught_up => {
                    for (project, last) in &projects {
                        self.evaluate(project, *last, None).await;
                    }
                    continue;
                }
            };
            // This event and every one already waiting behind it.
            let mut triggers: BTreeMap<String, Position> = BTreeMap::new();
            let mut next = first;
            loop {
                match next {
                    Some(Ok(ev)) => {
                        let project = &ev.event.project;
                        match automates(&ev.event.payload) {
                            Some(true) => {
                                automated.insert(project.clone());
                            }
                            Some(false) => {
                                automated.remove(project);
                                projects.remove(project);
                            }
                            None => {}
                        }
                        if automated.contains(project) {
                            triggers.insert(project.clone(), ev.position);
                        } else {
                            triggers.remove(project);
                        }
                        if ev.position >= start_head {
                            caught_up = true;
                        }
                    }
                    // No event: nothing to promote, but the log's head may be one.
                    Some(Err(waybill_ledger::LedgerError::Foreign(f))) => {
                        if f.position >= start_head {
                            caught_up = true;
                        }
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "auto-promoter: tail error"),
                    None => {
                        tracing::info!("auto-promoter stopped: the log's tail ended");
                        return;
                    }
                }
                match tail.next().now_or_never() {
                    Some(item) => next = item,
                    None => break,
                }
            }
            projects.extend(triggers.iter().map(|(p, at)| (p.clone(), *at)));
            if !caught_up {
                continue;
            }
            let evaluations: Vec<(String, Option<Position>)> = if swept {
                triggers.into_iter().map(|(p, at)| (p, Some(at))).collect()
            } else {
                // Caught up: every project the log names, once, as it is now.
                swept = true;
                tracing::info!(
                    projects = projects.len(),
                    "auto-promoter caught up with the log; evaluating every project"
                );
                let triggered = |p: &String| triggers.get(p).copied();
                projects.keys().map(|p| (p.clone(), triggered(p))).collect()
            };
            for (project, trigger) in evaluations {
                let last = projects.get(&project).copied().unwrap_or(Position::ZERO);
                self.evaluate(&project, last, trigger).await;
            }
        }
        tracing::info!("auto-promoter stopped");
    }

    /// Requests every promotion due in `project`, whose last position on the
    /// tail is `last`. `trigger` is the event that prompted it (none: time
    /// passing; the state's position stands in).
    pub async fn evaluate(&self, project: &str, last: Position, trigger: Option<Position>) {
        let Ok(name) = ProjectName::project(project) else {
            return;
        };
        let now = self.handler.clock().now();
        let known = (last > Position::ZERO).then_some(last);
        let inspected = self
            .handler
            .inspect_at(&name, known, |s| (due(s, now), s.position))
            .await;
        let (intents, position) = match inspected {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(project, error = %e, "auto-promoter: cannot load project");
                return;
            }
        };
        for intent in intents {
            // Time-driven evaluations use the state's position as their trigger.
            let trigger = trigger.unwrap_or(position);
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

/// For a `PipelineConfigured` event, whether its pipeline has an `auto` or
/// `gated` stage; `None` for any other event, or for a definition that does
/// not parse (the project state keeps its previous pipeline then, and so does
/// the reactor).
fn automates(payload: &EventPayload) -> Option<bool> {
    let EventPayload::PipelineConfigured(p) = payload else {
        return None;
    };
    let definition: PipelineDefinition = serde_json::from_str(&p.definition_json).ok()?;
    Some(
        definition
            .stages
            .iter()
            .any(|s| s.policy.mode != PolicyMode::Manual),
    )
}

/// The promotions auto-promotion wants in `state` at `now`.
pub fn due(state: &ProjectState, now: DateTime<Utc>) -> Vec<Intent> {
    let Some(def) = state.definition() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // A stage that takes freight from several warehouses runs one freight
    // of each: each warehouse has its own candidate.
    for stage in &def.stages {
        for warehouse in stage.warehouses() {
            if let AutoStanding::Due(candidate) = auto_standing(state, stage, warehouse, now) {
                out.push(Intent {
                    stage: stage.name.clone(),
                    freight: candidate.id.clone(),
                });
            }
        }
    }
    out
}
