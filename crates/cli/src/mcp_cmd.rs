//! `countersign mcp`: the MCP proxy (crates/mcp), wired to the broker, the audit spool directory
//! and the upstream server given on the command line or in the environment.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use countersign_mcp::{Background, Gate, GateConfig, Spool, Url, naming};
use countersign_model::parse_duration;

use crate::connection::Connection;

/// How long a stopping proxy keeps trying to send what is left of its audit spool.
const FINAL_SHIPPING: Duration = Duration::from_secs(3);

const AFTER_HELP: &str = "\
Examples:
  countersign mcp -- npx -y @modelcontextprotocol/server-filesystem /srv/docs
  countersign mcp --name github -- docker run -i --rm ghcr.io/github/github-mcp-server
  countersign mcp --listen 127.0.0.1:8766 --upstream https://mcp.example.com/mcp

Tool calls become actions of kind mcp.tool_call on resource mcp:NAME/TOOL, with the tool's
arguments as details. See docs/mcp.md.";

/// Put Countersign between an agent and an MCP server: every tool call is checked.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub struct McpArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// The server's name in resources mcp:NAME/TOOL [default: derived from the command (the
    /// package or program, without "mcp"/"server") or from the upstream URL's host].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// A claim every tool call of this server carries, such as env=production (repeatable):
    /// shown to reviewers as the agent's words, matched only by rules that ask for claims. The
    /// labels rules match come from the broker's configuration of the principal.
    #[arg(
        long = "claim",
        visible_alias = "label",
        value_name = "NAME=VALUE",
        value_parser = crate::run_cmd::parse_label
    )]
    pub claims: Vec<(String, String)>,
    /// Serve streamable HTTP on this address (with --upstream) instead of stdio.
    #[arg(long, value_name = "ADDR", requires = "upstream")]
    pub listen: Option<SocketAddr>,
    /// The remote MCP server's streamable HTTP endpoint (with --listen).
    #[arg(long, value_name = "URL", requires = "listen")]
    pub upstream: Option<String>,
    /// Where audit events wait while the broker is unreachable [default:
    /// $XDG_STATE_HOME/countersign/mcp-spool, else ~/.local/state/countersign/mcp-spool].
    #[arg(long, env = "COUNTERSIGN_SPOOL", value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// How often to ask the broker whether its policy changed.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_interval)]
    pub policy_refresh: Duration,
    /// How long the policy may go unconfirmed by the broker (unreachable) before tool calls are
    /// refused.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = parse_interval)]
    pub policy_max_age: Duration,
    /// The MCP server to start (stdio), and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<String>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match parse_duration(text) {
        Ok(d) if d >= Duration::from_secs(1) => Ok(d),
        Ok(_) => Err("it must be at least 1s".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The spool directory: `--spool`, else under the user's state directory.
fn spool_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")));
    match state {
        Some(state) => Ok(state.join("countersign/mcp-spool")),
        None => bail!("no home directory to keep the audit spool in: pass --spool DIR"),
    }
}

enum Upstream {
    Command(Vec<String>),
    Http {
        listen: SocketAddr,
        server: Box<countersign_mcp::upstream::Upstream>,
    },
}

fn upstream(args: &McpArgs) -> anyhow::Result<(Upstream, String)> {
    let upstream = match (&args.listen, &args.upstream, args.command.is_empty()) {
        (Some(listen), Some(url), true) => {
            let url = Url::parse(url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .with_context(|| {
                    format!(
                        "'{url}' is not an MCP server address (expected http://HOST[:PORT]/PATH)"
                    )
                })?;
            Upstream::Http {
                listen: *listen,
                server: Box::new(countersign_mcp::upstream::Upstream::new(url)?),
            }
        }
        (Some(_), Some(_), false) => {
            bail!(
                "give either --listen/--upstream (streamable HTTP) or a command after -- (stdio), not both"
            )
        }
        (None, None, false) => Upstream::Command(args.command.clone()),
        _ => bail!(
            "no MCP server given: put its command after -- (countersign mcp -- npx -y SERVER), or \
             use --listen ADDR --upstream URL for a remote server"
        ),
    };
    let derived = match &upstream {
        Upstream::Command(command) => naming::from_command(command),
        Upstream::Http { server, .. } => naming::from_url(server.url()),
    };
    let name = match (&args.name, derived) {
        (Some(name), _) if naming::is_valid(name) => name.clone(),
        (Some(name), _) => bail!(
            "'{name}' cannot be a server name (expected 1 to 64 letters, digits, '.', '_' or '-')"
        ),
        (None, Some(name)) => name,
        (None, None) => bail!("cannot derive a server name from the upstream: pass --name NAME"),
    };
    Ok((upstream, name))
}

/// Runs `countersign mcp`.
pub async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    let (upstream, name) = upstream(&args)?;
    let claims = crate::run_cmd::claims(&args.claims)?;
    if args.policy_max_age <= args.policy_refresh {
        bail!(
            "--policy-max-age ({:?}) must be longer than --policy-refresh ({:?}), or every call \
             would be refused between two refreshes",
            args.policy_max_age,
            args.policy_refresh
        );
    }
    let client = args.connection.client()?;
    let spool = Arc::new(Spool::open(&spool_dir(args.spool.clone())?)?);
    let config = GateConfig {
        server: name,
        claims,
        policy_refresh: args.policy_refresh,
        policy_max_age: args.policy_max_age,
    };
    let gate = Arc::new(Gate::connect(config, client, spool).await?);
    tracing::info!(
        "checking tool calls of mcp:{}/* for {} with the broker at {}",
        gate.server(),
        gate.principal().describe(),
        gate.client().server()
    );
    let background = Background::start(gate.local());
    let code = match upstream {
        Upstream::Command(command) => {
            let withheld = countersign_variables(std::env::vars_os().map(|(name, _)| name));
            let status =
                countersign_mcp::stdio::run(Arc::clone(&gate), &command, &withheld).await?;
            match (status.code(), status.signal()) {
                (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
                (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
                (None, None) => 1,
            }
        }
        Upstream::Http { listen, server } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            tracing::info!(
                "serving MCP on http://{}{} in front of {}",
                listener.local_addr().unwrap_or(listen),
                server.path(),
                server.url()
            );
            countersign_mcp::http::serve(Arc::clone(&gate), listener, *server, stopped()).await?;
            0
        }
    };
    background.finish(FINAL_SHIPPING).await;
    Ok(ExitCode::from(code))
}

/// The variables the MCP server must not inherit: every `COUNTERSIGN_*`. They hold the agent's
/// token (`COUNTERSIGN_TOKEN`), and after `source demo.env` every demo principal's
/// (`COUNTERSIGN_TOKEN_<ID>`); the rest (broker address, spool) configure this proxy, not the
/// server. A server that could read them would hand the enforcement point's credentials to the
/// model it serves (server-everything's `get-env` tool prints its environment).
fn countersign_variables(names: impl Iterator<Item = OsString>) -> Vec<OsString> {
    names
        .filter(|name| name.as_encoded_bytes().starts_with(b"COUNTERSIGN_"))
        .collect()
}

/// Completes on Ctrl-C or SIGTERM.
async fn stopped() {
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
