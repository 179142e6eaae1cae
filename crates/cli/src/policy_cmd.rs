//! `countersign policy check | test | explain | reload`.
//!
//! Exit codes: 0 success; 1 the policy is invalid or a test failed, or the broker refused the
//! reload (an invalid policy, a token that is not an administrator's); 2 the command could not
//! run (unreadable file, malformed action, broker unreachable).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use countersign_client::ClientError;
use countersign_model::Action;
use countersign_policy::{Outcome, Policy};

use crate::connection::Connection;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file: syntax, rules, approvers, conditions, and its own [[tests]], which
    /// must pass (as `serve` and a reload require).
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
    /// Run the [[tests]] in a policy file; one line per case, non-zero exit on any failure.
    Test { file: PathBuf },
    /// Show what the policy decides for one action, which rules decided it, and why.
    Explain {
        file: PathBuf,
        /// The action as JSON, or @FILE to read it from a file.
        #[arg(long)]
        action: String,
        /// Print the decision as JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Make the broker re-read its policy file (as SIGHUP does), with a human administrator's
    /// token. A policy that does not pass `policy check` is refused, and the old one stays in
    /// force; the reason is printed.
    Reload {
        #[command(flatten)]
        connection: Connection,
    },
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Reload { connection } => reload(&connection).await,
        PolicyCommand::Check { file } => {
            let Some(policy) = load(&file, Policy::parse)? else {
                return Ok(ExitCode::from(1));
            };
            // What `serve` would refuse: a target no channel of this binary can announce to.
            let problems = crate::channels::check_targets(&policy);
            if !problems.is_empty() {
                for problem in &problems {
                    eprintln!("{}: {problem}", file.display());
                }
                eprintln!(
                    "{}: {} problem(s); the policy was not loaded",
                    file.display(),
                    problems.len()
                );
                return Ok(ExitCode::from(1));
            }
            println!(
                "{}: ok: {} rules, {} tests, default {}, policy {}",
                file.display(),
                policy.rules().len(),
                policy.tests().len(),
                policy.default_outcome(),
                policy.hash()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { file } => {
            let Some(policy) = load(&file, Policy::parse_untested)? else {
                return Ok(ExitCode::from(1));
            };
            test(&policy)
        }
        PolicyCommand::Explain { file, action, json } => {
            let Some(policy) = load(&file, Policy::parse_untested)? else {
                return Ok(ExitCode::from(1));
            };
            explain(&policy, &action, json)
        }
    }
}

/// Loads and compiles a policy with `parse`: for `check`, `Policy::parse`, which also refuses a
/// policy failing its own tests as `serve` does; `test` and `explain` load it untested, to show
/// why a case fails. Prints its errors and returns `None` when it is invalid.
fn load(
    file: &Path,
    parse: fn(&str) -> Result<Policy, countersign_policy::PolicyErrors>,
) -> anyhow::Result<Option<Policy>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the policy file {}", file.display()))?;
    match parse(&text) {
        Ok(policy) => Ok(Some(policy)),
        Err(errors) => {
            eprintln!("{}", errors.render(&file.display().to_string()));
            eprintln!(
                "{}: {} problem(s); the policy was not loaded",
                file.display(),
                errors.0.len()
            );
            Ok(None)
        }
    }
}

async fn reload(connection: &Connection) -> anyhow::Result<ExitCode> {
    let client = connection.client()?;
    match client.reload_policy().await {
        Ok(reloaded) => {
            println!(
                "the broker at {} reloaded its policy: policy {} is in force",
                client.server(),
                reloaded.hash
            );
            Ok(ExitCode::SUCCESS)
        }
        // The broker answered and said no: the policy is broken or the token may not reload.
        Err(ClientError::Api { message, .. }) => {
            eprintln!("countersign: {message}");
            Ok(ExitCode::from(1))
        }
        Err(other) => Err(other.into()),
    }
}

fn test(policy: &Policy) -> anyhow::Result<ExitCode> {
    let reports = policy.run_tests();
    if reports.is_empty() {
        println!("the policy has no [[tests]]; add some so changes to it can be checked");
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    for report in &reports {
        let decided = match report.decision.rules.as_slice() {
            [] => format!("{} by default", report.decision.outcome),
            rules => format!("{} by {}", report.decision.outcome, rules.join(", ")),
        };
        match &report.failure {
            None => println!("ok    {} ({decided})", report.test.name),
            Some(why) => {
                failed += 1;
                println!(
                    "FAIL  {} (line {}): {why}",
                    report.test.name, report.test.line
                );
            }
        }
    }
    println!(
        "policy tests: {} of {} cases pass{}",
        reports.len() - failed,
        reports.len(),
        if failed > 0 {
            format!(", {failed} fail")
        } else {
            String::new()
        }
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn explain(policy: &Policy, action: &str, json: bool) -> anyhow::Result<ExitCode> {
    let text = match action.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the action file {path}"))?,
        None => action.to_owned(),
    };
    let action: Action = serde_json::from_str(&text).context("--action is not a valid action")?;
    if let Err(e) = action.validate() {
        bail!("--action is not a valid action: {e}");
    }
    let digest = action.digest()?;
    let decision = policy.decide(&action);
    if json {
        let out =
            serde_json::json!({ "digest": digest, "decision": decision, "policy": policy.hash() });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("decision:  {}", decision.outcome);
    if !decision.rules.is_empty() {
        println!("rules:     {}", decision.rules.join(", "));
    }
    for requirement in &decision.requirements {
        println!(
            "requires:  {} (rule {})",
            requirement.describe(),
            requirement.rule
        );
    }
    if let (Outcome::RequireApproval, Some(secs)) = (decision.outcome, decision.timeout_seconds) {
        let timeout = countersign_model::format_duration(std::time::Duration::from_secs(secs));
        println!("expires:   {timeout} after the request is made");
    }
    println!("digest:    {digest}");
    println!();
    println!("{}", decision.explanation);
    Ok(ExitCode::SUCCESS)
}
