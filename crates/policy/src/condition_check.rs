//! Checks a CEL condition before any action meets it: every name it uses exists, it gives true or
//! false, and a syntax error is said in words. A condition that fails these at run time would deny
//! every action its rule matches, silently; at load time it is a clear error instead.

use cel::common::ast::{Expr, IdedExpr, LiteralValue, operators};
use cel::{Env, ParseError, Program};

/// The variables a condition sees, and the fields of each (see `condition::context_for`).
const VARIABLES: [(&str, &[&str]); 2] = [
    (
        "action",
        &[
            "kind",
            "resource",
            "labels",
            "claims",
            "details",
            "justification",
        ],
    ),
    ("principal", &["id", "kind", "on_behalf_of", "started_by"]),
];

/// What a condition is known to give, without running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Boolean,
    /// Certainly not a boolean: what it is instead, in words.
    Other(&'static str),
    /// Only running it can tell (a field of `action.details`, an index, a function).
    Unknown,
}

/// Every name the condition uses that the context does not hold, as a sentence with the fix.
pub(crate) fn unknown_names(env: &Env, program: &Program) -> Vec<String> {
    let mut problems = Vec::new();
    let mut scope = Vec::new();
    names(env, program.expression(), &mut scope, &mut problems);
    problems.dedup();
    problems
}

fn names(env: &Env, e: &IdedExpr, scope: &mut Vec<String>, problems: &mut Vec<String>) {
    match &e.expr {
        Expr::Ident(name) => {
            let name = name.trim_start_matches('.');
            let known = name.starts_with('@')
                || scope.iter().any(|s| s == name)
                || VARIABLES.iter().any(|(v, _)| *v == name)
                || env.types().find_type(name).is_some();
            if !known {
                let hint = closest(name, VARIABLES.iter().map(|(v, _)| *v))
                    .map(|near| format!(" (did you mean {near}?)"))
                    .unwrap_or_default();
                problems.push(format!(
                    "the condition uses '{name}', which does not exist{hint}: a condition can use \
                     action and principal"
                ));
            }
        }
        Expr::Select(select) => {
            if let Expr::Ident(root) = &select.operand.expr
                && !scope.iter().any(|s| s == root)
                && let Some((variable, fields)) = VARIABLES
                    .iter()
                    .find(|(v, _)| v == &root.trim_start_matches('.'))
                && !fields.contains(&select.field.as_str())
            {
                let hint = closest(&select.field, fields.iter().copied())
                    .map(|near| format!(" (did you mean {variable}.{near}?)"))
                    .unwrap_or_default();
                problems.push(format!(
                    "the condition uses '{variable}.{}', which does not exist{hint}: the fields of \
                     {variable} are {}",
                    select.field,
                    fields.join(", ")
                ));
            } else {
                names(env, &select.operand, scope, problems);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                names(env, target, scope, problems);
            }
            for arg in &call.args {
                names(env, arg, scope, problems);
            }
        }
        Expr::Comprehension(c) => {
            names(env, &c.iter_range, scope, problems);
            names(env, &c.accu_init, scope, problems);
            let depth = scope.len();
            scope.push(c.iter_var.clone());
            scope.extend(c.iter_var2.clone());
            scope.push(c.accu_var.clone());
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                names(env, part, scope, problems);
            }
            scope.truncate(depth);
        }
        Expr::List(list) => {
            for item in &list.elements {
                names(env, item, scope, problems);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(m) => {
                        names(env, &m.key, scope, problems);
                        names(env, &m.value, scope, problems);
                    }
                    cel::common::ast::EntryExpr::StructField(f) => {
                        names(env, &f.value, scope, problems);
                    }
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                    names(env, &f.value, scope, problems);
                }
            }
        }
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// The nearest candidate within two edits, for a "did you mean".
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            previous = here;
        }
    }
    row[b.len()]
}

