//! What a reviewer reads first about an action, in every channel (Slack, the web inbox,
//! `countersign pending`): chosen by the action's kind alone, never by what its details happen to
//! contain. A tool call whose arguments hold a key named `argv` or `sql` is still shown with every
//! argument; only `shell.exec` is summed up as its command line, and only `sql.statement` as its
//! SQL.

use serde_json::Value;

use crate::Action;
use crate::action::shell_join;
use crate::canonical;

/// The kind whose summary is its command line (`details.argv`).
pub const SHELL_EXEC: &str = "shell.exec";
/// The kind whose summary is its statement (`details.sql`).
pub const SQL_STATEMENT: &str = "sql.statement";

/// The part of an action a reviewer reads first.
#[derive(Debug, Clone, PartialEq)]
pub enum Summary<'a> {
    /// A `shell.exec` with a well-formed `details.argv`: the command line.
    Command(Vec<&'a str>),
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
            Summary::Command(argv) => shell_join(argv.iter().copied()),
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
        SHELL_EXEC => action
            .argv()
            .map_or(Summary::Details(&action.details), Summary::Command),
        SQL_STATEMENT => action
            .sql()
            .map_or(Summary::Details(&action.details), Summary::Sql),
        _ => Summary::Details(&action.details),
    }
}
