#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Tests may fail loudly.
//! The web inbox in a real headless Chromium: reviewers sign in through a real OpenID Connect
//! provider on loopback, watch an agent's waiting `countersign run` appear without reloading,
//! approve it and see the command's outcome; a forged form and a self-approval are refused.
//! Screenshots go to target/screenshots/.

mod support;
mod web_peers;

use std::process::{Child, Command, Stdio};

use countersign_test_support::principals::{Principal, principals_toml};
use countersign_test_support::scratch::Scratch;
use support::{BIN, token};
use web_peers::{Browser, Peer, free_port, poll, require_peers, start_provider, wait_for_port};

const POLICY: &str = r#"
version = 1
default = "deny"

[[rules]]
id = "scripted-change"
decision = "require_approval"
reason = "Scripts that change production need a DBA's eye"
match.kind = "shell.exec"
match.command = "sh -c *"
approvers = { groups = ["dba"], count = 1 }
"#;

/// dana is known to the provider by her subject, alice by her verified email.
const PRINCIPALS: [Principal<'static>; 3] = [
    ("deploy-bot", "agent", "acts_for = [\"alice\"]"),
    (
        "alice",
        "human",
        "groups = [\"dba\"]\nemail = \"alice@example.test\"",
    ),
    (
        "dana",
        "human",
        "groups = [\"dba\"]\noidc_subject = \"dana\"",
    ),
];

const SECRET_ENV: &str = "COUNTERSIGN_TEST_OIDC_SECRET";

struct Setup {
    dir: Scratch,
    url: String,
    _broker: Peer,
    _provider: Peer,
}

fn start() -> Setup {
    require_peers();
    let (port, idp_port) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{port}");
    let provider = start_provider(idp_port, &format!("{url}/auth/callback"));
    let dir = Scratch::named("web-e2e");
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let mut config =
        format!("listen = \"127.0.0.1:{port}\"\ndata_dir = \"data\"\npolicy = \"policy.toml\"\n");
    config.push_str(&principals_toml(&PRINCIPALS));
    config.push_str(&format!(
        "\n[web.oidc]\nissuer = \"http://127.0.0.1:{idp_port}\"\nclient_id = \"countersign\"\n\
         client_secret_env = \"{SECRET_ENV}\"\nscopes = [\"email\", \"groups\"]\n\
         groups_claim = \"groups\"\nallowed_groups = [\"countersign-reviewers\"]\n"
    ));
    std::fs::write(dir.join("countersign.toml"), config).unwrap();
    let broker = Peer(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(dir.join("countersign.toml"))
            .env(SECRET_ENV, "countersign-test-secret")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, "the broker");
    Setup {
        dir,
        url,
        _broker: broker,
        _provider: provider,
    }
}

impl Setup {
    fn cli(&self, who: &str) -> Command {
        let mut command = Command::new(BIN);
        command
            .env("COUNTERSIGN_SERVER", &self.url)
            .env("COUNTERSIGN_TOKEN", token(who));
        command
    }

