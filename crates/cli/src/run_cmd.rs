//! `countersign run -- CMD…`: runs a command only if Countersign allows it, or once enough humans
//! approve it; otherwise it does not run, and the exit code says why (see [`EXIT_CODES`]).
//!
//! Fail closed: whatever goes wrong between asking and running (the broker unreachable, an
//! answer about another action, a grant that cannot be used, a program or script changed since
//! it was asked about), the command does not run.
//!
//! What runs is what was reviewed: the program is found once, and its file's SHA-256, an
//! interpreter's script and the environment that changes what runs are in the action
//! ([`exact`]); the command runs from that file, with that environment.

mod child;
mod enforce;
mod exact;
mod resolve;
mod signals;
mod status;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use countersign_client::{ActionRequest, ClientError, GrantView, RequestState, RequestView};
use countersign_model::parse_duration;
use serde_json::json;

use self::child::Ran;
use self::exact::Exact;
use self::signals::Signals;
use self::status::StatusLine;
use crate::connection::Connection;
use crate::describe::clean;

pub const EXIT_CODES: &str = "\
Exit codes:
  N        the command ran and exited with N (128+n if signal n killed it)
  2        usage error (bad flags, no token, an invalid action); nothing was sent
  126, 127 the command could not be started, or was not found (when it is not found
           before asking, nothing is sent)
  200      denied, by the policy or by a reviewer (stderr says who and why)
  201      nobody approved in time (the request expired, or --wait passed)
  202      cancelled (Ctrl-C or SIGTERM while waiting, or someone withdrew the request)
  203      fail closed: the broker was unreachable or unavailable, refused the call, or
           answered about another action
  204      the approval could not be used: the grant was refused, already used, or is
           for another action; or the program or script changed after it was asked about
With 200 to 204 the command did not run.";

/// Run a command once the policy allows it, or once enough humans approve it.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct RunArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// What the command acts on [default: host:<this machine's hostname>].
    #[arg(long, value_name = "RESOURCE")]
    pub resource: Option<String>,
    /// A claim about the command, such as env=staging (repeatable; --label is the old
    /// spelling): reviewers see it as the agent's words, and only rules that ask for claims
    /// match it. The labels rules match come from the broker's configuration of the principal.
    #[arg(
        long = "claim",
        visible_alias = "label",
        value_name = "NAME=VALUE",
        value_parser = parse_label
    )]
    pub claims: Vec<(String, String)>,
    /// Why the command should run, shown to reviewers as the requester's own words.
    #[arg(long, value_name = "TEXT")]
    pub justification: Option<String>,
    /// How long to wait for approval before giving up (90s, 30m, 1h) [default: until the
    /// request expires].
    #[arg(long, value_name = "DURATION", value_parser = parse_wait)]
    pub wait: Option<Duration>,
    /// More environment variables to put in the action and show reviewers, as patterns
    /// (`MYAPP_*,VAULT_ADDR`), added to the built-in list (PATH, LD_*, PG*, AWS_*, KUBECONFIG,
    /// GIT_*, …).
    #[arg(
        long = "env-vars",
        env = "COUNTERSIGN_RUN_ENV",
        value_delimiter = ',',
        value_name = "PATTERNS"
    )]
    pub env_vars: Vec<String>,
    /// The action kind policy rules match on.
    #[arg(long, default_value = "shell.exec", value_name = "KIND")]
    pub kind: String,
    /// The command and its arguments, run directly (no shell).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

pub fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!(
            "'{text}' is not a claim (expected NAME=VALUE, such as env=production)"
        )),
    }
}

/// The claims given on the command line, each name once.
pub fn claims(given: &[(String, String)]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut claims = BTreeMap::new();
    for (name, value) in given {
        if claims.insert(name.clone(), value.clone()).is_some() {
            bail!("claim '{name}' is given twice; give each claim once");
        }
    }
    Ok(claims)
}

fn parse_wait(text: &str) -> Result<Duration, String> {
    parse_duration(text).map_err(|e| e.to_string())
}

