//! The rule index: which rules could possibly match an action, found without looking at the rest.
//!
//! Each rule is filed in a byte trie under the literal text every action it matches must start
//! with: its kind, a separator, then the literal prefix of its resource pattern (or of its command
//! pattern, whichever is longer and so more selective). A lookup walks the action's own key down
//! the trie and collects the rules filed on the way. A rule whose kind is a wildcard is filed
//! under the kind's literal prefix only; a rule matching every kind sits at the root and is always
//! a candidate. The index only narrows the candidates; every candidate is still matched in full.

/// Separates the kind from the rest of a key. A control character, so no kind or resource
/// contains it.
const SEPARATOR: u8 = 0x1f;

/// Above this many keys per rule (kinds × patterns), a rule is filed at the root instead.
const MAX_KEYS_PER_RULE: usize = 32;

#[derive(Debug, Default)]
struct Node {
    children: Vec<(u8, u32)>,
    rules: Vec<u32>,
}

#[derive(Debug)]
struct Trie {
    nodes: Vec<Node>,
}

impl Trie {
    fn new() -> Trie {
        Trie {
            nodes: vec![Node::default()],
        }
    }

    fn insert(&mut self, key: &[u8], rule: u32) {
        let mut node = 0usize;
        for &b in key {
            let children = &self.nodes[node].children;
            node = match children.binary_search_by_key(&b, |(byte, _)| *byte) {
                Ok(i) => children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes[node].children.insert(i, (b, next as u32));
                    self.nodes.push(Node::default());
                    next
                }
            };
        }
        let rules = &mut self.nodes[node].rules;
        if rules.last() != Some(&rule) {
            rules.push(rule);
        }
    }

    /// Adds every rule filed under a prefix of `kind SEPARATOR rest` to `out`.
    fn collect(&self, kind: &str, rest: Option<&str>, out: &mut Vec<u32>) {
        let mut node = &self.nodes[0];
        out.extend_from_slice(&node.rules);
        let separator = [SEPARATOR];
        let key = kind
            .as_bytes()
            .iter()
            .chain(separator.iter())
            .chain(rest.unwrap_or_default().as_bytes());
        for &b in key {
            match node.children.binary_search_by_key(&b, |(byte, _)| *byte) {
                Ok(i) => {
                    node = &self.nodes[node.children[i].1 as usize];
                    out.extend_from_slice(&node.rules);
                }
                Err(_) => return,
            }
        }
    }
}

/// What the index needs to know of one rule.
#[derive(Debug)]
pub(crate) struct IndexEntry {
    /// Each kind pattern's literal prefix, and whether the pattern is exact.
    pub kinds: Vec<(String, bool)>,
    /// Literal prefixes of the resource patterns; empty when the rule takes any resource.
    pub resources: Vec<String>,
    /// Literal prefixes of the command patterns; empty when the rule has none.
    pub commands: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct RuleIndex {
    by_resource: Trie,
    by_command: Trie,
}

impl RuleIndex {
    pub fn build(entries: &[IndexEntry]) -> RuleIndex {
        let mut index = RuleIndex {
            by_resource: Trie::new(),
            by_command: Trie::new(),
        };
        for (i, entry) in entries.iter().enumerate() {
            let rule = i as u32;
            let resource_keys = keys(&entry.kinds, &entry.resources);
            let command_keys = keys(&entry.kinds, &entry.commands);
            let selectivity = |keys: &[Vec<u8>]| keys.iter().map(Vec::len).min().unwrap_or(0);
            let (trie, chosen) = if !entry.commands.is_empty()
                && selectivity(&command_keys) > selectivity(&resource_keys)
            {
                (&mut index.by_command, command_keys)
            } else {
                (&mut index.by_resource, resource_keys)
            };
            if chosen.len() > MAX_KEYS_PER_RULE {
                trie.insert(b"", rule);
            } else {
                for key in &chosen {
                    trie.insert(key, rule);
                }
            }
        }
        index
    }

    /// The rules that could match an action, in file order, without repeats.
    /// `commands` are every command line the action can be read as (by the program's name and
    /// by its path); none when it runs no command.
    pub fn candidates(&self, kind: &str, resource: &str, commands: &[&str]) -> Vec<u32> {
        let mut out = Vec::with_capacity(8);
        self.by_resource.collect(kind, Some(resource), &mut out);
        if commands.is_empty() {
            self.by_command.collect(kind, None, &mut out);
        }
        for command in commands {
            self.by_command.collect(kind, Some(command), &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The keys a rule is filed under: one per (kind, pattern) pair.
fn keys(kinds: &[(String, bool)], patterns: &[String]) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for (kind, exact) in kinds {
        if !exact || patterns.is_empty() {
            let mut key = kind.as_bytes().to_vec();
            if *exact {
                key.push(SEPARATOR);
            }
            keys.push(key);
            continue;
        }
        for pattern in patterns {
            let mut key = kind.as_bytes().to_vec();
            key.push(SEPARATOR);
            key.extend_from_slice(pattern.as_bytes());
            keys.push(key);
        }
    }
    keys
}
