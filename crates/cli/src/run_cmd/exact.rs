//! What runs is what was reviewed: the facts about a command that are not in its command line
//! (the SHA-256 of the program's file, of the script an interpreter is given, and the environment
//! variables that change what a program does) are captured once, before anything is asked, put
//! into the action (so into its digest and the reviewer's view), checked again just before the
//! command runs, and the command runs with exactly the environment captured.
//!
//! How far the check goes: the file is hashed by its path immediately before it is spawned, and
//! spawned by that path. Executing the very file that was hashed (an open descriptor, as
//! `fexecve` does) is not done: the standard library cannot keep a descriptor open across `exec`
//! without `unsafe` (which this workspace forbids), a `/proc/<pid>/fd/N` path would become a
//! script's `$0`, and neither stops a rewrite in place between the check and `exec`. So a process
//! running as the same user that rewrites the file in the moment between the check and `exec`, or
//! changes what the program loads afterwards (libraries, files it sources), is not stopped here:
//! against such an agent `countersign run` is advisory, and a boundary needs a proxy holding the
//! credential. What is stopped: a program or script replaced or edited while its request waits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::Path;

use anyhow::bail;
use countersign_model::Digest;
use countersign_policy::glob::Glob;
use serde_json::{Map, Value, json};

/// The environment variables captured by default: those that decide which code runs, or which
/// system a command acts on, without appearing on its command line. Patterns as in rules (`*`
/// any run of characters). `--env-vars` / `COUNTERSIGN_RUN_ENV` add to them, never remove.
pub const BUILT_IN_ENV: &[&str] = &[
    // Where a script's commands are found, and the home whose dotfiles programs read
    // (~/.gitconfig, ~/.kube/config, ~/.aws, ~/.pgpass), and the other place they look for
    // configuration ($XDG_CONFIG_HOME/git/config can name a program git runs).
    "PATH",
    "HOME",
    "XDG_CONFIG_HOME",
    // The dynamic loader injects code into any program: LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
    // (glibc and musl read only LD_*; DYLD_* is their macOS counterpart); and glibc loads the
    // character-conversion modules GCONV_PATH names, shared objects too, into any program that
    // converts text.
    "LD_*",
    "DYLD_*",
    "GCONV_PATH",
    // Shells: a file bash sources before any script, exported functions that replace commands,
    // options, and the word splitting that changes how a script reads its arguments.
    "BASH_ENV",
    "ENV",
    "BASH_FUNC_*",
    "SHELLOPTS",
    "BASHOPTS",
    "IFS",
    // Interpreters: module paths and options that load code before the script's own.
    "PYTHON*",
    "PERL*",
    "RUBY*",
    "NODE_*",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    // Programs that tools start on their own (a pager or editor is a program too).
    "PAGER",
    "EDITOR",
    "VISUAL",
    // Which system is acted on, and as whom: PostgreSQL (PGHOST, PGDATABASE, PGSERVICE), AWS
    // (profile, region, endpoint), Kubernetes, Git (GIT_DIR, GIT_SSH_COMMAND, GIT_CONFIG_*),
    // Terraform (TF_CLI_ARGS adds arguments; TF_VAR_* sets variables; TERRAFORM_CONFIG is the
    // older name of its CLI configuration file), Docker, Google Cloud, Azure.
    "PG*",
    "AWS_*",
    "KUBECONFIG",
    "GIT_*",
    "TF_*",
    "TERRAFORM_CONFIG",
    "DOCKER_*",
    "CLOUDSDK_*",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_*",
    "ARM_*",
];

/// What the action shows in place of a captured variable whose name says it holds a secret: the
/// action is shown in chat and kept in the audit log forever, so a password is not put in it.
/// The command still runs with the real value, captured with the rest.
pub const WITHHELD: &str = "(a secret, not shown)";

/// Programs that run a script file given as an argument (patterns on the program's file name),
/// and how their options read: the letters of a short option that make it run code from the
/// command line instead of a file (`sh -c`, `python3 -m`, `perl -e`: then there is no script,
/// and the code is in `argv`), and those that take a value (`bash -o pipefail`, `python3 -W
/// ignore`), which is not the script. Long options (`--norc`) are passed over, except those
/// that run code.
struct Interpreter {
    names: &'static [&'static str],
    inline: &'static str,
    takes_value: &'static str,
    long_inline: &'static [&'static str],
}

