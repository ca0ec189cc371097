//! Reading a pipeline file: limits, YAML, the definition's shape, then its rules.

use waybill_ledger::domain::PipelineDefinition;

use super::error::{PipelineFileError, PipelineFileErrors};
use super::path::{parse_path, Segment};
use super::tree::{Pos, Tree};
use super::{recover, yaml_error};
use crate::pipeline_check::check_definition;

/// Largest pipeline file accepted: definitions are small, and a limit keeps a
/// hostile file from costing the server memory or time.
pub const MAX_PIPELINE_FILE_BYTES: usize = 512 * 1024;

/// Reads the pipeline definition in `text`, named `source_name` in errors.
///
/// On failure every error says where (`source_name`, line, column), what is
/// wrong and, when it is about one value, that value's path. A file that is
/// not one YAML document gets one error (its syntax, a second document); one
/// of the wrong shape (an unknown field, a wrong type, an unreadable duration
/// or time) gets an error for each unknown field and for each warehouse or
/// stage that does not read (see `recover`); a definition that reads but
/// breaks the rules of [`check_definition`] gets one error per problem. A
/// file with shape errors also gets those of the rules the rest of it
/// breaks, outside the warehouses and stages with shape errors, unless a
/// whole warehouse or stage (or an item of one) does not read. In file
/// order.
pub fn parse_pipeline(
    source_name: &str,
    text: &str,
) -> Result<PipelineDefinition, PipelineFileErrors> {
    let error = |at: Pos, path: Option<String>, message: String| PipelineFileError {
        file: source_name.to_string(),
        line: at.line,
        column: at.column,
        path,
        message,
    };
    let one = |at: Pos, path: Option<String>, message: String| {
        PipelineFileErrors::one(error(at, path, message))
    };
    if text.len() > MAX_PIPELINE_FILE_BYTES {
        return Err(one(
            Pos::START,
            None,
            format!(
                "the file is {} bytes; a pipeline file may be at most 512 KiB \
                 ({MAX_PIPELINE_FILE_BYTES} bytes)",
                text.len()
            ),
        ));
    }
    let tree = Tree::read(text).map_err(|e| one(e.at, None, yaml_error::one_line(&e.message)))?;
    if let Some(second) = tree.documents.get(1) {
        return Err(one(
            second.start,
            None,
            "a second YAML document starts here; a pipeline file holds exactly one".into(),
        ));
    }
    if tree.is_empty() {
        let at = tree.documents.first().map_or(Pos::START, |d| d.start);
        return Err(one(
            at,
            None,
            "the file holds no pipeline definition (expected `project`, `warehouses` and `stages`)"
                .into(),
        ));
    }
    // The rules broken, each with its path, outside the items `skip` names.
    let broken = |definition: &PipelineDefinition, skip: &[Vec<Segment>]| {
        check_definition(definition)
            .into_iter()
            .filter_map(|problem| {
                let path = parse_path(&problem.path);
                if let Some(path) = &path {
                    if skip.iter().any(|item| path.starts_with(item)) {
                        return None;
                    }
                }
                let at = path.map_or(Pos::START, |path| tree.locate(&path).0);
                Some(error(
                    at,
                    Some(problem.path),
                    yaml_error::one_line(&problem.message),
                ))
            })
            .collect::<Vec<_>>()
    };
    let read = |text: &str| serde_saphyr::from_str_with_options(text, yaml_options());
    let mut errors = match read(text) {
        Ok(definition) => {
            let errors = broken(&definition, &[]);
            if errors.is_empty() {
                return Ok(definition);
            }
            errors
        }
        Err(e) => {
            // Every shape error, then the rules the rest of the file breaks
            // (blanking the errors out keeps every line and column).
            let first = yaml_error::describe(&tree, &e);
            let recovered = recover::shape_errors(text, &tree, first, read);
            let mut errors: Vec<PipelineFileError> = recovered
                .found
                .into_iter()
                .map(|(at, path, message)| error(at, path, message))
                .collect();
            if let Some((rest, items)) = recovered.rest {
                errors.extend(broken(&rest, &items));
            }
            errors
        }
    };
    errors.sort_by_key(|e| (e.line, e.column));
    Err(PipelineFileErrors(errors))
}

