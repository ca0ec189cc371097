//! `evolve`: applying one event to a project's state. No rules live here —
//! every decision was made before the event was appended; this only derives
//! what follows from it (authorization once approvals suffice, the current
//! freight after a success, verification once every required check passed,
//! holds after a manual rollback).

use chrono::{DateTime, Utc};

use super::availability::auto_candidate;
use super::pipeline::{PipelineDefinition, PolicyMode};
use super::state::*;
use crate::envelope::StoredEvent;
use crate::event::EventPayload;
use crate::Position;

impl ProjectState {
    /// Moves the state's position past a message of the project's subjects
    /// that is no event ([`crate::ForeignRecord`]): the next append expects
    /// it as the subject's last; the chain and everything else stay as
    /// they are.
    pub fn pass(&mut self, position: Position) {
        self.position = self.position.max(position);
    }

    /// Applies `ev`; events at or before the state's position are ignored, so
    /// re-applying is a no-op.
    pub fn apply(&mut self, ev: &StoredEvent) {
        if ev.position <= self.position && self.seq > 0 {
            return;
        }
        let e = &ev.event;
        let at = e.time;
        self.position = ev.position;
        self.seq = e.project_seq;
        self.latest_time = Some(self.latest_time.map_or(at, |t| t.max(at)));
        self.commands.insert(
            CommandKey::of(&e.command_id),
            CommandOutcome {
                position: ev.position,
                event_id: e.id,
            },
        );
        match &e.payload {
            EventPayload::PipelineConfigured(p) => {
                match serde_json::from_str::<PipelineDefinition>(&p.definition_json) {
                    Ok(definition) => {
                        for s in &definition.stages {
                            self.stages
                                .entry(s.name.clone())
                                .or_insert_with(|| StageState {
                                    name: s.name.clone(),
                                    ..StageState::default()
                                });
                        }
                        self.pipeline = Some(AppliedPipeline {
                            definition,
                            version: ev.position,
                            event_id: e.id,
                            definition_json: p.definition_json.clone(),
                            at,
                            source_uri: p.source_uri.clone(),
                            source_revision: p.source_revision.clone(),
                        });
                        self.authorize_under_new_policy(ev.position, at);
                    }
                    Err(err) => tracing::error!(
                        position = ev.position.0,
                        error = %err,
                        "recorded pipeline definition does not parse; keeping the previous one"
                    ),
                }
            }
            EventPayload::FreightDiscovered(d) => {
                if !self.freight.contains_key(&d.freight_id) {
                    self.by_discovery.insert((at, d.freight_id.clone()));
                }
                self.freight.entry(d.freight_id.clone()).or_insert_with(|| {
                    Box::new(Freight {
                        id: d.freight_id.clone(),
                        warehouse: d.warehouse.clone(),
                        artifacts: d.artifacts.clone(),
                        alias: d.alias.clone(),
                        discovered_at: at,
                        discovered: ev.position,
                        discovered_id: e.id,
                        verified_in: Default::default(),
                        approved_for: Default::default(),
                        currently_in: Default::default(),
                        checks: Default::default(),
                    })
                });
                if !d.alias.is_empty() {
                    self.aliases.insert(d.alias.clone(), d.freight_id.clone());
                }
            }
            EventPayload::VerificationRecorded(v) => {
                if let Some(f) = self.freight.get_mut(&v.freight_id) {
                    if !f.checks.contains_key(&v.stage) {
                        insert_exact(&mut f.checks, v.stage.clone(), SmallMap::new());
                    }
                    if let Some(checks) = f.checks.get_mut(&v.stage) {
                        insert_exact(
                            checks,
                            v.check.clone(),
                            CheckResult {
                                passed: v.passed,
                                at,
                                metrics: v.metrics.iter().map(|(k, m)| (k.clone(), *m)).collect(),
                                evidence_url: v.evidence_url.clone(),
                                position: ev.position,
                            },
                        );
                    }
                }
                self.refresh_verification(&v.freight_id, &v.stage, at);
            }
            EventPayload::FreightApproved(a) => {
                if let Some(f) = self.freight.get_mut(&a.freight_id) {
                    insert_exact(
                        &mut f.approved_for,
                        a.stage.clone(),
                        FreightApproval {
                            at,
                            by: e.actor.principal.clone(),
                            bypass: a.bypass,
                            reason: a.reason.clone(),
                            ticket: a.ticket.clone(),
                            position: ev.position,
                        },
                    );
                }
            }
            EventPayload::PromotionRequested(r) => {
                self.untrack(&r.promotion_id);
                self.promotions.insert(
                    r.promotion_id.clone(),
                    Box::new(Promotion {
                        id: r.promotion_id.clone(),
                        stage: r.stage.clone(),
                        freight: r.freight_id.clone(),
                        requested_by: e.actor.clone(),
                        requested_at: at,
                        ticket: r.ticket.clone(),
                        reason: r.reason.clone(),
                        approvals: Vec::new(),
                        status: PromotionStatus::Requested,
                        policy_version: self.policy_version(),
                        requested: ev.position,
                        updated_at: at,
                        details: String::new(),
                    }),
                );
                self.track(&r.promotion_id);
                if let Some(s) = self.stages.get_mut(&r.stage) {
                    s.last_promotion = Some(r.promotion_id.clone());
                }
                self.authorize_if_approved(&r.promotion_id, at, None);
            }
            EventPayload::PromotionApproved(a) => {
                if let Some(p) = self.promotions.get_mut(&a.promotion_id) {
                    if p.status == PromotionStatus::Requested
                        && !p.approvals.iter().any(|x| x.by == e.actor.principal)
                    {
                        p.approvals.push(PromotionApproval {
                            by: e.actor.principal.clone(),
                            at,
                            comment: a.comment.clone(),
                        });
                        p.updated_at = at;
                    }
                }
                self.authorize_if_approved(&a.promotion_id, at, None);
            }
            EventPayload::PromotionRejected(r) => {
                self.finish(&r.promotion_id, PromotionStatus::Rejected, &r.reason, at);
            }
            EventPayload::PromotionStarted(s) => {
                if let Some(p) = self.promotions.get_mut(&s.promotion_id) {
                    p.status = PromotionStatus::Running;
                    p.updated_at = at;
                    let stage = p.stage.clone();
                    if let Some(st) = self.stages.get_mut(&stage) {
                        st.queue.retain(|id| id != &s.promotion_id);
                        st.running = Some(s.promotion_id.clone());
                    }
                }
            }
            EventPayload::PromotionSucceeded(s) => self.succeed(&s.promotion_id, &s.details, at),
            EventPayload::PromotionFailed(f) => {
                let details = f.account();
                if let Some(p) = self.promotions.get(&f.promotion_id) {
                    let (stage, freight) = (p.stage.clone(), p.freight.clone());
                    if let Some(st) = self.stages.get_mut(&stage) {
                        st.failed.insert(freight);
                    }
                }
                self.finish(&f.promotion_id, PromotionStatus::Failed, &details, at);
            }
            EventPayload::PromotionAborted(a) => {
                self.finish(&a.promotion_id, PromotionStatus::Aborted, &a.reason, at);
            }
            EventPayload::CheckpointSigned(_) => {}
        }
    }

