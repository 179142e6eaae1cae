//! Measures `Policy::decide` (time per decision) and `Policy::parse` (policy load time) against
//! generated, realistic policies of 10, 100 and 1,000 rules; run it with
//! `cargo bench -p countersign-policy --bench decide`.
//!
//! Two parts, in one binary:
//! - criterion groups `decide/{10,100,1000}` (one decision per iteration, cycling through ~50
//!   realistic actions) and `load/{10,100,1000}` (`Policy::parse` of the whole text);
//! - a percentile table printed to stdout, because criterion reports means and medians of
//!   batches, never a per-decision p99: every decision is timed on its own with `Instant`
//!   (200,000 per size after warm-up), and the load time is the median of 20 loads.
//!
//! Targets (from the issue): at 1,000 rules, median ≤ 5 µs and p99 ≤ 20 µs per decision, and
//! load ≤ 50 ms.
//!
//! The policies are generated deterministically (no randomness): a fixed baseline of org-wide
//! rules, then rules cycling through twelve families (per-database export, SQL privilege, SQL
//! export, unbounded SQL write, SQL drop, MCP write, MCP read, HTTP write, HTTP staging, kubectl,
//! terraform, LLM data class), each instance naming a different database, MCP server, service,
//! cluster/namespace, workspace or model. The policy of N rules is the first N rules of the same
//! sequence, so every size has the same shapes, and 20-30% of the rules carry a CEL
//! `if` condition.

// A benchmark should stop loudly when its setup is wrong, and it prints its own report.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use countersign_model::{Action, Chain, PrincipalKind};
use countersign_policy::{Outcome, Policy};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use serde_json::json;

const SIZES: [usize; 3] = [10, 100, 1000];

// ─── Names an organisation's policy refers to ───────────────────────────────────────────────────

const DOMAINS: [&str; 20] = [
    "customers",
    "orders",
    "payments",
    "billing",
    "invoices",
    "ledger",
    "inventory",
    "shipping",
    "catalog",
    "pricing",
    "accounts",
    "identity",
    "sessions",
    "analytics",
    "events",
    "audit",
    "support",
    "marketing",
    "hr",
    "payroll",
];
const DB_SUFFIXES: [&str; 5] = ["", "_archive", "_eu", "_us", "_reporting"];

const MCP_SERVERS: [&str; 20] = [
    "github",
    "gitlab",
    "jira",
    "confluence",
    "slack",
    "linear",
    "notion",
    "sentry",
    "datadog",
    "pagerduty",
    "stripe",
    "salesforce",
    "zendesk",
    "hubspot",
    "figma",
    "gdrive",
    "snowflake",
    "bigquery",
    "postgres",
    "filesystem",
];
const SERVER_SUFFIXES: [&str; 5] = ["", "-internal", "-eu", "-staging", "-admin"];

const SERVICES: [&str; 20] = [
    "payments-api",
    "orders-api",
    "users-api",
    "search",
    "billing",
    "ledger",
    "notifications",
    "auth",
    "catalog",
    "inventory",
    "shipping",
    "pricing",
    "reports",
    "webhooks",
    "gateway",
    "admin",
    "fraud",
    "kyc",
    "risk",
    "email",
];
const SERVICE_SUFFIXES: [&str; 5] = ["", "-v2", "-eu", "-us", "-batch"];

const CLUSTERS: [&str; 5] = ["prod-eu", "prod-us", "prod-ap", "prod-eu2", "prod-us2"];

const WORKSPACES: [&str; 10] = [
    "network",
    "iam",
    "dns",
    "databases",
    "k8s",
    "cdn",
    "storage",
    "monitoring",
    "vpn",
    "queues",
];
const WORKSPACE_SUFFIXES: [&str; 5] = ["-prod", "-prod-eu", "-prod-us", "-shared", "-dr"];

const MODELS: [&str; 10] = [
    "openai/gpt-5",
    "openai/gpt-4o",
    "anthropic/claude-opus",
    "anthropic/claude-sonnet",
    "google/gemini-pro",
    "mistral/large",
    "azure/gpt-4o",
    "bedrock/claude",
    "local/llama",
    "cohere/command",
];