/// The action for the command: `details = {"argv": [...], "cwd": ..., "program": ...}`, where
/// `program` is the absolute path of the file that will run (see [`resolve::program`]): rules
/// decide on it, reviewers see it, and it is what is executed.
pub fn build_action(
    args: &RunArgs,
    cwd: &str,
    program: &str,
    hostname: &str,
) -> anyhow::Result<ActionRequest> {
    let resource = args
        .resource
        .clone()
        .unwrap_or_else(|| format!("host:{hostname}"));
    let mut action = ActionRequest::new(args.kind.clone(), resource);
    action.claims = claims(&args.claims)?;
    action.details = json!({ "argv": args.command, "cwd": cwd, "program": program });
    action.justification = args.justification.clone();
    action
        .validate()
        .context("the command cannot be sent to Countersign")?;
    Ok(action)
}

/// The action for the command as it will run: [`build_action`]'s, with what `exact` captured
/// (`program_sha256`, `env`, `script`) in its details.
pub fn exact_action(
    args: &RunArgs,
    cwd: &str,
    exact: &Exact,
    hostname: &str,
) -> anyhow::Result<ActionRequest> {
    let program = exact.program().to_string_lossy();
    let mut action = build_action(args, cwd, &program, hostname)?;
    if let Some(details) = action.details.as_object_mut() {
        exact.add_to(details);
    }
    action
        .validate()
        .context("the command cannot be sent to Countersign")?;
    Ok(action)
}

/// This machine's name: /etc/hostname, else $HOSTNAME, else `localhost`.
pub fn hostname() -> String {
    let from_file = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_owned());
    from_file
        .filter(|name| !name.is_empty())
        .or_else(|| {
            std::env::var("HOSTNAME")
                .ok()
                .filter(|n| !n.trim().is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// How `countersign run` ended. Each maps to one exit code ([`Outcome::exit_code`]).
#[derive(Debug)]
pub enum Outcome {
    /// The command ran (or was allowed but could not be started).
    Ran(Ran),
    /// The policy denies the action.
    PolicyDenied {
        rules: Vec<String>,
        explanation: String,
    },
    /// A reviewer denied the request: "denied by NAME: COMMENT".
    ReviewerDenied {
        message: String,
    },
    /// Nobody approved in time.
    Expired {
        message: String,
    },
    Cancelled {
        message: String,
    },
    /// No decision could be had, or it cannot be trusted.
    FailClosed {
        reason: String,
    },
    /// The request was approved but its grant could not be used.
    GrantRefused {
        reason: String,
    },
    /// The program or script is not what was asked about any more.
    Changed {
        reason: String,
    },
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Ran(ran) => ran.exit_code(),
            Outcome::PolicyDenied { .. } | Outcome::ReviewerDenied { .. } => 200,
            Outcome::Expired { .. } => 201,
            Outcome::Cancelled { .. } => 202,
            Outcome::FailClosed { .. } => 203,
            Outcome::GrantRefused { .. } | Outcome::Changed { .. } => 204,
        }
    }

    /// What to tell the user on stderr; nothing when the command ran.
    pub fn message(&self) -> Option<String> {
        Some(match self {
            Outcome::Ran(Ran::Finished { .. }) => return None,
            Outcome::Ran(Ran::NotStarted { error }) => {
                format!("cannot run the command: {}", child::start_error(error))
            }
            Outcome::PolicyDenied { rules, explanation } => {
                let by = countersign_policy::decided_by_policy(rules);
                format!(
                    "denied by {by}; the command did not run. {}",
                    clean(explanation)
                )
            }
            Outcome::ReviewerDenied { message } => {
                format!("{message}; the command did not run")
            }
            Outcome::Expired { message } | Outcome::Cancelled { message } => message.clone(),
            Outcome::FailClosed { reason } => {
                format!("fail closed, the command did not run: {reason}")
            }
            Outcome::GrantRefused { reason } => {
                format!("the approval could not be used, the command did not run: {reason}")
            }
            Outcome::Changed { reason } => format!("the command did not run: {reason}"),
        })
    }

    fn fail_closed(error: &ClientError) -> Outcome {
        Outcome::FailClosed {
            reason: error.to_string(),
        }
    }
}

/// Where a decided (or still pending) request leaves the command.
#[derive(Debug)]
pub enum Step<'a> {
    Wait,
    // The shared hold uses the grant itself; the tests read it here.
    Run(#[cfg_attr(not(test), allow(dead_code))] &'a GrantView),
    Stop(Outcome),
}

/// What a request in its current state means for the command.
pub fn next_step(view: &RequestView) -> Step<'_> {
    match view.state {
        RequestState::Pending => Step::Wait,
        RequestState::Approved => match &view.grant {
            Some(grant) => Step::Run(grant),
            None => Step::Stop(Outcome::GrantRefused {
                // The summary says why (an approval that expired, a policy that now denies).
                reason: format!(
                    "request {} was approved, but the broker sent no grant with it (only the \
                     requester receives one: is COUNTERSIGN_TOKEN the requester's?); the broker \
                     says: {}",
                    view.id,
                    clean(&view.summary)
                ),
            }),
        },
        RequestState::Denied => Step::Stop(Outcome::ReviewerDenied {
            message: denial_message(view),
        }),
        RequestState::Expired => Step::Stop(Outcome::Expired {
            message: format!(
                "nobody approved in time: request {} expired at {}; the command did not run",
                view.id, view.expires_at
            ),
        }),
        RequestState::Cancelled => Step::Stop(Outcome::Cancelled {
            message: format!(
                "request {} was cancelled{}; the command did not run",
                view.id,
                view.decided_by
                    .as_deref()
                    .map(|by| format!(" by {}", clean(by)))
                    .unwrap_or_default()
            ),
        }),
    }
}

