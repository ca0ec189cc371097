//! The shape errors after the first. The deserializer stops at the first
//! thing it cannot read; to find the next, the part it stopped at is blanked
//! out (its characters replaced by spaces, so that every later line and
//! column stays where it was) and the file is read again. The part is the
//! mapping entry the error is about (an unknown field, or a value that does
//! not read: left out, a field with a default takes it), or the list item
//! (a stage missing a field).
//!
//! Only block-style YAML is blanked (the entry or item starts its line, after
//! any `- `); a part written in flow style (`{origin: images, ...}`), inside
//! an alias or a merge, or defining an anchor ends the search, as does an
//! error at or above what was blanked (a required field left out, a mapping
//! left empty, a list left without items): each error reported is one the
//! file really has. Items of a list after one left out are reported under
//! their index in the file.
//!
//! When the text reads once the errors are blanked out, and only mapping
//! entries were (no list item), what it reads as is handed back with the
//! warehouses and stages those entries were in, so that the rules can be
//! checked on the rest of the file (see `Recovered::rest`).

use std::ops::Range;

use serde_saphyr::Error;

use super::path::{parse_path, Display as PathDisplay, Segment};
use super::tree::{Pos, Tree};
use super::yaml_error;

/// Errors looked for in one file at most.
const MAX_ERRORS: usize = 20;

/// Text read again, in all, while looking (each search reads the file twice
/// more): a large file is searched less far.
const MAX_TEXT_READ: usize = 4 << 20;

/// A shape error: where, the path of the value, and what is wrong.
pub(crate) type Found = (Pos, Option<String>, String);

/// What a search found.
pub(crate) struct Recovered<T> {
    /// The first error, then every later one, in the order found.
    pub found: Vec<Found>,
    /// What the file reads as with every error blanked out, when it then
    /// reads and only mapping entries were blanked, with the items
    /// (`stages[1]`, `warehouses[0]`) whose entries were: a rule broken
    /// outside those items is the file's own. A list item left out (a stage,
    /// one of its requests) would change what other stages refer to, and so
    /// leaves this `None`.
    pub rest: Option<(T, Vec<Vec<Segment>>)>,
}

/// `first` (the error reading `text`, whose tree is `tree`, stopped at), then
/// every later shape error that blanking out the parts already reported
/// uncovers. `read` deserializes a text as the file is.
pub(crate) fn shape_errors<T>(
    text: &str,
    tree: &Tree,
    first: Found,
    read: impl Fn(&str) -> Result<T, Error>,
) -> Recovered<T> {
    // Rows are lines split at `\n`; a lone `\r`, which YAML also breaks
    // lines at, would put them out of step with the parser's line numbers.
    let lone_cr = text.replace("\r\n", "").contains('\r');
    let searches = match lone_cr {
        true => 0,
        false => MAX_ERRORS.min(MAX_TEXT_READ / (2 * text.len().max(1))),
    };
    let mut lines: Vec<Vec<char>> = text.split('\n').map(|l| l.chars().collect()).collect();
    let mut left_out = LeftOut::default();
    let mut found = vec![first.clone()];
    let mut rest = None;
    // The last error and the tree as the text now stands (list indices as
    // they are now).
    let (mut last, mut now_read): (Found, Option<Tree>) = (first, None);
    while found.len() < searches {
        let Some(path) = last.1.as_deref().and_then(parse_path) else {
            break;
        };
        let Some(rows) = part_rows(&lines, now_read.as_ref().unwrap_or(tree), &path) else {
            break;
        };
        // An anchor left out would fail its aliases.
        if rows
            .iter()
            .any(|(row, cols)| lines[*row][cols.clone()].contains(&'&'))
        {
            break;
        }
        for (row, cols) in rows {
            lines[row][cols].fill(' ');
        }
        left_out.record(&path);
        let now = joined(&lines);
        let Ok(now_tree) = Tree::read(&now) else {
            break;
        };
        let e = match read(&now) {
            Ok(value) => {
                rest = left_out.items_of_entries().map(|items| (value, items));
                break;
            }
            Err(e) => e,
        };
        let next = yaml_error::describe(&now_tree, &e);
        let Some(at) = next.1.as_deref().and_then(parse_path) else {
            break;
        };
        let in_file = left_out.in_file(&at);
        // A field, mapping or list left empty by the blanking: not the file's.
        if left_out.parts.iter().any(|part| part.starts_with(&in_file)) {
            break;
        }
        let reported = (
            next.0,
            Some(PathDisplay(&in_file).to_string()),
            next.2.clone(),
        );
        if found.contains(&reported) {
            break;
        }
        found.push(reported);
        (last, now_read) = (next, Some(now_tree));
    }
    Recovered { found, rest }
}

/// What was blanked out, by its paths in the file.
#[derive(Default)]
struct LeftOut {
    parts: Vec<Vec<Segment>>,
}

impl LeftOut {
    /// `path` (as the text stands now) in the file's terms.
    fn in_file(&self, path: &[Segment]) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::with_capacity(path.len());
        for segment in path {
            let step = match segment {
                Segment::Index(now) => {
                    // Items of this list left out, in file order.
                    let mut gone: Vec<usize> = self
                        .parts
                        .iter()
                        .filter_map(|p| match p.split_last() {
                            Some((Segment::Index(i), list)) if list == out.as_slice() => Some(*i),
                            _ => None,
                        })
                        .collect();
                    gone.sort_unstable();
                    let mut index = *now;
                    for i in gone {
                        if i <= index {
                            index += 1;
                        }
                    }
                    Segment::Index(index)
                }
                key => key.clone(),
            };
            out.push(step);
        }
        out
    }

    fn record(&mut self, now: &[Segment]) {
        let part = self.in_file(now);
        self.parts.push(part);
    }

    /// The top-level items (`stages[1]`) the entries left out were in, or
    /// `None` when a list item was left out. An entry at the top (an
    /// unknown field beside `stages`) is in none.
    fn items_of_entries(&self) -> Option<Vec<Vec<Segment>>> {
        let mut items = Vec::new();
        for part in &self.parts {
            if !matches!(part.last(), Some(Segment::Key(_))) {
                return None;
            }
            if part.len() > 2 && !items.iter().any(|i: &Vec<Segment>| part.starts_with(i)) {
                items.push(part[..2].to_vec());
            }
        }
        Some(items)
    }
}

