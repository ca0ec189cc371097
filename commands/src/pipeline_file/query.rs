//! Questions asked of a [`Tree`]: where is the node a definition path names
//! (for problems found after deserializing), and which node, under which
//! path, starts at a position (for errors the deserializer reports by
//! position only).

use super::path::Segment;
use super::tree::{Kind, Pos, Tree, MAX_DEPTH};

impl Tree {
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

    /// Where the part `path` names starts, when every step of it is written
    /// directly (no alias, nothing merged in through `<<`): a mapping entry's
    /// key, or a list item's value.
    pub(crate) fn written_at(&self, path: &[Segment]) -> Option<Pos> {
        let mut node = self.documents.first()?.root?;
        let mut at = None;
        for segment in path {
            let (child, child_at) = match (segment, &self.nodes[node].kind) {
                (Segment::Key(key), Kind::Mapping(entries)) => {
                    let &(k, v) = entries.iter().find(|(k, _)| self.scalar(*k) == Some(key))?;
                    (v, self.nodes[k].at)
                }
                (Segment::Index(i), Kind::Sequence(items)) => {
                    let &item = items.get(*i)?;
                    (item, self.nodes[item].at)
                }
                _ => return None,
            };
            node = child;
            at = Some(child_at);
        }
        at
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
    use super::super::path::{parse_path, Display as PathDisplay};
    use super::*;

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
}
