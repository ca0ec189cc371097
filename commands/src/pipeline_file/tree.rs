//! The YAML document as a tree of nodes that remember where they start, read
//! from the parser's events (the same parser `serde-saphyr` deserializes with).
//!
//! It answers two questions: where is the node a definition path names (for
//! problems found after deserializing), and which path names the node at a
//! position (for errors the deserializer reports by position only).

use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Marker, Parser, ScanError};

use super::path::Segment;

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
enum Kind {
    Scalar(String),
    Sequence(Vec<usize>),
    /// Entries as (key node, value node), in file order.
    Mapping(Vec<(usize, usize)>),
    /// `*name`: the anchored node it stands for, when known.
    Alias(Option<usize>),
}

#[derive(Debug)]
struct Node {
    at: Pos,
    kind: Kind,
}

/// One `---` document: where it starts and its top node.
#[derive(Debug)]
pub(crate) struct Document {
    pub start: Pos,
    root: Option<usize>,
}

/// Every document of a YAML stream, as positioned nodes.
#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
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
        matches!(&self.nodes[root].kind, Kind::Scalar(s) if matches!(s.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Where the node at `path` is in the first document, and whether it exists:
    /// when it does not (a key left out), the position of its nearest existing
    /// ancestor. A mapping value is reported where it starts when that is on its
    /// key's line (`mode: gated`), and at its key otherwise (a block under `policy:`).
    pub(crate) fn locate(&self, path: &[Segment]) -> (Pos, bool) {
        let Some(document) = self.documents.first() else {
            return (Pos::START, false);
        };
        let Some(mut node) = document.root else {
            return (document.start, false);
        };
        let mut at = self.nodes[node].at;
        for segment in path {
            let here = self.resolve(node);
            let next = match (segment, &self.nodes[here].kind) {
                (Segment::Key(key), Kind::Mapping(_)) => self.entry(here, key, 0).map(|(k, v)| {
                    let (key_at, value_at) = (self.nodes[k].at, self.nodes[v].at);
                    (
                        v,
                        if value_at.line == key_at.line {
                            value_at
                        } else {
                            key_at
                        },
                    )
                }),
                (Segment::Index(i), Kind::Sequence(items)) => {
                    items.get(*i).map(|&item| (item, self.nodes[item].at))
                }
                _ => None,
            };
            let Some((child, child_at)) = next else {
                return (at, false);
            };
            node = child;
            at = child_at;
        }
        (at, true)
    }

    /// The entry `key` of mapping `node`, looking into `<<` merges when it is not
    /// written directly (as the deserializer does).
    fn entry(&self, node: usize, key: &str, depth: usize) -> Option<(usize, usize)> {
        let Kind::Mapping(entries) = &self.nodes[node].kind else {
            return None;
        };
        let direct = entries.iter().find(|(k, _)| self.scalar(*k) == Some(key));
        if direct.is_some() || depth >= MAX_DEPTH {
            return direct.copied();
        }
        let merged = entries
            .iter()
            .filter(|(k, _)| self.scalar(*k) == Some("<<"));
        merged
            .flat_map(|(_, v)| self.merge_sources(*v))
            .find_map(|m| self.entry(m, key, depth + 1))
    }

    /// The mappings a `<<` value merges: one mapping or a sequence of them.
    fn merge_sources(&self, value: usize) -> Vec<usize> {
        let value = self.resolve(value);
        match &self.nodes[value].kind {
            Kind::Mapping(_) => vec![value],
            Kind::Sequence(items) => items.iter().map(|&i| self.resolve(i)).collect(),
            Kind::Scalar(_) | Kind::Alias(_) => Vec::new(),
        }
    }

    fn resolve(&self, node: usize) -> usize {
        match self.nodes[node].kind {
            Kind::Alias(Some(target)) => target,
            _ => node,
        }
    }

    fn scalar(&self, node: usize) -> Option<&str> {
        match &self.nodes[node].kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The deepest node (or mapping key) of the first document that starts at
    /// `at`, with its path, when one does.
    pub(crate) fn node_at(&self, at: Pos) -> Option<NodeAt> {
        let root = self.documents.first()?.root?;
        let mut path = Vec::new();
        let (node, is_key) = self.find(root, at, &mut path)?;
        Some(NodeAt {
            path,
            is_key,
            scalar: self.scalar(node).map(str::to_string),
        })
    }

    /// Pushes onto `path` the steps from `node` down to the deepest node at `at`,
    /// and returns that node and whether it is a mapping key.
    fn find(&self, node: usize, at: Pos, path: &mut Vec<Segment>) -> Option<(usize, bool)> {
        let children: Vec<(Segment, Option<usize>, usize)> = match &self.nodes[node].kind {
            Kind::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, &item)| (Segment::Index(i), None, item))
                .collect(),
            Kind::Mapping(entries) => entries
                .iter()
                .filter_map(|&(k, v)| Some((Segment::Key(self.scalar(k)?.to_string()), Some(k), v)))
                .collect(),
            Kind::Scalar(_) | Kind::Alias(_) => return None,
        };
        for (segment, key, value) in children {
            let first = key.unwrap_or(value);
            if self.nodes[first].at > at {
                break;
            }
            path.push(segment);
            if let Some(found) = self.find(value, at, path) {
                return Some(found);
            }
            if self.nodes[value].at == at {
                return Some((value, false));
            }
            if let Some(key) = key.filter(|&k| self.nodes[k].at == at) {
                return Some((key, true));
            }
            path.pop();
        }
        None
    }
}