const TEAMS: [&str; 10] = [
    "etl",
    "deploy",
    "support",
    "coding",
    "analytics",
    "ops",
    "data",
    "sec",
    "billing",
    "growth",
];

/// A name from `base × suffix`, unique for every `j` (a number is added past the table's size).
fn name(base: &[&str], suffixes: &[&str], j: usize) -> String {
    let mut s = format!(
        "{}{}",
        base[j % base.len()],
        suffixes[(j / base.len()) % suffixes.len()]
    );
    let round = j / (base.len() * suffixes.len());
    if round > 0 {
        let _ = write!(s, "{round}");
    }
    s
}

fn db(j: usize) -> String {
    name(&DOMAINS, &DB_SUFFIXES, j)
}
fn server(j: usize) -> String {
    name(&MCP_SERVERS, &SERVER_SUFFIXES, j)
}
fn service(j: usize) -> String {
    name(&SERVICES, &SERVICE_SUFFIXES, j)
}
fn workspace(j: usize) -> String {
    name(&WORKSPACES, &WORKSPACE_SUFFIXES, j)
}
fn cluster(j: usize) -> &'static str {
    CLUSTERS[j % CLUSTERS.len()]
}
fn namespace(j: usize) -> String {
    service(j / CLUSTERS.len())
}
fn model(j: usize) -> &'static str {
    MODELS[j % MODELS.len()]
}
fn team(j: usize) -> &'static str {
    TEAMS[j % TEAMS.len()]
}

// ─── The policy generator ───────────────────────────────────────────────────────────────────────

/// Org-wide rules every policy starts with (the example policy's broad rules).
const BASELINE: &str = r#"
[[rules]]
id = "read-only-shell"
decision = "allow"
reason = "Reading files, logs and state changes nothing"
match.kind = "shell.exec"
match.command = [
  "ls", "ls *", "cat *", "head *", "tail *", "grep *", "wc *", "echo *", "pwd", "whoami", "date",
  "git status*", "git diff*", "git log*", "git show*",
  "kubectl get *", "kubectl describe *", "kubectl logs *",
  "terraform plan*", "terraform show*", "terraform validate*",
]

[[rules]]
id = "read-only-sql"
decision = "allow"
reason = "Queries that only read change nothing"
match.kind = "sql.statement"
match.sql = ["select *", "explain *", "show *"]

[[rules]]
id = "read-only-mcp"
decision = "allow"
reason = "Tools that get, list, search or read change nothing"
match.kind = "mcp.tool_call"
match.resource = ["mcp:*/get_*", "mcp:*/list_*", "mcp:*/search_*", "mcp:*/read_*"]

[[rules]]
id = "read-only-http"
decision = "allow"
reason = "GET, HEAD and OPTIONS requests only read"
match.kind = "http.request"
if = 'action.details.method in ["GET", "HEAD", "OPTIONS"]'

[[rules]]
id = "sudo"
decision = "require_approval"
reason = "Running a command as root bypasses every other control on the host"
match.kind = "shell.exec"
match.command = ["sudo *", "su *", "su"]
approvers = { groups = ["sre"], count = 1 }
timeout = "15m"

[[rules]]
id = "cloud-iam-change"
decision = "require_approval"
reason = "IAM changes decide who can do anything else; a member of security must review them"
match.kind = "shell.exec"
match.command = ["aws iam *", "gcloud iam *", "gcloud projects add-iam-policy-binding *", "az role assignment *"]
approvers = { groups = ["security"], count = 1 }

[[rules]]
id = "kube-system-delete"
decision = "deny"
reason = "Nobody deletes the kube-system namespace through automation"
match.kind = "shell.exec"
match.command = ["kubectl delete namespace kube-system*", "kubectl delete ns kube-system*"]

[[rules]]
id = "llm-public-data"
decision = "allow"
reason = "Public and internal data may be sent to approved models"
match.kind = "llm.call"
match.labels = { data_class = ["public", "internal"] }
"#;

const BASELINE_RULES: usize = 8;
const FAMILIES: usize = 12;

