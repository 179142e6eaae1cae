//! Shape errors (a value of the wrong type, a missing or unknown field) said in the policy's own
//! words: which key, in which rule or test, and what it must be, never a Rust type name.
//!
//! The typed reader reports only a byte offset and a message such as "invalid type: string "2",
//! expected u32". The file is read a second time as an untyped document to find the key at that
//! offset (`approvers.count`) and the rule or test around it.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Where in the document a shape error sits.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Location {
    /// "rule 'prod-db-export'", "test 'reads pass'", or `None` at the top level.
    pub subject: Option<String>,
    /// The dotted key inside that rule or test (or the document): `approvers.count`.
    pub key: Option<String>,
}

/// One step of a path through the document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Finds the key whose value (or key text) covers byte `offset` of `text`.
pub(crate) fn locate(text: &str, offset: usize) -> Location {
    let Ok(document) = DeTable::parse(text) else {
        return Location::default();
    };
    let mut best: Option<(usize, Vec<Step>)> = None;
    let mut path = Vec::new();
    search_table(document.get_ref(), offset, &mut path, &mut best);
    let Some((_, path)) = best else {
        return Location::default();
    };
    describe(document.get_ref(), &path)
}

/// Depth-first over every entry: table headers' spans do not cover their bodies, so a parent's
/// span cannot prune the search. The narrowest span holding the offset wins.
fn search_table(
    table: &DeTable<'_>,
    offset: usize,
    path: &mut Vec<Step>,
    best: &mut Option<(usize, Vec<Step>)>,
) {
    for (key, value) in table.iter() {
        path.push(Step::Key(key.get_ref().to_string()));
        consider(key.span(), offset, path, best);
        search_value(value, offset, path, best);
        path.pop();
    }
}

fn search_value(
    value: &Spanned<DeValue<'_>>,
    offset: usize,
    path: &mut Vec<Step>,
    best: &mut Option<(usize, Vec<Step>)>,
) {
    consider(value.span(), offset, path, best);
    match value.get_ref() {
        DeValue::Table(table) => search_table(table, offset, path, best),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                search_value(item, offset, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

fn consider(
    span: std::ops::Range<usize>,
    offset: usize,
    path: &[Step],
    best: &mut Option<(usize, Vec<Step>)>,
) {
    let covers = span.start <= offset && (offset < span.end || span.is_empty());
    let width = span.end.saturating_sub(span.start);
    if covers && best.as_ref().is_none_or(|(w, _)| width <= *w) {
        *best = Some((width, path.to_vec()));
    }
}

/// `rules[2].approvers.count` becomes rule '<id of rules[2]>' and `approvers.count`.
fn describe(document: &DeTable<'_>, path: &[Step]) -> Location {
    let (subject, rest) = match path {
        [Step::Key(list), Step::Index(i), rest @ ..] if list == "rules" || list == "tests" => {
            let (noun, name_key) = if list == "rules" {
                ("rule", "id")
            } else {
                ("test", "name")
            };
            let name = document
                .get(list.as_str())
                .and_then(|v| match v.get_ref() {
                    DeValue::Array(items) => items.get(*i),
                    _ => None,
                })
                .and_then(|entry| match entry.get_ref() {
                    DeValue::Table(t) => t.get(name_key),
                    _ => None,
                })
                .and_then(|v| match v.get_ref() {
                    DeValue::String(s) => Some(s.to_string()),
                    _ => None,
                });
            let subject = match name {
                Some(name) => format!("{noun} '{name}'"),
                None => format!("{noun} {} (the {} in the file)", i + 1, ordinal(i + 1)),
            };
            (Some(subject), rest)
        }
        _ => (None, path),
    };
    let mut key = String::new();
    for step in rest {
        match step {
            Step::Key(k) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(k);
            }
            Step::Index(i) => key.push_str(&format!("[{i}]")),
        }
    }
    Location {
        subject,
        key: (!key.is_empty()).then_some(key),
    }
}

fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Rewrites serde's wording ("invalid type: string "2", expected u32") in the policy's terms.
pub(crate) fn reword(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            return format!(
                "must be {}, not {}",
                expected_words(expected),
                found_words(found)
            );
        }
    }
    if message.starts_with("data did not match any variant of untagged enum Patterns") {
        return "must be a pattern (a string) or a list of patterns".to_owned();
    }
    message.to_owned()
}

fn expected_words(expected: &str) -> String {
    let expected = expected.trim();
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" => "a table".to_owned(),
        "a boolean" | "a string" => expected.to_owned(),
        e if e.starts_with("struct ") => "a table".to_owned(),
        e => e.to_owned(),
    }
}

fn found_words(found: &str) -> String {
    let found = found.trim();
    for (prefix, noun) in [
        ("integer ", "the number "),
        ("floating point ", "the number "),
        ("string ", "the string "),
        ("boolean ", ""),
    ] {
        if let Some(value) = found.strip_prefix(prefix) {
            return format!("{noun}{}", value.trim_matches('`'));
        }
    }
    match found {
        "sequence" => "a list".to_owned(),
        "map" => "a table".to_owned(),
        f => f.to_owned(),
    }
}
