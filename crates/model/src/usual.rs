//! How a `shell.exec` differs from the same agent's last request for the same program (issue 15):
//! a program whose file changed, a script that changed, an environment variable newly set or a
//! working directory elsewhere is what a reviewer who approved the usual command would miss. The
//! comparison is Countersign's own, in its words; every piece of the agent's text in it is made
//! inert and cut short.

use serde_json::{Map, Value};

use crate::Action;
use crate::summary::SHELL_EXEC;
use crate::text::{clean, truncate};

/// The key of a `request.created` event's data that holds the sentences, when there are any.
pub const UNUSUAL: &str = "unusual";

/// The longest sentence read back from an event.
const MAX_SENTENCE: usize = 400;

/// The longest piece of agent text (a path, a variable's name, a digest) in a sentence.
const MAX_PIECE: usize = 80;

/// One short sentence per way `current` differs from `previous`, both `shell.exec` actions for
/// the same `details.program`; none when they are not (there is then nothing usual to compare).
pub fn changes_from(previous: &Action, current: &Action) -> Vec<String> {
    let mut out = Vec::new();
    if previous.kind != SHELL_EXEC || current.kind != SHELL_EXEC {
        return out;
    }
    let (Some(program), Some(before)) = (text(current, "program"), text(previous, "program"))
    else {
        return out;
    };
    if program != before {
        return out;
    }
    if let Some(then) = text(previous, "program_sha256")
        && text(current, "program_sha256") != Some(then)
    {
        out.push(format!(
            "the program's SHA-256 differs from {}'s last request for {} ({} then)",
            piece(&previous.principal.id),
            piece(program),
            piece(then)
        ));
    }
    script_changes(previous, current, &mut out);
    env_changes(previous, current, &mut out);
    if let Some(then) = text(previous, "cwd")
        && text(current, "cwd") != Some(then)
    {
        out.push(format!(
            "the working directory differs ({} then)",
            piece(then)
        ));
    }
    out
}

fn script_changes(previous: &Action, current: &Action, out: &mut Vec<String>) {
    match (script(previous), script(current)) {
        (Some((path_then, sha_then)), Some((path, sha))) if path_then == path => {
            if sha_then != sha {
                out.push(format!("the script {} changed", piece(path)));
            }
        }
        (Some((path_then, _)), Some((path, _))) => out.push(format!(
            "the script differs: {} ({} then)",
            piece(path),
            piece(path_then)
        )),
        (None, Some((path, _))) => {
            out.push(format!("a script is given: {} (none was)", piece(path)));
        }
        (Some((path_then, _)), None) => {
            out.push(format!("no script is given ({} then)", piece(path_then)));
        }
        (None, None) => {}
    }
}

fn env_changes(previous: &Action, current: &Action, out: &mut Vec<String>) {
    let empty = Map::new();
    let then = env(previous).unwrap_or(&empty);
    let now = env(current).unwrap_or(&empty);
    for (name, value) in now {
        match then.get(name) {
            None => out.push(format!("{} is set (it was not)", piece(name))),
            Some(before) if before != value => out.push(format!("{} differs", piece(name))),
            Some(_) => {}
        }
    }
    for name in then.keys().filter(|name| !now.contains_key(*name)) {
        out.push(format!("{} is no longer set", piece(name)));
    }
}

fn text<'a>(action: &'a Action, key: &str) -> Option<&'a str> {
    action.details.get(key).and_then(Value::as_str)
}

fn env(action: &Action) -> Option<&Map<String, Value>> {
    action.details.get("env").and_then(Value::as_object)
}

fn script(action: &Action) -> Option<(&str, &str)> {
    let script = action.details.get("script")?;
    let path = script.get("path").and_then(Value::as_str)?;
    let sha = script.get("sha256").and_then(Value::as_str).unwrap_or("");
    Some((path, sha))
}

/// Agent text, inert and short.
fn piece(text: &str) -> String {
    truncate(&clean(text), MAX_PIECE)
}

/// The sentences a `request.created` event's `data` holds, inert and short again (the data is
/// read back from storage, not trusted to be as written).
pub fn recorded(data: &Value) -> Vec<String> {
    data.get(UNUSUAL)
        .and_then(Value::as_array)
        .map(|sentences| {
            sentences
                .iter()
                .filter_map(Value::as_str)
                .map(|s| truncate(&clean(s), MAX_SENTENCE))
                .collect()
        })
        .unwrap_or_default()
}

/// What every channel shows before the sentences, so that a reviewer reads them as Countersign's
/// comparison and not as the agent's words.
pub fn caption(requester: &str) -> String {
    format!(
        "Differs from {}'s last request for this program (Countersign's comparison)",
        piece(requester)
    )
}