/// Rule number `i` of the endless sequence after the baseline: family `i % 12`, instance `i / 12`.
fn family_rule(i: usize, out: &mut String) {
    let j = i / FAMILIES;
    let t = team(j);
    let rule = match i % FAMILIES {
        0 => {
            let d = db(j);
            let cond = if j.is_multiple_of(4) {
                "\nif = '!principal.id.startsWith(\"backup-\")'"
            } else {
                ""
            };
            format!(
                r#"id = "db-export-{d}"
decision = "require_approval"
reason = "Dumps of the production {d} database leave its access controls; a DBA and the owning team must agree"
match.kind = "shell.exec"
match.resource = "db:prod/{d}"
match.command = ["pg_dump *", "pg_dumpall*", "mysqldump *", "mongodump*"]{cond}
approvers = {{ groups = ["dba", "owners-{t}"], count = 2, distinct_groups = 2 }}
timeout = "30m""#
            )
        }
        1 => {
            let d = db(j);
            format!(
                r#"id = "sql-privilege-{d}"
decision = "require_approval"
reason = "Privilege changes on {d} widen who can reach the data; security signs off with a DBA"
match.kind = "sql.statement"
match.resource = "db:prod/{d}"
match.sql = ["grant *", "revoke *", "alter role *", "alter user *", "create role *", "create user *"]
approvers = {{ groups = ["security", "dba"], count = 2, distinct_groups = 2 }}"#
            )
        }
        2 => {
            let d = db(j);
            let cond = if j.is_multiple_of(2) {
                "\nif = 'principal.kind == \"agent\"'"
            } else {
                ""
            };
            format!(
                r#"id = "sql-export-{d}"
decision = "require_approval"
reason = "COPY TO and SELECT INTO OUTFILE write {d} out of the database"
match.kind = "sql.statement"
match.resource = ["db:prod/{d}", "db:replica/{d}"]
match.sql = ["copy * to *", "select * into outfile *"]{cond}
approvers = {{ groups = ["dba"], count = 1 }}"#
            )
        }
        3 => {
            let d = db(j);
            let (sql, cond) = if j.is_multiple_of(2) {
                (
                    r#"["delete from *", "update * set *"]"#,
                    "\nif = '!action.details.sql.contains(\" where \") && !action.details.sql.contains(\" WHERE \")'",
                )
            } else {
                (r#"["delete from *", "truncate *"]"#, "")
            };
            format!(
                r#"id = "sql-write-{d}"
decision = "require_approval"
reason = "Bulk writes to production {d} rewrite whole tables"
match.kind = "sql.statement"
match.resource = "db:prod/{d}"
match.labels = {{ env = "production" }}
match.sql = {sql}{cond}
approvers = {{ groups = ["dba"], count = 1 }}"#
            )
        }
        4 => {
            let d = db(j);
            format!(
                r#"id = "sql-drop-{d}"
decision = "deny"
reason = "Dropping tables or the database of production {d} is never done by an agent"
match.kind = "sql.statement"
match.resource = "db:prod/{d}"
match.sql = ["drop table *", "drop database *", "drop schema *"]"#
            )
        }
        5 => {
            let s = server(j);
            let cond = if j.is_multiple_of(2) {
                format!("\nif = '!principal.id.startsWith(\"{t}-\")'")
            } else {
                String::new()
            };
            format!(
                r#"id = "mcp-write-{s}"
decision = "require_approval"
reason = "Creating, changing, merging or deleting through {s} changes shared state"
match.kind = "mcp.tool_call"
match.resource = ["mcp:{s}/create_*", "mcp:{s}/update_*", "mcp:{s}/delete_*", "mcp:{s}/merge_*", "mcp:{s}/push_*"]{cond}
approvers = {{ groups = ["eng-{t}"], count = 1 }}"#
            )
        }
        6 => {
            let s = server(j);
            format!(
                r#"id = "mcp-read-{s}"
decision = "allow"
reason = "Reading and searching {s} changes nothing"
match.kind = "mcp.tool_call"
match.resource = ["mcp:{s}/get_*", "mcp:{s}/list_*", "mcp:{s}/search_*", "mcp:{s}/fetch_*"]"#
            )
        }
        7 => {
            let s = service(j);
            format!(
                r#"id = "http-write-{s}"
decision = "require_approval"
reason = "Writes to the production {s} API change customer-facing state"
match.kind = "http.request"
match.resource = "http:{s}.internal/*"
match.labels = {{ env = "production" }}
if = '!(action.details.method in ["GET", "HEAD", "OPTIONS"])'
approvers = {{ groups = ["sre", "owners-{t}"], count = 1 }}"#
            )
        }
        8 => {
            let s = service(j);
            format!(
                r#"id = "http-staging-{s}"
decision = "allow"
reason = "Staging and development {s} may be called freely"
match.kind = "http.request"
match.resource = "http:{s}.internal/*"
match.labels = {{ env = ["staging", "development"] }}"#
            )
        }
        9 => {
            let (c, n) = (cluster(j), namespace(j));
            let cond = if j % 2 == 1 {
                "\nif = 'size(action.details.argv) > 2'"
            } else {
                ""
            };
            format!(
                r#"id = "kubectl-{c}-{n}"
decision = "require_approval"
reason = "Changing {n} in {c} changes what customers run"
match.kind = "shell.exec"
match.resource = "k8s:{c}/{n}"
match.labels = {{ env = "production" }}
match.command = ["kubectl delete *", "kubectl apply *", "kubectl patch *", "kubectl edit *", "kubectl scale *", "kubectl rollout *"]{cond}
approvers = {{ groups = ["sre"], count = 1 }}"#
            )
        }
        10 => {
            let w = workspace(j);
            format!(
                r#"id = "terraform-{w}"
decision = "require_approval"
reason = "terraform apply and destroy on {w} change production infrastructure; two must agree on the plan"
match.kind = "shell.exec"
match.resource = "terraform:{w}"
match.labels = {{ env = "production" }}
match.command = ["terraform apply*", "terraform destroy*"]
approvers = {{ groups = ["sre", "platform"], count = 2 }}"#
            )
        }
        _ => {
            // One rule per (model, application): the application is a label the SDK sets.
            let (m, app) = (model(j), service(j / 2));
            if j.is_multiple_of(2) {
                let cond = if j.is_multiple_of(4) {
                    "\nif = '!principal.id.startsWith(\"support-\") || size(principal.on_behalf_of) == 0'"
                } else {
                    ""
                };
                format!(
                    r#"id = "llm-regulated-{app}-{j}"
decision = "require_approval"
reason = "Personal, health and card data from {app} may reach {m} only with the privacy team's consent"
match.kind = "llm.call"
match.resource = "llm:{m}"
match.labels = {{ data_class = ["pii", "phi", "pci"], app = "{app}" }}{cond}
approvers = {{ groups = ["privacy"], count = 1 }}
timeout = "15m""#
                )
            } else {
                format!(
                    r#"id = "llm-secret-{app}-{j}"
decision = "deny"
reason = "Credentials and keys from {app} never go to {m}"
match.kind = "llm.call"
match.resource = "llm:{m}"
match.labels = {{ data_class = ["secret", "credential"], app = "{app}" }}"#
                )
            }
        }
    };
    out.push_str("\n[[rules]]\n");
    out.push_str(&rule);
    out.push('\n');
}

/// A policy file of exactly `n` rules (at least the baseline's eight).
fn policy_text(n: usize) -> String {
    assert!(n >= BASELINE_RULES);
    let mut text = String::from(
        "# Generated for the decide benchmark.\nversion = 1\ndefault = \"deny\"\ndefault_timeout = \"1h\"\n",
    );
    text.push_str(BASELINE);
    for i in 0..n - BASELINE_RULES {
        family_rule(i, &mut text);
    }
    text
}

// ─── The actions ────────────────────────────────────────────────────────────────────────────────

struct Who {
    id: &'static str,
    kind: PrincipalKind,
    on_behalf_of: &'static [&'static str],
    started_by: Option<&'static str>,
}

