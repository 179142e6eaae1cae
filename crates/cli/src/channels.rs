//! The channels this binary wires to the broker, and what the binary checks for them: each
//! top-level table of the configuration belongs to a channel (`[slack]`, `[web]`), each `notify`
//! target of the policy names a service a channel provides and an address it accepts.

use countersign_broker::{Broker, Config};
use countersign_policy::Policy;

/// The configuration tables the channels read.
const TABLES: [&str; 2] = ["slack", "web"];

/// Refuses a top-level table no channel reads (a misspelt `[slak]` would otherwise be ignored).
pub fn check_tables(config: &Config) -> Result<(), String> {
    let unknown: Vec<String> = config
        .channels
        .keys()
        .filter(|name| !TABLES.contains(&name.as_str()))
        .map(|name| format!("[{name}] is not a table Countersign reads: besides [listener] and [[principals]], the tables are the channels' [slack] and [web]"))
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(unknown.join("\n"))
    }
}

/// Every problem with the policy's `notify` targets, each naming its rule and the fix.
pub fn check_targets(policy: &Policy) -> Vec<String> {
    countersign_channel::targets::check(
        policy,
        &[(
            countersign_slack::address::SERVICE,
            countersign_slack::address::check,
        )],
    )
}

/// The policy's `notify` targets whose channel this configuration does not turn on, each a
/// sentence naming the rule: their requests are announced only where a channel runs.
pub fn unannounced(config: &Config, policy: &Policy) -> Vec<String> {
    policy
        .rules()
        .iter()
        .flat_map(|rule| rule.notify.iter().map(move |target| (rule, target)))
        .filter(|(_, target)| !config.channels.contains_key(&target.service))
        .map(|(rule, target)| {
            format!(
                "rule '{}' notifies {target}, but the configuration has no [{}] table, so its requests are not announced there",
                rule.id, target.service
            )
        })
        .collect()
}

/// Starts the channels the configuration has a table for; returns their routes.
pub fn start(broker: &Broker, config: &Config) -> anyhow::Result<axum::Router> {
    let mut router = axum::Router::new();
    if let Some(table) = config.channels.get("slack") {
        router = router.merge(start_slack(broker, table)?.router());
    }
    if let Some(table) = config.channels.get("web") {
        router = router.merge(start_web(broker, table)?.router());
    }
    Ok(router)
}

/// Checks `[slack]`, reads the secrets from the environment variables it names, and starts
/// posting requests to Slack.
fn start_slack(broker: &Broker, table: &toml::Table) -> anyhow::Result<countersign_slack::Slack> {
    let settings = countersign_slack::Settings::parse(table)
        .map_err(|e| anyhow::anyhow!("the configuration is not valid:\n{}", e.join("\n")))?;
    let secret = |name: &str, what: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "Slack is configured, but the environment variable {name} ({what}) is not set: export it, or remove [slack] from the configuration"
                )
            })
    };
    let secrets = countersign_slack::Secrets {
        bot_token: secret(&settings.bot_token_env, "the Slack bot token, xoxb-…")?,
        signing_secret: secret(
            &settings.signing_secret_env,
            "the Slack app's signing secret",
        )?,
    };
    eprintln!(
        "countersign: posting requests to Slack channel {}; interactions at /slack/interactions",
        settings.channel
    );
    countersign_slack::Slack::start(broker.clone(), settings, secrets).map_err(anyhow::Error::msg)
}

/// Checks `[web]` and builds the web inbox; the OpenID Connect client secret comes from the
/// environment variable `web.oidc.client_secret_env` names.
fn start_web(broker: &Broker, table: &toml::Table) -> anyhow::Result<countersign_web::Web> {
    let web = countersign_web::Web::new(broker.clone(), table, |name| {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    })
    .map_err(|e| anyhow::anyhow!("the configuration is not valid:\n{e}"))?;
    eprintln!(
        "countersign: the web inbox is at {}/inbox",
        broker.public_url()
    );
    Ok(web)
}
