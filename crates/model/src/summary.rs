//! What a reviewer reads first about an action, in every channel (Slack, the web inbox,
//! `countersign pending`): chosen by the action's kind alone, never by what its details happen to
//! contain. A tool call whose arguments hold a key named `argv` or `sql` is still shown with every
//! argument; only `shell.exec` is summed up as its command line, and only `sql.statement` as its
//! SQL. And, for a reviewer in the request's own chain, how they are in it.
//!
//! A command's line carries what else decides what runs, as `countersign run` captured it: the
//! environment variables (`LD_PRELOAD` runs code in any program; `PATH` finds a script's
//! commands), the SHA-256 of the program's file and of the script an interpreter is given. They
//! follow the command as a shell comment, which no argument can forge (an argument's `#` is
//! always quoted): `deploy.sh prod # program sha256:…; env LD_PRELOAD=/tmp/x.so PATH=/usr/bin`.

use std::ops::Deref;

use serde_json::Value;

use crate::action::shell_join;
use crate::canonical;
use crate::{Action, Chain};

/// The kind whose summary is its command line (`details.argv`).
pub const SHELL_EXEC: &str = "shell.exec";
/// The kind whose summary is its statement (`details.sql`).
pub const SQL_STATEMENT: &str = "sql.statement";

/// The part of an action a reviewer reads first.
#[derive(Debug, Clone, PartialEq)]
pub enum Summary<'a> {
    /// A `shell.exec` with a well-formed `details.argv` (and, if present, well-formed `env`,
    /// `program_sha256` and `script`): the command line.
    Command(CommandLine<'a>),
    /// A `sql.statement` with a `details.sql` string: the statement.
    Sql(&'a str),
    /// Any other action, or one of those two kinds whose details are not of their shape: every
    /// detail, as sent.
    Details(&'a Value),
}

impl Summary<'_> {
    /// The summary on one line, not yet made safe for any channel: the command line as a shell
    /// would split it, the SQL, or the details as canonical JSON (RFC 8785, keys in order).
    pub fn line(&self) -> String {
        match self {
            Summary::Command(command) => command.line(),
            Summary::Sql(sql) => (*sql).to_owned(),
            Summary::Details(details) => {
                canonical::to_canonical_string(details).unwrap_or_else(|_| details.to_string())
            }
        }
    }
}

/// What `action` is summed up as, by its kind.
pub fn summary(action: &Action) -> Summary<'_> {
    match action.kind.as_str() {
        SHELL_EXEC => CommandLine::of(&action.details)
            .map_or(Summary::Details(&action.details), Summary::Command),
        SQL_STATEMENT => action
            .sql()
            .map_or(Summary::Details(&action.details), Summary::Sql),
        _ => Summary::Details(&action.details),
    }
}

/// A `shell.exec`'s command line (its arguments, as a list of `&str` through `Deref` and
/// `IntoIterator`) with what else its details say about how it runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CommandLine<'a> {
    argv: Vec<&'a str>,
    /// `details.env`: the environment variables captured, by name.
    env: Vec<(&'a str, &'a str)>,
    /// `details.program_sha256`.
    program_sha256: Option<&'a str>,
    /// `details.script`: its path and SHA-256.
    script: Option<(&'a str, &'a str)>,
}

impl<'a> CommandLine<'a> {
    /// From a `shell.exec`'s details; `None` when `argv` is not a non-empty list of strings, or
    /// `env`, `program_sha256` or `script` is present but not of its shape (then every detail is
    /// shown as sent, so nothing is hidden).
    fn of(details: &'a Value) -> Option<CommandLine<'a>> {
        let argv = details.get("argv")?.as_array()?;
        let argv: Vec<&str> = argv.iter().map(Value::as_str).collect::<Option<_>>()?;
        if argv.is_empty() {
            return None;
        }
        let env = match details.get("env") {
            None => Vec::new(),
            Some(env) => env
                .as_object()?
                .iter()
                .map(|(name, value)| Some((name.as_str(), value.as_str()?)))
                .collect::<Option<_>>()?,
        };
        let program_sha256 = match details.get("program_sha256") {
            None => None,
            Some(hash) => Some(hash.as_str()?),
        };
        let script = match details.get("script") {
            None => None,
            Some(script) => Some((
                script.get("path")?.as_str()?,
                script.get("sha256")?.as_str()?,
            )),
        };
        Some(CommandLine {
            argv,
            env,
            program_sha256,
            script,
        })
    }

    /// The command line as a shell would split it; then, if the action says more about how it
    /// runs, that after `#`: `program sha256:…; script PATH sha256:…; env NAME=VALUE …` (the
    /// environment last, being the longest).
    /// Everything the agent wrote is quoted as the command line is.
    pub fn line(&self) -> String {
        let quote = |text: &str| shell_join([text]);
        let mut line = shell_join(self.argv.iter().copied());
        let mut more = Vec::new();
        if let Some(hash) = self.program_sha256 {
            more.push(format!("program sha256:{}", quote(hash)));
        }
        if let Some((path, hash)) = self.script {
            more.push(format!("script {} sha256:{}", quote(path), quote(hash)));
        }
        if !self.env.is_empty() {
            let mut env: Vec<String> = self
                .env
                .iter()
                .map(|(name, value)| format!("{}={}", quote(name), quote(value)))
                .collect();
            env.sort();
            more.push(format!("env {}", env.join(" ")));
        }
        if !more.is_empty() {
            line.push_str(" # ");
            line.push_str(&more.join("; "));
        }
        line
    }
}

impl<'a> From<Vec<&'a str>> for CommandLine<'a> {
    /// A bare command line, with nothing more said about how it runs.
    fn from(argv: Vec<&'a str>) -> Self {
        CommandLine {
            argv,
            ..CommandLine::default()
        }
    }
}

impl<'a> Deref for CommandLine<'a> {
    type Target = [&'a str];

    fn deref(&self) -> &[&'a str] {
        &self.argv
    }
}

impl<'a> IntoIterator for CommandLine<'a> {
    type Item = &'a str;
    type IntoIter = std::vec::IntoIter<&'a str>;

    fn into_iter(self) -> Self::IntoIter {
        self.argv.into_iter()
    }
}

impl<'a, 'b> IntoIterator for &'b CommandLine<'a> {
    type Item = &'a str;
    type IntoIter = std::iter::Copied<std::slice::Iter<'b, &'a str>>;

    fn into_iter(self) -> Self::IntoIter {
        self.argv.iter().copied()
    }
}

/// How `reviewer` is in the request's own `chain`, said to them ("deploy-bot acts for you"), or
/// `None` when they are not: every channel tells such a reviewer why they cannot review, rather
/// than let them believe their click counts.
pub fn own_chain(chain: &Chain, reviewer: &str) -> Option<String> {
    if chain.id == reviewer {
        Some("you asked for it yourself".to_owned())
    } else if chain.on_behalf_of.iter().any(|h| h == reviewer) {
        Some(format!("{} acts for you", chain.id))
    } else if chain.started_by.as_deref() == Some(reviewer) {
        Some(format!("you started {}", chain.id))
    } else {
        None
    }
}
