//! The `countersign` command. This crate is the only place that reads files and the environment
//! and decides exit codes; the policy and approval logic live in the pure crates below it.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod audit_cmd;
mod channels;
mod connection;
mod demo_cmd;
mod describe;
mod mcp_cmd;
mod policy_cmd;
mod review_cmd;
mod run_cmd;
mod serve_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use countersign_client::Verdict;

/// Countersign: runtime enforcement for AI agents and automation. Sensitive actions wait for
/// human approval; forbidden ones never run.
#[derive(Debug, Parser)]
#[command(name = "countersign", version, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the broker: the API that evaluates actions and collects approvals.
    Serve {
        /// The configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Start on the database as it is, a new and empty one if it is missing, even though the
        /// data directory says Countersign kept a history here before: only when you mean to
        /// begin again (the database is refused otherwise, so a deleted one is noticed).
        #[arg(long)]
        init: bool,
    },
    /// Start a ready-to-try broker on the embedded defaults: SQLite, the example policy, and
    /// demo principals with fresh tokens (written to DIR/demo.env).
    Demo {
        #[arg(long, default_value = "countersign-demo")]
        dir: PathBuf,
    },
    /// Check, test and explain policy files, and make the broker reload its own.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Run a command once the policy allows it, or once enough humans approve it.
    Run(run_cmd::RunArgs),
    /// Put Countersign between an agent and an MCP server: every tool call is checked.
    Mcp(mcp_cmd::McpArgs),
    /// List the requests waiting for approval.
    Pending(review_cmd::PendingArgs),
    /// Show everything about one request.
    Show(review_cmd::ShowArgs),
    /// Approve a request.
    Approve(review_cmd::ReviewArgs),
    /// Deny a request.
    Deny(review_cmd::ReviewArgs),
    /// Verify or export the audit log.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .init();
    // The MCP proxy relays one agent's messages: on one thread, a message is never handed from
    // one worker thread to another on its way through, which costs more than the work itself.
    let mut builder = match cli.command {
        Command::Mcp(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("countersign: cannot start: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("countersign: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config, init } => {
            serve_cmd::serve(serve_cmd::load_config(&config)?, init).await
        }
        Command::Demo { dir } => demo_cmd::demo(&dir).await,
        Command::Policy(command) => policy_cmd::run(command).await,
        Command::Run(args) => run_cmd::run(args).await,
        Command::Mcp(args) => mcp_cmd::run(args).await,
        Command::Pending(args) => review_cmd::pending(args).await,
        Command::Show(args) => review_cmd::show(args).await,
        Command::Approve(args) => review_cmd::review(args, Verdict::Approve).await,
        Command::Deny(args) => review_cmd::review(args, Verdict::Deny).await,
        Command::Audit(command) => audit_cmd::run(command).await,
    }
}