const DEPLOY_BOT: Who = Who {
    id: "deploy-bot",
    kind: PrincipalKind::Agent,
    on_behalf_of: &["alice"],
    started_by: Some("ci-42"),
};
const ETL: Who = Who {
    id: "etl-nightly",
    kind: PrincipalKind::Agent,
    on_behalf_of: &[],
    started_by: Some("airflow"),
};
const CODING: Who = Who {
    id: "coding-agent",
    kind: PrincipalKind::Agent,
    on_behalf_of: &["carol"],
    started_by: None,
};
const SUPPORT: Who = Who {
    id: "support-agent",
    kind: PrincipalKind::Agent,
    on_behalf_of: &["bob"],
    started_by: None,
};
const ALICE: Who = Who {
    id: "alice",
    kind: PrincipalKind::Human,
    on_behalf_of: &[],
    started_by: None,
};

fn action(
    kind: &str,
    resource: String,
    labels: &[(&str, &str)],
    details: serde_json::Value,
    who: &Who,
) -> Action {
    Action {
        kind: kind.to_owned(),
        resource,
        claims: Default::default(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        details,
        principal: Chain {
            via: None,
            id: who.id.to_owned(),
            kind: who.kind,
            on_behalf_of: who.on_behalf_of.iter().map(|s| (*s).to_owned()).collect(),
            started_by: who.started_by.map(str::to_owned),
        },
        justification: None,
    }
}

const PROD: &[(&str, &str)] = &[("env", "production")];
const STAGING: &[(&str, &str)] = &[("env", "staging")];

/// About fifty actions of every kind, aimed at instances spread over the whole name space, so the
/// larger policies have specific rules for more of them (as a larger organisation's would).
fn actions() -> Vec<Action> {
    let mut a = Vec::new();
    let shell = |argv: &[&str]| json!({ "argv": argv });
    let sql = |text: &str| json!({ "sql": text });
    let http = |method: &str, path: &str| json!({ "method": method, "path": path, "body_digest": "sha256:9a0e" });
    let mcp = |args: serde_json::Value| json!({ "arguments": args });

    // Shell: dumps, cluster and infrastructure changes, reads, sudo, IAM, unknown commands.
    for (j, who) in [(0, &ETL), (13, &DEPLOY_BOT), (37, &ETL), (64, &ALICE)] {
        let d = db(j);
        a.push(action(
            "shell.exec",
            format!("db:prod/{d}"),
            PROD,
            shell(&["pg_dump", "-Fc", &d]),
            who,
        ));
    }
    a.push(action(
        "shell.exec",
        format!("db:prod/{}", db(25)),
        &[],
        shell(&[
            "/usr/lib/postgresql/15/bin/pg_dump",
            "-t",
            "customers",
            "prod",
        ]),
        &DEPLOY_BOT,
    ));
    for (j, verb) in [(0, "delete"), (9, "apply"), (41, "rollout"), (77, "scale")] {
        a.push(action(
            "shell.exec",
            format!("k8s:{}/{}", cluster(j), namespace(j)),
            PROD,
            shell(&[
                "kubectl",
                verb,
                "deployment",
                &namespace(j),
                "-n",
                &namespace(j),
            ]),
            &DEPLOY_BOT,
        ));
    }
    a.push(action(
        "shell.exec",
        "k8s:prod-eu/kube-system".into(),
        PROD,
        shell(&["kubectl", "delete", "namespace", "kube-system"]),
        &DEPLOY_BOT,
    ));
    a.push(action(
        "shell.exec",
        format!("k8s:{}/{}", cluster(3), namespace(3)),
        PROD,
        shell(&["kubectl", "get", "pods", "-o", "wide"]),
        &DEPLOY_BOT,
    ));
    for (j, env) in [(0, PROD), (21, PROD), (55, STAGING)] {
        a.push(action(
            "shell.exec",
            format!("terraform:{}", workspace(j)),
            env,
            shell(&[
                "terraform",
                "apply",
                "-auto-approve",
                "-var-file=prod.tfvars",
            ]),
            &DEPLOY_BOT,
        ));
    }
    a.push(action(
        "shell.exec",
        "terraform:network-prod".into(),
        PROD,
        shell(&["terraform", "plan"]),
        &DEPLOY_BOT,
    ));
    a.push(action(
        "shell.exec",
        "host:web-1".into(),
        &[],
        shell(&["tail", "-n", "100", "/var/log/nginx/error.log"]),
        &SUPPORT,
    ));
    a.push(action(
        "shell.exec",
        "repo:api".into(),
        &[],
        shell(&["git", "status", "--short"]),
        &CODING,
    ));
    a.push(action(
        "shell.exec",
        "host:web-1".into(),
        &[],
        shell(&["sudo", "systemctl", "restart", "nginx"]),
        &ALICE,
    ));
    a.push(action(
        "shell.exec",
        "aws:iam".into(),
        &[],
        shell(&[
            "aws",
            "iam",
            "attach-role-policy",
            "--role-name",
            "ci",
            "--policy-arn",
            "arn:aws:iam::aws:policy/AdministratorAccess",
        ]),
        &DEPLOY_BOT,
    ));
    a.push(action(
        "shell.exec",
        "repo:api".into(),
        &[],
        shell(&["cargo", "build", "--release"]),
        &CODING,
    ));
    a.push(action(
        "shell.exec",
        "repo:api".into(),
        &[],
        shell(&[
            "python3",
            "scripts/migrate.py",
            "--dry-run",
            "--target",
            "db:prod/orders",
        ]),
        &CODING,
    ));

    // SQL: reads, privileges, exports, bulk and bounded writes, drops, inserts.
    for (j, text, who) in [
        (
            0,
            "SELECT count(*) FROM customers WHERE created_at > now() - interval '1 day'",
            &ETL,
        ),
        (44, "select id, email from users limit 10", &SUPPORT),
        (1, "GRANT ALL ON customers TO analytics", &ETL),
        (61, "ALTER ROLE reporting WITH SUPERUSER", &ALICE),
        (
            2,
            "COPY customers TO '/tmp/customers.csv' WITH CSV HEADER",
            &ETL,
        ),
        (26, "COPY orders TO STDOUT", &ALICE),
        (3, "DELETE FROM sessions", &ETL),
        (15, "DELETE FROM sessions WHERE expires_at < now()", &ETL),
        (39, "UPDATE invoices SET status = 'void'", &DEPLOY_BOT),
        (4, "DROP   TABLE payments;", &DEPLOY_BOT),
        (88, "drop database ledger", &DEPLOY_BOT),
        (
            70,
            "INSERT INTO audit_log (event) VALUES ('deploy')",
            &DEPLOY_BOT,
        ),
    ] {
        a.push(action(
            "sql.statement",
            format!("db:prod/{}", db(j)),
            PROD,
            sql(text),
            who,
        ));
    }

    // MCP tools: reads, writes, merges, tools no rule names.
    for (j, tool, args, who) in [
        (
            0,
            "get_file_contents",
            json!({ "owner": "acme", "repo": "api", "path": "README.md" }),
            &CODING,
        ),
        (
            5,
            "create_pull_request",
            json!({ "owner": "acme", "repo": "api", "title": "Fix", "head": "fix", "base": "main" }),
            &CODING,
        ),
        (
            17,
            "merge_pull_request",
            json!({ "owner": "acme", "repo": "api", "pull_number": 42 }),
            &CODING,
        ),
        (
            42,
            "list_issues",
            json!({ "project": "OPS", "state": "open" }),
            &SUPPORT,
        ),
        (66, "delete_page", json!({ "page_id": "12345" }), &SUPPORT),
        (
            4,
            "post_message",
            json!({ "channel": "#deploys", "text": "deployed" }),
            &DEPLOY_BOT,
        ),
        (
            19,
            "read_file",
            json!({ "path": "/srv/app/config.yaml" }),
            &CODING,
        ),
        (
            83,
            "update_ticket",
            json!({ "id": 991, "status": "solved", "comment": "refund issued" }),
            &SUPPORT,
        ),
    ] {
        a.push(action(
            "mcp.tool_call",
            format!("mcp:{}/{tool}", server(j)),
            &[],
            mcp(args),
            who,
        ));
    }

    // HTTP: reads and writes, production and staging.
    for (j, method, path, env, who) in [
        (0, "POST", "/v1/refunds", PROD, &SUPPORT),
        (7, "GET", "/v1/orders/123", PROD, &SUPPORT),
        (31, "DELETE", "/v1/users/991", PROD, &SUPPORT),
        (52, "PUT", "/v1/prices/sku-1", STAGING, &DEPLOY_BOT),
        (8, "POST", "/v1/webhooks/replay", STAGING, &DEPLOY_BOT),
        (95, "PATCH", "/v1/accounts/7", PROD, &SUPPORT),
        (12, "HEAD", "/health", PROD, &DEPLOY_BOT),
    ] {
        a.push(action(
            "http.request",
            format!("http:{}.internal{path}", service(j)),
            env,
            http(method, path),
            who,
        ));
    }

    // LLM calls by data class.
    for (j, class, who) in [
        (0, "pii", &SUPPORT),
        (2, "public", &CODING),
        (5, "secret", &CODING),
        (11, "phi", &SUPPORT),
        (16, "internal", &SUPPORT),
        (40, "pci", &ETL),
    ] {
        let app = service(j / 2);
        let labels = [("data_class", class), ("app", app.as_str())];
        a.push(action(
            "llm.call",
            format!("llm:{}", model(j)),
            &labels,
            json!({ "prompt_digest": "sha256:4f1c", "records": 120 }),
            who,
        ));
    }

    // A kind no rule knows.
    a.push(action(
        "payments.refund",
        "stripe:acct_1".into(),
        &[],
        json!({ "amount": 4200, "currency": "eur" }),
        &SUPPORT,
    ));
    for action in &a {
        action.validate().expect("a benchmark action is valid");
    }
    a
}

// ─── Setup shared by both parts ─────────────────────────────────────────────────────────────────

struct Setup {
    n: usize,
    text: String,
    policy: Policy,
}

fn setups() -> Vec<Setup> {
    SIZES
        .iter()
        .map(|&n| {
            let text = policy_text(n);
            let policy = Policy::parse(&text).unwrap_or_else(|e| {
                panic!(
                    "the {n}-rule policy does not compile:\n{}",
                    e.render("generated.toml")
                )
            });
            assert_eq!(policy.rules().len(), n);
            Setup { n, text, policy }
        })
        .collect()
}

/// Prints what each policy is made of and what it decides, so a reader can judge the mix.
fn describe(setups: &[Setup], actions: &[Action]) {
    println!();
    println!("policies and actions ({} actions, cycled)", actions.len());
    println!(
        "{:>6} {:>9} {:>7} {:>6} {:>6} {:>8}   decisions over the actions",
        "rules", "bytes", "cel %", "allow", "deny", "approval"
    );
    for s in setups {
        let rules = s.policy.rules();
        let count = |o: Outcome| rules.iter().filter(|r| r.outcome == o).count();
        let cel = s
            .policy
            .source()
            .rules
            .iter()
            .filter(|r| r.get_ref().condition.is_some())
            .count();
        let mut decided = BTreeMap::<&str, usize>::new();
        let mut matched_none = 0;
        let mut failures = 0;
        for a in actions {
            let d = s.policy.decide(a);
            *decided.entry(d.outcome.as_str()).or_default() += 1;
            matched_none += usize::from(d.rules.is_empty());
            failures += d.condition_failures.len();
        }
        assert_eq!(
            failures, 0,
            "no condition may fail on the benchmark's actions"
        );
        println!(
            "{:>6} {:>9} {:>6.1}% {:>6} {:>6} {:>8}   {decided:?}, {matched_none} by the default",
            s.n,
            s.text.len(),
            100.0 * cel as f64 / rules.len() as f64,
            count(Outcome::Allow),
            count(Outcome::Deny),
            count(Outcome::RequireApproval),
        );
    }
}

// ─── Per-decision percentiles, timed one by one ─────────────────────────────────────────────────

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn percentile_table(setups: &[Setup], actions: &[Action], decisions: usize, loads: usize) {
    println!();
    println!("per-decision latency: {decisions} decisions per size, each timed alone with Instant");
    println!("(Instant::now() overhead, ~20-30 ns a pair, is included, not subtracted)");
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "rules", "mean ns", "median ns", "p90 ns", "p99 ns", "p99.9 ns", "max ns", "load median"
    );
    let mut slowest = Vec::new();
    for s in setups {
        // Warm-up: caches, branch predictors, the allocator's free lists.
        for i in 0..decisions / 10 {
            black_box(s.policy.decide(black_box(&actions[i % actions.len()])));
        }
        let mut times = Vec::with_capacity(decisions);
        let mut per_action = vec![Vec::with_capacity(decisions / actions.len() + 1); actions.len()];
        for i in 0..decisions {
            let k = i % actions.len();
            let action = black_box(&actions[k]);
            let start = Instant::now();
            let decision = s.policy.decide(action);
            let elapsed = start.elapsed();
            black_box(decision);
            let ns = elapsed.as_nanos() as u64;
            times.push(ns);
            per_action[k].push(ns);
        }
        let mean = times.iter().sum::<u64>() as f64 / times.len() as f64;
        times.sort_unstable();

        let mut load_times = Vec::with_capacity(loads);
        for _ in 0..loads {
            let start = Instant::now();
            let policy = Policy::parse(black_box(&s.text));
            load_times.push(start.elapsed());
            black_box(policy.is_ok());
            drop(policy);
        }
        load_times.sort_unstable();
        let load = match load_times.get(load_times.len() / 2) {
            Some(load) => format!("{:.2} ms", load.as_secs_f64() * 1e3),
            None => "-".to_owned(),
        };

        println!(
            "{:>6} {:>10.0} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12}",
            s.n,
            mean,
            percentile(&times, 50.0),
            percentile(&times, 90.0),
            percentile(&times, 99.0),
            percentile(&times, 99.9),
            times[times.len() - 1],
            load,
        );
        if s.n == SIZES[SIZES.len() - 1] {
            for (k, mut t) in per_action.into_iter().enumerate() {
                t.sort_unstable();
                slowest.push((percentile(&t, 50.0), percentile(&t, 99.0), k));
            }
        }
    }
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    let largest = &setups[setups.len() - 1].policy;
    println!();
    println!(
        "slowest actions at {} rules (median / p99 ns, outcome, rules behind it):",
        largest.rules().len()
    );
    for (median, p99, k) in slowest.iter().take(8) {
        let a = &actions[*k];
        let d = largest.decide(a);
        println!(
            "  {median:>6} / {p99:>6}  {:<17} {:<16} {} [{}]",
            a.kind,
            d.outcome.as_str(),
            a.resource,
            d.rules.join(", ")
        );
    }
    println!();
}

