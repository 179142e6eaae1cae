//! `countersign demo [--dir DIR]`: a ready-to-try Countersign on the embedded defaults — SQLite,
//! the example policy, and four principals with fresh tokens: an agent, the human it acts for, and
//! two reviewers in the groups the example policy asks for. Run again, it reuses the directory.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use countersign_model::Digest;
use countersign_model::digest::hex_encode;

use crate::serve_cmd;

const EXAMPLE_POLICY: &str = include_str!("../../../examples/policy.toml");

/// A demo principal: id, kind, groups, the humans it acts for, whether it may reload the policy.
type DemoPrincipal = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    bool,
);

const PRINCIPALS: [DemoPrincipal; 4] = [
    ("deploy-bot", "agent", &[], &["alice"], false),
    ("alice", "human", &["eng"], &[], false),
    ("dana", "human", &["dba"], &[], false),
    ("sam", "human", &["sre"], &[], true),
];

pub fn env_name(principal: &str) -> String {
    format!(
        "COUNTERSIGN_TOKEN_{}",
        principal
            .to_uppercase()
            .replace(['-', '.', '@', ':', '+'], "_")
    )
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Creates the demo directory: policy, configuration (token hashes only) and demo.env (the tokens).
fn create(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    fs::write(dir.join("policy.toml"), EXAMPLE_POLICY)?;
    let mut config = String::from(
        "# Countersign demo configuration. Tokens are in demo.env; only their SHA-256 is here.\n\
         listen = \"127.0.0.1:8750\"\ndata_dir = \"data\"\npolicy = \"policy.toml\"\n",
    );
    let mut env = String::from("export COUNTERSIGN_SERVER=http://127.0.0.1:8750\n");
    for (id, kind, groups, acts_for, admin) in PRINCIPALS {
        let mut secret = [0u8; 24];
        getrandom::fill(&mut secret)
            .map_err(|e| anyhow::anyhow!("the system's random source failed: {e}"))?;
        let token = format!("cs_{}", hex_encode(&secret));
        let quoted = |names: &[&str]| {
            names
                .iter()
                .map(|n| format!("\"{n}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // The agent works on production: the configuration says so, since what the agent
        // itself says about an action is only a claim.
        let labels = if kind == "agent" {
            "labels = { env = \"production\" }\n"
        } else {
            ""
        };
        config.push_str(&format!(
            "\n[[principals]]\nid = \"{id}\"\nkind = \"{kind}\"\ngroups = [{}]\nacts_for = [{}]\nadmin = {admin}\n{labels}token_sha256 = \"{}\"\n",
            quoted(groups),
            quoted(acts_for),
            Digest::of(token.as_bytes()).hex()
        ));
        env.push_str(&format!("export {}={token}\n", env_name(id)));
    }
    // The web inbox, with sign-in by API token: there is no identity provider in a demo.
    config.push_str("\n[web]\ntoken_sign_in = true\n");
    write_private(&dir.join("demo.env"), &env)?;
    fs::write(dir.join("countersign.toml"), config)?;
    Ok(())
}

pub async fn demo(dir: &Path) -> anyhow::Result<ExitCode> {
    let config_path = dir.join("countersign.toml");
    if config_path.exists() {
        eprintln!("countersign: reusing the demo in {}", dir.display());
    } else {
        create(dir)?;
        eprintln!("countersign: created a demo in {}", dir.display());
    }
    let config = serve_cmd::load_config(&config_path)?;
    let env = dir.join("demo.env");
    eprintln!(
        "\nIn another terminal:\n\n  source {env}\n\n\
         # 1. an allowed action runs at once:\n\
         COUNTERSIGN_TOKEN=${agent} countersign run -- echo hello\n\n\
         # 2. a database dump waits for a DBA and an SRE (it needs pg_dump installed to run):\n\
         COUNTERSIGN_TOKEN=${agent} countersign run --resource db:prod/customers -- pg_dump --version\n\n\
         # 3. approve it as the two reviewers (alice, whom the agent acts for, cannot):\n\
         COUNTERSIGN_TOKEN=${dana} countersign approve REQUEST_ID\n\
         COUNTERSIGN_TOKEN=${sam} countersign approve REQUEST_ID\n\n\
         # or review in the browser: open {inbox} and sign in with dana's or sam's token\n\
         # (echo ${dana}, echo ${sam}); alice may sign in but cannot approve her agent's requests.\n",
        env = env.display(),
        agent = env_name("deploy-bot"),
        dana = env_name("dana"),
        sam = env_name("sam"),
        inbox = format_args!("{}/inbox", config.public_url),
    );
    serve_cmd::serve(config, false).await
}
