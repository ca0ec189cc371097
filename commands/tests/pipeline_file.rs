//! Pipeline files: the shipped example reads and passes every rule; each broken
//! fixture is refused with errors that point at the offending line and column.

use waybill_commands::pipeline_check::check_definition;
use waybill_commands::pipeline_file::{
    parse_pipeline, source_digest, PipelineFileError, PipelineFileErrors, MAX_PIPELINE_FILE_BYTES,
};
use waybill_ledger::domain::{PolicyMode, Seconds};

const EXAMPLE: &str = include_str!("../../deploy/examples/pipeline.yaml");

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_str!(concat!("fixtures/pipelines/", $name)))
    };
}

fn errors((name, text): (&str, &str)) -> PipelineFileErrors {
    match parse_pipeline(name, text) {
        Ok(def) => panic!("{name} was accepted: {def:?}"),
        Err(errors) => errors,
    }
}

/// The single error a fixture yields.
fn only_error(fixture: (&str, &str)) -> PipelineFileError {
    let all = errors(fixture);
    assert_eq!(all.len(), 1, "{all}");
    all.0.into_iter().next().expect("one error")
}

/// Asserts where an error points (`line`, `column`), its path and part of its message.
#[track_caller]
fn assert_at(e: &PipelineFileError, line: usize, column: usize, path: Option<&str>, says: &str) {
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert_eq!(e.path.as_deref(), path, "{e}");
    assert!(e.message.contains(says), "{e:?} should say {says:?}");
}

#[test]
fn the_shipped_example_reads_and_passes_every_rule() {
    let def = parse_pipeline("pipeline.yaml", EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check_definition(&def), vec![]);
    assert_eq!(def.project, "shop");
    assert_eq!(def.warehouses.len(), 1);
    assert_eq!(def.warehouses[0].source, "ghcr.io/acme/shop");
    let names: Vec<&str> = def.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["dev", "staging", "prod"]);

    let dev = def.stage("dev").expect("dev");
    assert_eq!(dev.policy.mode, PolicyMode::Auto);
    assert!(dev.requested_freight[0].sources.direct);
    assert_eq!(dev.verification, ["integration-tests"]);

    let staging = def.stage("staging").expect("staging");
    assert_eq!(staging.policy.mode, PolicyMode::Gated);
    assert_eq!(
        staging.policy.gates[0].check.as_deref(),
        Some("integration-tests")
    );
    assert_eq!(staging.requested_freight[0].sources.stages, ["dev"]);

    let prod = def.stage("prod").expect("prod");
    let p = &prod.policy;
    assert_eq!(p.mode, PolicyMode::Manual);
    assert_eq!(p.required_approvals, 2);
    assert!(p.separation_of_duties);
    assert_eq!(p.ticket_pattern.as_deref(), Some(r"CHG-\d+"));
    assert_eq!(p.timezone, "Europe/Berlin");
    assert_eq!(p.freezes.len(), 1);
    assert_eq!(
        p.freezes[0].days,
        [chrono::Weekday::Sat, chrono::Weekday::Sun]
    );
    assert_eq!(prod.requested_freight[0].sources.stages, ["staging"]);
    assert_eq!(prod.requested_freight[0].required_soak, Seconds(30 * 60));
}

#[test]
fn an_unknown_field_points_at_its_key() {
    let e = only_error(fixture!("unknown_field.yaml"));
    assert_at(
        &e,
        13,
        7,
        Some("stages[0].policy.approvals"),
        "unknown field `approvals`",
    );
    assert!(
        e.message.contains("required_approvals"),
        "lists the fields: {e}"
    );
}

#[test]
fn a_wrong_type_points_at_the_value() {
    let e = only_error(fixture!("wrong_type.yaml"));
    assert_at(
        &e,
        11,
        27,
        Some("stages[0].policy.required_approvals"),
        "\"two\"",
    );
    assert!(e.message.contains("whole number"), "{e}");
}

#[test]
fn a_bad_duration_points_at_the_value() {
    let e = only_error(fixture!("bad_duration.yaml"));
    assert_at(
        &e,
        14,
        24,
        Some("stages[1].requested_freight[0].required_soak"),
        "unknown unit 'x'",
    );
    assert!(e.message.contains("10x"), "{e}");
}