/// YAML 1.2 booleans only (`yes` and `on` are refused rather than guessed), and
/// errors without the crate's own snippet: the caller renders them.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        with_snippet: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "\
project: shop
warehouses:
  - name: images
policies:
";

    fn first_error(text: &str) -> PipelineFileError {
        let errors = parse_pipeline("p.yaml", text).expect_err("refused");
        errors.0.into_iter().next().expect("at least one error")
    }

    #[test]
    fn a_problem_in_merged_policy_points_where_it_is_written() {
        let text = "\
project: shop
warehouses:
  - name: images
stages:
  - name: dev
    requested_freight:
      - {origin: images, sources: {direct: true}}
    policy: &common
      timezone: Europe/Berln
  - name: prod
    requested_freight:
      - {origin: images, sources: {stages: [dev]}}
    policy:
      <<: *common
      mode: manual
";
        let errors = parse_pipeline("p.yaml", text).expect_err("bad time zone");
        let at: Vec<(usize, usize, Option<&str>)> = errors
            .iter()
            .map(|e| (e.line, e.column, e.path.as_deref()))
            .collect();
        assert_eq!(
            at,
            [
                (9, 17, Some("stages[0].policy.timezone")),
                (9, 17, Some("stages[1].policy.timezone")),
            ]
        );
    }

    #[test]
    fn an_unknown_top_level_field_is_named() {
        let e = first_error(&format!("{BASE}  - name: dev\n"));
        assert_eq!((e.line, e.column), (4, 1));
        assert_eq!(e.path.as_deref(), Some("policies"));
        assert!(e.message.contains("unknown field `policies`"), "{e}");
    }

    #[test]
    fn a_missing_top_level_field_points_at_the_top() {
        let e = first_error("project: shop\nwarehouses: [{name: images}]\n");
        assert_eq!((e.line, e.column, e.path.as_deref()), (1, 1, None));
        assert!(e.message.contains("missing field `stages`"), "{e}");
    }

    #[test]
    fn a_syntax_error_points_where_the_parser_stopped() {
        let e = first_error("project: shop\nwarehouses: [{name: images}\nstages: []\n");
        assert_eq!(e.path, None);
        assert_eq!(e.line, 3, "{e}");
    }

    /// Where each error of `text` is, and its path.
    fn places(text: &str) -> Vec<(usize, usize, String)> {
        let errors = parse_pipeline("p.yaml", text).expect_err("refused");
        errors
            .iter()
            .map(|e| (e.line, e.column, e.path.clone().unwrap_or_default()))
            .collect()
    }

    const TWO_STAGES: &str = "\
project: shop
warehouses:
  - name: images
    kind: imag
stages:
  - name: dev
    recordonly: true
    requested_freight:
      - origin: images
        sources:
          direct: true
    policy:
      mode: auto
      approvals: 2
  - name: prod
    requested_freight:
      - origin: images
        sources: {stages: [dev]}
        required_soak: forever
    policy: {mode: manual}
