//! `countersign run` as a user runs it, against a scripted broker: what runs, what does not, what
//! is sent, and the exit codes. (Tests against the real broker live with the broker.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.

// The scripted broker is the client crate's test double of the API; shared, not copied. Not
// every one of its helpers is used here.
#[allow(dead_code)]
use countersign_test_support::fake_broker;
use countersign_test_support::scratch::Scratch;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use countersign_client::ActionRequest;
use countersign_model::Digest;
use fake_broker::{FakeBroker, REQUEST_ID, Reply, Seen, request_view};
use serde_json::{Value, json};

/// A scratch directory to run in, where the wrapped command leaves a mark if it runs.
fn workdir(name: &str) -> PathBuf {
    Scratch::named(&format!("run-test-{name}")).keep()
}

fn countersign(server: &str, dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_countersign"));
    command
        .args(args)
        .current_dir(dir)
        .env("COUNTERSIGN_SERVER", server)
        .env("COUNTERSIGN_TOKEN", "agent-token")
        .stdin(std::process::Stdio::null());
    command
}

async fn run(server: &str, dir: &Path, args: &[&str]) -> Output {
    countersign(server, dir, args).output().await.unwrap()
}

/// `countersign ARGS` with nothing in its environment but `vars`, PATH and how to reach the
/// broker: what the action names is known exactly.
async fn run_with_only(server: &str, dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = countersign(server, dir, args);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("COUNTERSIGN_SERVER", server)
        .env("COUNTERSIGN_TOKEN", "agent-token")
        .envs(vars.iter().copied());
    command.output().await.unwrap()
}

/// The SHA-256 of a file's content, in hex.
fn sha256(path: &str) -> String {
    Digest::of(&std::fs::read(path).unwrap()).hex()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `run --resource host:test -- sh -c 'touch ran; exit 3'`: leaves `ran` behind if it runs.
fn marking() -> &'static [&'static str] {
    &[
        "run",
        "--resource",
        "host:test",
        "--",
        "sh",
        "-c",
        "touch ran; exit 3",
    ]
}

/// The digest of the action in a call's body, as the broker computes it.
fn digest_of(seen: &Seen) -> Digest {
    let action: ActionRequest = serde_json::from_str(&seen.body).unwrap();
    action.digest().unwrap()
}

/// A request view for the last action evaluated.
fn view(state: &str, digest: Digest) -> Value {
    let mut view = request_view(state);
    view["digest"] = json!(digest);
    // The labels the broker decided with, which the digest covers: this agent has none
    // configured.
    view["action"]["labels"] = json!({});
    view
}

/// A broker that gates the action and then moves its request through `states` on each wait;
/// grants are consumed and outcomes recorded as `consume` and `outcome` say.
fn gated_broker(
    states: Vec<&'static str>,
    consume: impl Fn() -> Reply + Send + Sync + 'static,
) -> impl Fn(&Seen) -> Reply + Send + Sync + 'static {
    let digest: Arc<Mutex<Option<Digest>>> = Arc::default();
    let waits = AtomicUsize::new(0);
    move |seen| {
        let path = seen.target.split('?').next().unwrap().to_owned();
        if path == "/v1/actions" {
            let d = digest_of(seen);
            *digest.lock().unwrap() = Some(d);
            return Reply::json(
                202,
                json!({"decision": "require_approval", "rules": ["prod-db-export"],
                       "explanation": "needs two", "digest": d, "request": view("pending", d)}),
            );
        }
        let d = digest.lock().unwrap().unwrap();
        match path.rsplit('/').next().unwrap() {
            "wait" => {
                std::thread::sleep(Duration::from_millis(50));
                let n = waits.fetch_add(1, Ordering::SeqCst);
                let state = states[n.min(states.len() - 1)];
                let mut v = view(state, d);
                match state {
                    "approved" => {
                        v["progress"][0]["approved_by"] = json!(["dana", "sam"]);
                        v["grant"] = json!({"token": "csg1.grant", "expires_at": "2026-11-21T16:20:00.000Z"});
                    }
                    "denied" => {
                        v["decided_by"] = json!("erin");
                        v["reviews"] = json!([{"reviewer": "erin", "verdict": "deny",
                            "comment": "not during the freeze", "channel": "slack",
                            "authentication": "slack", "at": "2026-11-21T16:10:00.000Z"}]);
                    }
                    _ => {}
                }
                // Far from expiry, so only the script ends the wait.
                v["expires_at"] = json!("2999-01-01T00:00:00.000Z");
                Reply::json(200, v)
            }
            "consume" => consume(),
            "outcome" => Reply::json(200, json!({"recorded": true})),
            "cancel" => Reply::json(200, view("cancelled", d)),
            other => Reply::json(
                404,
                json!({"error": {"code": "not_found", "message": other}}),
            ),
        }
    }
}