/// What the expression gives, as far as can be told without running it.
pub(crate) fn shape(e: &IdedExpr) -> Shape {
    match &e.expr {
        Expr::Literal(literal) => match literal {
            LiteralValue::Boolean(_) => Shape::Boolean,
            LiteralValue::Int(_) | LiteralValue::UInt(_) | LiteralValue::Double(_) => {
                Shape::Other("a number")
            }
            LiteralValue::String(_) => Shape::Other("a string"),
            LiteralValue::Bytes(_) => Shape::Other("bytes"),
            LiteralValue::Null => Shape::Other("null"),
        },
        Expr::List(_) => Shape::Other("a list"),
        Expr::Map(_) => Shape::Other("a map"),
        Expr::Ident(name) if VARIABLES.iter().any(|(v, _)| v == name) => Shape::Other("a map"),
        Expr::Select(select) if select.test => Shape::Boolean,
        Expr::Select(select) if is_labels(&select.operand) => Shape::Other("a string"),
        Expr::Select(select) => match (&select.operand.expr, select.field.as_str()) {
            (Expr::Ident(root), field) if root == "action" || root == "principal" => {
                match (root.as_str(), field) {
                    ("action", "kind" | "resource") | ("principal", "id" | "kind") => {
                        Shape::Other("a string")
                    }
                    ("action", "labels" | "claims") => Shape::Other("a map"),
                    ("principal", "on_behalf_of") => Shape::Other("a list"),
                    _ => Shape::Unknown,
                }
            }
            _ => Shape::Unknown,
        },
        Expr::Call(call) => match call.func_name.as_str() {
            operators::EQUALS
            | operators::NOT_EQUALS
            | operators::LESS
            | operators::LESS_EQUALS
            | operators::GREATER
            | operators::GREATER_EQUALS
            | operators::LOGICAL_AND
            | operators::LOGICAL_OR
            | operators::LOGICAL_NOT
            | operators::IN
            | operators::NOT_STRICTLY_FALSE
            | "startsWith"
            | "endsWith"
            | "contains"
            | "matches" => Shape::Boolean,
            operators::ADD => Shape::Other("the result of +"),
            operators::SUBSTRACT
            | operators::MULTIPLY
            | operators::DIVIDE
            | operators::MODULO
            | operators::NEGATE
            | "size"
            | "int"
            | "uint"
            | "double" => Shape::Other("a number"),
            "string" => Shape::Other("a string"),
            operators::INDEX if call.args.first().is_some_and(is_labels) => {
                Shape::Other("a string")
            }
            operators::CONDITIONAL => match call.args.as_slice() {
                [_, then, otherwise] => match (shape(then), shape(otherwise)) {
                    (Shape::Boolean, Shape::Boolean) => Shape::Boolean,
                    (Shape::Other(what), Shape::Other(_)) => Shape::Other(what),
                    _ => Shape::Unknown,
                },
                _ => Shape::Unknown,
            },
            _ => Shape::Unknown,
        },
        Expr::Comprehension(c) => match &c.result.expr {
            // all() and exists() give their accumulator; map() and filter() give a list.
            Expr::Ident(name) if *name == c.accu_var => shape(&c.accu_init),
            _ => shape(&c.result),
        },
        _ => Shape::Unknown,
    }
}

/// `action.labels` or `action.claims`: every value is a string.
fn is_labels(e: &IdedExpr) -> bool {
    matches!(&e.expr, Expr::Select(s) if !s.test && (s.field == "labels" || s.field == "claims")
        && matches!(&s.operand.expr, Expr::Ident(root) if root == "action"))
}

/// The first error of a condition that does not parse, in words: where, and what to write
/// instead. Only the first: the parser's later errors follow from it and mislead.
pub(crate) fn syntax_errors(source: &str, errors: &[ParseError]) -> String {
    errors.first().map_or_else(
        || "the condition cannot be read".to_owned(),
        |e| syntax_error(source, e),
    )
}

fn syntax_error(source: &str, e: &ParseError) -> String {
    let at = if source.lines().nth(1).is_some() {
        format!("line {} column {}", e.pos.0, e.pos.1)
    } else {
        format!("column {}", e.pos.1)
    };
    let msg = e.msg.strip_prefix("Syntax error: ").unwrap_or(&e.msg);
    if let Some(text) = quoted_after(msg, "token recognition error at: ") {
        return if text.starts_with('=') {
            format!("at {at}: a single '=' is not an operator; compare with ==")
        } else if text.starts_with(['"', '\'']) {
            format!("at {at}: a string is opened and never closed; close it with the same quote")
        } else if text.starts_with(['&', '|']) {
            format!(
                "at {at}: '{}' is not an operator; write && or ||",
                text.trim()
            )
        } else {
            format!("at {at}: '{}' is not part of the CEL language", text.trim())
        };
    }
    for prefix in ["mismatched input ", "extraneous input "] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(" expecting ")
        {
            let found = found.trim_matches('\'');
            let expected = expected_words(expected);
            return if found == "<EOF>" {
                format!(
                    "the condition ends at {at} before it is complete: {expected} should follow"
                )
            } else if expected == "the end of the condition" {
                format!(
                    "at {at}: '{found}' follows a complete condition; join conditions with && or ||"
                )
            } else {
                format!("at {at}: unexpected '{found}'; {expected} should come here")
            };
        }
    }
    if let Some(text) = quoted_after(msg, "no viable alternative at input ") {
        return format!("at {at}: cannot make sense of '{text}'");
    }
    if let Some(rest) = msg.strip_prefix("missing ")
        && let Some((what, before)) = rest.split_once(" at ")
    {
        return format!(
            "at {at}: {} is missing before {}",
            what.trim_matches('\''),
            before
        );
    }
    if msg == "UNKNOWN" {
        return format!("the condition cannot be read (at {at})");
    }
    format!("at {at}: {msg}")
}

fn quoted_after<'m>(msg: &'m str, prefix: &str) -> Option<&'m str> {
    msg.strip_prefix(prefix).map(|q| {
        q.strip_prefix('\'')
            .and_then(|q| q.strip_suffix('\''))
            .unwrap_or(q)
    })
}

/// ANTLR's set of expected tokens, as a reader would say it.
fn expected_words(expected: &str) -> String {
    if expected == "<EOF>" {
        return "the end of the condition".to_owned();
    }
    if expected.contains("IDENTIFIER") || expected.contains("NUM_INT") {
        return "a value (such as action.kind, \"text\", 42, true or a parenthesised expression)"
            .to_owned();
    }
    let tokens: Vec<&str> = expected
        .trim_matches(['{', '}'])
        .split(", ")
        .map(|t| t.trim_matches('\''))
        .collect();
    match tokens.as_slice() {
        [one] => format!("'{one}'"),
        many => format!("one of {}", many.join(" ")),
    }
}
