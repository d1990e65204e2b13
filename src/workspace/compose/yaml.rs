//! A compose file's YAML as a plain tree, read within bounds.
//!
//! The file is the repo's, so it is hostile: serde-saphyr's budgets bound
//! parser events, nesting and alias replays, and this tree adds a bound on
//! the text it holds once aliases are expanded (a 1 MiB file that names one
//! long anchored string through thousands of aliases would otherwise expand
//! to gigabytes: the parser counts the alias events, not their bytes).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    /// A number, as text: compose reads `PORT: 3000` as "3000" wherever a
    /// string is wanted.
    Number(String),
    String(String),
    Seq(Vec<Node>),
    /// In the file's order; keys are text (a number key becomes its text).
    Map(Vec<(String, Node)>),
}

impl Node {
    /// A scalar's text (`None` for null, a list or a mapping).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Node::String(text) | Node::Number(text) => Some(text.clone()),
            Node::Bool(value) => Some(value.to_string()),
            Node::Null | Node::Seq(_) | Node::Map(_) => None,
        }
    }

    /// The value of `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// What YAML calls it, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }
}

/// Bytes the tree may hold in all, aliases expanded (each node counts
/// `NODE_COST` besides its text): 16 times the largest file dual reads.
const MAX_TREE_BYTES: usize = 16 * 1024 * 1024;
const NODE_COST: usize = 32;

thread_local! {
    /// What is left of `MAX_TREE_BYTES` for the tree being read.
    static LEFT: Cell<usize> = const { Cell::new(0) };
}

fn charge<E: de::Error>(bytes: usize) -> Result<(), E> {
    LEFT.with(|left| match left.get().checked_sub(bytes + NODE_COST) {
        Some(rest) => {
            left.set(rest);
            Ok(())
        }
        None => Err(E::custom(format!(
            "it expands to more than {} MiB (through aliases?)",
            MAX_TREE_BYTES >> 20
        ))),
    })
}

/// The tree of `text`, or why it is not YAML dual reads.
pub fn parse(text: &str) -> Result<Node, String> {
    if text.trim().is_empty() {
        return Ok(Node::Null);
    }
    LEFT.with(|left| left.set(MAX_TREE_BYTES));
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_aliases: 10_000,
            max_documents: 1,
            max_depth: 64,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 50_000,
        },
        // As compose (YAML 1.2): `yes` is text, `0755` keeps its spelling.
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        with_snippet: false,
    };
    let tree = serde_saphyr::from_str_with_options::<Node>(text, options);
    LEFT.with(|left| left.set(0));
    tree.map_err(|error| error.to_string())
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("YAML")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node, D::Error> {
        Node::deserialize(deserializer)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Number(value.to_string()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Number(value.to_string()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Number(value.to_string()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Number(value.to_string()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Node, E> {
        charge(0)?;
        Ok(Node::Number(value.to_string()))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Node, E> {
        charge(value.len())?;
        Ok(Node::String(value.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        charge(0)?;
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let Some(key) = key.as_text() else {
                return Err(de::Error::custom(format!(
                    "a mapping key is {}, not text",
                    key.kind()
                )));
            };
            entries.push((key, map.next_value::<Node>()?));
        }
        Ok(Node::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keys_and_anchors_are_expanded() {
        let tree = parse(
            "x-env: &env\n  A: '1'\n  B: 2\nservices:\n  db:\n    environment:\n      <<: *env\n      B: three\n",
        )
        .unwrap();
        let environment = tree
            .get("services")
            .and_then(|s| s.get("db"))
            .and_then(|db| db.get("environment"))
            .unwrap();
        assert_eq!(environment.get("A"), Some(&Node::String("1".into())));
        assert_eq!(environment.get("B"), Some(&Node::String("three".into())));
    }

    #[test]
    fn scalars_keep_what_compose_sees() {
        let tree = parse("a: yes\nb: 0755\nc: 3000\nd: true\ne:\n").unwrap();
        assert_eq!(tree.get("a"), Some(&Node::String("yes".into())));
        assert_eq!(tree.get("b"), Some(&Node::String("0755".into())));
        assert_eq!(tree.get("c"), Some(&Node::Number("3000".into())));
        assert_eq!(tree.get("d"), Some(&Node::Bool(true)));
        assert_eq!(tree.get("e"), Some(&Node::Null));
        assert_eq!(parse("").unwrap(), Node::Null);
    }

    #[test]
    fn alias_bombs_are_refused_quickly() {
        // Billion laughs: nine levels of nine aliases.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
        for pair in names.windows(2) {
            let refs = vec![format!("*{}", pair[0]); 9].join(",");
            bomb.push_str(&format!("{}: &{} [{refs}]\n", pair[1], pair[1]));
        }
        let started = std::time::Instant::now();
        assert!(parse(&bomb).is_err());
        // One long string, repeated through many aliases.
        let long = "x".repeat(512 * 1024);
        let wide = format!("a: &a \"{long}\"\nb: [{}]\n", vec!["*a"; 1000].join(","));
        assert!(parse(&wide).unwrap_err().contains("MiB"));
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn tags_do_not_reach_files() {
        // No include resolver is configured: `!include` is no way to read
        // a host file.
        let tree = parse("a: !include /etc/passwd\n");
        if let Ok(tree) = tree {
            assert_eq!(tree.get("a"), Some(&Node::String("/etc/passwd".into())));
        }
    }
}