/// "denied by dana: not during the freeze", from who decided and their review's comment.
pub fn denial_message(view: &RequestView) -> String {
    let Some(by) = view.decided_by.as_deref() else {
        return format!("denied: {}", clean(&view.summary));
    };
    match view.denial().and_then(|review| review.comment.as_deref()) {
        Some(comment) => format!("denied by {}: {}", clean(by), clean(comment)),
        None => format!("denied by {} (no comment)", clean(by)),
    }
}

/// Runs `countersign run`.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    // Taken once: the action names it and the command runs with it.
    let environment = exact::environment();
    let path = environment
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone());
    // Found once, here: the same file is named in the action and executed, whatever happens to
    // PATH or the directories in it while the request waits.
    let first = args.command.first().map_or("", String::as_str);
    let program = match resolve::program(first, &cwd, path.as_deref()) {
        Ok(program) => program,
        Err(error) => return Ok(not_started(error)),
    };
    let exact = match Exact::capture(&program, &args.command, &cwd, environment, &args.env_vars)? {
        Ok(exact) => exact,
        Err(error) => return Ok(not_started(error)),
    };
    let action = exact_action(&args, &cwd.to_string_lossy(), &exact, &hostname())?;
    let client = args.connection.client()?;
    let mut enforcer = enforce::Enforcer {
        client: &client,
        action: &action,
        exact: &exact,
        argv: &args.command,
        wait: args.wait,
        signals: Signals::listen().context("cannot listen for Ctrl-C and SIGTERM")?,
        status: StatusLine::new(std::io::stderr().is_terminal()),
    };
    let outcome = enforcer.enforce().await;
    if let Some(message) = outcome.message() {
        eprintln!("countersign: {message}");
    }
    Ok(ExitCode::from(outcome.exit_code()))
}

/// The command cannot be started (not found, its file unreadable), so nothing is asked.
fn not_started(error: std::io::Error) -> ExitCode {
    let outcome = Outcome::Ran(Ran::NotStarted { error });
    if let Some(message) = outcome.message() {
        eprintln!("countersign: {message}; nothing was asked");
    }
    ExitCode::from(outcome.exit_code())
}
