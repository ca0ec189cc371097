//! Gauges of the promotions under way, per project, stage and status, so
//! that an operator can alert on promotions nobody moves on (an executor
//! that is down, a deployment that hangs).

use std::collections::BTreeSet;

use chrono::Utc;
use waybill_projections::Projections;

/// The label sets shown at the last update, to bring to zero the groups
/// that have emptied since (a gauge keeps its last value).
#[derive(Debug, Default)]
pub(super) struct UnderWayGauges {
    shown: BTreeSet<(String, String, &'static str)>,
}

impl UnderWayGauges {
    /// Sets `waybill_promotions_under_way` and its `_since_seconds` from
    /// the read models; a group that has emptied shows 0, waiting since now.
    pub(super) fn update(&mut self, projections: &Projections) {
        let now = Utc::now().timestamp() as f64;
        let mut shown = BTreeSet::new();
        for group in projections.under_way() {
            let key = (group.project, group.stage, group.status.name());
            set(&key, group.count as f64, group.since.timestamp() as f64);
            shown.insert(key);
        }
        for gone in self.shown.difference(&shown) {
            set(gone, 0.0, now);
        }
        self.shown = shown;
    }
}

fn set((project, stage, status): &(String, String, &'static str), count: f64, since: f64) {
    let labels = [
        ("project", project.clone()),
        ("stage", stage.clone()),
        ("status", status.to_string()),
    ];
    metrics::gauge!("waybill_promotions_under_way", &labels).set(count);
    metrics::gauge!("waybill_promotions_under_way_since_seconds", &labels).set(since);
}