// ─── Criterion ──────────────────────────────────────────────────────────────────────────────────

fn criterion_groups(c: &mut Criterion, setups: &[Setup], actions: &[Action]) {
    let mut group = c.benchmark_group("decide");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for s in setups {
        group.bench_with_input(BenchmarkId::from_parameter(s.n), &s.policy, |b, policy| {
            let mut i = 0usize;
            b.iter(|| {
                let action = &actions[i % actions.len()];
                i = i.wrapping_add(1);
                policy.decide(black_box(action))
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("load");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for s in setups {
        group.bench_with_input(
            BenchmarkId::from_parameter(s.n),
            s.text.as_str(),
            |b, text| {
                b.iter(|| Policy::parse(black_box(text)).map(|p| p.rules().len()));
            },
        );
    }
    group.finish();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and then criterion runs each
    // benchmark once as a test, and the percentile table is shortened (no load timing). With
    // --list or --profile-time (profiling one benchmark under perf) the table is skipped.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let skip_table = has("--list") || args.iter().any(|a| a.starts_with("--profile-time"));
    let benchmarking = has("--bench") && !has("--test");

    let setups = setups();
    let actions = actions();
    if benchmarking && !skip_table {
        describe(&setups, &actions);
        percentile_table(&setups, &actions, 200_000, 20);
    } else if !skip_table {
        percentile_table(&setups, &actions, actions.len() * 4, 0);
    }

    let mut criterion = Criterion::default().configure_from_args();
    criterion_groups(&mut criterion, &setups, &actions);
    criterion.final_summary();
}