fn consumed() -> Reply {
    Reply::json(200, json!({"consumed": true, "request": REQUEST_ID}))
}

#[tokio::test]
async fn an_allowed_command_runs_at_once_with_its_own_exit_status() {
    let broker = FakeBroker::start(|seen| {
        Reply::json(
            200,
            json!({"decision": "allow", "rules": ["reads"], "explanation": "ok", "digest": digest_of(seen)}),
        )
    })
    .await;
    let dir = workdir("allow");
    let out = run_with_only(&broker.url, &dir, marking(), &[("LANG", "C")]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(dir.join("ran").exists());
    assert_eq!(stderr(&out), "", "an allowed action says nothing");
    let call = broker.only_call();
    assert_eq!(call.header("authorization"), Some("Bearer agent-token"));
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        call.json(),
        json!({"kind": "shell.exec", "resource": "host:test",
               "details": {"argv": ["sh", "-c", "touch ran; exit 3"], "cwd": dir.to_str().unwrap(),
                           "program": in_path("sh"), "program_sha256": sha256(&in_path("sh")),
                           "env": {"PATH": path}}})
    );
}

/// Where a shell finds `name` through this process's PATH, its directory's symlinks resolved.
fn in_path(name: &str) -> String {
    let path = std::env::var_os("PATH").unwrap();
    let dir = std::env::split_paths(&path)
        .find(|dir| dir.join(name).is_file())
        .unwrap();
    format!("{}/{name}", dir.canonicalize().unwrap().display())
}

#[tokio::test]
async fn a_command_that_is_not_found_asks_nothing() {
    let broker = FakeBroker::start(|_| Reply::json(500, json!({}))).await;
    let dir = workdir("not-found");
    let out = run(
        &broker.url,
        &dir,
        &["run", "--", "countersign-no-such-program", "x"],
    )
    .await;
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "countersign: cannot run the command: command not found: no program named \
         countersign-no-such-program in PATH; nothing was asked\n"
    );
    assert!(broker.seen().is_empty());
}

#[tokio::test]
async fn a_policy_denial_does_not_run_and_says_why() {
    let broker = FakeBroker::start(|seen| {
        Reply::json(
            403,
            json!({"decision": "deny", "rules": ["no-drop"], "explanation": "Rule no-drop denies it.",
                   "digest": digest_of(seen), "error": {"code": "denied", "message": "Rule no-drop denies it."}}),
        )
    })
    .await;
    let dir = workdir("deny");
    let out = run(&broker.url, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(200));
    assert!(!dir.join("ran").exists());
    assert_eq!(
        stderr(&out),
        "countersign: denied by the policy (rule no-drop); the command did not run. Rule no-drop denies it.\n"
    );
}

#[tokio::test]
async fn an_approved_command_uses_its_grant_runs_and_records_the_outcome() {
    let broker = FakeBroker::start(gated_broker(vec!["pending", "approved"], consumed)).await;
    let dir = workdir("approve");
    let out = run(&broker.url, &dir, marking()).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(dir.join("ran").exists());
    let link = format!("{}/requests/{REQUEST_ID}", broker.url);
    assert!(
        err.contains(&format!(
            "needs approval (rule prod-db-export); request {REQUEST_ID}: {link}"
        )),
        "{err}"
    );
    assert!(
        err.contains("waiting for members of dba or sre: 1/2 approvals (dana), 1/2 groups;"),
        "{err}"
    );
    assert!(
        err.contains("approved by dana, sam; running `sh -c 'touch ran; exit 3'`"),
        "{err}"
    );

    let seen = broker.seen();
    let paths: Vec<&str> = seen
        .iter()
        .map(|s| s.target.split('?').next().unwrap())
        .collect();
    let r = REQUEST_ID;
    assert_eq!(
        paths,
        [
            "/v1/actions".to_owned(),
            format!("/v1/requests/{r}/wait"),
            format!("/v1/requests/{r}/wait"),
            "/v1/grants/consume".to_owned(),
            format!("/v1/requests/{r}/outcome"),
        ]
    );
    let digest = digest_of(&seen[0]);
    assert_eq!(
        seen[3].json(),
        json!({"token": "csg1.grant", "digest": digest})
    );
    let outcome = seen[4].json();
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["exit_code"], 3);
    assert!(
        outcome["summary"]
            .as_str()
            .unwrap()
            .starts_with("`sh -c 'touch ran; exit 3'` exited with status 3 after"),
        "{outcome}"
    );
}

