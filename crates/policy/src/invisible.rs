//! Characters a reader cannot see, or that reorder what they see (control characters,
//! bidirectional overrides, zero-width characters, line separators), refused in a rule's reason,
//! patterns and condition: there they would make a rule read one way to a reviewer and match
//! another way (`cust\u{200b}omers` never matches `customers`).

use countersign_model::text;

use crate::source::{MatchSource, RuleSource};

/// Why `c` is refused, or `None` when it is an ordinary character. Which characters count is the
/// one rule every channel escapes by (`countersign_model::text::is_hidden`). `multiline` allows
/// the line breaks and tabs a reason or a condition written on several lines has.
fn refused(c: char, multiline: bool) -> Option<&'static str> {
    if (multiline && matches!(c, '\n' | '\r' | '\t')) || !text::is_hidden(c) {
        return None;
    }
    Some(match c {
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            "a bidirectional control, which reorders the text around it"
        }
        c if text::is_bidi_control(c) => "a bidirectional mark, which cannot be seen",
        '\u{2028}' | '\u{2029}' => "a line separator, which breaks the line where none shows",
        c if c.is_control() => "a control character",
        _ => "a zero-width character, which cannot be seen",
    })
}

/// The first refused character of `text`, as a sentence naming `field` and the fix.
fn check(text: &str, field: &str, multiline: bool, fix: &str) -> Option<String> {
    text.chars().find_map(|c| {
        refused(c, multiline)
            .map(|why| format!("{field} contains U+{:04X} ({why}); {fix}", u32::from(c)))
    })
}

/// Every field of a rule holding a refused character, each as a sentence with the fix.
pub(crate) fn in_rule(rule: &RuleSource) -> Vec<String> {
    let mut problems = Vec::new();
    problems.extend(check(
        &rule.reason,
        "reason",
        true,
        "remove it: reviewers and auditors read the reason as written",
    ));
    if let Some(condition) = &rule.condition {
        problems.extend(check(
            condition.get_ref(),
            "the condition",
            true,
            "remove it, or write it as an escape inside a CEL string (\\u200b)",
        ));
    }
    if let Some(m) = &rule.matcher {
        problems.extend(in_match(m.get_ref()));
    }
    problems
}

fn in_match(m: &MatchSource) -> Vec<String> {
    let fix = "remove it, or write ? where the text to match has a character that cannot be seen";
    let mut fields: Vec<(String, &[String])> = Vec::new();
    for (field, patterns) in [
        ("match.kind", &m.kind),
        ("match.resource", &m.resource),
        ("match.command", &m.command),
        ("match.sql", &m.sql),
    ] {
        if let Some(patterns) = patterns {
            fields.push((field.to_owned(), patterns.as_slice()));
        }
    }
    let mut problems = Vec::new();
    // Label names are already limited to letters, digits and `_-./`.
    for (name, patterns) in &m.labels {
        fields.push((format!("match.labels.{name}"), patterns.as_slice()));
    }
    for (name, patterns) in &m.claims {
        fields.push((format!("match.claims.{name}"), patterns.as_slice()));
    }
    for (field, patterns) in fields {
        for pattern in patterns {
            problems.extend(check(pattern, &format!("{field} pattern"), false, fix));
        }
    }
    problems
}
