//! Turning the deserializer's errors (bad syntax, an unknown field, a wrong
//! type, an unreadable duration or time) into a place, a path and a message.

use serde_saphyr::{Error, MessageFormatter, UserMessageFormatter};

use super::path::Display as PathDisplay;
use super::tree::{Pos, Tree};

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
    }
    (at, path, message)
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
    fn quotes_long_values_shortened() {
        assert_eq!(quoted("two"), "\"two\"");
        let long = "x".repeat(100);
        assert_eq!(
            quoted(&long),
            format!("\"{}\"…", "x".repeat(MAX_QUOTED_CHARS))
        );
    }
}
