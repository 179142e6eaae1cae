//! The `countersign` command. This crate is the only place that reads files and the environment
//! and decides exit codes; the policy and approval logic live in the pure crates below it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod policy_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Countersign: runtime enforcement for AI agents and automation. Sensitive actions wait for
/// human approval; forbidden ones never run.
#[derive(Debug, Parser)]
#[command(name = "countersign", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check, test and explain policy files.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Policy(command) => policy_cmd::run(command),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("countersign: {error:#}");
            ExitCode::from(2)
        }
    }
}
