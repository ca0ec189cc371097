//! The YAML document as a tree of nodes that remember where they start, read
//! from the parser's events (the same parser `serde-saphyr` deserializes with).
//! The questions asked of it are in `query`.

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Parser, ScanError};

/// Deepest nesting accepted; a pipeline definition needs seven levels.
pub(crate) const MAX_DEPTH: usize = 64;

/// A place in the file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };

    fn of(marker: &Marker) -> Pos {
        Pos {
            line: marker.line().max(1),
            column: marker.col() + 1,
        }
    }
}

/// Why the file could not be read as YAML at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub at: Pos,
    pub message: String,
}

impl From<ScanError> for SyntaxError {
    fn from(e: ScanError) -> Self {
        SyntaxError {
            at: Pos::of(e.marker()),
            message: e.info(),
        }
    }
}

#[derive(Debug)]
pub(super) enum Kind {
    Scalar(String),
    Sequence(Vec<usize>),
    /// Entries as (key node, value node), in file order.
    Mapping(Vec<(usize, usize)>),
    /// `*name`: the anchored node it stands for, when known.
    Alias(Option<usize>),
}

#[derive(Debug)]
pub(super) struct Node {
    pub(super) at: Pos,
    pub(super) kind: Kind,
}

/// One `---` document: where it starts and its top node.
#[derive(Debug)]
pub(crate) struct Document {
    pub start: Pos,
    pub(super) root: Option<usize>,
}

/// Every document of a YAML stream, as positioned nodes.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    pub(super) nodes: Vec<Node>,
    pub documents: Vec<Document>,
}

/// An open collection while reading, and for a mapping its key awaiting a value.
struct Frame {
    node: usize,
    pending_key: Option<usize>,
}

impl Tree {
    /// Reads `text` as a YAML stream.
    pub(crate) fn read(text: &str) -> Result<Tree, SyntaxError> {
        let mut tree = Tree::default();
        let mut open: Vec<Frame> = Vec::new();
        let mut anchors: HashMap<usize, usize> = HashMap::new();
        for event in Parser::new_from_str(text) {
            let (event, span) = event?;
            let at = Pos::of(&span.start);
            let (kind, anchor, opens) = match event {
                Event::DocumentStart(..) => {
                    tree.documents.push(Document {
                        start: at,
                        root: None,
                    });
                    anchors.clear();
                    continue;
                }
                Event::Scalar(value, _, anchor, _) => {
                    (Kind::Scalar(value.into_owned()), anchor, false)
                }
                Event::Alias(id) => (Kind::Alias(anchors.get(&id).copied()), 0, false),
                Event::SequenceStart(_, anchor, _) => (Kind::Sequence(Vec::new()), anchor, true),
                Event::MappingStart(_, anchor, _) => (Kind::Mapping(Vec::new()), anchor, true),
                Event::SequenceEnd | Event::MappingEnd => {
                    open.pop();
                    continue;
                }
                _ => continue,
            };
            let id = tree.nodes.len();
            tree.nodes.push(Node { at, kind });
            if anchor != 0 {
                anchors.insert(anchor, id);
            }
            tree.attach(open.last_mut(), id);
            if opens {
                if open.len() == MAX_DEPTH {
                    return Err(SyntaxError {
                        at,
                        message: format!("nested deeper than {MAX_DEPTH} levels"),
                    });
                }
                open.push(Frame {
                    node: id,
                    pending_key: None,
                });
            }
        }
        Ok(tree)
    }

    fn attach(&mut self, parent: Option<&mut Frame>, id: usize) {
        let Some(frame) = parent else {
            if let Some(document) = self.documents.last_mut() {
                document.root.get_or_insert(id);
            }
            return;
        };
        match &mut self.nodes[frame.node].kind {
            Kind::Sequence(items) => items.push(id),
            Kind::Mapping(entries) => match frame.pending_key.take() {
                None => frame.pending_key = Some(id),
                Some(key) => entries.push((key, id)),
            },
            Kind::Scalar(_) | Kind::Alias(_) => {}
        }
    }

    /// Whether the first document holds nothing (no node, or a null scalar).
    pub(crate) fn is_empty(&self) -> bool {
        let Some(root) = self.documents.first().and_then(|d| d.root) else {
            return true;
        };
        match &self.nodes[root].kind {
            Kind::Scalar(s) => matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"),
            Kind::Sequence(_) | Kind::Mapping(_) | Kind::Alias(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_documents_and_sees_empty_ones() {
        assert!(Tree::read("").expect("empty").is_empty());
        assert!(Tree::read("# nothing\n").expect("comment").is_empty());
        assert!(Tree::read("---\n...\n").expect("null").is_empty());
        assert!(!Tree::read("a: 1\n").expect("map").is_empty());
        let two = Tree::read("a: 1\n---\nb: 2\n").expect("two");
        assert_eq!(two.documents.len(), 2);
        assert_eq!(two.documents[1].start, Pos { line: 2, column: 1 });
    }

    #[test]
    fn refuses_absurd_nesting() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let e = Tree::read(&deep).expect_err("too deep");
        assert!(e.message.contains("nested deeper"), "{e:?}");
    }
}