const INTERPRETERS: &[Interpreter] = &[
    Interpreter {
        names: &[
            "sh", "bash", "dash", "zsh", "ksh", "mksh", "yash", "fish", "csh", "tcsh", "busybox",
        ],
        inline: "c",
        takes_value: "oO",
        long_inline: &["--command"],
    },
    Interpreter {
        names: &["python*", "pypy*"],
        inline: "cm",
        takes_value: "WX",
        long_inline: &[],
    },
    Interpreter {
        names: &["perl*"],
        inline: "eE",
        takes_value: "IM",
        long_inline: &[],
    },
    Interpreter {
        names: &["ruby*"],
        inline: "e",
        takes_value: "IrCE",
        long_inline: &[],
    },
    Interpreter {
        names: &["node", "nodejs", "bun", "deno"],
        inline: "ep",
        takes_value: "r",
        long_inline: &["--eval", "--print"],
    },
    Interpreter {
        names: &["php*"],
        inline: "rR",
        takes_value: "cdz",
        long_inline: &[],
    },
    Interpreter {
        names: &["lua*", "Rscript"],
        inline: "e",
        takes_value: "l",
        long_inline: &[],
    },
];

/// How an interpreter reads one argument.
#[derive(Debug, PartialEq)]
enum Reads {
    /// Code on the command line: no script.
    InlineCode,
    /// Options; the next argument is the value of the last one when `value_next`.
    Options { value_next: bool },
    /// Not an option: possibly the script.
    Operand,
}

impl Interpreter {
    fn named(name: &str) -> Option<&'static Interpreter> {
        INTERPRETERS.iter().find(|i| {
            i.names
                .iter()
                .filter_map(|p| Glob::new(p).ok())
                .any(|p| p.matches(name))
        })
    }

    fn reads(&self, arg: &str) -> Reads {
        if let Some(long) = arg.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let inline = self
                .long_inline
                .iter()
                .any(|l| l.trim_start_matches('-') == name);
            return if inline {
                Reads::InlineCode
            } else {
                Reads::Options { value_next: false }
            };
        }
        let Some(letters) = arg.strip_prefix('-').filter(|l| !l.is_empty()) else {
            return Reads::Operand;
        };
        let count = letters.chars().count();
        for (i, letter) in letters.chars().enumerate() {
            if self.inline.contains(letter) {
                return Reads::InlineCode;
            }
            if self.takes_value.contains(letter) {
                // The rest of the cluster is the value, or, when none is left, the next argument.
                return Reads::Options {
                    value_next: i + 1 == count,
                };
            }
        }
        Reads::Options { value_next: false }
    }
}

/// The command's facts beyond its command line, captured once.
#[derive(Debug)]
pub struct Exact {
    /// The resolved absolute path of the program: what runs.
    program: String,
    program_sha256: String,
    /// The script an interpreter is given: its absolute path (as the interpreter will open it)
    /// and its SHA-256.
    script: Option<(String, String)>,
    /// The captured variables as the action shows them (secrets withheld).
    shown: BTreeMap<String, String>,
    /// The whole environment the command runs with.
    environment: Vec<(OsString, OsString)>,
}

impl Exact {
    /// Captures the facts of running `argv` as `program` from `cwd` with `environment` (this
    /// process's, taken once), capturing the variables named by the built-in list and `extra`.
    /// An error of the outer result is a usage error (a pattern or a variable that cannot be
    /// sent); of the inner, a file that cannot be read (the command could not run either).
    pub fn capture(
        program: &str,
        argv: &[String],
        cwd: &Path,
        environment: Vec<(OsString, OsString)>,
        extra: &[String],
    ) -> anyhow::Result<io::Result<Exact>> {
        let shown = captured(&environment, extra)?;
        let program_sha256 = match sha256(Path::new(program)) {
            Ok(hash) => hash,
            Err(e) => return Ok(Err(io::Error::new(e.kind(), format!("{program}: {e}")))),
        };
        let script = match script_of(program, argv, cwd) {
            Ok(script) => script,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(Exact {
            program: program.to_owned(),
            program_sha256,
            script,
            shown,
            environment,
        }))
    }

    /// Adds to an action's details: `program_sha256`, `env` (only when a captured variable is
    /// set) and `script` (only for an interpreter given a script file).
    pub fn add_to(&self, details: &mut Map<String, Value>) {
        details.insert("program_sha256".into(), json!(self.program_sha256));
        if !self.shown.is_empty() {
            details.insert("env".into(), json!(self.shown));
        }
        if let Some((path, sha256)) = &self.script {
            details.insert("script".into(), json!({"path": path, "sha256": sha256}));
        }
    }

