//! Running the command once it may run: directly (no shell), with this process's stdin, stdout
//! and stderr, and its exit status passed on as ours.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use countersign_client::OutcomeStatus;
use countersign_model::format_duration;
use tokio::process::Command;

use super::signals::{Signals, Stop};

/// How running the command went.
#[derive(Debug)]
pub enum Ran {
    Finished {
        status: ExitStatus,
        elapsed: Duration,
    },
    /// It could not be started (not found, not executable).
    NotStarted { error: io::Error },
}

impl Ran {
    /// Our exit code: the command's own, 128+n when signal n killed it, 127 when it was not
    /// found and 126 when it could not be started otherwise (as shells do).
    pub fn exit_code(&self) -> u8 {
        match self {
            Ran::Finished { status, .. } => exit_code(*status),
            Ran::NotStarted { error } if error.kind() == io::ErrorKind::NotFound => 127,
            Ran::NotStarted { .. } => 126,
        }
    }

    /// What to record as the outcome: ran (exit status 0) or failed, the exit status if it
    /// exited, and one line for the audit log.
    pub fn report(&self, what: &str) -> (OutcomeStatus, Option<i32>, String) {
        match self {
            Ran::Finished { status, elapsed } => {
                let after = format_elapsed(*elapsed);
                match (status.code(), status.signal()) {
                    (Some(0), _) => (
                        OutcomeStatus::Ran,
                        Some(0),
                        format!("{what} exited with status 0 after {after}"),
                    ),
                    (Some(code), _) => (
                        OutcomeStatus::Failed,
                        Some(code),
                        format!("{what} exited with status {code} after {after}"),
                    ),
                    (None, Some(signal)) => (
                        OutcomeStatus::Failed,
                        None,
                        format!("{what} was killed by signal {signal} after {after}"),
                    ),
                    (None, None) => (
                        OutcomeStatus::Failed,
                        None,
                        format!("{what} ended after {after} with status {status}"),
                    ),
                }
            }
            Ran::NotStarted { error } => (
                OutcomeStatus::Failed,
                None,
                format!("{what} could not be started: {}", start_error(error)),
            ),
        }
    }
}

/// The exit code that passes `status` on: its own code, or 128+n for signal n.
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(u8::MAX),
        (None, None) => 1,
    }
}

/// Why a command could not be started, as a shell would say it (or as finding it said).
pub fn start_error(error: &io::Error) -> String {
    match error.kind() {
        _ if error.get_ref().is_some() => error.to_string(),
        io::ErrorKind::NotFound => "command not found".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => error.to_string(),
    }
}

fn format_elapsed(elapsed: Duration) -> String {
    if elapsed < Duration::from_secs(10) {
        format!("{:.1}s", elapsed.as_secs_f64())
    } else {
        format_duration(Duration::from_secs(elapsed.as_secs()))
    }
}

/// Runs `program` (the absolute path `argv[0]` was resolved to: no second lookup through PATH)
/// with `argv[0]` as its own name, the rest of `argv` as arguments and exactly `environment` as
/// its environment (the one the action names), and waits for it. Ctrl-C from the terminal
/// reaches the command directly (it is in
/// the same process group), so it is not passed on again: programs such as terraform treat a
/// second SIGINT as "stop now, whatever the state". SIGTERM is sent to this process alone, so
/// it is passed on.
pub async fn run(
    program: &Path,
    argv: &[String],
    environment: &[(OsString, OsString)],
    signals: &mut Signals,
) -> Ran {
    let Some((name, args)) = argv.split_first() else {
        return Ran::NotStarted {
            error: io::Error::new(io::ErrorKind::NotFound, "no command was given"),
        };
    };
    let started = Instant::now();
    let mut command = Command::new(program);
    command
        .arg0(name)
        .args(args)
        .env_clear()
        .envs(environment.iter().map(|(name, value)| (name, value)));
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => return Ran::NotStarted { error },
    };
    loop {
        tokio::select! {
            status = child.wait() => {
                return match status {
                    Ok(status) => Ran::Finished { status, elapsed: started.elapsed() },
                    Err(error) => Ran::NotStarted { error },
                };
            }
            stop = signals.recv() => {
                if stop == Stop::Terminate {
                    forward_sigterm(&mut child).await;
                }
            }
        }
    }
}

/// Sends SIGTERM to the command. The standard library can only send SIGKILL and this workspace
/// forbids `unsafe` (which `kill(2)` needs), so the shell's `kill` builtin does it; should that
/// fail, the command is killed outright rather than left running unsupervised.
async fn forward_sigterm(child: &mut tokio::process::Child) {
    let Some(pid) = child.id() else {
        return;
    };
    let sent = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", &pid.to_string()])
        .status()
        .await
        .is_ok_and(|status| status.success());
    if !sent {
        let _ = child.start_kill();
    }
}