    /// The agent runs a script that appends to a marker file, and waits for approval.
    fn agent_runs(&self, justification: &str) -> Child {
        let script = format!("echo ran >> {}", self.dir.join("ran.txt").display());
        self.cli("deploy-bot")
            .args([
                "run",
                "--resource",
                "db:prod/customers",
                "--label",
                "env=production",
            ])
            .args(["--justification", justification, "--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn show(&self, id: &str) -> serde_json::Value {
        let out = self
            .cli("dana")
            .args(["show", id, "--json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn ran(&self) -> usize {
        std::fs::read_to_string(self.dir.join("ran.txt"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }
}

/// Signs in through the provider's login page as `account`, starting from the inbox.
fn sign_in(browser: &Browser, setup: &Setup, account: &str) {
    browser.go(&format!("{}/inbox", setup.url));
    browser.click("#oidc-sign-in");
    browser.type_into("#login", account);
    browser.type_into("#password", "any");
    browser.click("#submit");
    browser.wait_for_text(&format!("Signed in as {account}"));
    assert_eq!(browser.url(), format!("{}/inbox", setup.url));
}

/// Waits for the first pending request to appear in the inbox, without reloading; returns its id.
fn pending_request_appears(browser: &Browser) -> String {
    poll(20, "a pending request to appear in the inbox", || {
        browser
            .js("const li = document.querySelector('#lists ul.requests:not(.decided) li.request'); return li ? li.dataset.request : null;")
            .as_str()
            .map(str::to_owned)
    })
}

#[test]
fn a_reviewer_signs_in_through_the_identity_provider_and_approves_a_waiting_command_live() {
    let setup = start();
    let browser = Browser::start("inbox");

    sign_in(&browser, &setup, "dana");
    browser.wait_for_text("Nothing is waiting for a review.");
    browser.js("window.__notReloaded = true; return null;");
    browser.screenshot("01-inbox-empty");

    // The agent's command waits; the request shows up in the open inbox by itself.
    let mut agent = setup.agent_runs("rotate the sessions table <b>now</b>");
    let id = pending_request_appears(&browser);
    assert_eq!(
        browser.js("return window.__notReloaded === true"),
        true,
        "the page reloaded"
    );
    let text = browser.wait_for_text("0 of 1 approval");
    assert!(
        text.contains("deploy-bot (agent), acting for alice"),
        "{text}"
    );
    browser.screenshot("02-inbox-request-arrived-live");
    browser.resize(390, 844);
    browser.screenshot("03-inbox-on-a-phone");
    browser.resize(1280, 1000);

    // A forged form without the session's token is refused, and nothing is recorded.
    browser.click(&format!("li[data-request='{id}'] a.title"));
    browser.wait_for_text("What will run");
    browser.js(&format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/requests/{id}/review';\
         const v = document.createElement('input'); v.name = 'verdict'; v.value = 'approve'; f.appendChild(v);\
         document.body.appendChild(f); f.submit(); return null;"
    ));
    let text = browser.wait_for_text("Nothing was done");
    assert!(text.contains("security token is missing"), "{text}");
    browser.screenshot("04-forged-post-refused");
    let shown = setup.show(&id);
    assert_eq!(shown["request"]["state"], "pending");
    assert_eq!(shown["request"]["reviews"], serde_json::json!([]));
    assert_eq!(setup.ran(), 0);

    // The real form: the exact command, the agent's words marked as such; approve with a comment.
    browser.go(&format!("{}/requests/{id}", setup.url));
    let text = browser.wait_for_text("What will run");
    assert!(text.contains("sh -c 'echo ran >> "), "{text}");
    assert!(
        text.contains("rotate the sessions table <b>now</b>"),
        "the agent's words are shown as text: {text}"
    );
    assert!(
        text.contains("Rule scripted-change requires 1 approval"),
        "{text}"
    );
    browser.js("window.__notReloaded = true; return null;");
    browser.screenshot("05-request-page");
    browser.type_into("#comment", "checked the change ticket");
    browser.click("button.approve");
    browser.wait_for_text("Your approval is recorded.");

    // The command runs once; its outcome appears on the open page without a reload.
    let status = poll(30, "the agent's command to finish", || {
        agent.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(0));
    assert_eq!(setup.ran(), 1, "the approved command runs exactly once");
    browser.js("window.__notReloaded = true; return null;");
    let text = browser.wait_for_text("The action ran with exit status 0");
    assert_eq!(browser.js("return window.__notReloaded === true"), true);
    assert!(text.contains("checked the change ticket"), "{text}");
    assert!(
        text.contains("single sign-on"),
        "the review records how dana signed in: {text}"
    );
    browser.screenshot("06-approved-and-ran");

    // Sign out; the inbox asks to sign in again.
    browser.click(".sign-out button");
    browser.wait_for_text("Signed out.");
    browser.go(&format!("{}/inbox", setup.url));
    browser.wait_for_text("Sign in to review");

    // alice, the human the agent acts for, signs in (by her verified email) and is refused.
    browser.delete_cookies();
    sign_in(&browser, &setup, "alice");
    let mut second = setup.agent_runs("again");
    let id = pending_request_appears(&browser);
    browser.click(&format!("li[data-request='{id}'] a.title"));
    let text = browser.wait_for_text("You are in this request's delegation chain");
    assert!(
        text.contains("(deploy-bot acts for you), so you cannot approve or deny it"),
        "{text}"
    );
    assert_eq!(
        browser.js("return document.querySelector('button.approve, button.deny') === null"),
        true,
        "alice is shown why, not buttons that can only be refused"
    );
    browser.screenshot("07-own-request-no-buttons");
    // A review posted all the same (with her session's token) is refused, in words.
    browser.js(&format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/requests/{id}/review';\
         const c = document.createElement('input'); c.name = 'csrf'; c.value = document.querySelector('input[name=csrf]').value; f.appendChild(c);\
         const v = document.createElement('input'); v.name = 'verdict'; v.value = 'approve'; f.appendChild(v);\
         document.body.appendChild(f); f.submit(); return null;"
    ));
    let text = browser.wait_for_text("Countersign refused your review:");
    assert!(
        text.contains("alice cannot review this request: alice is the person the requester acts for, and nobody approves their own request"),
        "{text}"
    );
    browser.screenshot("08-self-approval-refused");
    assert_eq!(setup.show(&id)["request"]["state"], "pending");
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(setup.ran(), 1);

    // The history, audit log and dashboard of what happened.
    browser.go(&format!("{}/audit", setup.url));
    browser.wait_for_text("The audit log is intact.");
    browser.screenshot("09-audit-log");
    browser.go(&format!("{}/dashboard", setup.url));
    browser.wait_for_text("Requests by outcome");
    browser.screenshot("10-dashboard");
}
