//! A definition written back as a pipeline file (`waybill pipeline`): YAML
//! that `waybill apply -f` reads as the same definition.

use waybill_ledger::domain::PipelineDefinition;

/// `definition` as YAML, fields at their defaults left out (as the
/// canonical form records it).
pub fn render_pipeline(definition: &PipelineDefinition) -> String {
    // Plain data with string keys: serializing cannot fail.
    serde_saphyr::to_string(definition).expect("a pipeline definition serializes as YAML")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline_file::parse_pipeline;

    #[test]
    fn the_example_reads_back_as_itself() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/examples/pipeline.yaml"
        );
        let text = std::fs::read_to_string(path).expect("the example");
        let mut definition = parse_pipeline("pipeline.yaml", &text).expect("it parses");
        // With what the example only mentions in comments: windows, a dated
        // freeze, a metric gate, bypass subjects, a second warehouse.
        let prod = definition
            .stages
            .iter_mut()
            .find(|s| s.name == "prod")
            .expect("prod");
        let extra = parse_pipeline(
            "extra.yaml",
            "project: x\nwarehouses: [{name: w}]\nstages:\n- name: s\n  requested_freight: \
             [{origin: w, sources: {direct: true}}]\n  policy:\n    mode: gated\n    gates: \
             [{metric: p99_ms, max: 250.5}, {check: e2e}]\n    windows: [{days: [Mon, Tue], \
             start: '09:00:00', end: '16:30:00'}]\n    freezes: [{from: 2026-12-23T18:00:00, \
             to: 2027-01-04T08:00:00, reason: 'year-end: \"quiet\"'}]\n    bypass: \
             [group:sre-oncall]\n",
        )
        .expect("the extra parses");
        prod.policy.windows = extra.stages[0].policy.windows.clone();
        prod.policy
            .freezes
            .extend(extra.stages[0].policy.freezes.clone());
        prod.policy.bypass = extra.stages[0].policy.bypass.clone();
        let staging = definition
            .stages
            .iter_mut()
            .find(|s| s.name == "staging")
            .expect("staging");
        staging.policy.gates = extra.stages[0].policy.gates.clone();
        let yaml = render_pipeline(&definition);
        let again = parse_pipeline("rendered.yaml", &yaml)
            .unwrap_or_else(|e| panic!("the rendered file does not parse: {e}\n{yaml}"));
        assert_eq!(again, definition, "{yaml}");
        println!("{yaml}");
        assert_eq!(again.to_canonical_json(), definition.to_canonical_json());
    }
}
