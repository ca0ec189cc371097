//! Definition paths, as [`crate::pipeline_check::Problem`] writes them:
//! `project`, `stages[2].policy.gates[0]`,
//! `stages[1].requested_freight[0].sources.stages[0]`.

use std::fmt;

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

/// The steps of `path`, or `None` when it is not written as above.
pub(crate) fn parse_path(path: &str) -> Option<Vec<Segment>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            out.push(Segment::Index(after[..close].parse().ok()?));
            rest = &after[close + 1..];
        } else {
            if !out.is_empty() {
                rest = rest.strip_prefix('.')?;
            }
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            if key.is_empty() {
                return None;
            }
            out.push(Segment::Key(key.to_string()));
            rest = &rest[end..];
        }
    }
    Some(out)
}

/// Writes segments back as a path (the inverse of [`parse_path`]).
pub(crate) struct Display<'a>(pub &'a [Segment]);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn parses_the_paths_problems_use() {
        assert_eq!(parse_path("project"), Some(vec![key("project")]));
        assert_eq!(
            parse_path("stages[1].requested_freight[0].sources.stages[0]"),
            Some(vec![
                key("stages"),
                Segment::Index(1),
                key("requested_freight"),
                Segment::Index(0),
                key("sources"),
                key("stages"),
                Segment::Index(0),
            ])
        );
        assert_eq!(parse_path(""), Some(vec![]));
        for bad in ["stages[", "stages[x]", "a..b", ".a", "a.", "stages[1]x"] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_back_what_it_parsed() {
        for text in ["project", "stages[2].policy.gates[0]", "warehouses[0].name"] {
            let segments = parse_path(text).expect(text);
            assert_eq!(Display(&segments).to_string(), text);
        }
    }
}
