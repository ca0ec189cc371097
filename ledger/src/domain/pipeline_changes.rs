//! What a new pipeline definition changes against the one in force, one
//! line per change, for people reviewing a pipeline change before it is
//! applied (`waybill apply --dry-run`).
//!
//! Warehouses and stages are matched by name; within one, every field that
//! differs is named by its path as the pipeline file writes it
//! (`policy.required_approvals`), with the old and the new value. Freight
//! requests are matched by their warehouse
//! (`requested_freight[images].required_soak`); gates, windows and freezes
//! by their place when there are as many as before
//! (`policy.freezes[0].days`); any other list (checks, or a list that grew
//! or shrank) is shown whole, before and after. Fields left at
//! their defaults are absent from the canonical form and shown as `(none)`.

use serde_json::Value;

use super::pipeline::{PipelineDefinition, StageDef};

/// The changes from `old` (none: the project's first pipeline) to `new`.
/// Empty when they are the same.
pub fn pipeline_changes(old: Option<&PipelineDefinition>, new: &PipelineDefinition) -> Vec<String> {
    let Some(old) = old else {
        let warehouses: Vec<&str> = new.warehouses.iter().map(|w| w.name.as_str()).collect();
        let stages: Vec<&str> = new.stages.iter().map(|s| s.name.as_str()).collect();
        return vec![format!(
            "new project {}: warehouses {}; stages {}",
            new.project,
            warehouses.join(", "),
            stages.join(", ")
        )];
    };
    let mut out = Vec::new();
    if old.description != new.description {
        out.push(format!(
            "description: {} → {}",
            text(&old.description),
            text(&new.description)
        ));
    }
    let warehouses = |d: &PipelineDefinition| -> Vec<Item> {
        d.warehouses
            .iter()
            .map(|w| {
                let kind = to_value(&w.kind);
                let mut summary = format!("kind {}", kind.as_str().unwrap_or_default());
                if !w.source.is_empty() {
                    summary.push_str(&format!(", source {}", w.source));
                }
                (w.name.clone(), to_value(w), summary)
            })
            .collect()
    };
    named("warehouse", &warehouses(old), &warehouses(new), &mut out);
    let stages = |d: &PipelineDefinition| -> Vec<Item> {
        d.stages
            .iter()
            .map(|s| (s.name.clone(), to_value(s), stage_summary(s)))
            .collect()
    };
    named("stage", &stages(old), &stages(new), &mut out);
    // The order of the stages is how every table lists them.
    let order = |d: &PipelineDefinition| -> Vec<String> {
        d.stages.iter().map(|s| s.name.clone()).collect()
    };
    let (before, after) = (order(old), order(new));
    let kept_before: Vec<&String> = before.iter().filter(|s| after.contains(s)).collect();
    let kept_after: Vec<&String> = after.iter().filter(|s| before.contains(s)).collect();
    if kept_before != kept_after {
        out.push(format!(
            "stage order: {} → {}",
            before.join(", "),
            after.join(", ")
        ));
    }
    out
}

fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // Plain data with string keys: serializing cannot fail.
    serde_json::to_value(v).expect("pipeline parts serialize")
}

/// A warehouse or stage: its name, its canonical form, and what a line
/// says of it when it is added.
type Item = (String, Value, String);

/// "manual, freight of images from dev; checks smoke; record-only".
fn stage_summary(s: &StageDef) -> String {
    let mode = to_value(&s.policy.mode);
    let mut parts = vec![mode.as_str().unwrap_or_default().to_lowercase()];
    for r in &s.requested_freight {
        let mut from: Vec<&str> = Vec::new();
        if r.sources.direct {
            from.push("the warehouse");
        }
        from.extend(r.sources.stages.iter().map(String::as_str));
        parts.push(format!(
            "freight of {} from {}",
            r.origin,
            from.join(" or ")
        ));
    }
    if !s.verification.is_empty() {
        parts.push(format!("checks {}", s.verification.join(", ")));
    }
    if s.record_only {
        parts.push("record-only".to_string());
    }
    parts.join("; ")
}