";

    #[test]
    fn every_unknown_field_and_every_item_that_does_not_read_is_reported() {
        assert_eq!(
            places(TWO_STAGES),
            [
                (4, 11, "warehouses[0].kind".to_string()),
                (7, 5, "stages[0].recordonly".to_string()),
                (14, 7, "stages[0].policy.approvals".to_string()),
                (
                    19,
                    24,
                    "stages[1].requested_freight[0].required_soak".to_string()
                ),
            ]
        );
        let errors = parse_pipeline("p.yaml", TWO_STAGES).expect_err("refused");
        assert!(
            errors.0[1].message.contains("unknown field `recordonly`"),
            "{errors}"
        );
        assert!(errors.0[3].message.contains("forever"), "{errors}");
    }

    #[test]
    fn a_mapping_left_empty_is_not_reported_as_an_error() {
        // Leaving out the unknown `dirct` would leave `sources` empty, which
        // is no error of the file's: the search ends there.
        let text = TWO_STAGES
            .replace("kind: imag", "kind: image")
            .replace("    recordonly: true\n", "")
            .replace("      approvals: 2\n", "")
            .replace("direct: true", "dirct: true");
        assert_eq!(
            places(&text),
            [(
                10,
                11,
                "stages[0].requested_freight[0].sources.dirct".to_string()
            )]
        );
    }

    #[test]
    fn the_search_ends_at_flow_style_and_at_anchors() {
        // The first stage is written in flow style: nothing is blanked.
        let flow = "\
project: shop
warehouses: [{name: images}]
stages:
  - {name: dev, recordonly: true, requested_freight: [{origin: images, sources: {direct: true}}]}
  - name: prod
    recordonly: true
";
        assert_eq!(places(flow), [(4, 17, "stages[0].recordonly".to_string())]);
        // A stage that defines an anchor another uses is not left out.
        let anchored = "\
project: shop
warehouses: [{name: images}]
stages:
  - name: dev
    requested_freight: [{origin: images, sources: {direct: true}}]
    policy: &common
      mode: sometimes
  - name: prod
    requested_freight: [{origin: images, sources: {stages: [dev]}}]
    policy:
      <<: *common
      approvals: 2
";
        assert_eq!(
            places(anchored),
            [(7, 13, "stages[0].policy.mode".to_string())]
        );
    }

    #[test]
    fn a_stage_missing_a_field_is_reported_and_the_next_read() {
        let text = "\
project: shop
warehouses: [{name: images}]
stages:
  - requested_freight: [{origin: images, sources: {direct: true}}]
  - name: prod
    requested_freight: [{origin: images, sources: {stages: [dev]}}]
    policy: {mode: manul}
";
        let errors = parse_pipeline("p.yaml", text).expect_err("refused");
        assert_eq!(errors.len(), 2, "{errors}");
        assert!(
            errors.0[0].message.contains("missing field `name`"),
            "{errors}"
        );
        assert_eq!(errors.0[0].path.as_deref(), Some("stages[0]"));
        assert_eq!(errors.0[1].path.as_deref(), Some("stages[1].policy.mode"));
    }

    #[test]
    fn the_rules_are_checked_on_the_rest_of_a_file_with_shape_errors() {
        // `recordonly` does not read; the prod stage names an upstream that
        // does not exist and the project name is not valid: three errors at
        // once, in file order.
        let text = "\
project: Shop!
warehouses:
  - name: images
stages:
  - name: dev
    recordonly: true
    requested_freight:
      - origin: images
        sources:
          direct: true
    verification: [smoke, smoke]
  - name: prod
    requested_freight:
      - origin: images
        sources:
          stages: [dve]
";
        assert_eq!(
            places(text),
            [
                (1, 10, "project".to_string()),
                (6, 5, "stages[0].recordonly".to_string()),
                (
                    16,
                    20,
                    "stages[1].requested_freight[0].sources.stages[0]".to_string()
                ),
            ]
        );
        let errors = parse_pipeline("p.yaml", text).expect_err("refused");
        assert_eq!(
            errors.0[2].message,
            "no stage \"dve\" (did you mean \"dev\"?)"
        );
        assert!(
            errors.0[1]
                .message
                .ends_with("(did you mean `record_only`?)"),
            "{errors}"
        );
        // The rules of a stage with a shape error are left until it reads
        // (the check listed twice in dev is not reported yet), and so are
        // all of them once a list item is left out: prod names dev, which
        // would no longer be there.
        let fixed = text
            .replace("Shop!", "shop")
            .replace("    recordonly: true\n", "");
        let errors = parse_pipeline("p.yaml", &fixed).expect_err("refused");
        assert_eq!(errors.len(), 2, "{errors}");
        assert!(errors.0[0].message.contains("listed twice"), "{errors}");
        let item_left_out = fixed.replace("  - name: dev\n    requested", "  - requested");
        let errors = parse_pipeline("p.yaml", &item_left_out).expect_err("refused");
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(
            errors.0[0].message.contains("missing field `name`"),
            "{errors}"
        );
    }

    #[test]
    fn the_limit_is_on_bytes() {
        let text = format!("# {}\n", "é".repeat(MAX_PIPELINE_FILE_BYTES / 2));
        assert!(text.chars().count() < MAX_PIPELINE_FILE_BYTES);
        let e = first_error(&text);
        assert!(e.message.contains("at most 512 KiB"), "{e}");
    }
}
