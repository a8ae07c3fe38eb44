//! The nodes at one end of a `link_override`: one node, a list of nodes, or every node.
//!
//! A grouped override is one fault, recorded and reported as written, however many links
//! it covers: `from = "*"`, `to = "*"` over a thousand nodes is one fault, not the
//! 999,000 one-link faults it stands for.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::NodeName;

/// The nodes at one end of a [`Fault::LinkOverride`](super::Fault::LinkOverride). Written
/// as a node's name, a non-empty list of names, or `"*"` for every node of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Nodes {
    One(NodeName),
    /// Listed nodes; a name listed twice counts once.
    List(Vec<NodeName>),
    All,
}

impl Nodes {
    /// The names written, none for [`Nodes::All`].
    pub fn listed(&self) -> &[NodeName] {
        match self {
            Nodes::One(name) => std::slice::from_ref(name),
            Nodes::List(names) => names,
            Nodes::All => &[],
        }
    }

    pub fn contains(&self, name: &NodeName) -> bool {
        matches!(self, Nodes::All) || self.listed().contains(name)
    }
}

impl From<NodeName> for Nodes {
    fn from(name: NodeName) -> Nodes {
        Nodes::One(name)
    }
}

/// `hs1`, `*`, or a list in brackets; a long list by its ends and its size.
impl fmt::Display for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nodes::One(name) => write!(f, "{name}"),
            Nodes::All => f.write_str("*"),
            Nodes::List(names) if names.len() > 6 => {
                let first: Vec<&str> = names[..3].iter().map(NodeName::as_str).collect();
                let last = &names[names.len() - 1];
                write!(f, "[{} … {last} ({} nodes)]", first.join(" "), names.len())
            }
            Nodes::List(names) => {
                let all: Vec<&str> = names.iter().map(NodeName::as_str).collect();
                write!(f, "[{}]", all.join(" "))
            }
        }
    }
}

impl Serialize for Nodes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Nodes::One(name) => serializer.serialize_str(name.as_str()),
            Nodes::All => serializer.serialize_str("*"),
            Nodes::List(names) => names.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Nodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Nodes, D::Error> {
        deserializer.deserialize_any(NodesVisitor)
    }
}

struct NodesVisitor;

impl<'de> Visitor<'de> for NodesVisitor {
    type Value = Nodes;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node's name, a non-empty list of node names, or \"*\" for every node")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Nodes, E> {
        if text == "*" {
            return Ok(Nodes::All);
        }
        NodeName::new(text).map(Nodes::One).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nodes, A::Error> {
        let mut names = Vec::new();
        while let Some(name) = seq.next_element::<NodeName>()? {
            names.push(name);
        }
        if names.is_empty() {
            return Err(de::Error::custom("an empty list names no node"));
        }
        Ok(Nodes::List(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> NodeName {
        NodeName::new(text).unwrap()
    }

    #[test]
    fn nodes_are_read_and_written_in_the_three_forms() {
        let cases = [
            (r#""hs1""#, Nodes::One(name("hs1"))),
            (r#""*""#, Nodes::All),
            (r#"["hs1","hs2"]"#, Nodes::List(vec![name("hs1"), name("hs2")])),
        ];
        for (text, nodes) in cases {
            assert_eq!(serde_json::from_str::<Nodes>(text).unwrap(), nodes, "{text}");
            assert_eq!(serde_json::to_string(&nodes).unwrap(), text);
        }
        for (text, problem) in [
            ("[]", "an empty list names no node"),
            (r#""""#, "empty"),
            (r#"["*"]"#, "stands alone"),
            ("3", "a node's name, a non-empty list of node names, or \"*\""),
        ] {
            let error = serde_json::from_str::<Nodes>(text).unwrap_err().to_string();
            assert!(error.contains(problem), "{text}: {error}");
        }
    }

    #[test]
    fn every_node_contains_any_and_a_list_its_own() {
        let list = Nodes::List(vec![name("a"), name("b")]);
        assert!(list.contains(&name("b")));
        assert!(!list.contains(&name("c")));
        assert!(Nodes::All.contains(&name("c")));
        assert!(!Nodes::One(name("a")).contains(&name("b")));
        assert_eq!(Nodes::All.listed(), &[] as &[NodeName]);
        let long = Nodes::List((1..=8).map(|n| name(&format!("hs{n}"))).collect());
        assert_eq!(long.to_string(), "[hs1 hs2 hs3 … hs8 (8 nodes)]");
        assert_eq!(list.to_string(), "[a b]");
    }
}