    /// Approvals that count: distinct, and not the requester's under separation of duties.
    pub fn counted_approvals(&self, promotion: &Promotion) -> usize {
        counted_under(self.definition(), promotion)
    }

    /// The promotions waiting for approvals that `definition` would
    /// authorize by coming into force (see `authorize_under_new_policy`),
    /// in request order. For a dry run of a pipeline: what applying it
    /// would do to promotions under way.
    pub fn authorized_by(&self, definition: &PipelineDefinition) -> Vec<WouldAuthorize<'_>> {
        let mut waiting: Vec<&Promotion> = self
            .promotions
            .values()
            .map(|p| &**p)
            .filter(|p| p.status == PromotionStatus::Requested)
            .collect();
        waiting.sort_by_key(|p| p.requested);
        waiting
            .into_iter()
            .filter_map(|p| {
                let stage = definition.stage(&p.stage)?;
                let required = stage.policy.required_approvals as usize;
                let counted = counted_under(Some(definition), p);
                (counted >= required).then_some(WouldAuthorize {
                    promotion: p,
                    record_only: stage.record_only,
                    counted,
                    required,
                })
            })
            .collect()
    }

    /// Approvals the stage's policy requires.
    pub fn required_approvals(&self, stage: &str) -> usize {
        self.definition()
            .and_then(|d| d.stage(stage))
            .map(|s| s.policy.required_approvals as usize)
            .unwrap_or(0)
    }

    /// A promotion is authorized under the policy in force when its approvals
    /// are counted: at each approval, and when a pipeline comes into force.
    /// A pipeline that asks for fewer approvals (or lets the requester's
    /// count) authorizes, in request order, the promotions waiting that now
    /// have enough; otherwise one would wait for an approval the policy no
    /// longer asks for.
    fn authorize_under_new_policy(&mut self, version: Position, at: DateTime<Utc>) {
        let ids: Vec<String> = match self.definition() {
            Some(definition) => self
                .authorized_by(definition)
                .iter()
                .map(|w| w.promotion.id.clone())
                .collect(),
            None => Vec::new(),
        };
        for id in ids {
            self.authorize_if_approved(&id, at, Some(version));
        }
    }

    /// `by_policy`: the pipeline whose coming into force counts them (its
    /// position), said in the promotion's details.
    fn authorize_if_approved(&mut self, id: &str, at: DateTime<Utc>, by_policy: Option<Position>) {
        let Some(p) = self.promotions.get(id) else {
            return;
        };
        if p.status != PromotionStatus::Requested
            || self.counted_approvals(p) < self.required_approvals(&p.stage)
        {
            return;
        }
        let stage = p.stage.clone();
        let record_only = self
            .definition()
            .and_then(|d| d.stage(&stage))
            .is_some_and(|s| s.record_only);
        let when = by_policy.map(|v| format!(" when policy version {} came into force", v.0));
        if let Some(p) = self.promotions.get_mut(id) {
            p.status = PromotionStatus::Authorized;
            p.updated_at = at;
            if let Some(when) = &when {
                p.details = format!("authorized{when}");
            }
        }
        if record_only {
            let details = format!(
                "record-only stage: completed at authorization{}",
                when.unwrap_or_default()
            );
            self.succeed(id, &details, at);
        } else if let Some(st) = self.stages.get_mut(&stage) {
            st.queue.push_back(id.to_string());
        }
    }

    fn finish(&mut self, id: &str, status: PromotionStatus, details: &str, at: DateTime<Utc>) {
        let Some(p) = self.promotions.get_mut(id) else {
            return;
        };
        p.status = status;
        p.updated_at = at;
        p.details = details.to_string();
        let stage = p.stage.clone();
        self.track(id);
        if let Some(st) = self.stages.get_mut(&stage) {
            st.queue.retain(|q| q != id);
            if st.running.as_deref() == Some(id) {
                st.running = None;
            }
        }
    }

    fn succeed(&mut self, id: &str, details: &str, at: DateTime<Utc>) {
        let Some(p) = self.promotions.get(id).cloned() else {
            return;
        };
        let Some(warehouse) = self.freight.get(&p.freight).map(|f| f.warehouse.clone()) else {
            // Freight this state does not know (every loader puts it in
            // memory first): the promotion still ends, and no stage can
            // say what it replaced.
            self.finish(id, PromotionStatus::Succeeded, details, at);
            return;
        };
        // A manual promotion of anything but the auto candidate holds the
        // stage's freight of that warehouse; promoting the candidate
        // releases the hold. Holds matter only where auto-promotion runs.
        let auto_stage = self
            .definition()
            .and_then(|d| d.stage(&p.stage))
            .filter(|s| s.policy.mode != PolicyMode::Manual);
        let manual = p.requested_by.auth_method != "service" && auto_stage.is_some();
        let candidate = auto_stage
            .filter(|_| manual)
            .and_then(|s| auto_candidate(self, s, &warehouse, at))
            .map(|f| f.id.clone());
        self.finish(id, PromotionStatus::Succeeded, details, at);
        let previous = self
            .stages
            .get(&p.stage)
            .and_then(|s| s.current_for(&warehouse).cloned());
        if let Some(prev) = &previous {
            self.end_tenure(&prev.freight, &p.stage, at);
        }
        if let Some(st) = self.stages.get_mut(&p.stage) {
            let held = manual && candidate.as_ref().is_some_and(|c| *c != p.freight);
            st.set_current(Current {
                warehouse,
                freight: p.freight.clone(),
                since: at,
                promotion: p.id.clone(),
                promoted_by: p.requested_by.principal.clone(),
                held,
            });
            st.failed.remove(&p.freight);
        }
        if let Some(f) = self.freight.get_mut(&p.freight) {
            insert_exact(&mut f.currently_in, p.stage.clone(), at);
        }
        self.refresh_verification(&p.freight, &p.stage, at);
    }

    /// Ends `freight`'s tenure in `stage`, folding its soak into the longest.
    fn end_tenure(&mut self, freight: &str, stage: &str, at: DateTime<Utc>) {
        if let Some(f) = self.freight.get_mut(freight) {
            f.currently_in.remove(stage);
            if f.currently_in.is_empty() {
                // Most freight runs nowhere once replaced: give back the
                // map's room (a LiteMap keeps its capacity when emptied).
                f.currently_in = SmallMap::new();
            }
            if let Some(v) = f.verified_in.get_mut(stage) {
                v.longest_soak = v.soak(at);
                v.since = None;
            }
        }
    }

    /// Marks `freight` verified in `stage` when it is current there and every
    /// required check's latest result passed; a failing result ends the tenure.
    fn refresh_verification(&mut self, freight: &str, stage: &str, at: DateTime<Utc>) {
        let Some(required) = self
            .definition()
            .and_then(|d| d.stage(stage))
            .map(|s| s.verification.clone())
        else {
            return;
        };
        let Some(f) = self.freight.get_mut(freight) else {
            return;
        };
        if !f.currently_in.contains_key(stage) {
            return;
        }
        let all_pass = required.iter().all(|check| {
            f.checks
                .get(stage)
                .and_then(|checks| checks.get(check))
                .is_some_and(|r| r.passed)
        });
        match (all_pass, f.verified_in.get_mut(stage)) {
            (true, Some(v)) => {
                if v.since.is_none() {
                    v.since = Some(at);
                }
            }
            (true, None) => {
                insert_exact(
                    &mut f.verified_in,
                    stage.to_string(),
                    Verified {
                        at,
                        since: Some(at),
                        longest_soak: Default::default(),
                    },
                );
            }
            (false, Some(v)) => {
                v.longest_soak = v.soak(at);
                v.since = None;
            }
            (false, None) => {}
        }
    }
}

/// A waiting promotion a new pipeline would authorize.
#[derive(Debug, Clone, PartialEq)]
pub struct WouldAuthorize<'a> {
    pub promotion: &'a Promotion,
    /// Its stage would be record-only: it would also complete at once.
    pub record_only: bool,
    /// Its approvals that would count, and how many the pipeline requires.
    pub counted: usize,
    pub required: usize,
}

/// Approvals of `promotion` that count under `definition`: distinct, and
/// not the requester's under separation of duties (the default without a
/// definition).
fn counted_under(definition: Option<&PipelineDefinition>, promotion: &Promotion) -> usize {
    let sod = definition
        .and_then(|d| d.stage(&promotion.stage))
        .is_none_or(|s| s.policy.separation_of_duties);
    promotion
        .approvals
        .iter()
        .filter(|a| !sod || a.by != promotion.requested_by.principal)
        .count()
}
