//! What the queries read from the runner's side: project states in memory,
//! and freight and promotions from memory or, when they have left it, from
//! the read models.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use waybill_ledger::domain::working_set::picks_newest;
use waybill_ledger::domain::{
    auto_candidate, Freight, PolicyMode, ProjectState, Promotion, PromotionStatus,
};

use super::{read, Projections, SharedState};
use crate::error::ProjectionError;
use crate::models;

impl Projections {
    /// A copy of a project's working set in memory: its pipeline, stages,
    /// active promotions and the freight its stages run, and whatever else
    /// recent events brought in (the rest is in the read models).
    pub fn project(&self, name: &str) -> Option<ProjectState> {
        self.shared(name).map(|s| read(&s).clone())
    }

    /// Every project the read models know, in no particular order.
    pub fn project_names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// A project's live state (lock it with [`read`], never across an await).
    pub fn shared(&self, name: &str) -> Option<SharedState> {
        self.read().get(name).cloned()
    }

    /// A freight of `project` by id or alias: from memory when it is there
    /// (it may be ahead of the applied position), else from the read models.
    /// Blocking.
    pub fn freight(
        &self,
        project: &str,
        id_or_alias: &str,
    ) -> Result<Option<Freight>, ProjectionError> {
        let in_memory = |id: &str| {
            self.shared(project)
                .and_then(|s| read(&s).freight.get(id).map(|f| Freight::clone(f)))
        };
        let tree = self.inner.store.views();
        if let Some(f) = in_memory(id_or_alias) {
            return Ok(Some(f));
        }
        if let Some(f) = models::freight(tree, project, id_or_alias)? {
            return Ok(Some(f));
        }
        match models::alias(tree, project, id_or_alias)? {
            Some(id) => match in_memory(&id) {
                Some(f) => Ok(Some(f)),
                None => models::freight(tree, project, &id),
            },
            None => Ok(None),
        }
    }

    /// A promotion of `project`: from memory when it is there, else from the
    /// read models. Blocking.
    pub fn promotion(&self, project: &str, id: &str) -> Result<Option<Promotion>, ProjectionError> {
        let in_memory = self
            .shared(project)
            .and_then(|s| read(&s).promotions.get(id).map(|p| Promotion::clone(p)));
        match in_memory {
            Some(p) => Ok(Some(p)),
            None => models::promotion(self.inner.store.views(), project, id),
        }
    }

    /// The approvals the policy in force requires of promotion `p` of
    /// `project` while it waits for them (Requested); 0 otherwise.
    pub fn approvals_required(&self, project: &str, p: &Promotion) -> u32 {
        if p.status != PromotionStatus::Requested {
            return 0;
        }
        self.shared(project).map_or(0, |s| {
            read(&s)
                .definition()
                .and_then(|d| d.stage(&p.stage))
                .map_or(0, |st| st.policy.required_approvals)
        })
    }

    /// What auto-promotion does for `stage` of `project` at `now` (the
    /// stage's `auto_promotion` line), with the freight it would take looked
    /// for in the read models as well as in memory. Blocking.
    pub fn auto_promotion(
        &self,
        project: &str,
        stage: &str,
        now: DateTime<Utc>,
    ) -> Result<String, ProjectionError> {
        let Some(shared) = self.shared(project) else {
            return Ok(String::new());
        };
        let state = read(&shared);
        let Some(def) = state
            .definition()
            .and_then(|d| d.stage(stage))
            .filter(|d| d.policy.mode != PolicyMode::Manual)
        else {
            return Ok(String::new());
        };
        // A stage runs one freight of each warehouse it takes from: each
        // has its own candidate.
        let mut lines = Vec::new();
        for warehouse in def.warehouses() {
            let looked_up;
            let candidate = match def.for_warehouse(warehouse) {
                Some(one) if picks_newest(def) => {
                    looked_up =
                        models::newest_available(self.inner.store.views(), &state, &one, now)?;
                    looked_up.as_ref()
                }
                // What the single upstream runs, which memory holds.
                _ => auto_candidate(&state, def, warehouse, now),
            };
            let line =
                crate::service::convert::auto_promotion(&state, def, warehouse, now, candidate);
            lines.push(match def.requested_freight.len() {
                1 => line,
                _ => format!("{warehouse}: {line}"),
            });
        }
        Ok(lines.join("; "))
    }

    /// Every project's name.
    pub fn projects(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// The promotions under way, by project, stage and status, each group
    /// with since when its longest-waiting member has been in that status
    /// (requested: its request; authorized or running: its last change,
    /// the approval that authorized it or its executor's start).
    pub fn under_way(&self) -> Vec<UnderWay> {
        let mut groups: BTreeMap<(String, String, &'static str), UnderWay> = BTreeMap::new();
        for shared in self.read().values() {
            let state = read(shared);
            let ids = state
                .active
                .values()
                .flat_map(|by_freight| by_freight.values().flatten());
            for p in ids.filter_map(|id| state.promotions.get(id)) {
                let since = match p.status {
                    PromotionStatus::Requested => p.requested_at,
                    _ => p.updated_at,
                };
                let key = (state.project.clone(), p.stage.clone(), p.status.name());
                let group = groups.entry(key).or_insert_with(|| UnderWay {
                    project: state.project.clone(),
                    stage: p.stage.clone(),
                    status: p.status,
                    count: 0,
                    since,
                });
                group.count += 1;
                group.since = group.since.min(since);
            }
        }
        groups.into_values().collect()
    }
}

/// Promotions of one project and stage in one status (see
/// [`Projections::under_way`]).
#[derive(Debug, Clone, PartialEq)]
pub struct UnderWay {
    pub project: String,
    pub stage: String,
    pub status: PromotionStatus,
    pub count: usize,
    /// When the longest-waiting of them entered the status.
    pub since: DateTime<Utc>,
}
