//! `countersign audit verify | export`: check the audit log on the broker or offline from an
//! export, and write an export.
//!
//! Exit codes: 0 the log verifies (or was exported); 1 the log is broken, the first broken link
//! named on stderr; 2 usage or I/O error, or the broker could not be asked.

#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use countersign_audit::{parse_export, verify_with_checkpoints};
use countersign_client::AuditVerification;
use countersign_model::PublicKey;

use crate::connection::Connection;
use crate::describe::clean;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the audit log: on the broker, or offline from an export and the broker's key.
    Verify(VerifyArgs),
    /// Write the whole audit log to stdout as JSON Lines (`countersign audit export > log.jsonl`).
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub connection: Connection,
    /// Verify this export offline instead of asking the broker.
    #[arg(long, value_name = "FILE.jsonl", requires = "key")]
    pub file: Option<PathBuf>,
    /// The public key that signs the checkpoints (ed25519:…, or @FILE holding it); the broker
    /// shows it at GET /v1/audit/key.
    #[arg(long, value_name = "PUBKEY", requires = "file")]
    pub key: Option<String>,
    /// Print the result as JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub connection: Connection,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => {
            let verification = match (&args.file, &args.key) {
                (Some(file), Some(key)) => {
                    let key = read_key(key)?;
                    let text = std::fs::read_to_string(file).with_context(|| {
                        format!("cannot read the audit export {}", file.display())
                    })?;
                    verify_offline(&text, &key)
                }
                _ => args.connection.client()?.audit_verify().await?,
            };
            Ok(report(&verification, args.json)?)
        }
        AuditCommand::Export(args) => {
            let text = args.connection.client()?.audit_export().await?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write the export to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `ed25519:…`, or `@FILE` holding it.
pub fn read_key(text: &str) -> anyhow::Result<PublicKey> {
    let key = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the public key file {path}"))?,
        None => text.to_owned(),
    };
    key.trim()
        .parse()
        .context("--key is not the broker's public key")
}

/// Verifies an export against `key`: every event chains, every checkpoint is signed by `key` and
/// matches. An export that cannot be read line by line is broken too.
pub fn verify_offline(text: &str, key: &PublicKey) -> AuditVerification {
    let export = match parse_export(text) {
        Ok(export) => export,
        Err(error) => {
            return AuditVerification::Broken {
                error: format!("the export is not valid: {error}"),
                seq: None,
            };
        }
    };
    match verify_with_checkpoints(&export.events, &export.checkpoints, key) {
        Ok(summary) => AuditVerification::Intact {
            events: u64::try_from(summary.count).unwrap_or(u64::MAX),
            head: summary.head,
            checkpoints: Some(u64::try_from(export.checkpoints.len()).unwrap_or(u64::MAX)),
        },
        Err(error) => AuditVerification::Broken {
            error: error.to_string(),
            seq: Some(error.seq()),
        },
    }
}

/// "ok: N events, head sha256:…", or the first broken link.
pub fn describe(verification: &AuditVerification) -> String {
    match verification {
        AuditVerification::Intact { events, head, .. } => match head {
            Some(head) => format!("ok: {events} events, head {}", head.hash),
            None => format!("ok: {events} events"),
        },
        AuditVerification::Broken { error, .. } => clean(error),
    }
}

fn report(verification: &AuditVerification, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(verification)?);
    } else if verification.is_intact() {
        println!("{}", describe(verification));
        if let AuditVerification::Intact {
            events,
            checkpoints: Some(0),
            ..
        } = verification
            && *events > 0
        {
            eprintln!(
                "note: no signed checkpoint covers this log, so events cut from its end \
                 would go unnoticed"
            );
        }
    } else {
        eprintln!("audit log broken: {}", describe(verification));
    }
    Ok(if verification.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
