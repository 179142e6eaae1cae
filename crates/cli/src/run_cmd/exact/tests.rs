//! What `countersign run` captures beyond the command line, without a broker: which environment
//! variables, which script, and the check that refuses a program or script changed since.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::{Value, json};

use super::{Exact, WITHHELD, sha256};
use crate::run_cmd::{RunArgs, exact_action};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("countersign-exact-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    vars.iter()
        .map(|(n, v)| ((*n).into(), (*v).into()))
        .collect()
}

fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[derive(Debug, Parser)]
struct Harness {
    #[command(flatten)]
    run: RunArgs,
}

/// The action `countersign run ARGS` sends, for `program` run from `dir` with `vars`.
fn action(args: &[&str], program: &Path, dir: &Path, vars: &[(&str, &str)]) -> Value {
    let args = Harness::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
        .unwrap()
        .run;
    let exact = Exact::capture(
        program.to_str().unwrap(),
        &args.command,
        dir,
        env(vars),
        &args.env_vars,
    )
    .unwrap()
    .unwrap();
    let action = exact_action(&args, dir.to_str().unwrap(), &exact, "h").unwrap();
    let digest = action.digest().unwrap().to_string();
    let mut json = serde_json::to_value(action).unwrap();
    json["digest"] = json!(digest);
    json
}

#[test]
fn the_program_hash_and_the_variables_that_change_what_runs_are_in_the_action() {
    let dir = scratch("env");
    let tool = dir.join("tool");
    executable(&tool, "#!/bin/sh\necho tool\n");
    let plain = [("PATH", "/usr/bin:/bin"), ("TERM", "xterm"), ("LANG", "C")];
    let base = action(&["--", "tool", "x"], &tool, &dir, &plain);
    assert_eq!(
        base["details"],
        json!({"argv": ["tool", "x"], "cwd": dir.to_str().unwrap(),
               "program": tool.to_str().unwrap(),
               "program_sha256": sha256(&tool).unwrap(),
               "env": {"PATH": "/usr/bin:/bin"}}),
        "only the variables that change what runs, and only those set"
    );

    let preloaded = [plain.as_slice(), &[("LD_PRELOAD", "/tmp/evil.so")]].concat();
    let with_preload = action(&["--", "tool", "x"], &tool, &dir, &preloaded);
    assert_eq!(with_preload["details"]["env"]["LD_PRELOAD"], "/tmp/evil.so");
    assert_ne!(
        with_preload["digest"], base["digest"],
        "LD_PRELOAD changes the digest"
    );

    // A PATH entry inserted in front changes the action, even when the program stays the same.
    let inserted = [("PATH", "/home/agent/bin:/usr/bin:/bin")];
    let moved = action(&["--", "tool", "x"], &tool, &dir, &inserted);
    assert_ne!(moved["digest"], base["digest"]);

    // Targets and credentials: names shown, a secret's value withheld (it would be in chat and
    // in the audit log forever).
    let targets = [
        ("PGHOST", "prod-db"),
        ("PGPASSWORD", "hunter2"),
        ("AWS_PROFILE", "prod"),
        ("AWS_SECRET_ACCESS_KEY", "abc"),
        ("KUBECONFIG", "/k"),
        ("GIT_SSH_COMMAND", "ssh -i key"),
        ("MYAPP_MODE", "fast"),
    ];
    let shown = action(&["--", "tool"], &tool, &dir, &targets);
    assert_eq!(
        shown["details"]["env"],
        json!({"PGHOST": "prod-db", "PGPASSWORD": WITHHELD, "AWS_PROFILE": "prod",
               "AWS_SECRET_ACCESS_KEY": WITHHELD, "KUBECONFIG": "/k",
               "GIT_SSH_COMMAND": "ssh -i key"})
    );
    // --env-vars adds patterns to the built-in list.
    let added = action(
        &["--env-vars", "MYAPP_*, ,NOPE", "--", "tool"],
        &tool,
        &dir,
        &targets,
    );
    assert_eq!(added["details"]["env"]["MYAPP_MODE"], "fast");
    assert_eq!(added["details"]["env"]["PGHOST"], "prod-db");
}

#[test]
fn a_variable_that_cannot_be_shown_is_a_usage_error() {
    use std::os::unix::ffi::OsStringExt as _;
    let vars = vec![(
        OsString::from("LD_PRELOAD"),
        OsString::from_vec(b"/tmp/\xff.so".to_vec()),
    )];
    let error = Exact::capture("/bin/sh", &argv(&["sh"]), Path::new("/"), vars, &[]).unwrap_err();
    assert!(
        error.to_string().contains("LD_PRELOAD is not valid UTF-8"),
        "{error}"
    );
    let error = Exact::capture(
        "/bin/sh",
        &argv(&["sh"]),
        Path::new("/"),
        Vec::new(),
        &["ENDS\\".into()],
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("--env-vars: pattern 'ENDS\\' ends with a lone"),
        "{error}"
    );
}

