//! The configuration: `[listener]` (defaults, values, errors naming the key), principals' identities
//! (and the deprecated keys that still name them), and the tables handed to the channels.

use std::time::Duration;

use countersign_broker::{Config, ListenerLimits};

const BASE: &str = "data_dir = \"data\"\npolicy = \"policy.toml\"\n";

#[test]
fn the_listener_limits_default_to_sane_values_and_can_be_set() {
    let config = Config::parse(BASE).unwrap();
    assert_eq!(config.listener, ListenerLimits::default());
    assert_eq!(config.listener.header_timeout, Duration::from_secs(10));
    assert_eq!(config.listener.body_timeout, Duration::from_secs(30));
    assert_eq!(config.listener.max_connections, 4096);
    assert_eq!(config.listener.max_connections_per_peer, 256);

    let text = format!(
        "{BASE}[listener]\nheader_timeout = \"5s\"\nbody_timeout = \"1m\"\nmax_connections = 100\nmax_connections_per_peer = 10\n"
    );
    let limits = Config::parse(&text).unwrap().listener;
    assert_eq!(
        limits,
        ListenerLimits {
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(60),
            max_connections: 100,
            max_connections_per_peer: 10,
        }
    );
}

#[test]
fn bad_listener_limits_are_refused_naming_the_key() {
    let text = format!(
        "{BASE}[listener]\nheader_timeout = \"0s\"\nbody_timeout = \"soon\"\nmax_connections = 0\n"
    );
    let errors = Config::parse(&text).unwrap_err().0;
    assert_eq!(
        errors,
        [
            "listener.header_timeout: '0s' is not a duration of at least 1s (write e.g. \"10s\" or \"1m\")",
            "listener.body_timeout: 'soon' is not a duration of at least 1s (write e.g. \"10s\" or \"1m\")",
            "listener.max_connections must be at least 1; leave it out for the default",
        ]
    );
    let text = format!("{BASE}[listener]\nidle = \"1s\"\n");
    let errors = Config::parse(&text).unwrap_err().0;
    assert!(errors[0].contains("unknown field `idle`"), "{errors:?}");
}

#[test]
fn principals_carry_identities_and_the_old_keys_still_work_with_a_deprecation() {
    let principal = |extra: &str| {
        format!(
            "{BASE}[[principals]]\nid = \"dana\"\nkind = \"human\"\n{extra}\ntoken_sha256 = \"{}\"\n",
            "ab".repeat(32)
        )
    };
    let config = Config::parse(&principal(
        "identities = { slack = \"U0DANA0001\", teams = \"dana@corp\" }",
    ))
    .unwrap();
    assert_eq!(config.principals[0].identity("slack"), Some("U0DANA0001"));
    assert_eq!(config.principals[0].identity("teams"), Some("dana@corp"));
    assert_eq!(config.principals[0].identity("oidc"), None);
    assert!(config.deprecations.is_empty());

    let config = Config::parse(&principal(
        "slack_user = \"U0DANA0001\"\noidc_subject = \"sub-dana\"",
    ))
    .unwrap();
    assert_eq!(config.principals[0].identity("slack"), Some("U0DANA0001"));
    assert_eq!(config.principals[0].identity("oidc"), Some("sub-dana"));
    assert_eq!(
        config.deprecations,
        [
            "principals[0] ('dana'): slack_user is deprecated; write identities = { slack = \"U0DANA0001\" } instead",
            "principals[0] ('dana'): oidc_subject is deprecated; write identities = { oidc = \"sub-dana\" } instead",
        ]
    );

    let errors = Config::parse(&principal(
        "slack_user = \"U0DANA0001\"\nidentities = { slack = \"U0OTHER001\", Teams = \"x\" }",
    ))
    .unwrap_err()
    .0;
    assert_eq!(
        errors,
        [
            "principals[0] ('dana'): slack_user 'U0DANA0001' and identities.slack 'U0OTHER001' disagree; keep identities.slack only",
            "principals[0] ('dana'): identities: 'Teams' is not a channel name (a lowercase word, like slack)",
        ]
    );
}

#[test]
fn channel_tables_go_to_the_binary_and_other_unknown_keys_are_refused() {
    let config = Config::parse(&format!(
        "{BASE}[slack]\nchannel = \"#approvals\"\n[web]\nsession_ttl = \"8h\"\n"
    ))
    .unwrap();
    assert_eq!(config.channels.keys().collect::<Vec<_>>(), ["slack", "web"]);
    assert_eq!(
        config.channels["slack"]["channel"].as_str(),
        Some("#approvals")
    );
    let errors = Config::parse(&format!("{BASE}colour = \"blue\"\n"))
        .unwrap_err()
        .0;
    assert_eq!(
        errors,
        [
            "line 3: unknown field `colour`, expected one of `listen`, `public_url`, `data_dir`, `policy`, `signing_key`, `principals`, `listener`, or a channel's table"
        ]
    );
}

#[test]
fn principals_carry_labels_resource_bindings_and_what_a_service_vouches_for() {
    let principal = |id: &str, kind: &str, extra: &str, hash: &str| {
        format!(
            "[[principals]]\nid = \"{id}\"\nkind = \"{kind}\"\n{extra}\ntoken_sha256 = \"{}\"\n",
            hash.repeat(32)
        )
    };
    let text = format!(
        "{BASE}{}{}",
        principal(
            "deploy-bot",
            "agent",
            "labels = { env = \"production\" }\nresources = [\"host:build-*\"]",
            "ab"
        ),
        principal(
            "pg-proxy",
            "service",
            "vouches_for = { resources = [\"db:prod/*\"], labels = [\"env\"] }",
            "cd"
        ),
    );
    let config = Config::parse(&text).unwrap();
    let agent = &config.principals[0];
    assert_eq!(agent.labels["env"], "production");
    assert!(agent.resources[0].matches("host:build-7"));
    assert!(agent.vouches_for.is_none());
    let service = config.principals[1].vouches_for.as_ref().unwrap();
    assert!(service.resources[0].matches("db:prod/customers"));
    assert!(service.labels.contains("env"));

    let refused = |extra: &str, kind: &str| {
        Config::parse(&format!("{BASE}{}", principal("p", kind, extra, "ab")))
            .unwrap_err()
            .0
    };
    assert_eq!(
        refused("", "service"),
        [
            "principals[0] ('p'): a service needs vouches_for = { resources = [...], labels = [...] }: what it enforces and which labels it may set"
        ]
    );
    assert_eq!(
        refused("vouches_for = { resources = [\"db:*\"] }", "agent"),
        [
            "principals[0] ('p'): vouches_for is only for kind = \"service\" (an enforcement point that submits on behalf of agents)"
        ]
    );
    assert!(
        refused("labels = { env = \"production\" }", "human")[0]
            .contains("labels and resources are only for agents")
    );
    assert!(
        refused("labels = { \"bad name\" = \"x\" }", "agent")[0]
            .contains("labels: 'bad name' is not a label name")
    );
}