fn joined(lines: &[Vec<char>]) -> String {
    lines
        .iter()
        .map(|l| l.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows (0-based) and the columns in each to blank out.
type Rows = Vec<(usize, Range<usize>)>;

/// The text of the part `path` names (as the text now stands): an entry from
/// its key, or a list item from its dash.
fn part_rows(lines: &[Vec<char>], tree: &Tree, path: &[Segment]) -> Option<Rows> {
    let at = tree.written_at(path)?;
    match path.last()? {
        Segment::Key(_) => block_entry(lines, at),
        Segment::Index(_) => block_item(lines, at),
    }
}

/// The entry whose key starts at `at`, written in block style: from its key
/// to the end of its line, and every line after it that is more indented
/// (or a `- ` item at the key's own indentation, a list written under it).
fn block_entry(lines: &[Vec<char>], at: Pos) -> Option<Rows> {
    let (row, col) = (at.line.checked_sub(1)?, at.column.checked_sub(1)?);
    let line = lines.get(row)?;
    if !starts_block(line.get(..col)?) {
        return None;
    }
    let mut rows = vec![(row, col..line.len())];
    for (next, l) in lines.iter().enumerate().skip(row + 1) {
        let indent = indent(l);
        let item_under = indent == col && l.get(indent) == Some(&'-');
        if is_blank(l) || indent > col || item_under {
            rows.push((next, 0..l.len()));
        } else {
            break;
        }
    }
    Some(rows)
}

/// The list item whose value starts at `at` (after its `- `), written in
/// block style: from its dash, and every line after it more indented than
/// the dash.
fn block_item(lines: &[Vec<char>], at: Pos) -> Option<Rows> {
    let (row, col) = (at.line.checked_sub(1)?, at.column.checked_sub(1)?);
    let line = lines.get(row)?;
    let before = line.get(..col)?;
    let dash = indent(before);
    let after_dash = before.get(dash + 1..)?;
    if before.get(dash) != Some(&'-') || !after_dash.iter().all(|c| *c == ' ') {
        return None;
    }
    let mut rows = vec![(row, dash..line.len())];
    for (next, l) in lines.iter().enumerate().skip(row + 1) {
        if is_blank(l) || indent(l) > dash {
            rows.push((next, 0..l.len()));
        } else {
            break;
        }
    }
    Some(rows)
}

/// Whether what comes before a key on its line makes it a block mapping key:
/// nothing but spaces and `- ` item markers.
fn starts_block(before: &[char]) -> bool {
    let text: String = before.iter().collect();
    text.split_whitespace().all(|part| part == "-")
}

fn indent(line: &[char]) -> usize {
    line.iter().take_while(|c| **c == ' ').count()
}

/// Empty, spaces only, or a comment.
fn is_blank(line: &[char]) -> bool {
    let rest = &line[indent(line)..];
    rest.is_empty() || rest[0] == '#'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(text: &str) -> Vec<Vec<char>> {
        text.split('\n').map(|l| l.chars().collect()).collect()
    }

    #[test]
    fn a_block_entry_runs_to_the_next_line_as_indented() {
        let lines = chars("a:\n  b: 1\n  c:\n    - x\n  d: 2\n");
        let rows = block_entry(&lines, Pos { line: 3, column: 3 }).expect("block");
        assert_eq!(rows, [(2, 2..4), (3, 0..7)]);
        // A list written at the key's own indentation belongs to it.
        let lines = chars("a:\n- x\n- y\nb: 1\n");
        let rows = block_entry(&lines, Pos { line: 1, column: 1 }).expect("block");
        assert_eq!(rows, [(0, 0..2), (1, 0..3), (2, 0..3)]);
    }

    #[test]
    fn lines_broken_by_a_lone_carriage_return_are_not_searched() {
        let text = "a: 1\rb: 2\r";
        let first: Found = (
            Pos { line: 2, column: 1 },
            Some("b".into()),
            "unknown field `b`".into(),
        );
        let tree = Tree::read(text).expect("yaml");
        let read = |_: &str| -> Result<(), Error> { panic!("not read again") };
        let recovered = shape_errors(text, &tree, first.clone(), read);
        assert_eq!(recovered.found, [first]);
        assert!(recovered.rest.is_none());
    }

    #[test]
    fn flow_style_is_left_alone() {
        let lines = chars("a: {b: 1, c: 2}\n");
        assert_eq!(
            block_entry(
                &lines,
                Pos {
                    line: 1,
                    column: 11
                }
            ),
            None
        );
        assert_eq!(block_item(&lines, Pos { line: 1, column: 5 }), None);
    }

    #[test]
    fn a_block_item_runs_from_its_dash() {
        let lines = chars("s:\n  - name: a\n    x: 1\n  - name: b\n");
        let rows = block_item(&lines, Pos { line: 2, column: 5 }).expect("item");
        assert_eq!(rows, [(1, 2..11), (2, 0..8)]);
    }
}
