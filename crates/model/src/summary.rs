//! What a reviewer reads first about an action, in every channel (Slack, the web inbox,
//! `countersign pending`): chosen by the action's kind alone, never by what its details happen to
//! contain. A tool call whose arguments hold a key named `argv` or `sql` is still shown with every
//! argument; only `shell.exec` is summed up as its command line, and only `sql.statement` as its
//! SQL. And, for a reviewer in the request's own chain, how they are in it.

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