/// Items matched by name: added, removed, and the fields that changed.
fn named(kind: &str, old: &[Item], new: &[Item], out: &mut Vec<String>) {
    for (name, value, summary) in new {
        match old.iter().find(|(n, ..)| n == name) {
            None => out.push(format!("{kind} {name} added: {summary}")),
            Some((_, before, _)) => {
                let mut fields = Vec::new();
                fields_changed("", before, value, &mut fields);
                out.extend(fields.into_iter().map(|f| format!("{kind} {name}: {f}")));
            }
        }
    }
    for (name, ..) in old {
        if !new.iter().any(|(n, ..)| n == name) {
            out.push(format!("{kind} {name} removed"));
        }
    }
}

/// Every leaf of `old` and `new` (objects are walked, anything else is a
/// leaf) that differs, as "path: old → new".
fn fields_changed(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => fields_changed(&at, x, y, out),
                    (x, y) => {
                        if x != y {
                            out.push(format!("{at}: {} → {}", shown(x), shown(y)));
                        }
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if old != new => match (keyed(a), keyed(b)) {
            (Some(a), Some(b)) => {
                let mut keys: Vec<&str> = a.iter().chain(&b).map(|(k, _)| *k).collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys {
                    let at = format!("{path}[{key}]");
                    match (item(&a, key), item(&b, key)) {
                        (Some(x), Some(y)) => fields_changed(&at, x, y, out),
                        (x, y) => out.push(format!("{at}: {} → {}", shown(x), shown(y))),
                    }
                }
            }
            // Windows, freezes or gates edited in place: item by item.
            _ if a.len() == b.len() && a.iter().chain(b).all(Value::is_object) => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    fields_changed(&format!("{path}[{i}]"), x, y, out);
                }
            }
            _ => out.push(format!(
                "{path}: {} → {}",
                shown(Some(old)),
                shown(Some(new))
            )),
        },
        _ if old != new => out.push(format!(
            "{path}: {} → {}",
            shown(Some(old)),
            shown(Some(new))
        )),
        _ => {}
    }
}

/// A list of freight requests by warehouse (`origin`), when every item is
/// one and no warehouse comes twice; else `None`.
fn keyed(list: &[Value]) -> Option<Vec<(&str, &Value)>> {
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(list.len());
    for item in list {
        let key = item.get("origin")?.as_str()?;
        if out.iter().any(|(k, _)| *k == key) {
            return None;
        }
        out.push((key, item));
    }
    Some(out)
}

/// The item of `list` under `key`.
fn item<'a>(list: &[(&str, &'a Value)], key: &str) -> Option<&'a Value> {
    list.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// A value as the line shows it: strings in quotes, unescaped; anything
/// else as compact JSON; an absent field as `(none)`.
fn shown(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(none)".to_string(),
        Some(Value::String(s)) => text(s),
        Some(other) => other.to_string(),
    }
}

