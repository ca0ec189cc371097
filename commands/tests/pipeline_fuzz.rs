//! Hostile pipeline files: arbitrary text, and the shipped example with
//! random bytes changed, deleted or inserted, never panic the parser or the
//! checker; every refusal names the file and a line and column inside it.

use proptest::prelude::*;
use waybill_commands::pipeline_check::check_definition;
use waybill_commands::pipeline_file::parse_pipeline;

const EXAMPLE: &str = include_str!("../../deploy/examples/pipeline.yaml");

/// Parses and checks `text`; on refusal, checks where the errors point.
fn parse_and_check(text: &str) -> Result<(), TestCaseError> {
    // YAML breaks lines at \n, \r\n and a lone \r; an error may point just past the end.
    let breaks = text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| *c == '\n' || *c == '\r')
        .count();
    let lines = breaks + 2;
    match parse_pipeline("fuzz.yaml", text) {
        Ok(definition) => {
            let _ = check_definition(&definition);
        }
        Err(errors) => {
            prop_assert!(!errors.0.is_empty(), "a refusal without an error");
            for e in &errors.0 {
                prop_assert_eq!(&e.file, "fuzz.yaml");
                prop_assert!(
                    e.line >= 1 && e.line <= lines,
                    "line {} of {}",
                    e.line,
                    lines
                );
                prop_assert!(e.column >= 1, "column {}", e.column);
                prop_assert!(!e.message.is_empty());
            }
        }
    }
    Ok(())
}

/// One edit of the example: (byte offset, what to do, byte).
fn mutation() -> impl Strategy<Value = (usize, u8, u8)> {
    (0..EXAMPLE.len(), 0u8..3, any::<u8>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_is_refused_or_accepted_never_a_panic(text in ".{0,400}") {
        parse_and_check(&text)?;
    }

    #[test]
    fn mutated_examples_are_refused_with_a_place(edits in prop::collection::vec(mutation(), 1..6)) {
        let mut bytes = EXAMPLE.as_bytes().to_vec();
        for (at, op, b) in edits {
            let at = at.min(bytes.len().saturating_sub(1));
            match op {
                0 => bytes[at] = b,
                1 => { bytes.remove(at); }
                _ => bytes.insert(at, b),
            }
        }
        // Invalid UTF-8 never reaches the parser (the API takes a string).
        let text = String::from_utf8_lossy(&bytes);
        parse_and_check(&text)?;
    }
}