#[test]
fn bad_indentation_points_at_the_misplaced_line() {
    let e = only_error(fixture!("bad_indentation.yaml"));
    assert_at(&e, 5, 4, None, "did not find expected '-'");
}

#[test]
fn a_bad_weekday_or_time_points_at_the_value() {
    let e = only_error(fixture!("bad_weekday.yaml"));
    assert_at(
        &e,
        12,
        23,
        Some("stages[0].policy.freezes[0].days[1]"),
        "\"Sonday\"",
    );
    assert!(e.message.contains("weekday"), "{e}");

    let e = only_error(fixture!("bad_time.yaml"));
    assert_at(
        &e,
        13,
        16,
        Some("stages[0].policy.windows[0].end"),
        "\"25:00:00\"",
    );
}

#[test]
fn a_missing_field_points_at_the_mapping_that_lacks_it() {
    let e = only_error(fixture!("missing_field.yaml"));
    assert_at(
        &e,
        6,
        5,
        Some("stages[0]"),
        "missing field `requested_freight`",
    );
}

#[test]
fn a_duplicate_key_and_a_yaml_1_1_boolean_are_refused() {
    let e = only_error(fixture!("duplicate_key.yaml"));
    assert_at(
        &e,
        12,
        7,
        Some("stages[0].policy.mode"),
        "duplicate mapping key `mode`",
    );

    let e = only_error(fixture!("yes_is_not_a_boolean.yaml"));
    assert_at(&e, 7, 18, Some("stages[0].record_only"), "\"yes\"");
}

#[test]
fn an_unknown_upstream_stage_points_at_its_name_in_the_list() {
    let e = only_error(fixture!("unknown_upstream.yaml"));
    assert_at(
        &e,
        14,
        25,
        Some("stages[1].requested_freight[0].sources.stages[1]"),
        "no stage \"qa\"",
    );
}

#[test]
fn an_unknown_origin_warehouse_points_at_the_origin() {
    let e = only_error(fixture!("unknown_origin.yaml"));
    assert_at(
        &e,
        8,
        17,
        Some("stages[0].requested_freight[0].origin"),
        "no warehouse \"image\" (did you mean \"images\"?)",
    );
}

#[test]
fn availability_inside_sources_says_where_it_belongs() {
    let e = only_error(fixture!("availability_under_sources.yaml"));
    assert_at(
        &e,
        19,
        11,
        Some("stages[2].requested_freight[0].sources.availability"),
        "it belongs to the requested_freight entry, beside `origin` and `sources`",
    );
}

#[test]
fn an_upstream_that_does_not_run_the_warehouse_is_refused() {
    let e = only_error(fixture!("upstream_without_the_warehouse.yaml"));
    assert_at(
        &e,
        16,
        42,
        Some("stages[1].requested_freight[1].sources.stages[0]"),
        "stage \"dev\" does not take freight from warehouse \"config\"",
    );
}

#[test]
fn match_upstream_needs_one_upstream_per_warehouse() {
    let e = only_error(fixture!("match_upstream_two_upstreams.yaml"));
    assert_at(
        &e,
        18,
        27,
        Some("stages[2].requested_freight[0].sources.stages"),
        "needs exactly one upstream stage for warehouse \"images\" (this lists 2)",
    );
}

#[test]
fn gated_without_gates_points_at_the_policy_that_lacks_them() {
    let e = only_error(fixture!("gated_without_gates.yaml"));
    assert_at(
        &e,
        10,
        5,
        Some("stages[0].policy.gates"),
        "at least one gate",
    );
}

