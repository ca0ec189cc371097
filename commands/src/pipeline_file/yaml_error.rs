//! Turning the deserializer's errors (bad syntax, an unknown field, a wrong
//! type, an unreadable duration or time) into a place, a path and a message.

use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

use super::path::Display as PathDisplay;
use super::tree::{Pos, Tree};
use waybill_ledger::name::closest_name;

/// Longest value quoted back in a message.
const MAX_QUOTED_CHARS: usize = 60;

/// Where `e` happened in the document `tree` was read from, the path of the
/// value there (when it is below the top) and what is wrong.
pub(crate) fn describe(tree: &Tree, e: &Error) -> (Pos, Option<String>, String) {
    let inner = original(e);
    let mut at = position(e);
    let mut message = one_line(&UserMessageFormatter.format_message(inner));
    let Some(found) = tree.node_at(at) else {
        return (at, None, message);
    };
    let mut path = found.path;
    match inner {
        // Reported where the mapping ends up being read; point at the mapping.
        Error::SerdeMissingField { .. } if found.is_key => {
            path.pop();
            at = tree.locate(&path).0;
        }
        Error::InvalidScalar { ty, .. } => message = format!("expected {}", expected(ty)),
        _ => {}
    }
    if let Some(text) = found
        .scalar
        .filter(|t| !found.is_key && !message.contains(t.as_str()))
    {
        message = format!("{}: {message}", quoted(&text));
    }
    let path = (!path.is_empty()).then(|| PathDisplay(&path).to_string());
    if let Some(hint) = path.as_deref().and_then(|p| misplaced(p, &message)) {
        message = format!("{message} ({hint})");
    } else if let Some(close) = closest_expected(&message) {
        message = format!("{message} (did you mean `{close}`?)");
    }
    (at, path, message)
}

/// For an unknown field or variant, the expected name most like it
/// (`recordonly` → `record_only`, `manul` → `manual`), if one is close.
fn closest_expected(message: &str) -> Option<&str> {
    let (_, rest) = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let expected = rest.split_once("expected ")?.1;
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let names = expected
        .split(", ")
        .flat_map(|part| part.split(" or "))
        .map(|name| name.trim().trim_matches('`'))
        .filter(|name| !name.is_empty());
    closest_name(given, names)
}

/// Where a field written one level too deep belongs: `availability` and
/// `required_soak` are read as part of `sources`, which they qualify.
fn misplaced(path: &str, message: &str) -> Option<&'static str> {
    let field = path.rsplit('.').next()?;
    let under_sources = path.ends_with(&format!(".sources.{field}"));
    (under_sources
        && matches!(field, "availability" | "required_soak")
        && message.contains("unknown field"))
    .then_some("it belongs to the requested_freight entry, beside `origin` and `sources`")
}

/// The error under the crate's snippet and alias wrappers.
fn original(mut e: &Error) -> &Error {
    while let Error::WithSnippet { error, .. } | Error::AliasError { error, .. } = e {
        e = error;
    }
    e
}

fn position(e: &Error) -> Pos {
    match e.location() {
        Some(at) if at.line() > 0 => Pos {
            line: usize::try_from(at.line()).unwrap_or(usize::MAX),
            column: usize::try_from(at.column()).unwrap_or(usize::MAX).max(1),
        },
        _ => Pos::START,
    }
}

/// What a Rust scalar type means to someone writing YAML.
fn expected(ty: &str) -> String {
    match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number, 0 or more".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" => "a number".into(),
        "bool" => "true or false".into(),
        other => format!("a value of type {other}"),
    }
}

/// `text` quoted, escaped and shortened.
fn quoted(text: &str) -> String {
    if text.chars().count() <= MAX_QUOTED_CHARS {
        return format!("{text:?}");
    }
    let head: String = text.chars().take(MAX_QUOTED_CHARS).collect();
    format!("{head:?}…")
}

/// `message` on one line: each error is one line of output. Multi-line messages
/// (a regular expression's caret diagram) keep their text, not their drawing.
pub(crate) fn one_line(message: &str) -> String {
    let lines = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c.is_whitespace()));
    let joined = lines.collect::<Vec<_>>().join(" ");
    joined
        .chars()
        .flat_map(|c| {
            let escape = c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
            let shown: Vec<char> = if escape {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            shown
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_keeps_text_and_drops_drawings() {
        assert_eq!(one_line("plain"), "plain");
        assert_eq!(
            one_line("regex parse error:\n    ^(?:[)$\n        ^\nerror: unclosed character class"),
            "regex parse error: ^(?:[)$ error: unclosed character class"
        );
        assert_eq!(one_line("tab\there"), "tab\\there");
    }

    #[test]
    fn a_misspelled_name_gets_the_closest_expected_one() {
        let field = "unknown field `recordonly`, expected one of name, requested_freight, \
                     verification, auto_selection, record_only, policy";
        assert_eq!(closest_expected(field), Some("record_only"));
        let variant = "unknown variant `newest`, expected one of NewestFreight, MatchUpstream";
        assert_eq!(closest_expected(variant), Some("NewestFreight"));
        let quoted = "unknown variant `manul`, expected one of `auto`, `gated`, `manual`";
        assert_eq!(closest_expected(quoted), Some("manual"));
        let two = "unknown field `drect`, expected `direct` or `stages`";
        assert_eq!(closest_expected(two), Some("direct"));
        // Nothing close, or not a name error: no guess.
        let far = "unknown field `timeout`, expected one of name, kind, source";
        assert_eq!(closest_expected(far), None);
        assert_eq!(closest_expected("expected a whole number"), None);
    }

    #[test]
    fn quotes_long_values_shortened() {
        assert_eq!(quoted("two"), "\"two\"");
        let long = "x".repeat(100);
        assert_eq!(
            quoted(&long),
            format!("\"{}\"…", "x".repeat(MAX_QUOTED_CHARS))
        );
    }
}