    /// The absolute path of the program: what runs.
    pub fn program(&self) -> &Path {
        Path::new(&self.program)
    }

    /// The whole environment the command runs with, as captured.
    pub fn environment(&self) -> &[(OsString, OsString)] {
        &self.environment
    }

    /// Hashes the program and the script again: `Err` says which changed since the action was
    /// built (or cannot be read any more), and the command must not run.
    pub fn check(&self) -> Result<(), String> {
        unchanged("program", &self.program, &self.program_sha256)?;
        match &self.script {
            Some((path, sha256)) => unchanged("script", path, sha256),
            None => Ok(()),
        }
    }
}

fn unchanged(what: &str, path: &str, reviewed: &str) -> Result<(), String> {
    match sha256(Path::new(path)) {
        Ok(now) if now == reviewed => Ok(()),
        Ok(now) => Err(format!(
            "the {what} {path} changed after it was asked about (SHA-256 {reviewed} then, \
             {now} now)"
        )),
        Err(e) => Err(format!(
            "the {what} {path} cannot be read to check that it is unchanged: {e}"
        )),
    }
}

/// The lowercase hex SHA-256 of a file's content. Read whole: a program is at most a few hundred
/// megabytes, read once when asking and once before running.
pub fn sha256(path: &Path) -> io::Result<String> {
    Ok(Digest::of(&std::fs::read(path)?).hex())
}

/// The variables of `environment` that match the built-in list or `extra`, as the action shows
/// them.
fn captured(
    environment: &[(OsString, OsString)],
    extra: &[String],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut patterns = Vec::new();
    // `COUNTERSIGN_RUN_ENV=""` or `A*, B` mean what they say: nothing more, or A* and B.
    let extra = extra.iter().map(|p| p.trim()).filter(|p| !p.is_empty());
    for pattern in BUILT_IN_ENV.iter().copied().chain(extra) {
        match Glob::new(pattern) {
            Ok(glob) => patterns.push(glob),
            Err(e) => bail!("--env-vars: {e}"),
        }
    }
    let mut shown = BTreeMap::new();
    for (name, value) in environment {
        let readable = name.to_string_lossy();
        if !patterns.iter().any(|p| p.matches(&readable)) {
            continue;
        }
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            bail!(
                "the environment variable {readable} is not valid UTF-8, so a reviewer could \
                 not be shown it; unset it or fix it"
            );
        };
        let value = if is_secret(name) { WITHHELD } else { value };
        shown.insert(name.to_owned(), value.to_owned());
    }
    Ok(shown)
}

/// Whether a variable's name says it holds a secret (PGPASSWORD, AWS_SECRET_ACCESS_KEY,
/// AWS_SESSION_TOKEN, TF_VAR_api_key): its value is withheld from the action.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "SECRET", "TOKEN", "PRIVATE_KEY"]
        .iter()
        .any(|word| name.contains(word))
        || name.ends_with("_KEY")
}

/// Where `program` is an interpreter, the script it is given: the first argument that is not an
/// option and names an existing file, as an absolute path (not resolved through symlinks: the
/// interpreter opens that path, so that path is what is checked again) and its SHA-256.
fn script_of(program: &str, argv: &[String], cwd: &Path) -> io::Result<Option<(String, String)>> {
    let name = Path::new(program)
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let Some(interpreter) = Interpreter::named(&name) else {
        return Ok(None);
    };
    let mut options_over = false;
    let mut value_next = false;
    for arg in argv.iter().skip(1) {
        if std::mem::take(&mut value_next) {
            continue;
        }
        if !options_over {
            if arg == "--" {
                options_over = true;
                continue;
            }
            match interpreter.reads(arg) {
                Reads::InlineCode => return Ok(None),
                Reads::Options { value_next: next } => {
                    value_next = next;
                    continue;
                }
                Reads::Operand => {}
            }
        }
        let path = cwd.join(arg);
        if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            continue;
        }
        let hash = sha256(&path).map_err(|e| io::Error::new(e.kind(), format!("{arg}: {e}")))?;
        let Some(path) = path.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the path of the script {arg} is not valid UTF-8"),
            ));
        };
        return Ok(Some((path.to_owned(), hash)));
    }
    Ok(None)
}

/// This process's environment, taken once: what the action names and the command runs with.
pub fn environment() -> Vec<(OsString, OsString)> {
    std::env::vars_os().collect()
}

#[cfg(test)]
mod tests;