#[tokio::test]
async fn a_reviewers_denial_names_them_and_their_comment() {
    let broker = FakeBroker::start(gated_broker(vec!["denied"], consumed)).await;
    let dir = workdir("denied");
    let out = run(&broker.url, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(200));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).ends_with(
            "countersign: denied by erin: not during the freeze; the command did not run\n"
        ),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn an_expired_request_is_not_a_denial() {
    let broker = FakeBroker::start(gated_broker(vec!["expired"], consumed)).await;
    let dir = workdir("expired");
    let out = run(&broker.url, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(201));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains("nobody approved in time"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_used_grant_does_not_run() {
    let broker = FakeBroker::start(gated_broker(vec!["approved"], || {
        Reply::json(
            409,
            json!({"error": {"code": "grant_used", "message": "the approval was already used; an approval runs once"}}),
        )
    }))
    .await;
    let dir = workdir("used");
    let out = run(&broker.url, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(204));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains("an approval runs once"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn an_approval_of_another_action_does_not_run() {
    let other = Digest::of(b"another action");
    let broker = FakeBroker::start(move |seen| {
        if seen.target.starts_with("/v1/actions") {
            let d = digest_of(seen);
            return Reply::json(
                202,
                json!({"decision": "require_approval", "rules": ["r"], "explanation": "e",
                       "digest": d, "request": view("pending", d)}),
            );
        }
        let mut approved = view("approved", other);
        approved["grant"] =
            json!({"token": "csg1.grant", "expires_at": "2026-11-21T16:20:00.000Z"});
        Reply::json(200, approved)
    })
    .await;
    let dir = workdir("other");
    let out = run(&broker.url, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains("is about a different action"),
        "{}",
        stderr(&out)
    );
    assert!(
        broker
            .seen()
            .iter()
            .all(|s| s.target != "/v1/grants/consume")
    );
}

#[tokio::test]
async fn an_unreachable_or_unavailable_broker_fails_closed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = workdir("unreachable");
    let out = run(&nowhere, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(203));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains("COUNTERSIGN_SERVER"),
        "{}",
        stderr(&out)
    );

    let broker = FakeBroker::start(|_| {
        Reply::json(
            503,
            json!({"error": {"code": "unavailable", "message": "the store cannot commit"}}),
        )
    })
    .await;
    let out = run(&broker.url, &dir, marking()).await;
    assert_eq!(out.status.code(), Some(203));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains("the store cannot commit"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn sigterm_while_waiting_withdraws_the_request() {
    let broker = FakeBroker::start(gated_broker(vec!["pending"], consumed)).await;
    let dir = workdir("sigterm");
    let child = countersign(&broker.url, &dir, marking())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !broker.seen().iter().any(|s| s.target.contains("/wait")) {
        assert!(
            std::time::Instant::now() < deadline,
            "countersign run never started waiting on the request"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let killed = tokio::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(202), "{}", stderr(&out));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains(&format!(
            "stopped by SIGTERM; request {REQUEST_ID} was cancelled"
        )),
        "{}",
        stderr(&out)
    );
    assert!(broker.seen().iter().any(|s| s.target.ends_with("/cancel")));
}

#[tokio::test]
async fn giving_up_after_wait_withdraws_the_request() {
    let broker = FakeBroker::start(gated_broker(vec!["pending"], consumed)).await;
    let dir = workdir("wait");
    let mut args = vec!["run", "--wait", "1s"];
    args.extend_from_slice(&marking()[1..]);
    let out = run(&broker.url, &dir, &args).await;
    assert_eq!(out.status.code(), Some(201), "{}", stderr(&out));
    assert!(!dir.join("ran").exists());
    assert!(
        stderr(&out).contains("nobody approved within --wait 1s; request"),
        "{}",
        stderr(&out)
    );
    assert!(broker.seen().iter().any(|s| s.target.ends_with("/cancel")));
}

/// A broker that allows every action, after `meanwhile` (which may change a file on disk, as an
/// agent could while the broker answers).
fn allowing(meanwhile: impl Fn() + Send + Sync + 'static) -> impl Fn(&Seen) -> Reply + Send + Sync {
    move |seen| {
        meanwhile();
        Reply::json(
            200,
            json!({"decision": "allow", "rules": ["r"], "explanation": "ok", "digest": digest_of(seen)}),
        )
    }
}

/// An executable shell script.
fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn a_program_replaced_after_it_was_asked_about_does_not_run() {
    let dir = workdir("swapped");
    let tool = dir.join("tool");
    script(&tool, "touch ran");
    let swap = {
        let (dir, tool) = (dir.clone(), tool.clone());
        move || {
            let planted = dir.join("planted");
            script(&planted, "touch planted-ran");
            std::fs::rename(&planted, &tool).unwrap();
        }
    };
    let broker = FakeBroker::start(allowing(swap)).await;
    let out = run(&broker.url, &dir, &["run", "--", "./tool"]).await;
    assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
    assert!(!dir.join("ran").exists() && !dir.join("planted-ran").exists());
    let tool = tool.canonicalize().unwrap();
    assert!(
        stderr(&out).starts_with(&format!(
            "countersign: the command did not run: the program {} changed after it was asked \
             about (SHA-256 ",
            tool.display()
        )),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_script_edited_while_its_request_waits_does_not_use_the_approval() {
    let dir = workdir("script-edited");
    std::fs::write(dir.join("deploy.sh"), "touch ran\n").unwrap();
    let edit_on_approval = {
        let dir = dir.clone();
        let gated = gated_broker(vec!["pending", "approved"], consumed);
        move |seen: &Seen| {
            let reply = gated(seen);
            if seen.target.contains("/wait") {
                std::fs::write(dir.join("deploy.sh"), "touch edited-ran\n").unwrap();
            }
            reply
        }
    };
    let broker = FakeBroker::start(edit_on_approval).await;
    let out = run(&broker.url, &dir, &["run", "--", "sh", "deploy.sh"]).await;
    assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
    assert!(!dir.join("ran").exists() && !dir.join("edited-ran").exists());
    assert!(
        stderr(&out).contains(&format!(
            "countersign: the command did not run: the script {}/deploy.sh changed after it was \
             asked about",
            dir.display()
        )),
        "{}",
        stderr(&out)
    );
    let seen = broker.seen();
    let action = seen[0].json();
    assert_eq!(
        action["details"]["script"]["sha256"],
        Digest::of(b"touch ran\n").hex()
    );
    assert!(
        seen.iter().all(|s| s.target != "/v1/grants/consume"),
        "the approval is not used up on a script that will not run"
    );
}

#[tokio::test]
async fn the_command_runs_with_the_environment_the_action_names() {
    let broker = FakeBroker::start(allowing(|| {})).await;
    let dir = workdir("environment");
    let out = run_with_only(
        &broker.url,
        &dir,
        &[
            "run",
            "--env-vars",
            "MYAPP_*",
            "--",
            "sh",
            "-c",
            "env > seen.txt",
        ],
        &[("MYAPP_MODE", "fast"), ("PGHOST", "prod-db"), ("LANG", "C")],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let action = broker.only_call().json();
    assert_eq!(
        action["details"]["env"],
        json!({"PATH": std::env::var("PATH").unwrap(), "MYAPP_MODE": "fast", "PGHOST": "prod-db"})
    );
    let seen = std::fs::read_to_string(dir.join("seen.txt")).unwrap();
    for line in ["MYAPP_MODE=fast", "PGHOST=prod-db", "LANG=C"] {
        assert!(seen.lines().any(|l| l == line), "{line} not in {seen}");
    }
}

#[tokio::test]
async fn a_program_replaced_while_the_grant_is_used_does_not_run_and_says_so_in_the_outcome() {
    let dir = workdir("swapped-at-consume");
    let tool = dir.join("tool");
    script(&tool, "touch ran");
    let swap_on_consume = {
        let (dir, tool) = (dir.clone(), tool.clone());
        gated_broker(vec!["approved"], move || {
            let planted = dir.join("planted");
            script(&planted, "touch planted-ran");
            std::fs::rename(&planted, &tool).unwrap();
            consumed()
        })
    };
    let broker = FakeBroker::start(swap_on_consume).await;
    let out = run(&broker.url, &dir, &["run", "--", "./tool"]).await;
    assert_eq!(out.status.code(), Some(204), "{}", stderr(&out));
    assert!(!dir.join("ran").exists() && !dir.join("planted-ran").exists());
    let said = stderr(&out);
    assert!(!said.contains("running `./tool`"), "{said}");
    assert!(
        said.contains("countersign: the command did not run: the program "),
        "{said}"
    );
    let outcome = broker
        .seen()
        .into_iter()
        .find(|s| s.target.ends_with("/outcome"))
        .expect("the outcome is recorded on the request whose grant was used")
        .json();
    assert_eq!(outcome["status"], "failed");
    assert_eq!(outcome["exit_code"], Value::Null);
    let summary = outcome["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("`./tool` did not run: the program ")
            && summary.contains("changed after it was asked about"),
        "{summary}"
    );
}