/// The script `args` gives a program named like `program`'s file, run in `dir`, if any.
fn script(program: &str, args: &[&str], dir: &Path) -> Option<Value> {
    let name = Path::new(program).file_name().unwrap();
    let program = dir.join("bin").join(name);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    executable(&program, "");
    let exact = Exact::capture(program.to_str().unwrap(), &argv(args), dir, Vec::new(), &[])
        .unwrap()
        .unwrap();
    let mut details = serde_json::Map::new();
    exact.add_to(&mut details);
    details.get("script").cloned()
}

#[test]
fn an_interpreters_script_is_the_first_operand_that_is_a_file() {
    let dir = scratch("script");
    std::fs::write(dir.join("deploy.sh"), "echo deploy\n").unwrap();
    std::fs::write(dir.join("job.py"), "print(1)\n").unwrap();
    let at = |name: &str| json!({"path": dir.join(name).to_str().unwrap(), "sha256": sha256(&dir.join(name)).unwrap()});
    let deploy = Some(at("deploy.sh"));
    assert_eq!(
        script("/bin/sh", &["sh", "./deploy.sh"], &dir),
        Some(json!({
        "path": format!("{}/./deploy.sh", dir.display()),
        "sha256": sha256(&dir.join("deploy.sh")).unwrap()}))
    );
    assert_eq!(
        script(
            "/bin/bash",
            &["bash", "-e", "-o", "pipefail", "deploy.sh", "job.py"],
            &dir
        ),
        deploy
    );
    assert_eq!(
        script("/usr/bin/dash", &["dash", "--", "deploy.sh"], &dir),
        deploy
    );
    assert_eq!(
        script(
            "/usr/bin/python3.12",
            &["python3", "-W", "ignore", "job.py"],
            &dir
        ),
        Some(at("job.py"))
    );
    assert_eq!(
        script(
            "/usr/bin/python3",
            &["python3", "missing.py", "job.py"],
            &dir
        ),
        Some(at("job.py"))
    );
    // Code on the command line: nothing to hash, the code is in argv.
    assert_eq!(script("/bin/sh", &["sh", "-c", "deploy.sh"], &dir), None);
    assert_eq!(
        script("/bin/bash", &["bash", "-ec", "x", "deploy.sh"], &dir),
        None
    );
    assert_eq!(
        script("/usr/bin/python3", &["python3", "-m", "job.py"], &dir),
        None
    );
    assert_eq!(
        script("/usr/bin/perl", &["perl", "-e", "1", "job.py"], &dir),
        None
    );
    assert_eq!(
        script("/usr/bin/node", &["node", "--eval=1", "job.py"], &dir),
        None
    );
    // Not an interpreter: its arguments are its own business.
    assert_eq!(script("/usr/bin/cat", &["cat", "deploy.sh"], &dir), None);
}

#[test]
fn a_program_or_script_changed_after_it_was_asked_about_is_refused() {
    let dir = scratch("check");
    let tool = dir.join("tool");
    executable(&tool, "#!/bin/sh\necho approved\n");
    let exact = Exact::capture(
        tool.to_str().unwrap(),
        &argv(&["tool"]),
        &dir,
        Vec::new(),
        &[],
    )
    .unwrap()
    .unwrap();
    assert_eq!(exact.check(), Ok(()));
    // Replaced by another file under the same name.
    let planted = dir.join("planted");
    executable(&planted, "#!/bin/sh\necho planted\n");
    std::fs::rename(&planted, &tool).unwrap();
    let refused = exact.check().unwrap_err();
    assert!(
        refused.starts_with(&format!(
            "the program {} changed after it was asked about (SHA-256 ",
            tool.display()
        )),
        "{refused}"
    );

    std::fs::write(dir.join("deploy.sh"), "echo reviewed\n").unwrap();
    let sh = Exact::capture(
        "/bin/sh",
        &argv(&["sh", "deploy.sh"]),
        &dir,
        Vec::new(),
        &[],
    )
    .unwrap()
    .unwrap();
    assert_eq!(sh.check(), Ok(()));
    // Edited in place while its request waits.
    std::fs::write(dir.join("deploy.sh"), "echo edited\n").unwrap();
    let refused = sh.check().unwrap_err();
    assert!(refused.starts_with("the script "), "{refused}");
    std::fs::remove_file(dir.join("deploy.sh")).unwrap();
    let gone = sh.check().unwrap_err();
    assert!(
        gone.contains("cannot be read to check that it is unchanged"),
        "{gone}"
    );
}