fn text(s: &str) -> String {
    if s.is_empty() {
        "(none)".to_string()
    } else {
        format!("\"{s}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition(yaml_like: serde_json::Value) -> PipelineDefinition {
        serde_json::from_value(yaml_like).expect("a definition")
    }

    fn shop() -> serde_json::Value {
        serde_json::json!({
            "project": "shop",
            "warehouses": [{"name": "images", "kind": "image", "source": "ghcr.io/acme/shop"}],
            "stages": [
                {"name": "dev", "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
                 "policy": {"mode": "auto"}},
                {"name": "prod", "requested_freight": [{"origin": "images", "sources": {"stages": ["dev"]}}],
                 "policy": {"mode": "manual", "required_approvals": 2, "ticket_pattern": "CHG-\\d+"}},
            ],
        })
    }

    #[test]
    fn the_same_definition_changes_nothing() {
        let d = definition(shop());
        assert!(pipeline_changes(Some(&d), &d).is_empty());
    }

    #[test]
    fn a_first_pipeline_names_what_it_brings() {
        let d = definition(shop());
        assert_eq!(
            pipeline_changes(None, &d),
            ["new project shop: warehouses images; stages dev, prod"]
        );
    }

    #[test]
    fn each_changed_field_is_named_by_its_path() {
        let old = definition(shop());
        let mut v = shop();
        v["description"] = "the shop".into();
        v["stages"][1]["policy"]["required_approvals"] = 3.into();
        v["stages"][1]["policy"]
            .as_object_mut()
            .expect("policy")
            .remove("ticket_pattern");
        v["stages"][1]["verification"] = serde_json::json!(["smoke"]);
        v["warehouses"][0]["source"] = "ghcr.io/acme/shop2".into();
        v["stages"][1]["requested_freight"][0]["required_soak"] = "30m".into();
        let new = definition(v);
        assert_eq!(
            pipeline_changes(Some(&old), &new),
            [
                "description: (none) → \"the shop\"",
                "warehouse images: source: \"ghcr.io/acme/shop\" → \"ghcr.io/acme/shop2\"",
                "stage prod: policy.required_approvals: 2 → 3",
                "stage prod: policy.ticket_pattern: \"CHG-\\d+\" → (none)",
                "stage prod: requested_freight[images].required_soak: (none) → \"30m\"",
                "stage prod: verification: (none) → [\"smoke\"]",
            ]
        );
    }

    #[test]
    fn windows_and_freezes_edited_in_place_are_shown_item_by_item() {
        let mut v = shop();
        v["stages"][1]["policy"]["freezes"] = serde_json::json!([
            {"days": ["Sat", "Sun"], "reason": "weekend freeze"},
            {"from": "2026-12-23T18:00:00", "to": "2027-01-04T08:00:00"},
        ]);
        let old = definition(v.clone());
        v["stages"][1]["policy"]["freezes"][0]["days"] = serde_json::json!(["Sun"]);
        let new = definition(v.clone());
        assert_eq!(
            pipeline_changes(Some(&old), &new),
            ["stage prod: policy.freezes[0].days: [\"Sat\",\"Sun\"] → [\"Sun\"]"]
        );
        // One more: the list, before and after.
        v["stages"][1]["policy"]["freezes"]
            .as_array_mut()
            .expect("freezes")
            .push(serde_json::json!({"days": ["Mon"]}));
        let grown = pipeline_changes(Some(&new), &definition(v));
        assert_eq!(grown.len(), 1, "{grown:?}");
        assert!(
            grown[0].starts_with("stage prod: policy.freezes: [{"),
            "{grown:?}"
        );
    }

    #[test]
    fn freight_requests_are_matched_by_warehouse() {
        let old = definition(shop());
        let mut v = shop();
        v["warehouses"]
            .as_array_mut()
            .expect("warehouses")
            .push(serde_json::json!({"name": "config", "kind": "git"}));
        let old_with_config = definition(v.clone());
        let requests = v["stages"][1]["requested_freight"]
            .as_array_mut()
            .expect("requests");
        requests.insert(
            0,
            serde_json::json!({"origin": "config", "sources": {"direct": true}}),
        );
        requests[1]["sources"]["stages"] = serde_json::json!(["dev", "qa"]);
        let new = definition(v);
        let changes = pipeline_changes(Some(&old_with_config), &new);
        assert_eq!(
            changes,
            [
                "stage prod: requested_freight[config]: (none) → \
                 {\"availability\":\"OneOf\",\"origin\":\"config\",\"sources\":{\"direct\":true}}",
                "stage prod: requested_freight[images].sources.stages: [\"dev\"] → [\"dev\",\"qa\"]",
            ]
        );
        assert!(pipeline_changes(Some(&old), &new)
            .iter()
            .any(|c| c.starts_with("warehouse config added")));
    }

    #[test]
    fn stages_added_removed_and_reordered() {
        let old = definition(shop());
        let mut v = shop();
        let stages = v["stages"].as_array_mut().expect("stages");
        let prod = stages.pop().expect("prod");
        stages.insert(0, prod);
        stages.push(serde_json::json!({
            "name": "qa",
            "requested_freight": [{"origin": "images", "sources": {"direct": true}}],
            "policy": {"mode": "manual"},
        }));
        let mut new = definition(v);
        assert_eq!(
            pipeline_changes(Some(&old), &new),
            [
                "stage qa added: manual; freight of images from the warehouse",
                "stage order: dev, prod → prod, dev, qa",
            ]
        );
        new.warehouses.push(
            serde_json::from_value(serde_json::json!({"name": "config", "kind": "git"}))
                .expect("a warehouse"),
        );
        assert!(
            pipeline_changes(Some(&old), &new).contains(&"warehouse config added: kind git".into()),
            "{:?}",
            pipeline_changes(Some(&old), &new)
        );
        new.stages.retain(|s| s.name != "dev");
        assert_eq!(
            pipeline_changes(Some(&old), &new)
                .last()
                .map(String::as_str),
            Some("stage dev removed")
        );
    }
}