/// What [`Tree::node_at`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeAt {
    pub path: Vec<Segment>,
    /// The node is a mapping key (its path ends with that key).
    pub is_key: bool,
    /// The node's text, when it is a scalar.
    pub scalar: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline_file::path::{parse_path, Display as PathDisplay};

    const TEXT: &str = "\
project: shop
stages:
  - name: dev
    policy:
      mode: gated
  - name: prod
    requested_freight:
      - origin: images
        sources: {stages: [dev, qa]}
";

    fn locate(tree: &Tree, path: &str) -> (usize, usize, bool) {
        let (at, exact) = tree.locate(&parse_path(path).expect(path));
        (at.line, at.column, exact)
    }

    #[test]
    fn locates_paths() {
        let tree = Tree::read(TEXT).expect("valid yaml");
        assert_eq!(locate(&tree, "project"), (1, 10, true));
        assert_eq!(locate(&tree, "stages"), (2, 1, true));
        assert_eq!(locate(&tree, "stages[0]"), (3, 5, true));
        assert_eq!(locate(&tree, "stages[0].policy"), (4, 5, true));
        assert_eq!(locate(&tree, "stages[0].policy.mode"), (5, 13, true));
        assert_eq!(
            locate(&tree, "stages[1].requested_freight[0].sources.stages[1]"),
            (9, 33, true)
        );
    }

    #[test]
    fn falls_back_to_the_nearest_ancestor() {
        let tree = Tree::read(TEXT).expect("valid yaml");
        assert_eq!(locate(&tree, "stages[0].policy.gates"), (4, 5, false));
        assert_eq!(locate(&tree, "stages[7].name"), (2, 1, false));
        assert_eq!(locate(&tree, "warehouses"), (1, 1, false));
    }

    #[test]
    fn follows_aliases_and_merge_keys() {
        let text = "\
base: &base
  mode: gated
stages:
  - policy:
      <<: *base
      timezone: Mars/Base
  - policy: *base
";
        let tree = Tree::read(text).expect("valid yaml");
        assert_eq!(locate(&tree, "stages[0].policy.mode"), (2, 9, true));
        assert_eq!(locate(&tree, "stages[0].policy.timezone"), (6, 17, true));
        assert_eq!(locate(&tree, "stages[1].policy"), (7, 13, true));
        assert_eq!(locate(&tree, "stages[1].policy.mode"), (2, 9, true));
    }

    #[test]
    fn finds_the_node_at_a_position() {
        let tree = Tree::read(TEXT).expect("valid yaml");
        let at = |line, column| {
            tree.node_at(Pos { line, column })
                .map(|n| (PathDisplay(&n.path).to_string(), n.is_key, n.scalar))
        };
        let found = |path: &str, is_key, scalar: &str| {
            Some((path.to_string(), is_key, Some(scalar.to_string())))
        };
        assert_eq!(at(5, 13), found("stages[0].policy.mode", false, "gated"));
        assert_eq!(at(5, 7), found("stages[0].policy.mode", true, "mode"));
        assert_eq!(at(3, 5), found("stages[0].name", true, "name"));
        assert_eq!(
            at(9, 33),
            found(
                "stages[1].requested_freight[0].sources.stages[1]",
                false,
                "qa"
            )
        );
        assert_eq!(at(1, 1), found("project", true, "project"));
        assert_eq!(at(4, 2), None);
    }

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