#[test]
fn a_bad_ticket_pattern_points_at_it_on_one_line() {
    let e = only_error(fixture!("bad_ticket_regex.yaml"));
    assert_at(
        &e,
        11,
        23,
        Some("stages[0].policy.ticket_pattern"),
        "not a valid regular expression",
    );
    assert!(e.message.contains("unclosed group"), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
}

#[test]
fn an_unknown_time_zone_points_at_it() {
    let e = only_error(fixture!("unknown_timezone.yaml"));
    assert_at(
        &e,
        11,
        17,
        Some("stages[0].policy.timezone"),
        "unknown time zone \"Europe/Berln\"",
    );
}

#[test]
fn a_duplicate_stage_points_at_the_second_name() {
    let e = only_error(fixture!("duplicate_stage.yaml"));
    assert_at(
        &e,
        10,
        11,
        Some("stages[1].name"),
        "stage \"dev\" is defined twice",
    );
}

#[test]
fn a_cycle_points_at_the_requests_of_a_stage_on_it() {
    let e = only_error(fixture!("cycle.yaml"));
    assert_at(&e, 11, 5, Some("stages[1].requested_freight"), "cycle");
}

#[test]
fn every_semantic_problem_is_reported_in_file_order() {
    let all = errors(fixture!("several_problems.yaml"));
    let found: Vec<(usize, usize, &str)> = all
        .iter()
        .map(|e| (e.line, e.column, e.path.as_deref().expect("a path")))
        .collect();
    assert_eq!(
        found,
        [
            (2, 10, "project"),
            (10, 5, "stages[0].policy.gates"),
            (16, 20, "stages[1].requested_freight[0].sources.stages[0]"),
            (19, 17, "stages[1].policy.timezone"),
            (20, 23, "stages[1].policy.ticket_pattern"),
        ]
    );
    let shown = all.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 5, "one error per line:\n{shown}");
    assert_eq!(
        lines[2],
        "several_problems.yaml:16:20: \
         stages[1].requested_freight[0].sources.stages[0]: no stage \"qa\""
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("several_problems.yaml:")),
        "{shown}"
    );
}

#[test]
fn an_empty_file_is_refused() {
    for text in [
        "",
        "\n\n",
        include_str!("fixtures/pipelines/empty.yaml"),
        "---\n",
        "~\n",
    ] {
        let e = only_error(("empty.yaml", text));
        assert_eq!(e.file, "empty.yaml");
        assert!(
            e.message.contains("no pipeline definition"),
            "{text:?}: {e}"
        );
    }
}

#[test]
fn a_second_document_is_refused_where_it_starts() {
    let e = only_error(fixture!("two_documents.yaml"));
    assert_at(&e, 9, 1, None, "a second YAML document");
}

#[test]
fn an_oversized_file_is_refused_before_it_is_read() {
    let mut text = String::from("project: shop\ndescription: \"");
    text.push_str(&"x".repeat(MAX_PIPELINE_FILE_BYTES));
    text.push_str("\"\n");
    let e = only_error(("big.yaml", &text));
    assert_at(&e, 1, 1, None, "at most 512 KiB");
    assert!(
        e.message.contains(&text.len().to_string()),
        "says the size: {e}"
    );
}

#[test]
fn a_file_just_under_the_limit_is_read() {
    let padding = MAX_PIPELINE_FILE_BYTES - EXAMPLE.len() - 1;
    let text = format!("{EXAMPLE}#{}", "x".repeat(padding));
    assert_eq!(text.len(), MAX_PIPELINE_FILE_BYTES);
    parse_pipeline("pipeline.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn errors_name_the_file_they_were_given() {
    let e = only_error(("deploy/prod/pipeline.yaml", "project: [\n"));
    assert_eq!(e.file, "deploy/prod/pipeline.yaml");
    assert!(
        e.to_string().starts_with("deploy/prod/pipeline.yaml:"),
        "{e}"
    );
    let as_error: &dyn std::error::Error = &e;
    assert_eq!(as_error.to_string(), e.to_string());
}

#[test]
fn the_digest_is_of_the_bytes_as_written() {
    let digest = source_digest(EXAMPLE);
    assert_eq!(digest.len(), 64);
    assert!(digest
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(digest, source_digest(EXAMPLE));
    assert_ne!(digest, source_digest(&EXAMPLE.replace("30m", "31m")));
}

#[test]
fn the_examples_readme_shows_the_errors_the_example_really_gives() {
    let readme = include_str!("../../deploy/examples/README.md");
    let misspelt = EXAMPLE
        .replace("stages: [staging]", "stages: [stagign]")
        .replace("Europe/Berlin", "Europe/Berln");
    let all = errors(("pipeline.yaml", &misspelt));
    assert_eq!(all.len(), 2, "{all}");
    for e in &all {
        assert!(readme.contains(&e.to_string()), "README should show: {e}");
    }
}
